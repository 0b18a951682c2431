"""The engine contract: what every engine does, run against each one in ``engines.ENGINES``.

Each scenario is a real git repository with real script agents (``tests/agents/agent.py``),
driven through the ``Engine`` protocol. The assertions are on the domain events of each task
stream, in order: the event type and the data fields that say what happened
(``engines.DOMAIN_FIELDS``), never seq, timestamps, pids or paths. Waits are on events or
files, never on sleeps; where the engine itself waits (a retry timer), its clock is the
harness's, moved forward by the test.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engines import ENGINES, EngineHarness, Watcher
from runwf import agent_cmd, journal_pids, journal_ticks, pid_alive, proc_state, wait_until

from wf.model import SignalKind, task_stream


@pytest.fixture(params=ENGINES)
def harness(request: pytest.FixtureRequest, repo: Path, tmp_path: Path) -> Iterator[EngineHarness]:
    h = request.param(repo, tmp_path, request)
    try:
        yield h
    finally:
        h.close()


def config(agents: dict[str, str], *, attempts: int = 1, interval: str = "50ms",
           extra: str = "") -> str:
    """A tasks file's config part: the retry policy (every delay ``interval``, no jitter),
    ``extra``, the agents."""
    text = (f'[retry]\nmaximum_attempts = {attempts}\ninitial_interval = "{interval}"\n'
            f'maximum_interval = "{interval}"\nbackoff_coefficient = 2.0\njitter = 0.0\n{extra}')
    for name, cmd in agents.items():
        text += f"\n[agents.{name}]\ncommand = {cmd}\n"
    return text


def task(tid: str, agent: str, *, depends_on: tuple[str, ...] = ()) -> str:
    deps = f"depends_on = {json.dumps(list(depends_on))}\n" if depends_on else ""
    return f'\n[[task]]\nid = "{tid}"\nprompt = "work on {tid}"\nagent = "{agent}"\n{deps}'


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                          check=True).stdout.strip()


def is_ancestor(root: Path, commit: str, ref: str) -> bool:
    return subprocess.run(["git", "merge-base", "--is-ancestor", commit, ref],
                          check=False, cwd=root).returncode == 0


def committed(harness: EngineHarness, tid: str) -> str:
    """The commit of the task's ``task.succeeded``."""
    [commit] = [e.data["commit"] for e in harness.engine.events(stream=task_stream(tid))
                if e.type == "task.succeeded"][-1:]
    return commit


# The events of one attempt, from intent to the closing decision.
def attempt(n: int, *, state: str, kind: str | None = None, worktree: bool = False,
            adopted: bool = False) -> list[tuple[str, dict[str, Any]]]:
    made = [("task.worktree_requested", {}), ("task.worktree_ready", {})] if worktree else []
    return [("attempt.started", {"n": n}), *made, ("attempt.spawned", {"n": n}),
            *([("attempt.adopted", {"n": n})] if adopted else []),
            ("attempt.finished", {"n": n, "state": state, "failure_kind": kind})]


SUBMITTED = [("task.submitted", {})]
SUCCEEDED = [("task.succeeded", {"n": 1})]


def test_a_task_succeeds_with_a_commit_on_its_branch(harness: EngineHarness) -> None:
    specs = harness.plan(config({"ok": agent_cmd("commit")}) + task("a", "ok"))
    # submit records the task once and runs nothing; the same spec again is left alone
    assert [(e.type, e.task_id) for e in harness.engine.submit(specs)] == [
        ("task.submitted", "a")]
    assert harness.engine.submit(specs) == []
    assert harness.types("a") == ["task.submitted"]
    out = harness.run(specs)
    assert out.exit_code == 0
    assert [(r["id"], r["state"]) for r in out.tasks] == [("a", "done")]
    assert harness.domain("a") == [
        *SUBMITTED, *attempt(1, state="succeeded", worktree=True), ("task.succeeded", {"n": 1})]
    assert git(harness.root, "rev-parse", "wf/a") == committed(harness, "a")
    assert git(harness.root, "show", "wf/a:notes/a.txt") == "a attempt 1"
    assert git(harness.root, "status", "--porcelain") == ""  # the main worktree untouched


