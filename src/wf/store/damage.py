"""What the event store says when the log cannot be used as it is.

A damaged file (not a database, broken pages, event data that is not JSON) becomes
``StoreDamaged``, after the file is copied aside once so that whatever the user does next the
damaged file stays as it was found. An event the reducer cannot take, SQLite's busy lock and a
refused resource (disk full, read-only) get their own messages.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from wf.errors import StoreDamaged, StoreError, WfError, resource_error

# SQLite's words for a file that is not a database, or one whose pages are broken.
_DAMAGE_WORDS = ("file is not a database", "malformed", "database disk image")


class BadEvent(Exception):
    """An event whose data is not JSON; the store turns it into StoreDamaged with its path."""

    def __init__(self, seq: int, type_: str) -> None:
        super().__init__(f"event {seq} ({type_}) holds data that is not valid JSON")


def is_damage(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and any(
        w in str(exc) for w in _DAMAGE_WORDS)


def is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc)


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


def sql_error(exc: sqlite3.Error, path: Path, doing: str) -> WfError:
    """The wf error for SQLite's ``exc`` while trying to ``doing`` the log at ``path``."""
    if is_busy(exc):
        return StoreError(f"event log {path} is locked by another process",
                          hint="another wf process held the write lock for too long; "
                               "try again, or find it with `fuser` on the file")
    if is_damage(exc):
        return damaged(path, str(exc))
    refused = resource_error(str(exc), f"cannot {doing} the event log {path}")
    if refused is not None:
        return refused
    return StoreError(f"event log {path}: cannot {doing}: {exc}")


def unprojectable(seq: Any, type_: Any, exc: Exception) -> StoreError:
    return StoreError(f"event {seq} ({type_}) in the log cannot be projected: "
                      f"{type(exc).__name__}: {exc}",
                      hint="the log was written by another version of wf, or edited by hand")
