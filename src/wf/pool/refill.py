"""Filling and emptying the pool: prepare a slot, finish what a crash cut short, warm ahead
(``wf pool warm``), drain (``wf pool drain``), and the background refill of a running engine.

The background refill is one daemon thread at a lower CPU priority (nice 10, inherited by the
git and setup processes it starts) preparing one slot at a time: it never holds a task's
``max_parallel`` place nor the repository's worktree lock for longer than registering a
worktree, so it never keeps a task that could start from starting. Stopping it (the engine
ends) kills a running setup and removes the half-prepared slot; a process killed outright
leaves it ``preparing`` for the next keeper, which prepares it again (``recover``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from wf import gitx
from wf.agents import process
from wf.errors import WfError
from wf.pool import rules, slots
from wf.pool.keeper import WorktreePool

REFILL_NICE = 10
IDLE_WAIT = 30.0  # seconds between two looks when nothing woke the refill
STOP_GRACE = 0.8  # seconds Ctrl-C gives running setups to be stopped (SIGTERM, then SIGKILL)


class Stopped(Exception):
    """The refill was told to stop while it prepared a slot."""


def prepare_one(pool: WorktreePool, target: int,
                check_cancelled: Callable[[], None] = lambda: None, *,
                refill: bool = False, discard_on_stop: bool = True) -> dict[str, Any] | None:
    """Prepare one new slot if ``rules.to_prepare`` asks for one; its report, or None.
    ``refill``: the background refill, which counts slots that come back by themselves."""
    s = pool.settings
    base = pool.base_commit()
    with pool.deciding() as rows:
        if rules.to_prepare(rows, target, s.max_disk,
                            held_come_back=refill and s.return_on_success) == 0:
            return None
        slot = rules.next_slot(rows, slots.slot_folders(pool.wt.worktree_root))
        pool.record("pool.prepare_requested", slot=slot, path=str(pool.path_of(slot)),
                    base=base, owner=pool.owner)
    return _prepare(pool, slot, base, check_cancelled, discard_on_stop)


def _prepare(pool: WorktreePool, slot: str, base: str, check_cancelled: Callable[[], None],
             discard_on_stop: bool = True) -> dict[str, Any]:
    path = pool.path_of(slot)
    env = process.agent_environment(pool.environ, extra={}, wf_vars={
        "WF_WORKTREE": str(path), "WF_POOL_SLOT": slot})
    started = time.monotonic()
    try:
        key, size = slots.prepare(pool.wt, path, base, pool.settings, env, check_cancelled)
    except Stopped:  # removed now, or (Ctrl-C: no time for it) by the next keeper
        if discard_on_stop:
            _discard(pool, slot, "the engine stopped while it was prepared")
        raise
    except (WfError, OSError) as exc:
        reason = exc.message if isinstance(exc, WfError) else f"{type(exc).__name__}: {exc}"
        _discard(pool, slot, reason)
        return {"slot": slot, "path": str(path), "result": f"failed: {reason}"}
    pool.record("pool.prepared", slot=slot, base=base, key=key, size=size)
    return {"slot": slot, "path": str(path), "result": "ready", "size": size,
            "seconds": round(time.monotonic() - started, 3)}


def _discard(pool: WorktreePool, slot: str, reason: str) -> None:
    pool.record("pool.remove_requested", slot=slot, reason=reason, owner=pool.owner)
    with contextlib.suppress(WfError, OSError):
        slots.remove(pool.wt, pool.path_of(slot))
        pool.record("pool.removed", slot=slot)


def recover(pool: WorktreePool, *, prepare_again: bool = True) -> list[dict[str, Any]]:
    """Finish every step whose owner is gone: prepare, return or remove the slot again
    (``prepare_again`` False: a half-prepared slot is removed instead, as drain wants)."""
    done = []
    with pool.deciding() as rows:
        todo = [(r["slot"], rules.recovery(r), r) for r in rows.values()
                if rules.stale(r, pool.alive(r["owner"])) and rules.recovery(r) != "wait"]
        if not prepare_again:
            todo = [(slot, "remove" if what == "prepare" else what, r)
                    for slot, what, r in todo]
        for slot, what, row in todo:  # this keeper owns the step from now on
            if what == "prepare":
                pool.record("pool.prepare_requested", slot=slot, path=row["path"],
                            base=row["base"], owner=pool.owner)
            elif what == "return":
                pool.record("pool.return_requested", slot=slot, task=row["task"],
                            owner=pool.owner)
            else:
                pool.record("pool.remove_requested", slot=slot, reason=row["note"],
                            owner=pool.owner)
    for slot, what, row in todo:
        if what == "prepare":
            done.append(_prepare(pool, slot, row["base"] or pool.base_commit(), lambda: None))
            continue
        try:
            if what == "return":
                pool._return(slot, None)  # noqa: SLF001 - the keeper's own step, redone
            else:
                pool._remove(slot, None)  # noqa: SLF001
            done.append({"slot": slot, "path": row["path"], "result": f"{what} finished"})
        except WfError as exc:
            done.append({"slot": slot, "path": row["path"], "result": f"failed: {exc.message}"})
    return done


def warm(pool: WorktreePool, target: int, parallel: int) -> list[dict[str, Any]]:
    """Prepare slots until ``target`` are idle (``wf pool warm``), ``parallel`` at a time.
    Ctrl-C kills the setups running (within ``STOP_GRACE``) and leaves their slots
    half-prepared, for the next keeper to finish: it never waits for a setup to end."""
    report = recover(pool)
    missing = rules.to_prepare(pool.rows(), target, pool.settings.max_disk)
    stop = threading.Event()

    def check() -> None:
        if stop.is_set():
            raise Stopped

    workers = ThreadPoolExecutor(max_workers=max(1, min(parallel, missing or 1)))
    futures = [workers.submit(prepare_one, pool, target, check, discard_on_stop=False)
               for _ in range(missing)]
    try:
        for future in futures:
            while not future.done():
                wait([future], timeout=0.1)  # short waits: Ctrl-C arrives between them
        report += [r for f in futures if (r := f.result()) is not None]
    except KeyboardInterrupt:
        stop.set()
        wait(futures, timeout=STOP_GRACE)  # the setups' process groups are stopped
        workers.shutdown(wait=False, cancel_futures=True)
        raise
    workers.shutdown()
    pool.evict()
    return report


def drain(pool: WorktreePool) -> list[dict[str, Any]]:
    """Remove the idle slots (``wf pool drain``). A task's slot and a step another live
    process is taking are kept; so is a ``.wf-pool-*`` worktree the log does not know unless
    it is detached and clean."""
    report = recover(pool, prepare_again=False)
    with pool.deciding() as rows:
        chosen = [r["slot"] for r in rows.values() if r["state"] == "ready"]
        for slot in chosen:
            pool.record("pool.remove_requested", slot=slot, reason="wf pool drain",
                        owner=pool.owner)
    for slot in chosen:
        pool._remove(slot, None)  # noqa: SLF001
        report.append({"slot": slot, "path": str(pool.path_of(slot)), "result": "removed"})
    rows = pool.rows()
    for r in rows.values():
        why = f"held by task {r['task']}" if r["state"] in rules.HELD else f"{r['state']} by " \
              f"pid {(r['owner'] or {}).get('pid')}"
        report.append({"slot": r["slot"], "path": r["path"], "result": f"kept: {why}"})
    known = {r["path"] for r in rows.values()}
    for name in slots.slot_folders(pool.wt.worktree_root):
        path = pool.wt.worktree_root / name
        if str(path) in known or slots.slot_entry(pool.wt, path) is None:
            continue
        if gitx.symbolic_full_name(path, "HEAD") is None and not gitx.is_dirty(path):
            slots.remove(pool.wt, path)
            report.append({"slot": None, "path": str(path), "result": "removed (unknown)"})
        else:
            report.append({"slot": None, "path": str(path),
                           "result": "kept: not in the log, and on a branch or dirty"})
    return report


class Refill:
    """The background refill of a running engine (or worker): ``start`` it, ``wake`` it after
    a take, ``stop`` it at the end (it lets go at once; a setup it ran is killed)."""

    def __init__(self, pool: WorktreePool) -> None:
        self.pool = pool
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def start(self) -> None:
        if self.pool.settings.target <= 0 or self._thread is not None:
            return
        self.pool.on_taken = self.wake
        self._thread = threading.Thread(target=self._run, name="wf-pool-refill", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.pool.on_taken = lambda: None

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _check(self) -> None:
        if self._stop.is_set():
            raise Stopped

    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), REFILL_NICE)
        first = True
        while not self._stop.is_set():
            self._wake.clear()
            try:
                if first:
                    recover(self.pool)
                    first = False
                while not self._stop.is_set():
                    done = prepare_one(self.pool, self.pool.settings.target, self._check,
                                       refill=True)
                    if done is None or done["result"] != "ready":
                        break  # full, or a failure: wait for the next wake-up
                self.pool.evict()
            except Stopped:
                return
            except Exception as exc:  # noqa: BLE001 - a daemon thread: say it, never a traceback
                self.errors.append(exc.message if isinstance(exc, WfError)
                                   else f"{type(exc).__name__}: {exc}")
            self._wake.wait(IDLE_WAIT)

