"""Delivery itself: ``delivering`` runs the delivery thread around an engine's run
(``api.run``), ``deliver`` is ``wf hooks deliver`` (no engine running). Either holds
``hooks.lock``, so one process delivers at a time; a missing ``secret_env`` variable is
refused here (one line, exit 2), where a secret is first needed.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from wf.errors import ConfigError, EngineBusy, NotFound
from wf.hooks.config import HookConfig
from wf.hooks.manage import _check_secrets, endpoints

if TYPE_CHECKING:
    from wf.hooks.runner import HookRunner
    from wf.repository import Repo

DRAIN = 3.0  # at the end of a run, how long the first tries still waiting may take
Say = Callable[[str], None]


@contextlib.contextmanager
def delivering(repo: Repo, *, say: Say | None = None,
               clock: Callable[[], float] = time.time) -> Iterator[HookRunner | None]:
    """While the block runs (an engine's run), deliver in a thread of this process; None
    when no endpoint is configured or another process delivers. At a normal end the first
    tries still waiting get ``DRAIN`` seconds; after Ctrl-C, none (the next run sends them)."""
    say = say or (lambda _line: None)
    hooks = endpoints(repo)
    if not hooks:
        yield None
        return
    _check_secrets(*hooks)
    started = _start(repo, hooks, say, clock)
    if started is None:
        yield None
        return
    runner, lock, store = started
    drain = DRAIN
    try:
        yield runner
    except BaseException:
        drain = 0.0
        raise
    finally:
        _finish(runner, lock, store, say, drain)


def _start(repo: Repo, hooks: tuple[HookConfig, ...], say: Say,
           clock: Callable[[], float]) -> tuple[HookRunner, Any, Any] | None:
    from wf.hooks.runner import HookRunner, build_targets
    from wf.repository import EngineLock, open_store

    lock = EngineLock(repo, name="hooks")
    try:
        lock.acquire({"pid": os.getpid(), "command": "hooks", "started": time.time()})
    except EngineBusy:
        say(f"hooks are delivered by another process ({lock.holder()})")
        return None
    try:
        targets, notes = build_targets(hooks, dict(os.environ), repo.root, repo.state_dir)
        for line in notes:
            say(line)
        if not targets:
            lock.release()
            return None
        store = open_store(repo)
        runner = HookRunner(store, targets, clock=clock)
        runner.start()
    except BaseException:
        lock.release()
        raise
    return runner, lock, store


def _finish(runner: HookRunner, lock: Any, store: Any, say: Say, drain: float) -> None:
    try:
        runner.stop(drain=drain)
        if runner.error:
            say(f"hook delivery stopped: {runner.error}; `wf hooks deliver` carries on")
        elif drain and runner.busy():
            say("some hook deliveries still wait: `wf hooks deliver` sends them "
                "(`wf hooks` shows what waits)")
    finally:
        store.close()
        lock.release()


def deliver(repo: Repo, *, follow: bool = False, say: Say | None = None,
            stop: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """``wf hooks deliver``: send what is pending or due, record it, and return; with
    ``follow``, keep delivering until ``stop()`` (Ctrl-C). EngineBusy (exit 3) when another
    process delivers."""
    from wf.hooks.runner import HookRunner, build_targets
    from wf.repository import EngineLock, open_store

    say = say or (lambda _line: None)
    hooks = endpoints(repo)
    if not hooks:
        raise NotFound("no [[hooks]] configured in wf.toml", hint="docs/hooks.md")
    _check_secrets(*hooks)
    lock = EngineLock(repo, name="hooks")
    try:
        lock.acquire({"pid": os.getpid(), "command": "wf hooks deliver", "started": time.time()})
    except EngineBusy:
        raise EngineBusy(f"hooks are delivered by another process ({lock.holder()})",
                         hint="it sends what is pending; `wf hooks` shows it") from None
    try:
        targets, notes = build_targets(hooks, dict(os.environ), repo.root, repo.state_dir)
        for line in notes:
            say(line)
        store = open_store(repo)
        runner = HookRunner(store, targets)
        try:
            runner.start()
            while not stop() and runner.error is None and (follow or runner.busy()):
                time.sleep(0.05)
        finally:
            runner.stop()
            store.close()
        if runner.error:
            raise ConfigError(f"hook delivery stopped: {runner.error}")
        return {"delivered": runner.sent, "failed": runner.failed}
    finally:
        lock.release()
