"""Budgets and adaptive limits on the Temporal engine (issue 17), with real ``wf worker``
processes: what only a worker can do wrong. The contract suite (tests/contract) already runs
pause, raise, stop and a run budget on both engines.

- A worker killed (-9) while its agent is paused by a budget: the agent stays stopped, the
  worker that comes back adopts it still paused (the pause travels in the attempt's
  heartbeat), and ``wf budget`` then resumes that same agent to the end.
- Adaptive parallelism against a model API that takes one request at once: the repository
  workflow lowers the agent's limit (``agent.limit_changed``) and every task still succeeds.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from runwf import agent_cmd, journal_pids, journal_ticks, proc_state, wait_until
from stub_ratelimit import LimitedModel
from test_temporal_hosts import Host

from wf.api import open_repo
from wf.engine import build_engine
from wf.model import SignalKind
from wf.task_input import plan_tasks_file

pytest.importorskip("temporalio")

BOUND = 60.0
MODEL_CLI = Path(__file__).resolve().parent.parent / "agents" / "model_cli.py"




def engine_env(server: str, tmp_path: Path) -> dict[str, str]:
    queue = f"bud{os.getpid()}{tmp_path.name[-6:].replace('_', '')}".lower()
    return {**os.environ, "WF_ENGINE": "temporal", "WF_TEMPORAL_ADDRESS": server,
            "WF_TEMPORAL_TASK_QUEUE": queue}


def plan(repo: Path, tmp_path: Path, env: dict[str, str], body: str, top: str = ""):
    path = tmp_path / "tasks.toml"
    path.write_text(f'{top}[engine]\nkind = "temporal"\naddress = "{env["WF_TEMPORAL_ADDRESS"]}"\n'
                    f'task_queue = "{env["WF_TEMPORAL_TASK_QUEUE"]}"\nheartbeat_timeout = "2s"\n'
                    + body)
    wf_repo, specs = plan_tasks_file(open_repo(repo), path)
    return build_engine(wf_repo, environ=env), specs


def test_a_paused_agent_stays_paused_through_a_worker_killed_and_back(
        repo: Path, tmp_path: Path, temporal_server: str) -> None:
    journal = tmp_path / "journal"
    env = engine_env(temporal_server, tmp_path)
    engine, specs = plan(repo, tmp_path, env, (
        '[retry]\nmaximum_attempts = 1\n'
        f'[agents.s]\ncommand = {agent_cmd("spend", "30", journal)}\nadapter = "claude"\n'
        '[[task]]\nid = "t"\nprompt = "x"\nagent = "s"\nbudget = { max_tokens = 1000 }\n'))
    worker = Host("h1", repo, env, slots=2)
    try:
        engine.submit(specs)
        [pid] = wait_until(lambda: journal_pids(journal, "t"), timeout=BOUND, what="start")
        wait_until(lambda: proc_state(pid) == "T", timeout=BOUND, what="the group stopped")
        seen = journal_ticks(journal, "t")
        worker.kill()  # -9: the agent stays as it is, stopped
        assert proc_state(pid) == "T"
        worker = Host("h1", repo, env, slots=2)
        wait_until(lambda: any(e.type == "attempt.adopted" for e in engine.events()),
                   timeout=BOUND, what="the agent adopted")
        # Adopted, and told again it is paused: still stopped, no tick, nothing resumed.
        assert proc_state(pid) == "T" and journal_ticks(journal, "t") == seen
        assert not [e for e in engine.events() if e.type == "task.resumed"]
        engine.signal(SignalKind.BUDGET, "t", cost_usd=0.0, tokens=5000, wall=0.0)
        wait_until(lambda: any(e.type in ("task.succeeded", "task.failed")
                               for e in engine.events()), timeout=BOUND, what="the end")
    finally:
        worker.kill()
    types = [e.type for e in engine.events() if e.task_id == "t"]
    assert types.count("task.succeeded") == 1 and types.count("task.resumed") == 1
    assert types.count("budget.exceeded") == 1 and types.count("attempt.started") == 1
    lines = journal.read_text().splitlines()
    assert [ln.split()[3] for ln in lines].count("start") == 1  # one agent, never a second
    assert journal_ticks(journal, "t") == 30


def test_rate_limits_lower_the_agents_limit_on_temporal(
        repo: Path, tmp_path: Path, temporal_server: str) -> None:
    env = engine_env(temporal_server, tmp_path)
    with LimitedModel(slots=1, hold=0.5, retry_after=1) as model:
        command = json.dumps([sys.executable, str(MODEL_CLI)])
        engine, specs = plan(repo, tmp_path, env, top="max_parallel = 4\n", body=(
            '[retry]\nmaximum_attempts = 10\ninitial_interval = "50ms"\n'
            'backoff_coefficient = 2.0\njitter = 0.0\n'
            f'[agents.m]\ncommand = {command}\nadapter = "claude"\n'
            f'env = {{ ANTHROPIC_BASE_URL = "{model.url}", CLAUDE_CODE_MAX_RETRIES = "1" }}\n'
            + "".join(f'\n[[task]]\nid = "t{i}"\nprompt = "note {i}"\nagent = "m"\n'
                      for i in range(6))))
        with Host("h1", repo, env, slots=4):
            out = engine.run(specs, command="test")
        rejected = model.rejected
    assert out.exit_code == 0 and rejected > 0
    changes = [e.data for e in engine.events() if e.type == "agent.limit_changed"]
    assert changes and changes[0]["limit"] == 2 and changes[0]["reason"] == "rate limited: 4 -> 2"
    assert changes[0]["not_before"] >= changes[0]["lowered_at"] + 1.0  # the retry-after
    finished = [e.data for e in engine.events() if e.type == "attempt.finished"]
    assert any(d.get("rate_limited") for d in finished)
    assert all(r["state"] == "done" for r in out.tasks)
