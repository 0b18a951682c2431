"""A task's worktree deleted by hand while its agent runs, or between attempts: wf says so,
prunes it, makes it again from the task's branch for the next attempt, and the task ends well."""

from __future__ import annotations

import shutil
from pathlib import Path

from runwf import (
    agent_cmd, events, fast_retry, journal_pids, status, wait_until, wf, wf_bg, write_tasks,
)


def _gated(repo, journal, gate, attempts=3):
    text = fast_retry(attempts=attempts) + f"\n[agents.g]\ncommand = {agent_cmd('gated', str(gate), journal)}\n"
    text += '[[task]]\nid = "w"\nprompt = "x"\nagent = "g"\n'
    return write_tasks(repo, text)


def test_a_worktree_deleted_while_its_agent_runs_is_made_again_for_the_next_attempt(repo, tmp_path):
    journal, gate = tmp_path / "journal", tmp_path / "gate"
    run = wf_bg(repo, "run", str(_gated(repo, journal, gate)))
    wait_until(lambda: journal_pids(journal, "w"), what="the agent to start")
    path = Path(status(repo)["w"]["worktree"])
    shutil.rmtree(path)
    gate.touch()
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
    lost = events(repo, "task.worktree_lost")
    assert lost and lost[0]["data"]["path"] == str(path)
    first = [e["data"] for e in events(repo, "attempt.finished")][0]
    assert first["failure_kind"] == "infra" and "was deleted" in first["error"]
    assert status(repo)["w"]["state"] == "done" and (path / "notes" / "w.txt").exists()
    clean = wf(repo, "clean", "--orphans")
    assert clean.returncode == 0 and "prunable" not in clean.stdout + clean.stderr


def test_a_worktree_deleted_between_attempts_is_made_again_from_the_branch(repo, tmp_path):
    journal = tmp_path / "journal"
    text = fast_retry(attempts=3) + f"\n[agents.f]\ncommand = {agent_cmd('flaky', '2', journal)}\n"
    text += '[[task]]\nid = "b"\nprompt = "x"\nagent = "f"\n'
    # wf dies the moment the first attempt's retry is scheduled: the worktree is then deleted
    # with no attempt running, and the next engine finds it gone.
    crashed = wf(repo, "run", str(write_tasks(repo, text)),
                 env={"WF_CRASH_AFTER": "task.retry_scheduled:1"})
    assert crashed.returncode == -9, crashed.stderr
    shutil.rmtree(Path(status(repo)["b"]["worktree"]))
    resumed = wf(repo, "resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert events(repo, "task.worktree_lost")
    assert status(repo)["b"]["state"] == "done" and status(repo)["b"]["attempts"] == 2
