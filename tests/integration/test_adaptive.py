"""Adaptive parallelism on the local engine (issue 17), against a model API that takes K
requests at once and answers 429 with retry-after beyond that (tests/stub_ratelimit.py),
called by a stand-in for Claude Code (tests/agents/model_cli.py) read by the claude adapter:
a rate limit halves the agent's limit, starts wait for retry_after, successes raise it again,
no task fails, and after kill -9 and `wf resume` the limit carries on from the log."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from runwf import events, status, wait_until, wf, wf_bg, write_tasks
from stub_ratelimit import LimitedModel

MODEL_CLI = Path(__file__).resolve().parent.parent / "agents" / "model_cli.py"


def model_tasks(repo: Path, url: str, n: int, *, max_parallel: int, attempts: int = 10,
                agent_extra: str = "") -> Path:
    """``n`` tasks of agent ``m``: model_cli.py against ``url``, read as Claude Code."""
    command = json.dumps([sys.executable, str(MODEL_CLI)])
    body = (f"max_parallel = {max_parallel}\n[retry]\nmaximum_attempts = {attempts}\n"
            'initial_interval = "50ms"\nbackoff_coefficient = 2.0\njitter = 0.0\n'
            f'\n[agents.m]\ncommand = {command}\nadapter = "claude"\n'
            f'env = {{ ANTHROPIC_BASE_URL = "{url}", CLAUDE_CODE_MAX_RETRIES = "1" }}\n'
            + agent_extra)
    body += "".join(f'\n[[task]]\nid = "t{i}"\nprompt = "note {i}"\nagent = "m"\n'
                    for i in range(n))
    return write_tasks(repo, body)


def check_starts_within_the_limit(log: list[dict], max_parallel: int) -> None:
    """Every attempt of agent m started while fewer than the limit in force ran, and no
    earlier than its not_before (the retry-after of the last rate limit)."""
    limit, not_before, running = max_parallel, 0.0, set()
    for e in log:
        d = e["data"]
        if e["type"] == "agent.limit_changed":
            limit, not_before = d["limit"], d["not_before"]
        elif e["type"] == "attempt.started":
            assert len(running) < limit, (e, running, limit)
            assert e["ts"] >= not_before - 0.01, (e, not_before)
            running.add((e["stream"], d["n"]))
        elif e["type"] == "attempt.finished":
            running.discard((e["stream"], d["n"]))


@pytest.mark.slow
def test_rate_limits_halve_the_limit_successes_raise_it_and_resume_carries_it_on(repo):
    with LimitedModel(slots=2, hold=2.0, retry_after=1) as model:
        path = model_tasks(repo, model.url, 8, max_parallel=4)
        run = wf_bg(repo, "run", str(path), "--json")
        try:
            wait_until(lambda: events(repo, "agent.limit_changed"), timeout=60,
                       what="the first change of the limit")
            os.kill(run.pid, signal.SIGKILL)
            run.wait(timeout=10)
        finally:
            run.kill()
            run.communicate()
        proc = wf(repo, "resume", "--json", timeout=180)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        rejected = model.rejected
    log = events(repo)
    changes = [e["data"] for e in log if e["type"] == "agent.limit_changed"]
    assert (changes[0]["limit"], changes[0]["reason"]) == (2, "rate limited: 4 -> 2")
    assert changes[0]["not_before"] >= changes[0]["lowered_at"] + 1.0  # retry-after: 1
    assert any("successes" in c["reason"] for c in changes), changes  # raised again
    assert all(c["limit"] >= 1 for c in changes)
    # The resumed run started from the logged limit, not from max_parallel: no start ever
    # ran more attempts than the limit in force, nor came before its not_before.
    assert [e["type"] for e in log].count("run.started") == 2
    check_starts_within_the_limit(log, 4)
    limited = [e for e in log if e["type"] == "attempt.finished"
               and e["data"].get("rate_limited")]
    assert limited and rejected >= len(limited)
    assert all(e["data"]["failure_kind"] == "transient" for e in limited)
    rows = status(repo)
    assert sorted(r["state"] for r in rows.values()) == ["done"] * 8
    # wf status shows the agent's limit now, of how many, and why (the last change)
    last = changes[-1]
    assert rows["t0"]["agent_limit"] == {
        "limit": last["limit"], "max_parallel": 4, "reason": last["reason"],
        "not_before": last["not_before"], "successes": last["successes"]}
    assert rows["t0"]["usage_reported"] == "live"  # read as Claude Code: usage as it goes
    shown = wf(repo, "status", env={"COLUMNS": "200"}).stdout
    assert f"agent m: {last['limit']} at once of 4 ({last['reason']})" in shown, shown


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_network_blip_is_transient_but_leaves_the_limit_alone(repo):
    path = model_tasks(repo, f"http://127.0.0.1:{free_port()}", 2, max_parallel=2, attempts=2)
    proc = wf(repo, "run", str(path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    finished = events(repo, "attempt.finished")
    assert len(finished) == 4 and all(e["data"]["failure_kind"] == "transient"
                                      and "rate_limited" not in e["data"] for e in finished)
    assert events(repo, "agent.limit_changed") == []


def test_adaptive_false_keeps_max_parallel_under_rate_limits(repo):
    with LimitedModel(slots=1, hold=1.0, retry_after=1) as model:
        path = model_tasks(repo, model.url, 3, max_parallel=3, attempts=1,
                           agent_extra="adaptive = false\n")
        proc = wf(repo, "run", str(path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    limited = [e for e in events(repo, "attempt.finished") if e["data"].get("rate_limited")]
    assert limited and events(repo, "agent.limit_changed") == []


def test_leaving_the_stub_answers_a_held_request_at_once():
    """A cancelled test or bench does not wait out the model calls the stub holds."""
    answered: list[float] = []
    with LimitedModel(slots=1, hold=60.0) as model:
        def call() -> None:
            req = urllib.request.Request(f"{model.url}/v1/messages", data=b"{}",
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                resp.read()
            answered.append(time.monotonic())

        caller = threading.Thread(target=call)
        caller.start()
        wait_until(lambda: model.served, what="the request held")
        left = time.monotonic()
    caller.join(timeout=5)
    assert answered and answered[0] - left < 1.0
