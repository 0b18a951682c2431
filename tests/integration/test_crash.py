"""kill -9 of wf at every interesting point, then `wf resume`: every task ends correctly, no
succeeded attempt runs twice, and the projections equal a rebuild from the log."""

from __future__ import annotations

import signal

import pytest
from runwf import (
    agent_cmd, assert_projections_rebuild, events, fast_retry, journal_pids, pid_alive, status,
    wait_until, wf, wf_bg, write_tasks,
)

TASKS = """
[[task]]
id = "s1"
prompt = "slow one"
agent = "slow"
[[task]]
id = "s2"
prompt = "slow two"
agent = "slow"
[[task]]
id = "flaky"
prompt = "fails once"
agent = "flaky"
[[task]]
id = "after"
prompt = "depends on s1"
agent = "slow"
depends_on = ["s1"]
"""


def _setup(repo, journal):
    text = fast_retry(attempts=4, interval="1s")
    text += f"\n[agents.slow]\ncommand = {agent_cmd('slow', '2', journal)}\n"
    text += f"\n[agents.flaky]\ncommand = {agent_cmd('flaky', '2', journal)}\n"
    return write_tasks(repo, text + TASKS)


def _assert_all_good(repo, journal):
    tasks = status(repo)
    assert {t: r["state"] for t, r in tasks.items()} == dict.fromkeys(
        ("s1", "s2", "flaky", "after"), "done")
    # no succeeded attempt ran twice: each task's agent finished its work exactly once
    done = [line.split()[0] for line in journal.read_text().splitlines() if line.endswith("done")]
    assert sorted(done) == ["after", "flaky", "s1", "s2"]
    succeeded = [e["stream"] for e in events(repo, "attempt.finished")
                 if e["data"]["state"] == "succeeded"]
    assert sorted(succeeded) == ["task:after", "task:flaky", "task:s1", "task:s2"]
    assert_projections_rebuild(repo)


@pytest.mark.parametrize("point", [
    "task.submitted:4",        # before any agent starts
    "attempt.started:1",       # intent recorded, agent not spawned yet
    "attempt.spawned:2",       # agents running
    "task.retry_scheduled:1",  # a durable retry timer pending
    "attempt.finished:2",      # some attempts closed, others running
    "task.succeeded:3",        # near the end
])
def test_kill_9_then_resume_finishes_everything_once(repo, tmp_path, point):
    journal = tmp_path / "journal"
    path = _setup(repo, journal)
    crashed = wf(repo, "run", str(path), env={"WF_CRASH_AFTER": point})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    resumed = wf(repo, "resume", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    _assert_all_good(repo, journal)


def test_kill_9_from_outside_while_agents_run(repo, tmp_path):
    journal, gate = tmp_path / "journal", tmp_path / "gate"
    # The agents wait for the gate, so they are surely still running when wf resume starts.
    text = fast_retry(attempts=4, interval="1s")
    text += f"\n[agents.slow]\ncommand = {agent_cmd('gated', str(gate), journal)}\n"
    text += f"\n[agents.flaky]\ncommand = {agent_cmd('flaky', '2', journal)}\n"
    run = wf_bg(repo, "run", str(write_tasks(repo, text + TASKS)))
    wait_until(lambda: journal.exists() and journal_pids(journal, "s1")
               and journal_pids(journal, "s2"), what="both gated agents running")
    run.send_signal(signal.SIGKILL)
    run.communicate()
    resumed = wf_bg(repo, "resume")
    try:
        wait_until(lambda: len(events(repo, "attempt.adopted")) >= 2, what="agents adopted")
        gate.touch()
        _, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err
    finally:
        resumed.kill()
    _assert_all_good(repo, journal)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_exits_130_and_resume_continues(repo, tmp_path, sig):
    journal = tmp_path / "journal"
    path = _setup(repo, journal)
    run = wf_bg(repo, "run", str(path))
    wait_until(lambda: journal.exists() and "start" in journal.read_text(), what="an agent")
    run.send_signal(sig)
    _, err = run.communicate(timeout=30)
    assert run.returncode == 130 and "wf resume" in err and "Traceback" not in err
    resumed = wf(repo, "resume", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    _assert_all_good(repo, journal)


def test_a_cancel_sent_while_no_engine_runs_stops_an_adopted_agent(repo, tmp_path):
    journal = tmp_path / "journal"
    text = fast_retry(attempts=1) + f"\n[agents.h]\ncommand = {agent_cmd('hang', '', journal)}\n"
    text += '[[task]]\nid = "orphan"\nprompt = "x"\nagent = "h"\n'
    (repo / "wf.toml").write_text("[merge]\nauto = true\n")  # the queue changes start-up order
    crashed = wf(repo, "run", str(write_tasks(repo, text)),
                 env={"WF_CRASH_AFTER": "attempt.spawned:1"})
    assert crashed.returncode == -signal.SIGKILL
    pid = wait_until(lambda: journal_pids(journal, "orphan"), what="agent start")[0]
    assert wf(repo, "cancel", "orphan").returncode == 0
    assert wf(repo, "resume", timeout=60).returncode == 1
    assert status(repo)["orphan"]["state"] == "cancelled"
    assert not pid_alive(pid)
