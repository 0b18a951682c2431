"""Budgets while agents run (issue 17): a crossed budget pauses the agent's process group
(stopped, not killed), `wf budget` resumes it, `on_exceed = "stop"` fails it as `budget`, a
run budget holds new attempts back, and a pause survives kill -9 of wf."""

from __future__ import annotations

import os
import signal
import time

from helpers import git
from hookserver import Receiver
from runwf import (
    agent_cmd,
    events,
    fast_retry,
    journal_pids,
    journal_ticks,
    proc_state,
    status,
    wait_until,
    wf,
    wf_bg,
    write_tasks,
)


def spend_tasks(repo, journal, body: str, *, n: int = 30, extra: str = ""):
    cmd = agent_cmd("spend", str(n), journal)
    return write_tasks(repo, extra + fast_retry(attempts=2)
                       + f'\n[agents.s]\ncommand = {cmd}\nadapter = "claude"\n\n' + body)


def stopped_agent(journal, task: str) -> int:
    pid = wait_until(lambda: journal_pids(journal, task), what="agent start")[0]
    wait_until(lambda: proc_state(pid) == "T", timeout=20, what="agent paused")
    return pid


def test_a_crossed_budget_pauses_the_agent_and_wf_budget_resumes_it(repo, tmp_path):
    journal = tmp_path / "journal"
    path = spend_tasks(repo, journal, '[[task]]\nid = "t"\nprompt = "x"\nagent = "s"\n'
                       'no_output_timeout = "1s"\nbudget = { max_tokens = 1000 }\n')
    run = wf_bg(repo, "run", str(path), "--json")
    try:
        pid = stopped_agent(journal, "t")
        seen = journal_ticks(journal, "t")
        assert 10 <= seen <= 13, seen  # paused within about 0.3 s of crossing 1000 tokens
        [exceeded] = events(repo, "budget.exceeded")
        assert exceeded["data"]["limit"] == "max_tokens" and exceeded["data"]["scope"] == "task:t"
        assert [e["data"]["n"] for e in events(repo, "task.paused")] == [1]
        row = status(repo)["t"]
        assert row["paused"] == 1 and row["budget_exceeded"]["limit"] == "max_tokens"
        shown = wf(repo, "status", env={"COLUMNS": "200"}).stdout
        assert "paused: budget" in shown and "wf budget t" in shown, shown
        # Paused longer than no_output_timeout: the pause does not count, nothing times out.
        paused_at = time.monotonic()
        wait_until(lambda: time.monotonic() - paused_at > 1.5, what="a pause past the timeout")
        assert proc_state(pid) == "T" and journal_ticks(journal, "t") == seen
        proc = wf(repo, "budget", "t", "--tokens", "5k")
        assert proc.returncode == 0, proc.stderr
        assert run.wait(timeout=60) == 0
    finally:
        run.kill()
        run.communicate()
    row = status(repo)["t"]
    assert (row["state"], row["attempts"]) == ("done", 1)
    assert len(events(repo, "task.resumed")) == 1 and journal_ticks(journal, "t") == 30


def test_on_exceed_stop_fails_the_attempt_as_budget_never_retried(repo, tmp_path):
    journal = tmp_path / "journal"
    path = spend_tasks(repo, journal, '[[task]]\nid = "t"\nprompt = "x"\nagent = "s"\n'
                       'budget = { max_tokens = 500, on_exceed = "stop" }\n')
    receiver = Receiver()
    try:  # budget.exceeded is an `attention` event: an endpoint taking that group gets it
        (repo / "wf.toml").write_text(f'[[hooks]]\nname = "people"\n'
                                      f'url = "{receiver.url("/people")}"\n'
                                      'events = ["attention"]\n')
        git(repo, "add", "wf.toml")
        git(repo, "commit", "-qm", "wf.toml")
        assert wf(repo, "run", str(path)).returncode == 1
        got = [r["json"]["type"] for r in receiver.accepted("/people")]
    finally:
        receiver.close()
    assert sorted(got) == ["budget.exceeded", "task.failed"]
    row = status(repo)["t"]
    assert (row["state"], row["last_failure_kind"], row["attempts"]) == ("failed", "budget", 1)
    assert journal_ticks(journal, "t") < 30


