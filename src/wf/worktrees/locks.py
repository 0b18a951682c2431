"""Locks of a repository shared by the threads of this process and by other wf processes.

``git worktree add/remove/prune`` race with each other (a concurrent add can fail reading another
add's half-written ``.git/worktrees/<name>/commondir``, and so can ``git worktree list``), so they
run under :func:`repo_lock`: a lock per repository in this process plus an ``flock`` shared with
other processes. :func:`fetch` runs under the same locks, for the reasons in its docstring.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wf import gitx

_thread_locks: dict[tuple[str, str], threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@contextmanager
def repo_lock(common_dir: Path, name: str, *, shared: bool = False) -> Iterator[None]:
    """Hold lock ``name`` of the repository whose git common dir is ``common_dir``, against
    other threads of this process and other processes (``<common_dir>/wf/<name>.lock``).

    ``shared`` holders exclude exclusive ones but not each other. An ``flock`` belongs to
    its open file, so one taken through a fresh ``open`` excludes other threads as well as
    other processes; the thread lock only queues this process's exclusive holders."""
    if shared:
        with _flock(common_dir, name, fcntl.LOCK_SH):
            yield
        return
    with _thread_locks_guard:
        lock = _thread_locks.setdefault((str(common_dir), name), threading.Lock())
    with lock, _flock(common_dir, name, fcntl.LOCK_EX):
        yield


def fetch(root: Path, remote: str, ref: str, *,
          credentials: tuple[str, str] | None = None) -> None:
    """:func:`wf.gitx.fetch`, one at a time and never beside a ``git worktree add``.

    Concurrent fetches fight over the same ref locks. And a fetch checks that what it received
    connects to every worktree's HEAD, while an add writes a placeholder HEAD (the null id)
    before the real one: a fetch at that moment fails with ``bad object
    worktrees/<name>/HEAD``. Adds are quick, so a fetch holds the worktree lock shared."""
    common = gitx.common_dir(root)
    with repo_lock(common, "fetch"), repo_lock(common, "worktree", shared=True):
        gitx.fetch(root, remote, ref, credentials=credentials)


@contextmanager
def _flock(common_dir: Path, name: str, mode: int) -> Iterator[None]:
    lock_dir = common_dir / "wf"
    lock_dir.mkdir(exist_ok=True)
    fd = os.open(lock_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # releases the flock
