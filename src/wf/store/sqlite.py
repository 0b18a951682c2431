"""The event log in one SQLite file: append-only ``events`` plus the projection tables.

Every append is one ``BEGIN IMMEDIATE`` transaction that inserts the events and upserts the
projection rows they touch, so the tables never disagree with the log. Projection rows are
computed by ``projections.apply`` on an in-memory cache of the tables; before each write the
cache folds in whatever other processes appended since (a CLI sending a signal), so several
processes can share the file. ``rebuild_projections`` recomputes the tables from the events
alone with the same reducer.

Values cross the SQL boundary as JSON: event ``data`` is stored as JSON text and the reducer is
always fed the decoded text, never the caller's dict, so a live append and a rebuild see the
very same values (tuples become lists, integer keys become strings) and cannot drift.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import operator
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, cast

from wf.errors import ConcurrencyError, StoreDamaged, StoreError, WfError, resource_error
from wf.model import Event, NewEvent
from wf.store import projections
from wf.store.projections import COLUMNS, JSON_COLUMNS, PRIMARY_KEYS, Projection

SCHEMA_VERSION = 1
# The projection tables' shape; when it changes the tables are recreated and rebuilt on open.
_PROJECTION_SHAPE = json.dumps([COLUMNS, PRIMARY_KEYS], sort_keys=True)
# Past this many events appended by other processes, reloading the tables beats folding them.
_CATCH_UP_LIMIT = 5000

_EVENT_COLUMNS = "seq, stream, stream_version, type, ts, data, idempotency_key"
_INSERT_EVENT = ("INSERT INTO events (stream, stream_version, type, ts, data, idempotency_key)"
                 " VALUES (?, ?, ?, ?, ?, ?)")
# What a plain (non-JSON) projection column can hold, and what a "flat" event's values are.
# An int beyond 64 bits passes the column check and fails the whole transaction when written:
# a price only absurd data pays.
_SCALARS = frozenset({str, int, float, bool, type(None)})

OnCommit = Callable[[list[Event]], None]


# Strict, compact JSON; one encoder, since json.dumps with options builds one per call.
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads(text: str) -> Any:
    """``json.loads`` without its per-call overhead, which is most of the cost for the small
    objects events hold (it matters for a rebuild of a million events)."""
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        end = -1
    return value if end == len(text) else json.loads(text)  # json.loads raises the error


def _event(row: tuple[Any, ...]) -> Event:
    try:
        data = _loads(row[5])
    except (ValueError, TypeError) as exc:
        raise _BadEvent(row[0], row[3]) from exc
    return Event(row[0], row[1], row[2], row[3], row[4], data, row[6])


class _BadEvent(Exception):
    """An event whose data is not JSON; the store turns it into StoreDamaged with its path."""

    def __init__(self, seq: int, type_: str) -> None:
        super().__init__(f"event {seq} ({type_}) holds data that is not valid JSON")


# SQLite's words for a file that is not a database, or one whose pages are broken.
_DAMAGE_WORDS = ("file is not a database", "malformed", "database disk image")


def is_damage(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and any(
        w in str(exc) for w in _DAMAGE_WORDS)


def damaged(path: Path, what: str) -> StoreDamaged:
    """StoreDamaged for the log at ``path``, after copying it (and its WAL) aside once:
    whatever the user does next, the damaged file stays as it was found."""
    copy = _backup_copy(path)
    where = f"; a copy is at {copy}" if copy else ""
    return StoreDamaged(
        f"the event log {path} is damaged: {what}{where}",
        hint=f"restore {path.name} from a backup, or move it aside to start a new log "
             "(the next `wf run` makes one; `wf clean --orphans` then lists the wf branches "
             "and worktrees it does not know); see docs/cli.md, exit code 4")


def _backup_copy(path: Path) -> Path | None:
    try:
        st = path.stat()
    except OSError:
        return None
    for old in path.parent.glob(path.name + ".damaged-*"):  # one copy per state of the file
        with contextlib.suppress(OSError):
            if old.is_file() and old.stat().st_size == st.st_size and (
                    old.stat().st_mtime >= st.st_mtime):
                return old
    copy = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        shutil.copy2(path, copy)
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                shutil.copy2(side, copy.with_name(copy.name + suffix))
    except OSError:
        return None
    return copy


class _Prepared:
    """A NewEvent with its data as stored (JSON text)."""

    __slots__ = ("event", "text", "flat")

    def __init__(self, event: NewEvent, text: str) -> None:
        self.event, self.text = event, text
        # One level of str keys and plain values: a shallow copy is what decoding would give.
        self.flat = all(k.__class__ is str and v.__class__ in _SCALARS
                        for k, v in event.data.items())

    def decoded(self) -> dict[str, Any]:
        """A fresh copy of the data exactly as a read of the stored text returns it."""
        return dict(self.event.data) if self.flat else _loads(self.text)


class _Table:
    """How one projection table's rows cross the SQL boundary."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.columns = COLUMNS[name]
        self.key = PRIMARY_KEYS[name]
        self.json_columns = tuple(c for c in self.columns if (name, c) in JSON_COLUMNS)
        self.json_at = tuple(self.columns.index(c) for c in self.json_columns)
        self.plain = tuple(c for c in self.columns if (name, c) not in JSON_COLUMNS)
        self.values = operator.itemgetter(*self.columns)
        self.plain_values = operator.itemgetter(*self.plain)
        cols = ", ".join(self.columns)
        self.create = f"CREATE TABLE {name} ({cols}, PRIMARY KEY ({', '.join(self.key)}))"
        self.select = f"SELECT {cols} FROM {name}"
        self.order = f" ORDER BY {', '.join(self.key)}"
        self.upsert = (f"INSERT OR REPLACE INTO {name} ({cols})"
                       f" VALUES ({', '.join('?' * len(self.columns))})")
        self.delete = f"DELETE FROM {name} WHERE " + " AND ".join(f"{k} = ?" for k in self.key)

    def encode(self, row: dict[str, Any]) -> list[Any]:
        values = list(self.values(row))
        for i in self.json_at:
            if values[i] is not None:
                values[i] = _dumps(values[i])
        return values

    def check(self, row: dict[str, Any]) -> None:
        """Raise StoreError unless SQLite can store every plain column of ``row``."""
        if _SCALARS.issuperset(map(type, self.plain_values(row))):
            return
        for col in self.plain:
            value = row[col]
            if not isinstance(value, str | int | float | type(None)):
                raise StoreError(f"projection column {self.name}.{col} cannot hold "
                                 f"{type(value).__name__} {value!r:.40}")

    def decode(self, values: Sequence[Any]) -> dict[str, Any]:
        row = dict(zip(self.columns, values, strict=True))
        for col in self.json_columns:
            if row[col] is not None:
                row[col] = _loads(row[col])
        return row

    def key_of(self, row: dict[str, Any]) -> Any:
        return row[self.key[0]] if len(self.key) == 1 else tuple(row[k] for k in self.key)