def test_a_transient_failure_is_retried_when_the_engines_clock_says_so(
        harness: EngineHarness) -> None:
    # An hour between attempts: without the injected clock the run would outlast its bound.
    specs = harness.plan(config({"flaky": agent_cmd("flaky", "2")}, attempts=3, interval="1h")
                         + task("a", "flaky"))
    watch = Watcher()
    watch.when("task.retry_scheduled", "a", lambda e: harness.clock.advance(e.data["delay"]))
    out = harness.run(specs, observers=[watch])
    assert out.exit_code == 0
    assert harness.domain("a") == [
        *SUBMITTED, *attempt(1, state="failed", kind="transient", worktree=True),
        ("task.retry_scheduled", {"n": 1, "kind": "transient", "delay": 3600.0}),
        *attempt(2, state="succeeded"), ("task.succeeded", {"n": 2})]
    assert harness.clock.offset == 3600.0
    assert git(harness.root, "show", "wf/a:notes/a.txt") == "a attempt 2"


def test_exit_zero_without_changes_fails_no_changes(harness: EngineHarness) -> None:
    specs = harness.plan(config({"idle": agent_cmd("noop")}) + task("a", "idle"))
    out = harness.run(specs)
    assert out.exit_code == 1
    assert harness.domain("a") == [
        *SUBMITTED, *attempt(1, state="failed", kind="no_changes", worktree=True),
        ("task.failed", {"n": 1, "kind": "no_changes"})]


def test_a_dependent_of_a_failed_task_is_blocked_and_never_starts(
        harness: EngineHarness) -> None:
    # Three attempts allowed, but agent errors are declared non-retryable: one attempt.
    specs = harness.plan(
        config({"bad": agent_cmd("fail", "3"), "ok": agent_cmd("commit")}, attempts=3,
               extra='non_retryable = ["agent_error"]\n')
        + task("a", "bad") + task("b", "ok", depends_on=("a",)))
    out = harness.run(specs)
    assert out.exit_code == 1
    assert harness.domain("a") == [
        *SUBMITTED, *attempt(1, state="failed", kind="agent_error", worktree=True),
        ("task.failed", {"n": 1, "kind": "agent_error"})]
    assert harness.domain("b") == [
        *SUBMITTED, ("task.blocked", {"kind": "dependency", "dependency": "a"})]
    assert "attempt.started" not in harness.types("b")