def test_a_run_budget_holds_new_attempts_back(repo, tmp_path):
    journal = tmp_path / "journal"
    path = spend_tasks(repo, journal, '[[task]]\nid = "a"\nprompt = "x"\nagent = "s"\n'
                       '[[task]]\nid = "b"\nprompt = "x"\nagent = "s"\n',
                       extra='max_parallel = 1\n[budget]\nmax_tokens = 1000\n')
    run = wf_bg(repo, "run", str(path), "--json")
    try:
        first = wait_until(lambda: [t for t in "ab" if journal_pids(journal, t)],
                           what="an agent start")[0]
        other = "b" if first == "a" else "a"
        stopped_agent(journal, first)
        assert wf(repo, "budget", first, "--tokens", "100k").returncode == 0
        wait_until(lambda: status(repo)[first]["state"] == "done", what="first done")
        # the other's turn: the run has used 3,000 of its 1,000 tokens, so it does not start
        wait_until(lambda: any(e["data"]["scope"] == "run" and e["stream"] == f"task:{other}"
                               for e in events(repo, "budget.exceeded")), what="held")
        assert not status(repo)[other]["attempts"] and not journal_pids(journal, other)
        assert wf(repo, "budget", other, "--tokens", "100k").returncode == 0
        assert run.wait(timeout=60) == 0
    finally:
        run.kill()
        run.communicate()
    assert status(repo)[other]["state"] == "done"


def test_a_pause_survives_kill_9_and_resume(repo, tmp_path):
    journal = tmp_path / "journal"
    path = spend_tasks(repo, journal, '[[task]]\nid = "t"\nprompt = "x"\nagent = "s"\n'
                       'budget = { max_tokens = 1000 }\n')
    run = wf_bg(repo, "run", str(path), "--json")
    try:
        pid = stopped_agent(journal, "t")
        seen = journal_ticks(journal, "t")
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=10)
    finally:
        run.kill()
        run.communicate()
    assert proc_state(pid) == "T"
    again = wf_bg(repo, "resume", "--json")
    try:
        wait_until(lambda: any(e["type"] == "attempt.adopted"
                               for e in events(repo)), what="adopted")
        assert proc_state(pid) == "T" and journal_ticks(journal, "t") == seen
        assert len(events(repo, "task.paused")) == 1  # the same pause, not a second one
        assert wf(repo, "budget", "t", "--tokens", "10k").returncode == 0
        assert again.wait(timeout=60) == 0
    finally:
        again.kill()
        again.communicate()
    assert status(repo)["t"]["state"] == "done"


def test_wf_budget_says_what_is_wrong_in_one_line(repo):
    for args, words in ((["t"], "say how much more"),
                        (["t", "--add", "-2"], "cannot be negative"),
                        (["t", "--tokens", "5 gigatokens"], "--tokens")):
        proc = wf(repo, "budget", *args)
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_wf_status_names_the_running_tasks_without_live_figures(repo, tmp_path):
    gate = tmp_path / "gate"
    path = write_tasks(repo, fast_retry(attempts=1)
                       + f'[agents.plain]\ncommand = {agent_cmd("gated", str(gate))}\n'
                       + f'[agents.codexlike]\ncommand = {agent_cmd("gated", str(gate))}\n'
                       'adapter = "codex"\n'
                       + "".join(f'[[task]]\nid = "{t}"\nprompt = "x"\nagent = "{a}"\n'
                                 for t, a in (("p", "plain"), ("c", "codexlike"))))
    run = wf_bg(repo, "run", str(path))
    try:
        wait_until(lambda: all(r["state"] == "running" for r in status(repo).values()),
                   what="both running")
        rows = status(repo)
        assert (rows["p"]["usage_reported"], rows["c"]["usage_reported"]) == ("none", "at_end")
        shown = wf(repo, "status", env={"COLUMNS": "200"}).stdout
        [line] = [ln for ln in shown.splitlines() if ln.startswith("no live figures: ")]
        assert ("c (usage only at an attempt's end)" in line
                and "p (its agent reports none)" in line), shown
        gate.write_text("go")
        run.wait(timeout=60)
    finally:
        run.kill()
        run.communicate()
    assert "no live figures" not in wf(repo, "status").stdout  # nothing runs now
