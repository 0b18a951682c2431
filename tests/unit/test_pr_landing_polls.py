"""How ``land = "pr"`` waits for the forge's checks: a growing interval while nothing changes,
back to the start on a change, one event per change, and a timeout. Time is injected."""

from __future__ import annotations

from pathlib import Path

import anyio

from wf.config import Config
from wf.merge_queue.pr_landing import PrLanding
from wf.providers.base import ForgeChecks, PullRequest

PR = PullRequest(3, "https://forge/pr/3", "open", "c0ffee")


class ScriptedChecks:
    """A forge whose checks answer from a script, one entry per look (the last repeats)."""

    kind = "github"

    def __init__(self, states: list[tuple[str, str]]) -> None:
        self.states, self.looks = states, 0

    def checks(self, pr: PullRequest) -> ForgeChecks:
        state = self.states[min(self.looks, len(self.states) - 1)]
        self.looks += 1
        return ForgeChecks(*state)  # type: ignore[arg-type]


def landing(**merge: object) -> tuple[PrLanding, list[float]]:
    slept: list[float] = []
    now = [0.0]

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    config = Config.model_validate({"merge": {"land": "pr", "forge_poll_interval": "1s",
                                              **merge}})
    return PrLanding(Path("."), config, "main", {}, clock=lambda: now[0], sleep=sleep), slept


def wait(land: PrLanding, forge: ScriptedChecks) -> tuple[ForgeChecks, list[dict]]:
    recorded: list[dict] = []

    async def record(*events: object) -> None:
        recorded.extend(e.data for e in events)  # type: ignore[attr-defined]

    async def main() -> ForgeChecks:
        return await land._wait_for_checks(forge, PR, "c0ffee", "task:t", record)  # type: ignore[arg-type]

    return anyio.run(main), recorded


def test_the_interval_grows_while_nothing_changes_and_resets_on_a_change() -> None:
    land, slept = landing()
    pending, running = ("pending", "queued"), ("pending", "running")
    forge = ScriptedChecks([pending] * 4 + [running] * 2 + [("success", "2 passed")])
    verdict, recorded = wait(land, forge)
    assert verdict == ForgeChecks("success", "2 passed")
    assert slept == [1.0, 1.5, 2.25, 3.375, 1.0, 1.5]
    assert [r["detail"] for r in recorded] == ["queued", "running", "2 passed"]


def test_the_interval_stops_growing_at_a_minute() -> None:
    land, slept = landing()
    forge = ScriptedChecks([("pending", "queued")] * 30 + [("failure", "failed: ci")])
    verdict, _ = wait(land, forge)
    assert verdict.state == "failure" and max(slept) == 60.0


def test_checks_still_pending_at_the_timeout_fail_the_entry() -> None:
    land, _ = landing(forge_check_timeout="10s")
    verdict, _ = wait(land, ScriptedChecks([("pending", "queued")]))
    assert verdict.state == "failure" and verdict.detail.startswith("still pending after 10s")
