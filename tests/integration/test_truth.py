"""Every command tells the truth about what happened (issue 12): signals that cannot apply are
refused, an edited task can be forgotten and run again, an evicted task looks evicted, and the
end of a run says what to do next."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import git
from runwf import (
    agent_cmd, assert_projections_rebuild, events, fast_retry, status, task_states, wait_until,
    wf, wf_bg, write_tasks,
)

# Fails when a notes file says BAD; a long one-liner, as a real check command often is.
CHECK = json.dumps([sys.executable, "-c",
                    "import pathlib,sys; print('checking notes'); "
                    "bad=[p.name for p in pathlib.Path('notes').glob('*.txt') "
                    "if 'BAD' in p.read_text()] if pathlib.Path('notes').exists() else []; "
                    "print('FAILED:', *bad) if bad else None; sys.exit(4 if bad else 0)"])


def tasks(repo: Path, modes: dict[str, str], *, extra: str = "", name: str = "tasks.toml",
          prompt: str = "p") -> Path:
    """A tasks file: task id -> agent mode of tests/agents/agent.py, or "bad" for an agent
    whose work fails CHECK."""
    text = fast_retry(1) + extra
    for tid, mode in modes.items():
        if mode == "bad":
            script = repo.parent / "bad_agent.py"
            script.write_text("import os, pathlib\np = pathlib.Path('notes')\n"
                              "p.mkdir(exist_ok=True)\n"
                              "(p / (os.environ['WF_TASK_ID'] + '.txt')).write_text('BAD')\n")
            command = json.dumps([sys.executable, str(script)])
        else:
            command = agent_cmd(*mode.split(" ", 1))
        text += f"\n[agents.{tid}]\ncommand = {command}\n"
        text += f'[[task]]\nid = "{tid}"\nprompt = "{prompt}"\nagent = "{tid}"\n'
    return write_tasks(repo, text, name)


def commit_config(repo: Path, text: str) -> None:
    """wf.toml, committed: `wf resume` and the signals' checks read it (a tasks file's
    settings hold for its own run only)."""
    (repo / "wf.toml").write_text(text)
    git(repo, "add", "wf.toml")
    git(repo, "commit", "-qm", "wf config")


def refused(proc: subprocess.CompletedProcess[str], message: str) -> None:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == f"wf: error: {message}", proc.stderr
    assert len(lines) == 2 and lines[1].startswith("hint: ")
    assert proc.stdout == ""


# -- signals that cannot apply -------------------------------------------------------------------

def test_a_signal_that_cannot_apply_is_refused_with_exit_1_and_not_recorded(repo):
    assert wf(repo, "run", str(tasks(repo, {"ok": "commit", "bad": "fail 3"}))).returncode == 1
    refused(wf(repo, "approve", "ok"),
            "cannot approve ok: the merge queue is not enabled ([merge] in wf.toml)")
    refused(wf(repo, "queue", "add", "ok"),
            "cannot queue ok: the merge queue is not enabled ([merge] in wf.toml)")
    refused(wf(repo, "cancel", "bad"), "cannot cancel bad: it is already failed")
    refused(wf(repo, "retry", "ok"),
            "cannot retry ok: it is already done, and a finished task is not run again")
    assert events(repo, "signal.sent") == []

    proc = wf(repo, "retry", "bad")  # this one applies: recorded, and waits for an engine
    assert proc.returncode == 0, proc.stderr
    assert "no engine is running: `wf resume` acts on it" in proc.stderr
    assert [e["data"]["kind"] for e in events(repo, "signal.sent")] == ["retry"]


def test_signals_for_a_landed_entry_are_refused(repo):
    proc = wf(repo, "run", str(tasks(repo, {"a": "commit"}, extra="\n[merge]\nauto = true\n")))
    assert proc.returncode == 0, proc.stderr
    refused(wf(repo, "approve", "a"), "cannot approve a: it is not waiting for approval (landed)")
    refused(wf(repo, "reject", "a"), "cannot reject a: it is not in the queue (landed)")
    refused(wf(repo, "queue", "rm", "a"), "cannot remove a: it is not in the queue (landed)")
    refused(wf(repo, "queue", "add", "a"), "cannot queue a: it has already landed")
    assert events(repo, "signal.sent") == []
    [entry] = json.loads(wf(repo, "queue", "--json").stdout)
    assert (entry["position"], entry["approved"], entry["suspect"]) == (None, False, False)


def test_a_cancel_of_a_running_task_is_recorded_the_engine_decides(repo, tmp_path):
    run = wf_bg(repo, "run", str(tasks(repo, {"h": "hang"})))
    try:
        wait_until(lambda: task_states(repo).get("h") == "running", what="h running")
        refused(wf(repo, "retry", "h"), "cannot retry h: it is running")
        assert wf(repo, "cancel", "h").returncode == 0
        assert run.wait(timeout=60) == 1
    finally:
        run.kill()
        run.communicate()
    assert status(repo)["h"]["state"] == "cancelled"


# -- forgetting a task ---------------------------------------------------------------------------

def test_an_edited_task_is_forgotten_and_runs_again_keeping_its_work_in_a_backup(repo):
    assert wf(repo, "run", str(tasks(repo, {"t": "commit"}))).returncode == 0
    old_tip = git(repo, "rev-parse", "wf/t")

    edited = tasks(repo, {"t": "commit"}, prompt="do it differently")
    proc = wf(repo, "run", str(edited))
    assert proc.returncode == 2
    assert "hint: pick another id, or `wf clean t --forget` first" in proc.stderr

    proc = wf(repo, "clean", "t", "--forget")  # the command the hint names works
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("t: forgotten; worktree removed; branch deleted")
    assert "backup at refs/wf-backup/t/" in proc.stdout
    backups = git(repo, "for-each-ref", "--format=%(objectname)", "refs/wf-backup/t/")
    assert backups.split() == [old_tip]  # the unmerged work is kept
    assert status(repo) == {}
    assert_projections_rebuild(repo)

    proc = wf(repo, "run", str(edited))
    assert proc.returncode == 0, proc.stderr
    row = status(repo)["t"]
    assert (row["state"], row["attempts"]) == ("done", 2)  # numbered after the forgotten one
    assert git(repo, "log", "-1", "--format=%s", "wf/t") == "agent work for t"
    assert_projections_rebuild(repo)


def test_a_running_task_cannot_be_forgotten(repo):
    run = wf_bg(repo, "run", str(tasks(repo, {"h": "hang"})))
    try:
        wait_until(lambda: task_states(repo).get("h") == "running", what="h running")
        proc = wf(repo, "clean", "h", "--forget")
        refused(proc, "cannot forget h: it is running")
        assert "`wf cancel h` first" in proc.stderr
        assert wf(repo, "cancel", "h").returncode == 0
        assert run.wait(timeout=60) == 1
    finally:
        run.kill()
        run.communicate()
    assert task_states(repo) == {"h": "cancelled"}
    assert wf(repo, "clean", "--forget").returncode == 2  # it needs the ids


# -- eviction, and what to do next ---------------------------------------------------------------

def test_an_evicted_task_is_evicted_with_a_one_line_reason_and_its_checks_log(repo):
    commit_config(repo, f"[merge]\nauto = true\ncheck = {CHECK}\n")
    proc = wf(repo, "run", str(tasks(repo, {"good": "commit", "bad": "bad"})))
    assert proc.returncode == 1
    assert ("evicted from the merge queue: bad (check); `wf queue` shows why; "
            "`wf queue retry ID` queues the branch again, `wf retry ID` runs the agent again"
            in proc.stderr)

    row = status(repo)["bad"]
    assert row["state"] == "evicted"
    reason, _, log = row["last_error"].partition("; log: ")
    assert reason == "check: fails the checks on top of main: `" + (
        " ".join(json.loads(CHECK))[:59]) + "…` exit 4"
    assert Path(log).is_file()

    shown = wf(repo, "queue", env={"COLUMNS": "200"}).stdout
    assert "\nbad: the check's last lines\n  $ " in shown
    assert f"  checking notes\n  FAILED: bad.txt\n  log: {log}\n" in shown
    assert "\n" not in [e for e in json.loads(wf(repo, "queue", "--json").stdout)
                        if e["task_id"] == "bad"][0]["reason"]

    proc = wf(repo, "queue", "retry", "bad")  # an evicted task's branch can go back in
    assert proc.returncode == 0, proc.stderr
    assert wf(repo, "resume").returncode == 1
    assert status(repo)["bad"]["state"] == "evicted"


def test_the_run_names_the_entries_waiting_for_approval_once_with_their_rule(repo):
    commit_config(repo, '[merge]\nauto = true\n[policy]\napproval_paths = ["notes/**"]\n')
    proc = wf(repo, "run", str(tasks(repo, {"a": "commit", "b": "commit"})))
    entries = json.loads(wf(repo, "queue", "--json").stdout)
    first, second = (e["task_id"] for e in entries)  # in the order they finished
    assert (f"waiting for `wf approve ID` (or `wf reject ID`): {first}, {second}\n"
            in proc.stderr)
    assert [(e["position"], e["approved"]) for e in entries] == [(1, False), (2, False)]
    assert (entries[0]["reason_kind"], entries[0]["reason"]) == (
        "approval_paths", f"changes notes/{first}.txt (matches notes/**)")
    shown = wf(repo, "queue", env={"COLUMNS": "200"}).stdout
    assert f"approval_paths: changes notes/{first}.txt (matches notes/**)\n" in shown

    assert wf(repo, "approve", first).returncode == 0
    assert wf(repo, "resume").returncode == 0
    entries = json.loads(wf(repo, "queue", "--json").stdout)
    assert [(e["task_id"], e["position"], e["approved"]) for e in entries] == [
        (first, None, True), (second, 1, False)]


# -- wf clean says what is there -----------------------------------------------------------------

def test_clean_reports_the_worktree_of_a_task_retried_since_and_says_no_branch(repo):
    assert wf(repo, "run", str(tasks(repo, {"x": "fail 3"}))).returncode == 1
    assert wf(repo, "clean").stdout.startswith("x: worktree removed")
    assert wf(repo, "clean", "x").stdout == "x: no worktree; no branch\n"

    assert wf(repo, "retry", "x").returncode == 0
    assert wf(repo, "resume").returncode == 1  # failed again, in a new worktree
    proc = wf(repo, "clean")
    assert proc.stdout.startswith("x: worktree removed"), proc.stdout + proc.stderr


def test_clean_says_why_it_keeps_the_worktree_of_a_running_task(repo):
    run = wf_bg(repo, "run", str(tasks(repo, {"h": "hang"})))
    try:
        wait_until(lambda: status(repo).get("h", {}).get("worktree")
                   and task_states(repo)["h"] == "running", what="h running")
        proc = wf(repo, "clean")
        worktree = status(repo)["h"]["worktree"]
        assert proc.stdout == (f"h: worktree {worktree} kept: the task is running "
                               "(`wf cancel h` first)\n")
        assert Path(worktree).is_dir()
        assert wf(repo, "cancel", "h").returncode == 0
        assert run.wait(timeout=60) == 1
    finally:
        run.kill()
        run.communicate()