_TABLES = {name: _Table(name) for name in COLUMNS}


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, stream TEXT NOT NULL,"
    " stream_version INTEGER NOT NULL, type TEXT NOT NULL, ts REAL NOT NULL, data TEXT NOT NULL,"
    " idempotency_key TEXT UNIQUE, UNIQUE (stream, stream_version))",
)
_PROJECTION_SCHEMA = (*(t.create for t in _TABLES.values()),
                      "CREATE INDEX signals_pending ON signals (seq) WHERE handled_seq IS NULL",
                      "CREATE INDEX tasks_state ON tasks (state)")


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc)


class SqliteEventStore:
    """The event log and its projections in the SQLite file at ``path``.

    Safe to share between threads (one connection behind one lock) and between processes
    (SQLite's write lock, plus the catch-up described in the module docstring).
    """

    def __init__(self, path: Path | str, *, busy_timeout: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        # The projection tables as of event ``_cache_seq``, or None until first needed.
        self._cache: Projection | None = None
        self._cache_seq = 0
        # Latest version per stream, as of ``_cache_seq``, for the streams looked up so far.
        self._versions: dict[str, int] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open event log {self.path}: {exc}") from exc
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            meta = self._meta(self._conn.cursor())
        except sqlite3.Error as exc:
            self.close()
            if _is_busy(exc):
                raise self._error(exc, "open") from exc
            if is_damage(exc):
                raise damaged(self.path, str(exc)) from exc
            raise StoreError(f"cannot open event log {self.path}: {exc}") from exc
        try:
            # Opening an up-to-date log takes no write lock: readers open it while the
            # engine writes.
            if meta != self._current_meta():
                self._write(self._migrate)
        except StoreError:
            self.close()
            raise

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> SqliteEventStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteEventStore({str(self.path)!r})"

    # -- writes -----------------------------------------------------------------------------
    def append(self, events: Sequence[NewEvent], *, ts: float | None = None) -> list[Event]:
        """Append ``events`` atomically and return them as stored, in order.

        Each event gets the next ``stream_version`` of its stream; one that names an
        ``expected_version`` (the version it must get) fails the whole append with
        ConcurrencyError if the stream has moved on. An event whose ``idempotency_key`` is
        already in the log is not appended again: the stored event stands in its place.
        """
        [result] = self.append_many([events], ts=ts)
        if isinstance(result, Exception):
            raise result
        return result

    def append_many(self, batches: Sequence[Sequence[NewEvent]], *, ts: float | None = None,
                    on_commit: OnCommit | None = None) -> list[list[Event] | Exception]:
        """Append several independent batches in one transaction (one fsync).

        Each batch is all-or-nothing: a batch that is rejected (ConcurrencyError, or a
        StoreError for data that cannot be stored or projected) gets its exception in its slot
        and the others commit. An error of the transaction itself is raised. ``on_commit`` is
        called after the commit, outside the lock, with the events this call newly wrote (not
        the stored events returned for known idempotency keys); what it raises propagates.
        """
        if not any(batches):
            return [[] for _ in batches]
        stamp = self._clock() if ts is None else ts
        prepared = [self._prepare(batch) for batch in batches]
        written: list[Event] = []

        def transaction(cur: sqlite3.Cursor) -> list[list[Event] | Exception]:
            tables_seq = self._catch_up(cur)
            # Projection rows are written once, at the end (a row that many batches touch
            # costs one write), so a batch's only writes are its event rows, which have the
            # highest seqs: undoing a rejected batch is deleting them. That is what a SAVEPOINT
            # per batch would do, without its two extra statements per batch.
            touched: set[tuple[str, Any]] = set()
            results: list[list[Event] | Exception] = []
            for batch in prepared:
                if isinstance(batch, Exception):
                    results.append(batch)
                    continue
                head = written[-1].seq if written else tables_seq
                try:
                    events = self._append_batch(cur, batch, stamp, written, touched)
                except StoreError as exc:
                    cur.execute("DELETE FROM events WHERE seq > ?", (head,))
                    if self._cache is None:  # the batch failed half-projected
                        self._reload(cur, tables_seq)
                    results.append(exc)
                    continue
                results.append(events)
            self._write_rows(cur, touched)
            return results

        results = self._write(transaction)
        if on_commit is not None and written:
            on_commit(written)
        return results

    def rebuild_projections(self) -> None:
        """Recompute every projection table from the events alone."""
        self._write(self._rebuild)

    # -- reads: the log ---------------------------------------------------------------------
    def read(self, since: int = 0, *, limit: int | None = None, stream: str | None = None,
             types: Sequence[str] | None = None) -> list[Event]:
        """Events with ``seq > since`` in ascending order, optionally filtered."""
        sql, args = f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ?", [cast(Any, since)]
        if stream is not None:
            sql += " AND stream = ?"
            args.append(stream)
        if types is not None:
            types = list(types)
            if not types:
                return []
            sql += f" AND type IN ({', '.join('?' * len(types))})"
            args.extend(types)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        try:
            return [_event(row) for row in self._query(sql, args)]
        except _BadEvent as exc:
            raise damaged(self.path, str(exc)) from exc

    def last_seq(self) -> int:
        return self._query("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0]

    def stream_version(self, stream: str) -> int:
        """The version of the last event in ``stream``, 0 for an empty stream."""
        return self._query("SELECT COALESCE(MAX(stream_version), 0) FROM events"
                           " WHERE stream = ?", (stream,))[0][0]

    # -- reads: the projections -------------------------------------------------------------
    def tasks(self) -> list[dict[str, Any]]:
        """Every task, in submission order."""
        return self._rows("tasks", " ORDER BY submitted_seq")

    def task(self, task_id: str) -> dict[str, Any] | None:
        rows = self._rows("tasks", " WHERE id = ?", (task_id,))
        return rows[0] if rows else None

    def attempts(self, task_id: str | None = None) -> list[dict[str, Any]]:
        if task_id is None:
            return self._rows("attempts", " ORDER BY task_id, n")
        return self._rows("attempts", " WHERE task_id = ? ORDER BY n", (task_id,))

    def signals(self, pending_only: bool = True) -> list[dict[str, Any]]:
        """Signals in the order they were sent; by default only those not handled yet."""
        where = " WHERE handled_seq IS NULL" if pending_only else ""
        return self._rows("signals", where + " ORDER BY seq")

    def runs(self) -> list[dict[str, Any]]:
        return self._rows("runs", " ORDER BY started_ts, id")

    def queue(self) -> list[dict[str, Any]]:
        """Merge-queue entries in the order they entered."""
        return self._rows("queue", " ORDER BY position")

    def projection(self) -> Projection:
        """The current state of every projection table, as a fresh ``Projection``."""
        with self._lock:
            cur = self._cursor()
            try:
                cur.execute("BEGIN")
                try:
                    return self._load(cur)
                finally:
                    cur.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._error(exc, "read the projections") from exc

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every projection table's rows, sorted by primary key."""
        return {name: self._rows(name, t.order) for name, t in _TABLES.items()}

    # -- internals: transactions ----------------------------------------------------------
    def _cursor(self) -> sqlite3.Cursor:
        if self._conn is None:
            raise StoreError(f"event log {self.path} is closed")
        return self._conn.cursor()

    def _error(self, exc: sqlite3.Error, doing: str) -> WfError:
        if _is_busy(exc):
            return StoreError(f"event log {self.path} is locked by another process",
                              hint="another wf process held the write lock for too long; "
                                   "try again, or find it with `fuser` on the file")
        if is_damage(exc):
            return damaged(self.path, str(exc))
        refused = resource_error(str(exc), f"cannot {doing} the event log {self.path}")
        if refused is not None:
            return refused
        return StoreError(f"event log {self.path}: cannot {doing}: {exc}")

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._cursor().execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc, "read") from exc

    def _rows(self, table: str, tail: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        t = _TABLES[table]
        return [t.decode(row) for row in self._query(t.select + tail, args)]

    def _write(self, body: Callable[[sqlite3.Cursor], Any]) -> Any:
        """Run ``body`` in one BEGIN IMMEDIATE transaction; forget the cache if it fails."""
        with self._lock:
            cur = self._cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc, "start a write") from exc
            try:
                result = body(cur)
                cur.execute("COMMIT")
                return result
            except BaseException as exc:
                self._forget()
                with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
                    cur.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc, "write") from exc
                raise

    @staticmethod
    def _current_meta() -> dict[str, str]:
        return {"schema_version": str(SCHEMA_VERSION), "projection_shape": _PROJECTION_SHAPE}

    def _meta(self, cur: sqlite3.Cursor) -> dict[str, str]:
        if cur.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
            return {}
        meta = dict(cur.execute("SELECT key, value FROM meta").fetchall())
        version = int(meta.get("schema_version", SCHEMA_VERSION))
        if version > SCHEMA_VERSION:
            raise StoreError(f"event log {self.path} has schema version {version}; this wf "
                             f"knows up to {SCHEMA_VERSION}", hint="upgrade wf")
        return meta

    def _migrate(self, cur: sqlite3.Cursor) -> None:
        """Create or upgrade the schema; recreate and rebuild the projection tables when
        their shape changed."""
        for statement in _SCHEMA:
            cur.execute(statement)
        meta = self._meta(cur)
        cur.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),))
        if meta.get("projection_shape") != _PROJECTION_SHAPE:
            for name in _TABLES:
                cur.execute(f"DROP TABLE IF EXISTS {name}")
            for statement in _PROJECTION_SCHEMA:
                cur.execute(statement)
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('projection_shape', ?)",
                        (_PROJECTION_SHAPE,))
            self._rebuild(cur)

    # -- internals: the projection cache --------------------------------------------------
    def _forget(self) -> None:
        self._cache = None
        self._versions.clear()

    def _load(self, cur: sqlite3.Cursor) -> Projection:
        p = Projection()
        for name, t in _TABLES.items():
            table = p.table(name)
            for values in cur.execute(t.select):
                row = t.decode(values)
                table[t.key_of(row)] = row
        return p

    def _catch_up(self, cur: sqlite3.Cursor) -> int:
        """Bring the cache up to the log's last event at the start of a write transaction,
        and return that event's seq (the tables are as of it)."""
        last = cur.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        if self._cache is not None and 0 <= last - self._cache_seq <= _CATCH_UP_LIMIT:
            try:
                self._fold_new_events(cur)  # appended by other processes
                return last
            except StoreError:
                pass  # one this reducer cannot take: trust the rows its writer wrote
        self._forget()
        self._cache, self._cache_seq = self._load(cur), last
        return last

    def _reload(self, cur: sqlite3.Cursor, tables_seq: int) -> None:
        """Rebuild the cache mid-transaction: the tables, which this transaction has not
        written yet, plus the events of its batches so far."""
        self._forget()
        self._cache, self._cache_seq = self._load(cur), tables_seq
        self._fold_new_events(cur)

    def _fold_new_events(self, cur: sqlite3.Cursor) -> None:
        assert self._cache is not None
        rows = cur.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq",
                           (self._cache_seq,)).fetchall()
        for row in rows:
            try:
                e = _event(row)
            except _BadEvent as exc:
                raise damaged(self.path, str(exc)) from exc
            try:
                projections.apply(self._cache, e)
            except Exception as exc:  # written by another process, perhaps another wf version
                raise _unprojectable(e.seq, e.type, exc) from exc
            self._versions[e.stream] = e.stream_version
        if rows:
            self._cache_seq = rows[-1][0]

    def _prepare(self, batch: Sequence[NewEvent]) -> list[_Prepared] | StoreError:
        out = []
        for ne in batch:
            if not isinstance(ne.stream, str) or not isinstance(ne.type, str):
                return StoreError(f"event stream and type must be strings: {ne!r:.120}")
            if not isinstance(ne.data, dict):
                return StoreError(f"event {ne.type!r} data must be a dict, "
                                  f"not {type(ne.data).__name__}")
            try:
                out.append(_Prepared(ne, _dumps(ne.data)))
            except (TypeError, ValueError) as exc:
                return StoreError(f"event {ne.type!r} data is not JSON: {exc}")
        return out

    def _version(self, cur: sqlite3.Cursor, stream: str) -> int:
        version = self._versions.get(stream)
        if version is None:
            version = cur.execute("SELECT COALESCE(MAX(stream_version), 0) FROM events"
                                  " WHERE stream = ?", (stream,)).fetchone()[0]
            self._versions[stream] = version
        return version

    def _append_batch(self, cur: sqlite3.Cursor, batch: list[_Prepared], ts: float,
                      written: list[Event], touched: set[tuple[str, Any]]) -> list[Event]:
        """Insert one batch's events and fold them into the cache.

        Raises StoreError if the batch cannot be taken whole; the caller then deletes the rows
        it inserted (and reloads the cache if this dropped it).
        """
        assert self._cache is not None
        p = self._cache
        out: list[Event] = []
        fresh: list[Event] = []
        versions: dict[str, int] = {}
        mine: set[tuple[str, Any]] = set()
        for prepared in batch:
            ne = prepared.event
            if ne.idempotency_key is not None:
                row = cur.execute(f"SELECT {_EVENT_COLUMNS} FROM events"
                                  " WHERE idempotency_key = ?", (ne.idempotency_key,)).fetchone()
                if row is not None:
                    out.append(_event(row))
                    continue
            version = (versions.get(ne.stream) or self._version(cur, ne.stream)) + 1
            if ne.expected_version is not None and ne.expected_version != version:
                if fresh:
                    self._forget()  # the cache holds this batch's first events
                raise ConcurrencyError(
                    f"stream {ne.stream!r} is at version {version - 1}: event {ne.type!r} "
                    f"expected to be version {ne.expected_version}")
            try:
                cur.execute(_INSERT_EVENT, (ne.stream, version, ne.type, ts, prepared.text,
                                            ne.idempotency_key))
            except sqlite3.IntegrityError as exc:
                self._forget()
                raise ConcurrencyError(f"stream {ne.stream!r} moved on while appending "
                                       f"{ne.type!r}: {exc}") from exc
            versions[ne.stream] = version
            e = Event(cast(int, cur.lastrowid), ne.stream, version, ne.type, ts,
                      prepared.decoded(), ne.idempotency_key)
            out.append(e)
            fresh.append(e)
            try:
                # The cache gets its own decoded copy: the caller may mutate the Event returned.
                mine |= projections.apply(p, Event(e.seq, e.stream, version, e.type, ts,
                                                   prepared.decoded(), e.idempotency_key))
            except Exception as exc:
                self._forget()  # the cache holds part of this batch
                raise StoreError(f"cannot project event {e.type!r} on {e.stream!r}: "
                                 f"{type(exc).__name__}: {exc}") from exc
        for name, key in mine:
            row = p.table(name).get(key)
            if row is not None:
                try:
                    _TABLES[name].check(row)
                except StoreError:
                    self._forget()
                    raise
        if fresh:
            self._cache_seq = fresh[-1].seq
        self._versions.update(versions)
        touched |= mine
        written.extend(fresh)
        return out

    def _write_rows(self, cur: sqlite3.Cursor, touched: Iterable[tuple[str, Any]]) -> None:
        assert self._cache is not None
        by_table: dict[str, list[Any]] = {}
        for name, key in touched:
            by_table.setdefault(name, []).append(key)
        for name, keys in by_table.items():
            t, table = _TABLES[name], self._cache.table(name)
            try:
                cur.executemany(t.upsert, [t.encode(table[k]) for k in keys if k in table])
            except (OverflowError, sqlite3.InterfaceError, sqlite3.ProgrammingError) as exc:
                raise StoreError(f"cannot store a {name} row: {exc}") from exc
            gone = [k if isinstance(k, tuple) else (k,) for k in keys if k not in table]
            if gone:
                cur.executemany(t.delete, gone)

    def _rebuild(self, cur: sqlite3.Cursor) -> None:
        self._forget()
        p, last = Projection(), 0
        apply = projections.apply
        loads = _loads
        reader = cur.connection.cursor()
        reader.arraysize = 4096
        reader.execute("SELECT seq, stream, stream_version, type, ts, data, idempotency_key"
                       " FROM events ORDER BY seq")
        seq = type_ = None
        try:
            while rows := reader.fetchmany():
                for seq, stream, version, type_, ts, data, key in rows:
                    apply(p, Event(seq, stream, version, type_, ts, loads(data), key))
                last = rows[-1][0]
        except sqlite3.Error:
            raise
        except ValueError as exc:  # data that is not JSON
            raise damaged(self.path, str(_BadEvent(seq, type_))) from exc
        except Exception as exc:
            raise _unprojectable(seq, type_, exc) from exc
        for name, t in _TABLES.items():
            cur.execute(f"DELETE FROM {name}")
            cur.executemany(t.upsert, [t.encode(row) for row in p.table(name).values()])
        self._cache, self._cache_seq = p, last


def _unprojectable(seq: Any, type_: Any, exc: Exception) -> StoreError:
    return StoreError(f"event {seq} ({type_}) in the log cannot be projected: "
                      f"{type(exc).__name__}: {exc}",
                      hint="the log was written by another version of wf, or edited by hand")


def open_store(path: Path | str) -> SqliteEventStore:
    """Open (creating if needed) the event log at ``path``."""
    return SqliteEventStore(path)
