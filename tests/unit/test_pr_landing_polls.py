"""How ``land = "pr"`` waits for the forge's checks: a growing interval while nothing changes,
back to the start on a change, one event per change, a timeout, and what "nothing reported"
means (``judge_checks``: never a pass while CI is configured; a pass after the grace when not).
Time is injected."""

from __future__ import annotations

from pathlib import Path

import anyio

from wf.config import Config
from wf.merge_queue.forge_decide import judge_checks
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


def wait(land: PrLanding, forge: ScriptedChecks, ci_config: str | None = ".gitlab-ci.yml"
         ) -> tuple[ForgeChecks, list[dict]]:
    recorded: list[dict] = []

    async def record(*events: object) -> None:
        recorded.extend(e.data for e in events)  # type: ignore[attr-defined]

    async def main() -> ForgeChecks:
        land.acts.forge = forge  # type: ignore[assignment]
        return await land._wait_for_checks(PR, "c0ffee", "task:t", record, ci_config=ci_config)

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


NONE = ForgeChecks("none", "mergeable, no pipeline")


def test_nothing_reported_is_pending_while_the_head_configures_ci() -> None:
    verdict = judge_checks(NONE, ci_config=".gitlab-ci.yml", waited=1e6, grace=10)
    assert verdict.state == "pending" and ".gitlab-ci.yml configures CI" in verdict.detail


def test_nothing_reported_without_ci_config_waits_the_grace_then_passes() -> None:
    assert judge_checks(NONE, ci_config=None, waited=9.9, grace=10).state == "pending"
    passed = judge_checks(NONE, ci_config=None, waited=10, grace=10)
    assert passed == ForgeChecks("success", "mergeable, no pipeline; no CI configured")


def test_a_reading_with_checks_is_taken_as_it_is() -> None:
    for state in ("pending", "success", "failure"):
        reading = ForgeChecks(state, "pipeline 7")  # type: ignore[arg-type]
        assert judge_checks(reading, ci_config=None, waited=0, grace=10) == reading
        assert judge_checks(reading, ci_config="x.yml", waited=0, grace=10) == reading


def test_a_head_nobody_reports_on_is_not_landed_on_the_first_look() -> None:
    """The hole of issue 12: "no pipeline" + mergeable on the first poll counted as passed."""
    land, slept = landing(forge_checks_grace="5s")
    forge = ScriptedChecks([("none", "no checks reported")] * 3 + [("failure", "failed: ci")])
    verdict, recorded = wait(land, forge, ci_config=None)
    assert verdict == ForgeChecks("failure", "failed: ci") and forge.looks == 4
    assert [r["state"] for r in recorded] == ["pending", "failure"]


def test_without_ci_config_the_grace_ends_the_wait() -> None:
    land, slept = landing(forge_checks_grace="3s")
    verdict, recorded = wait(land, ScriptedChecks([("none", "no checks reported")]),
                             ci_config=None)
    assert verdict.state == "success" and sum(slept) >= 3.0
    assert [r["state"] for r in recorded] == ["pending", "success"]


def test_with_ci_config_and_nothing_ever_reported_the_timeout_fails_the_entry() -> None:
    land, slept = landing(forge_check_timeout="20s", forge_checks_grace="1s")
    verdict, _ = wait(land, ScriptedChecks([("none", "no checks reported")]))
    assert verdict.state == "failure" and verdict.detail.startswith("still pending after 20s")
    assert sum(slept) == 20.0  # the last sleep ends at the deadline, not past it


def test_which_files_configure_a_forges_ci() -> None:
    from wf.providers.ci_config import ci_config_in

    assert ci_config_in("gitlab", ["README.md", ".gitlab-ci.yml"]) == ".gitlab-ci.yml"
    assert ci_config_in("gitlab", [".github/workflows/ci.yml"]) is None
    assert ci_config_in("github", [".github/workflows/test.yaml"]) == ".github/workflows/test.yaml"
    assert ci_config_in("github", [".github/workflows/README.md", ".gitlab-ci.yml"]) is None
    assert ci_config_in("github", [".github/workflows/sub/ci.yml"]) is None  # not read by GitHub
    assert ci_config_in("gitea", [".gitlab-ci.yml"]) is None  # a forge wf does not know
