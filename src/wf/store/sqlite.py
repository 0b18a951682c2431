"""The event log in one SQLite file: append-only ``events`` plus the projection tables.

Every append is one ``BEGIN IMMEDIATE`` transaction that inserts the events and upserts the
projection rows they touch, so the tables never disagree with the log. Projection rows are
computed by ``projections.apply`` on an in-memory cache of the tables; before each write the
cache folds in whatever other processes appended since (a CLI sending a signal), so several
processes can share the file. ``rebuild_projections`` recomputes the tables from the events
alone with the same reducer.

Values cross the SQL boundary as JSON (``wf.store.rows``); the schema, its migration and the
rebuild are in ``wf.store.schema``; what a damaged or unusable log becomes is in
``wf.store.damage`` (``damaged`` is also importable from here).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, cast

from wf.errors import ConcurrencyError, StoreError, WfError
from wf.model import Event, NewEvent
from wf.store import projections
from wf.store.damage import (
    BadEvent,
    damaged,
    is_busy,
    is_damage,
    sql_error,
    unprojectable,
)
from wf.store.projections import Projection
from wf.store.rows import EVENT_COLUMNS, TABLES, Prepared, event_of, prepare
from wf.store.schema import current_meta, migrate, read_meta, rebuild_tables

# Past this many events appended by other processes, reloading the tables beats folding them.
_CATCH_UP_LIMIT = 5000

_INSERT_EVENT = ("INSERT INTO events (stream, stream_version, type, ts, data, idempotency_key)"
                 " VALUES (?, ?, ?, ?, ?, ?)")

OnCommit = Callable[[list[Event]], None]


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
            meta = read_meta(self._conn.cursor(), self.path)
        except sqlite3.Error as exc:
            self.close()
            if is_busy(exc):
                raise self._error(exc, "open") from exc
            if is_damage(exc):
                raise damaged(self.path, str(exc)) from exc
            raise StoreError(f"cannot open event log {self.path}: {exc}") from exc
        try:
            # Opening an up-to-date log takes no write lock: readers open it while the
            # engine writes.
            if meta != current_meta():
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
        prepared = [prepare(batch) for batch in batches]
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
        sql, args = f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?", [cast(Any, since)]
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
            return [event_of(row) for row in self._query(sql, args)]
        except BadEvent as exc:
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

    def pool(self) -> list[dict[str, Any]]:
        """The pooled worktrees of this clone (``wf.pool.rules``), by slot."""
        return self._rows("pool", " ORDER BY slot")

    def agent_limits(self) -> list[dict[str, Any]]:
        """The adaptive parallelism of each agent that has one (``agent.limit_changed``)."""
        return self._rows("agent_limits", " ORDER BY agent")

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
        return {name: self._rows(name, t.order) for name, t in TABLES.items()}

    # -- internals: transactions ----------------------------------------------------------
    def _cursor(self) -> sqlite3.Cursor:
        if self._conn is None:
            raise StoreError(f"event log {self.path} is closed")
        return self._conn.cursor()

    def _error(self, exc: sqlite3.Error, doing: str) -> WfError:
        return sql_error(exc, self.path, doing)

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._cursor().execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc, "read") from exc

    def _rows(self, table: str, tail: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        t = TABLES[table]
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

    def _migrate(self, cur: sqlite3.Cursor) -> None:
        migrate(cur, self.path, self._rebuild)

    # -- internals: the projection cache --------------------------------------------------
    def _forget(self) -> None:
        self._cache = None
        self._versions.clear()

    def _load(self, cur: sqlite3.Cursor) -> Projection:
        p = Projection()
        for name, t in TABLES.items():
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
        rows = cur.execute(f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq",
                           (self._cache_seq,)).fetchall()
        for row in rows:
            try:
                e = event_of(row)
            except BadEvent as exc:
                raise damaged(self.path, str(exc)) from exc
            try:
                projections.apply(self._cache, e)
            except Exception as exc:  # written by another process, perhaps another wf version
                raise unprojectable(e.seq, e.type, exc) from exc
            self._versions[e.stream] = e.stream_version
        if rows:
            self._cache_seq = rows[-1][0]

    def _version(self, cur: sqlite3.Cursor, stream: str) -> int:
        version = self._versions.get(stream)
        if version is None:
            version = cur.execute("SELECT COALESCE(MAX(stream_version), 0) FROM events"
                                  " WHERE stream = ?", (stream,)).fetchone()[0]
            self._versions[stream] = version
        return version

    def _append_batch(self, cur: sqlite3.Cursor, batch: list[Prepared], stamp: float,
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
                row = cur.execute(f"SELECT {EVENT_COLUMNS} FROM events"
                                  " WHERE idempotency_key = ?", (ne.idempotency_key,)).fetchone()
                if row is not None:
                    out.append(event_of(row))
                    continue
            version = (versions.get(ne.stream) or self._version(cur, ne.stream)) + 1
            ts = stamp if ne.ts is None else ne.ts
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
                    TABLES[name].check(row)
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
            t, table = TABLES[name], self._cache.table(name)
            try:
                cur.executemany(t.upsert, [t.encode(table[k]) for k in keys if k in table])
            except (OverflowError, sqlite3.InterfaceError, sqlite3.ProgrammingError) as exc:
                raise StoreError(f"cannot store a {name} row: {exc}") from exc
            gone = [k if isinstance(k, tuple) else (k,) for k in keys if k not in table]
            if gone:
                cur.executemany(t.delete, gone)

    def _rebuild(self, cur: sqlite3.Cursor) -> None:
        self._forget()
        self._cache, self._cache_seq = rebuild_tables(cur, self.path)


def open_store(path: Path | str) -> SqliteEventStore:
    """Open (creating if needed) the event log at ``path``."""
    return SqliteEventStore(path)
