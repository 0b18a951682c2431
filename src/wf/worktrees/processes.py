"""Find and stop the processes working inside a worktree (dev servers, watchers, a stray agent).

A worktree folder cannot be removed cleanly while something runs in it, and a dev server left
behind would keep its port. Processes are found by their current directory (``/proc/*/cwd``,
Linux); on systems without ``/proc`` nothing is found. Signals go through pidfds where the
kernel has them, so a pid reused by an unrelated process is never signalled.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
CANCEL_TICK = 0.1  # how often a wait in a worker thread asks whether its caller was cancelled
CANCEL_GRACE = 0.5  # SIGTERM to SIGKILL when a cancelled wait stops its process group


def wait_exit(proc: subprocess.Popen, timeout: float | None = None, *,
              check_cancelled: Callable[[], None] = lambda: None) -> int | None:
    """Exit status of ``proc`` (the leader of a process group of its own), returned the
    moment it exits; None when ``timeout`` passes first, after its group was stopped.

    Every ``CANCEL_TICK`` the wait calls ``check_cancelled``, which raises to cancel it
    (``anyio.from_thread.check_cancelled`` in a worker thread): the group is then stopped and
    the exception goes on. A plain ``Popen.wait`` in a thread cannot be cancelled, so Ctrl-C
    would wait for the command to end (docs/cli.md promises an exit within a second)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        fd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfds (not Linux, or an old kernel): poll
        fd = None
    try:
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                stop_group(proc, grace=5.0)
                return None
            tick = CANCEL_TICK if remaining is None else min(CANCEL_TICK, remaining)
            if _exited(proc, fd, tick):
                return proc.wait()
            try:
                check_cancelled()
            except BaseException:
                stop_group(proc, grace=CANCEL_GRACE)
                raise
    finally:
        if fd is not None:
            os.close(fd)


def _exited(proc: subprocess.Popen, fd: int | None, timeout: float) -> bool:
    if fd is None:
        try:
            proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    poller = select.poll()
    poller.register(fd, select.POLLIN)  # readable once the process has exited
    return bool(poller.poll(timeout * 1000))


def stop_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM ``proc``'s process group, SIGKILL it after ``grace`` seconds, and reap ``proc``."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.poll()


def processes_in(path: Path) -> list[int]:
    """Pids of processes (other than this one) whose current directory is inside ``path``."""
    root = path.resolve()
    own = os.getpid()
    try:
        entries = [e.name for e in os.scandir(_PROC) if e.name.isdigit()]
    except OSError:
        return []
    return sorted(pid for pid in map(int, entries) if pid != own and _cwd_inside(pid, root))


def _cwd_inside(pid: int, root: Path) -> bool:
    try:
        cwd = os.readlink(_PROC / str(pid) / "cwd")
    except OSError:  # gone, a zombie, or not ours to look at
        return False
    return Path(cwd.removesuffix(" (deleted)")).is_relative_to(root)


def stop_processes_in(path: Path, grace: float = 3.0) -> list[int]:
    """SIGTERM every process inside ``path``, wait up to ``grace`` seconds for them to exit, then
    SIGKILL the rest. Returns the pids that were signalled."""
    root = path.resolve()
    stopped: list[int] = []
    for _round in range(3):  # a dying process may have started children there
        targets = _open_all(processes_in(root), root)
        if not targets:
            break
        stopped += [t.pid for t in targets]
        _signal_all(targets, signal.SIGTERM)
        survivors = _wait_gone(targets, grace)
        if survivors:
            _signal_all(survivors, signal.SIGKILL)
            _wait_gone(survivors, 5.0)
        _close_all(targets)
    return sorted(set(stopped))


@dataclass
class _Target:
    """A pid with its pidfd (None where the kernel has no pidfds)."""

    pid: int
    fd: int | None = None


def _open_all(pids: list[int], root: Path) -> list[_Target]:
    targets = []
    for pid in pids:
        target = _Target(pid)
        try:
            target.fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        except (AttributeError, OSError):
            pass
        if not _cwd_inside(pid, root):  # re-check now that the pidfd pins the process
            _close_all([target])
            continue
        targets.append(target)
    return targets


def _close_all(targets: list[_Target]) -> None:
    for target in targets:
        if target.fd is not None:
            os.close(target.fd)
            target.fd = None


def _signal_all(targets: list[_Target], sig: signal.Signals) -> None:
    for target in targets:
        try:
            if target.fd is not None:
                signal.pidfd_send_signal(target.fd, sig)
            else:
                os.kill(target.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_gone(targets: list[_Target], timeout: float) -> list[_Target]:
    """Wait until the targets exit or ``timeout`` passes; return those still alive."""
    deadline = time.monotonic() + timeout
    alive = [t for t in targets if _alive(t)]
    while alive:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        with_fd = [t for t in alive if t.fd is not None]
        if with_fd and len(with_fd) == len(alive):
            poller = select.poll()
            for target in with_fd:
                poller.register(target.fd, select.POLLIN)  # readable once the process exits
            poller.poll(remaining * 1000)
        else:
            time.sleep(min(0.05, remaining))  # no pidfds here: poll
        alive = [t for t in alive if _alive(t)]
    return alive


def _alive(target: _Target) -> bool:
    """Running and not yet a zombie (a zombie has exited; only its parent's wait() is left)."""
    if target.fd is not None:
        poller = select.poll()
        poller.register(target.fd, select.POLLIN)
        return not poller.poll(0)
    try:
        state = (_PROC / str(target.pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
