"""The pure budget decisions: parsing wf.toml budgets, crossing them, paused time, and the
adaptive limit of an agent."""

from __future__ import annotations

import pytest

from wf.engine.attempt_plan import deadline_passed, next_look
from wf.engine.budget import (
    AgentLimit,
    Budget,
    Usage,
    active_seconds,
    crossed,
    first_crossed,
    may_start,
    next_limit,
    parse_budget,
    task_verdict,
    usages,
)
from wf.errors import ConfigError
from wf.model import NEVER_RETRIED, FailureKind


def test_a_budget_parses_numbers_and_units() -> None:
    b = parse_budget({"max_cost_usd": "$2.50", "max_tokens": "1.5M", "max_wall": "1h30m",
                      "on_exceed": "stop"}, "[budget]")
    assert b == Budget(2.5, 1_500_000, 5400.0, "stop")
    assert parse_budget({"max_tokens": "200k"}, "x").max_tokens == 200_000
    assert parse_budget({"max_tokens": 1000, "max_cost_usd": 3}, "x") == Budget(3.0, 1000)
    assert parse_budget(None, "x").empty and parse_budget({}, "x").on_exceed == "pause"


@pytest.mark.parametrize("raw, words", [
    ({"max_cost_usd": -1}, "cannot be negative"),
    ({"max_tokens": "-5k"}, "cannot be negative"),
    ({"max_tokens": "20 gigatokens"}, "unknown unit"),
    ({"max_cost_usd": "2 EUR"}, "unknown unit"),
    ({"max_wall": "3 fortnights"}, "not a duration"),
    ({"max_wall": -3}, "negative"),
    ({"max_cost_usd": True}, "not a number"),
    ({"max_dollars": 1}, "unknown budget key 'max_dollars'"),
    ({"on_exceed": "explode"}, "on_exceed"),
    (5, "a budget is a table"),
])
def test_a_bad_budget_is_one_line_config_error(raw: object, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_budget(raw, "task t budget")
    assert words in err.value.message and "\n" not in err.value.message
    assert err.value.message.startswith("task t budget")


def test_crossing_counts_what_is_known_and_the_cap_itself() -> None:
    b = Budget(max_cost_usd=1.0, max_tokens=100)
    assert crossed("task:a", Usage(cost_usd=0.99, tokens=99), b) is None
    at_cap = crossed("task:a", Usage(cost_usd=1.0, tokens=0), b)
    assert at_cap is not None and (at_cap.limit, at_cap.action) == ("max_cost_usd", "pause")
    # no cost figure: the cost cap says nothing; the token cap still applies
    assert crossed("task:a", Usage(cost_usd=None, tokens=50), b) is None
    tok = crossed("task:a", Usage(cost_usd=None, tokens=150), b)
    assert tok is not None and tok.limit == "max_tokens" and "150 tokens" in tok.message
    wall = crossed("run", Usage(wall=61.0), Budget(max_wall=60, on_exceed="stop"))
    assert wall is not None and wall.action == "stop" and wall.as_event()["scope"] == "run"
    assert crossed("run", Usage(cost_usd=1e9, tokens=10**9, wall=1e9), Budget()) is None


def test_the_first_crossed_scope_wins_and_a_raise_makes_room() -> None:
    used = Usage(cost_usd=2.0, tokens=10)
    scopes = [("task:a", used, Budget(max_tokens=100)), ("agent:claude", used,
              Budget(max_cost_usd=1.5)), ("run", used, Budget(max_cost_usd=1.0))]
    found = first_crossed(scopes)
    assert found is not None and found.scope == "agent:claude"
    raised = Budget(max_cost_usd=1.5).raised(cost_usd=2.0)
    assert raised.max_cost_usd == 3.5 and crossed("agent:claude", used, raised) is None
    assert Budget(max_tokens=10).raised(cost_usd=5.0).max_cost_usd is None


def test_usage_adds_up_and_unknown_cost_stays_unknown() -> None:
    a, b = Usage(None, 10, 1.0), Usage(0.5, 5, 2.0, live=False)
    assert a.plus(Usage(None, 1)).cost_usd is None
    total = a.plus(b)
    assert (total.cost_usd, total.tokens, total.wall, total.live) == (0.5, 15, 3.0, False)


def test_paused_time_is_not_active_time() -> None:
    assert active_seconds(0.0, 100.0, []) == 100.0
    assert active_seconds(0.0, 100.0, [(10.0, 40.0)]) == 70.0
    assert active_seconds(0.0, 100.0, [(90.0, None)]) == 90.0  # still paused
    assert active_seconds(50.0, 100.0, [(10.0, 60.0), (-5.0, 0.0)]) == 40.0


def test_a_pause_counts_toward_neither_timeout() -> None:
    pauses = [(10.0, 110.0)]
    assert deadline_passed(150.0, 0.0, None, 100.0, None) is not None
    assert deadline_passed(150.0, 0.0, None, 100.0, None, pauses) is None
    assert deadline_passed(150.0, 0.0, 5.0, None, 60.0, pauses) is None
    quiet = deadline_passed(170.0, 0.0, 5.0, None, 60.0, pauses)
    assert quiet is not None and quiet.kind == FailureKind.NO_OUTPUT_TIMEOUT
    # after a pause the next look is not pulled to "now" by a deadline that has not fallen
    assert next_look(150.0, 0.0, None, 100.0, None, poll=1.0, pauses=pauses) == 1.0


def test_a_budget_stop_is_never_retried() -> None:
    assert FailureKind.BUDGET in NEVER_RETRIED


def test_the_limit_halves_on_rate_limits_and_waits_retry_after() -> None:
    lim = AgentLimit(8)
    lim = next_limit(lim, "rate_limited", now=100.0, max_parallel=8, retry_after=30.0)
    assert (lim.limit, lim.not_before, lim.successes) == (4, 130.0, 0)
    assert "8 -> 4" in lim.reason
    assert not may_start(lim, 0, 129.0) and may_start(lim, 3, 130.0)
    assert not may_start(lim, 4, 200.0)
    lim = next_limit(lim, "rate_limited", now=101.0, max_parallel=8, retry_after=5.0)
    assert (lim.limit, lim.not_before) == (2, 130.0)  # an earlier retry_after never shortens
    lim = next_limit(next_limit(lim, "rate_limited", now=102.0, max_parallel=8),
                     "rate_limited", now=103.0, max_parallel=8)
    assert lim.limit == 1 and lim.reason == "rate limited at 1"


def test_attempts_of_one_overload_halve_the_limit_once() -> None:
    """Four attempts started together at 8 and all rate limited: 8 -> 4, not 8 -> 1; an
    attempt started after the lowering that is rate limited again halves it again."""
    lim = next_limit(AgentLimit(8), "rate_limited", now=100.0, max_parallel=8,
                     retry_after=2.0, started=90.0)
    assert (lim.limit, lim.lowered_at) == (4, 100.0)
    for t in (100.5, 101.0, 103.0):
        lim = next_limit(lim, "rate_limited", now=t, max_parallel=8, retry_after=2.0,
                         started=90.0)
    assert (lim.limit, lim.not_before, lim.lowered_at) == (4, 105.0, 100.0)
    lim = next_limit(lim, "rate_limited", now=110.0, max_parallel=8, started=106.0)
    assert (lim.limit, lim.lowered_at) == (2, 110.0) and "4 -> 2" in lim.reason


def test_halving_rounds_up_to_the_limit_that_last_worked() -> None:
    """Successes raised 2 to 3 and 3 was rate limited: back to 2, not 1; from 2 to 1."""
    three = AgentLimit(3)
    assert next_limit(three, "rate_limited", now=0.0, max_parallel=8).limit == 2
    assert next_limit(AgentLimit(2), "rate_limited", now=0.0, max_parallel=8).limit == 1
    assert next_limit(AgentLimit(5), "rate_limited", now=0.0, max_parallel=8).limit == 3


def test_the_limit_rises_by_one_after_a_run_of_successes_up_to_max() -> None:
    lim = AgentLimit(2)
    for _ in range(2):
        lim = next_limit(lim, "success", now=0.0, max_parallel=3)
    assert (lim.limit, lim.successes) == (2, 2)
    lim = next_limit(lim, "other", now=0.0, max_parallel=3)
    assert lim.successes == 2  # a plain failure neither counts nor resets
    lim = next_limit(lim, "success", now=0.0, max_parallel=3)
    assert (lim.limit, lim.successes) == (3, 0) and "3 successes" in lim.reason
    for _ in range(5):
        lim = next_limit(lim, "success", now=0.0, max_parallel=3)
    assert lim.limit == 3
    assert next_limit(lim, "rate_limited", now=0.0, max_parallel=3).successes == 0


def _row(agent: str, tokens: int, cost: float | None = None, **spec: object) -> dict:
    return {"agent": agent, "tokens": tokens, "cost_usd": cost, "spec": spec,
            "budget_added": None}


def test_a_task_verdict_weighs_its_own_its_agents_and_the_runs_budget() -> None:
    tasks = {"a": _row("x", 600, budget={"max_tokens": 1000}),
             "b": _row("x", 500, agent_budget={"max_tokens": 1000}),
             "c": _row("y", 10)}
    attempts = {("a", 1): {"started_ts": 0.0, "ended_ts": None, "pauses": [[10.0, 40.0]]},
                ("c", 1): {"started_ts": 0.0, "ended_ts": 5.0, "pauses": None}}
    used = usages(tasks, attempts, now=100.0)
    assert used.tasks["a"].wall == 70.0 and used.tasks["c"].wall == 5.0
    assert (used.agents["x"].tokens, used.run.tokens) == (1100, 1110)
    assert task_verdict("a", tasks, used, None) is None
    held = task_verdict("b", tasks, used, None)
    assert held is not None and held.scope == "agent:x"
    run = task_verdict("c", tasks, used, Budget(max_tokens=1000))
    assert run is not None and (run.scope, run.used) == ("run", 1110.0)
    tasks["c"]["budget_added"] = {"tokens": 200}  # wf budget c --tokens 200
    assert task_verdict("c", tasks, used, Budget(max_tokens=1000)) is None
    assert task_verdict("a", tasks, used, Budget(max_tokens=1000)) is not None


def test_the_budget_signal_raises_and_is_refused_only_for_a_done_task() -> None:
    from wf.engine.signal_rules import decide_signal, judge_signal
    from wf.model import SignalKind

    row = {"state": "running"}
    assert judge_signal(SignalKind.BUDGET, "t", row, None, queue_enabled=False,
                        running=True).applies
    done = judge_signal(SignalKind.BUDGET, "t", {"state": "done"}, None,
                        queue_enabled=False, running=False)
    assert not done.applies and "done" in done.reason
    out = decide_signal(SignalKind.BUDGET, "t", {"tokens": 5000}, {"t": row}, {},
                        queue_enabled=False, running=True)
    [event] = out.events
    assert (out.result, event.type, event.data) == (
        "raised", "budget.raised", {"cost_usd": 0, "tokens": 5000, "wall": 0})


def test_the_adaptive_limit_reads_the_log_and_records_only_changes() -> None:
    from wf.engine.budget import attempt_signal, limit_event

    assert AgentLimit.of_row(None, 8) == AgentLimit(8)
    row = {"parallel": 6, "not_before": 50.0, "successes": 1, "reason": "r", "lowered_at": 40.0}
    assert AgentLimit.of_row(row, 4) == AgentLimit(4, 50.0, 1, "r", 40.0)  # wf.toml lowered it
    assert (attempt_signal("succeeded", None), attempt_signal("failed", "transient", True),
            attempt_signal("failed", "agent_error")) == ("success", "rate_limited", "other")
    # a transient failure the adapter did not call a rate limit (a network blip) says nothing
    assert attempt_signal("failed", "transient") == "other"
    at_max = AgentLimit(8)
    assert next_limit(at_max, "success", now=0.0, max_parallel=8) == at_max
    assert limit_event("claude", at_max, at_max) is None
    lower = next_limit(at_max, "rate_limited", now=0.0, max_parallel=8, retry_after=2.0)
    data = limit_event("claude", at_max, lower)
    assert data is not None and (data["agent"], data["limit"], data["not_before"]) == (
        "claude", 4, 2.0)