def test_cancel_stops_a_running_agent(harness: EngineHarness, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    specs = harness.plan(config({"h": agent_cmd("hang", "", journal)}) + task("a", "h"))
    watch = Watcher()

    def cancel_once_running(_: Any) -> None:
        wait_until(lambda: journal_pids(journal, "a"), what="the agent's start")
        harness.engine.signal(SignalKind.CANCEL, "a")

    watch.when("attempt.spawned", "a", cancel_once_running)
    out = harness.run(specs, observers=[watch])
    assert out.exit_code == 1
    assert harness.domain("a") == [
        *SUBMITTED, *attempt(1, state="cancelled", worktree=True),
        ("task.cancelled", {"n": 1, "kind": "cancelled"})]
    [agent] = journal_pids(journal, "a")
    [supervisor] = [e.data["pid"] for e in watch.seen if e.type == "attempt.spawned"]
    assert not pid_alive(agent) and not pid_alive(supervisor)


def test_retry_requeues_the_blocked_dependents(harness: EngineHarness, tmp_path: Path) -> None:
    marker = tmp_path / "fixed"  # a's agent fails until this file exists
    specs = harness.plan(config({"m": agent_cmd("marker", str(marker)),
                                 "ok": agent_cmd("commit")})
                         + task("a", "m") + task("b", "ok", depends_on=("a",)))
    assert harness.run(specs).exit_code == 1
    assert [t for t, _ in harness.domain("b")] == ["task.submitted", "task.blocked"]
    marker.touch()
    harness.engine.signal(SignalKind.RETRY, "a")
    out = harness.run(None)
    assert out.exit_code == 0
    assert harness.domain("a") == [
        *SUBMITTED, *attempt(1, state="failed", kind="agent_error", worktree=True),
        ("task.failed", {"n": 1, "kind": "agent_error"}), ("task.requeued", {"reason": "retry"}),
        *attempt(2, state="succeeded"), ("task.succeeded", {"n": 2})]
    assert harness.domain("b") == [
        *SUBMITTED, ("task.blocked", {"kind": "dependency", "dependency": "a"}),
        ("task.requeued", {"reason": "retry"}),
        *attempt(1, state="succeeded", worktree=True), ("task.succeeded", {"n": 1})]
    assert is_ancestor(harness.root, committed(harness, "a"), "wf/b")


def test_a_restarted_engine_adopts_the_live_agent_and_runs_nothing_twice(
        harness: EngineHarness, tmp_path: Path) -> None:
    journal, gate = tmp_path / "journal", tmp_path / "gate"  # outside the repository
    harness.plan(config({"g": agent_cmd("gated", str(gate), journal)}) + task("a", "g"))
    try:
        harness.kill_mid_attempt()
        # Adopt a live agent: the supervisor claims the attempt before the agent starts, so
        # a resume that raced the supervisor's start-up would declare the attempt lost.
        wait_until(lambda: journal_pids(journal, "a"), what="the agent's start")
        watch = Watcher()
        watch.when("attempt.adopted", "a", lambda _: gate.touch())  # finish once adopted
        out = harness.run(None, observers=[watch])
    finally:
        gate.touch()  # never leave the agent waiting
    assert out.exit_code == 0
    assert harness.domain("a") == [
        *SUBMITTED, *attempt(1, state="succeeded", worktree=True, adopted=True),
        ("task.succeeded", {"n": 1})]
    lines = journal.read_text().splitlines()
    assert [line.split()[3] for line in lines] == ["start", "done"]
    assert git(harness.root, "show", "wf/a:notes/a.txt") == "a attempt 1"


def test_the_merge_queue_lands_the_good_and_evicts_the_one_that_breaks_the_check(
        harness: EngineHarness) -> None:
    check = json.dumps(["sh", "-c", "test ! -e notes/b.txt"])  # b's change breaks the check
    specs = harness.plan(
        config({"ok": agent_cmd("commit")}, extra=f"\n[merge]\nauto = true\ncheck = {check}\n")
        + task("a", "ok") + task("b", "ok") + task("c", "ok"))
    out = harness.run(specs)
    assert out.exit_code == 1
    done = [*SUBMITTED, *attempt(1, state="succeeded", worktree=True), *SUCCEEDED,
            ("queue.entered", {}), ("queue.admitted", {})]
    for tid in ("a", "c"):
        assert harness.domain(tid) == [*done, ("queue.landed", {})]
    assert harness.domain("b") == [*done, ("queue.evicted", {"kind": "check"})]
    for tid in ("a", "c"):
        assert is_ancestor(harness.root, committed(harness, tid), "main")
    assert not is_ancestor(harness.root, committed(harness, "b"), "main")
    files = git(harness.root, "ls-tree", "-r", "--name-only", "main", "notes").split()
    assert sorted(files) == ["notes/a.txt", "notes/c.txt"]


def test_a_failing_checks_log_that_names_a_file_blames_the_entry_that_changed_it(
        harness: EngineHarness) -> None:
    # The check fails while b's file is there and says which file: the queue names b in the
    # failing check's record and evicts it, a and c land.
    check = json.dumps(["sh", "-c", "! test -e notes/b.txt || { echo broken: notes/b.txt; "
                        "exit 1; }"])
    specs = harness.plan(
        config({"ok": agent_cmd("commit")}, extra=f"\n[merge]\nauto = true\ncheck = {check}\n")
        + task("a", "ok") + task("b", "ok") + task("c", "ok"))
    out = harness.run(specs)
    assert out.exit_code == 1
    checks = [e.data for e in harness.engine.events(stream="queue")
              if e.type == "queue.check_finished"]
    failing = [c for c in checks if c["result"] == "fail"]
    assert failing and all(c["blamed"] == ["b"] for c in failing), checks
    assert harness.domain("b")[-1] == ("queue.evicted", {"kind": "check"})
    assert [harness.domain(t)[-1][0] for t in "ac"] == ["queue.landed", "queue.landed"]


# -- budgets (issue 17): the same verdicts and the same events on every engine ------------------
def spend_config(journal: Path, budget: str, *, agent: str = "", extra: str = "") -> str:
    """An agent printing Claude Code's stream-json: 30 assistant messages of 100 tokens each,
    0.1 s apart (one journal line "tick" each), then a commit; ``agent``: more of its keys."""
    return (config({}, extra=extra)
            + f'\n[agents.s]\ncommand = {agent_cmd("spend", "30", journal)}\nadapter = "claude"\n'
            + agent
            + task("a", "s") + f"budget = {budget}\n")




def test_a_crossed_budget_pauses_the_agent_until_its_budget_is_raised(
        harness: EngineHarness, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    specs = harness.plan(spend_config(journal, "{ max_tokens = 1000 }"))
    watch = Watcher()
    seen: list[int] = []

    def raise_once_paused(_: Any) -> None:
        [pid] = journal_pids(journal, "a")
        wait_until(lambda: proc_state(pid) == "T", what="the agent's group stopped")
        seen.append(journal_ticks(journal, "a"))  # stopped: no tick can come now
        harness.engine.signal(SignalKind.BUDGET, "a", cost_usd=0.0, tokens=5000, wall=0.0)

    watch.when("task.paused", "a", raise_once_paused)
    out = harness.run(specs, observers=[watch])
    watch.check()
    assert out.exit_code == 0
    types = harness.types("a")
    assert [t for t in types if t.startswith(("budget.", "task.paused", "task.resumed"))] == [
        "budget.exceeded", "task.paused", "budget.raised", "task.resumed"]
    [exceeded] = [d for t, d in harness.domain("a") if t == "budget.exceeded"]
    assert types[-1] == "task.succeeded"
    assert 10 <= seen[0] <= 10 + harness.PAUSE_WITHIN  # crossed at tick 10; paused within 1 s
    assert journal_ticks(journal, "a") == 30  # it went on where it stopped: one agent, all its work


def test_on_exceed_stop_fails_the_attempt_as_budget_and_never_retries_it(
        harness: EngineHarness, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    specs = harness.plan(spend_config(journal, '{ max_tokens = 500, on_exceed = "stop" }'))
    out = harness.run(specs)
    assert out.exit_code == 1
    assert harness.domain("a")[-1] == ("task.failed", {"n": 1, "kind": "budget"})
    assert "budget.exceeded" in harness.types("a")
    assert journal_ticks(journal, "a") <= 10 + harness.PAUSE_WITHIN  # stopped within 1 s


def test_a_run_budget_holds_the_next_task_until_it_is_raised(
        harness: EngineHarness, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    text = spend_config(journal, '{ max_tokens = 100000 }', agent="max_parallel = 1\n",
                        extra='[budget]\nmax_tokens = 1000\non_exceed = "stop"\n') + task("b", "s")
    specs = harness.plan(text)
    watch = Watcher()

    def raise_if_held(e: Any) -> None:  # n = 0: held before its first attempt
        if e.data["n"] == 0:
            harness.engine.signal(SignalKind.BUDGET, e.task_id, cost_usd=0.0, tokens=100_000,
                                  wall=0.0)

    for tid in "ab":  # whichever the engine started first crosses the run's budget
        watch.when("budget.exceeded", tid, raise_if_held)
    out = harness.run(specs, observers=[watch])
    watch.check()
    assert out.exit_code == 1  # a stopped by the run's budget
    first = "a" if harness.domain("a")[-1][0] == "task.failed" else "b"
    other = "b" if first == "a" else "a"
    assert harness.domain(first)[-1] == ("task.failed", {"n": 1, "kind": "budget"})
    held = harness.types(other)
    assert held.index("budget.exceeded") < held.index("attempt.started")  # held, not paused
    assert held[-1] == "task.succeeded"


def test_cancel_ends_a_paused_agent(harness: EngineHarness, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    specs = harness.plan(spend_config(journal, "{ max_tokens = 1000 }"))
    watch = Watcher()
    pids: list[int] = []

    def cancel_once_paused(_: Any) -> None:
        [pid] = journal_pids(journal, "a")
        wait_until(lambda: proc_state(pid) == "T", what="the agent's group stopped")
        pids.append(pid)
        harness.engine.signal(SignalKind.CANCEL, "a")

    watch.when("task.paused", "a", cancel_once_paused)
    out = harness.run(specs, observers=[watch])
    watch.check()
    assert out.exit_code == 1
    assert harness.domain("a")[-1] == ("task.cancelled", {"n": 1, "kind": "cancelled"})
    assert not pid_alive(pids[0])  # a stopped group is continued so that it can end
    assert journal_ticks(journal, "a") < 30
