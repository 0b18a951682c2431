"""The event log file's tables: their schema, its migration on open, and the rebuild.

``events`` is the log; ``meta`` records the schema version and the shape of the projection
tables. When that shape changes (a new wf with other columns), the projection tables are
dropped, recreated and rebuilt from the events alone with the one reducer.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from wf.errors import StoreError
from wf.model import Event
from wf.store import projections
from wf.store.damage import BadEvent, damaged, unprojectable
from wf.store.projections import COLUMNS, PRIMARY_KEYS, Projection
from wf.store.rows import EVENT_COLUMNS, TABLES, loads

SCHEMA_VERSION = 1
# The projection tables' shape; when it changes the tables are recreated and rebuilt on open.
PROJECTION_SHAPE = json.dumps([COLUMNS, PRIMARY_KEYS], sort_keys=True)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, stream TEXT NOT NULL,"
    " stream_version INTEGER NOT NULL, type TEXT NOT NULL, ts REAL NOT NULL, data TEXT NOT NULL,"
    " idempotency_key TEXT UNIQUE, UNIQUE (stream, stream_version))",
)
_PROJECTION_SCHEMA = (*(t.create for t in TABLES.values()),
                      "CREATE INDEX signals_pending ON signals (seq) WHERE handled_seq IS NULL",
                      "CREATE INDEX tasks_state ON tasks (state)")


def current_meta() -> dict[str, str]:
    """The ``meta`` table of a log that needs no migration."""
    return {"schema_version": str(SCHEMA_VERSION), "projection_shape": PROJECTION_SHAPE}


def read_meta(cur: sqlite3.Cursor, path: Path) -> dict[str, str]:
    """The ``meta`` table of the log at ``path`` ({} for a new file); StoreError if a newer
    wf wrote it."""
    if cur.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
        return {}
    meta = dict(cur.execute("SELECT key, value FROM meta").fetchall())
    version = int(meta.get("schema_version", SCHEMA_VERSION))
    if version > SCHEMA_VERSION:
        raise StoreError(f"event log {path} has schema version {version}; this wf "
                         f"knows up to {SCHEMA_VERSION}", hint="upgrade wf")
    return meta


def migrate(cur: sqlite3.Cursor, path: Path, rebuild: Callable[[sqlite3.Cursor], None]) -> None:
    """Create or upgrade the schema, in the caller's write transaction; recreate the
    projection tables and call ``rebuild`` when their shape changed."""
    for statement in _SCHEMA:
        cur.execute(statement)
    meta = read_meta(cur, path)
    cur.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),))
    if meta.get("projection_shape") != PROJECTION_SHAPE:
        for name in TABLES:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
        for statement in _PROJECTION_SCHEMA:
            cur.execute(statement)
        cur.execute("INSERT OR REPLACE INTO meta VALUES ('projection_shape', ?)",
                    (PROJECTION_SHAPE,))
        rebuild(cur)


def rebuild_tables(cur: sqlite3.Cursor, path: Path) -> tuple[Projection, int]:
    """Recompute every projection table from the events alone and write it, in the caller's
    write transaction; return the tables and the seq of the last event they include."""
    p, last = Projection(), 0
    apply = projections.apply
    reader = cur.connection.cursor()
    reader.arraysize = 4096
    reader.execute(f"SELECT {EVENT_COLUMNS} FROM events ORDER BY seq")
    seq = type_ = None
    try:
        while rows := reader.fetchmany():
            for seq, stream, version, type_, ts, data, key in rows:
                apply(p, Event(seq, stream, version, type_, ts, loads(data), key))
            last = rows[-1][0]
    except sqlite3.Error:
        raise
    except ValueError as exc:  # data that is not JSON
        raise damaged(path, str(BadEvent(seq, type_))) from exc
    except Exception as exc:
        raise unprojectable(seq, type_, exc) from exc
    for name, t in TABLES.items():
        cur.execute(f"DELETE FROM {name}")
        cur.executemany(t.upsert, [t.encode(row) for row in p.table(name).values()])
    return p, last
