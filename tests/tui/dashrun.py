"""Helpers for the dashboard's tests: real repositories with real runs of script agents, and
a way to drive the app with Pilot while waiting on conditions, never on time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runwf import agent_cmd, fast_retry, write_tasks

from wf import api
from wf.tui.app import Dashboard


def tasks_file(repo: Path, tasks: dict[str, str], *, extra: str = "",
               attempts: int = 2) -> Path:
    """A tasks file: task id -> agent mode ("commit", "fail 3", "slow 30", "hang" ...), one
    agent per mode."""
    text = fast_retry(attempts) + extra
    modes = sorted(set(tasks.values()))
    for i, mode in enumerate(modes):
        name, _, arg = mode.partition(" ")
        text += f"\n[agents.a{i}]\ncommand = {agent_cmd(name, arg)}\n"
    for tid, mode in tasks.items():
        text += f'\n[[task]]\nid = "{tid}"\nprompt = "do {tid}"\nagent = "a{modes.index(mode)}"\n'
    return write_tasks(repo, text)


async def until(pilot: Any, predicate: Callable[[], Any], what: str,
                timeout: float = 30.0) -> Any:
    """Let the app run until ``predicate()`` is truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


def drive(repo: Path, scenario: Callable[[Any, Dashboard], Any], *,
          size: tuple[int, int] = (140, 40), notifications: bool = False,
          **kwargs: Any) -> Dashboard:
    """Run ``scenario(pilot, app)`` against a dashboard of ``repo`` (with pop-ups drawn
    only when ``notifications``)."""
    app = Dashboard(api.open_repo(repo), **kwargs)

    async def main() -> None:
        async with app.run_test(size=size, notifications=notifications) as pilot:
            await until(pilot, lambda: app.loaded, "the first read of the log")
            await scenario(pilot, app)

    asyncio.run(main())
    return app
