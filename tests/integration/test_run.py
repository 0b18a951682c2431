"""`wf run` end to end: real repositories, real script agents, the real CLI in a subprocess."""

from __future__ import annotations

import json
import subprocess

import pytest
from runwf import (
    agent_cmd, events, fast_retry, journal_pids, pid_alive, status, task_states, wait_until, wf,
    wf_bg, write_tasks,
)


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()


def tasks_file(repo, body, *, agents=None, retry=None, extra=""):
    agents = agents or {"a": agent_cmd("commit")}
    text = extra + (retry if retry is not None else fast_retry())
    for name, cmd in agents.items():
        text += f"\n[agents.{name}]\ncommand = {cmd}\n"
    return write_tasks(repo, text + "\n" + body)


def test_tasks_succeed_in_their_own_worktrees_and_branches(repo):
    path = tasks_file(repo, """
[[task]]
id = "one"
prompt = "write notes"
agent = "commit"
[[task]]
id = "two"
prompt = "edit but do not commit"
agent = "edit"
""", agents={"commit": agent_cmd("commit"), "edit": agent_cmd("edit")})
    proc = wf(repo, "run", str(path))
    assert proc.returncode == 0, proc.stderr
    tasks = status(repo)
    assert {t: r["state"] for t, r in tasks.items()} == {"one": "done", "two": "done"}
    for tid in ("one", "two"):
        assert tasks[tid]["branch"] == f"wf/{tid}"
        assert git(repo, "show", f"wf/{tid}:notes/{tid}.txt") == f"{tid} attempt 1"
        assert tasks[tid]["worktree"].endswith(f"/{tid}")
    # wf committed what the "edit" agent left, with its trailers
    body = git(repo, "log", "-1", "--format=%B", "wf/two")
    assert "Wf-Task: two" in body and "Wf-Attempt: 1" in body
    assert git(repo, "status", "--porcelain") == ""  # the main worktree is untouched
    assert tasks["one"]["port"] != tasks["two"]["port"]


def test_agent_error_exhausts_retries_and_fails_with_reason(repo):
    path = tasks_file(repo, '[[task]]\nid = "bad"\nprompt = "x"\nagent = "f"\n',
                      agents={"f": agent_cmd("fail", "3")}, retry=fast_retry(attempts=2))
    proc = wf(repo, "run", str(path))
    assert proc.returncode == 1
    row = status(repo)["bad"]
    assert (row["state"], row["attempts"], row["last_failure_kind"]) == ("failed", 2, "agent_error")
    assert "exit 3" in row["last_error"] and "something went wrong" in row["last_error"]


def test_transient_failures_are_retried_with_growing_delays(repo):
    path = tasks_file(repo, '[[task]]\nid = "flaky"\nprompt = "x"\nagent = "f"\n',
                      agents={"f": agent_cmd("flaky", "3")},
                      retry=fast_retry(attempts=5, interval="200ms"))
    proc = wf(repo, "run", str(path))
    assert proc.returncode == 0, proc.stderr
    retries = events(repo, "task.retry_scheduled")
    assert [e["data"]["kind"] for e in retries] == ["transient", "transient"]
    assert [e["data"]["delay"] for e in retries] == [0.2, 0.4]
    started = [e["ts"] for e in events(repo, "attempt.started")]
    finished = [e["ts"] for e in events(repo, "attempt.finished")]
    assert started[1] - finished[0] >= 0.2 and started[2] - finished[1] >= 0.4
    assert status(repo)["flaky"]["attempts"] == 3


def test_exit_zero_without_changes_is_no_changes(repo):
    path = tasks_file(repo, '[[task]]\nid = "idle"\nprompt = "x"\nagent = "n"\n',
                      agents={"n": agent_cmd("noop")}, retry=fast_retry(attempts=1))
    assert wf(repo, "run", str(path)).returncode == 1
    assert status(repo)["idle"]["last_failure_kind"] == "no_changes"


def test_no_output_timeout_stops_a_silent_agent(repo, tmp_path):
    journal = tmp_path / "journal"
    path = tasks_file(repo, '[[task]]\nid = "quiet"\nprompt = "x"\nagent = "s"\n'
                      'no_output_timeout = "1s"\n',
                      agents={"s": agent_cmd("silent", "60", journal)},
                      retry=fast_retry(attempts=1))
    proc = wf(repo, "run", str(path), timeout=30)
    assert proc.returncode == 1
    row = status(repo)["quiet"]
    assert row["last_failure_kind"] == "no_output_timeout"
    assert not pid_alive(journal_pids(journal, "quiet")[0])


def test_whole_attempt_timeout(repo, tmp_path):
    journal = tmp_path / "journal"
    path = tasks_file(repo, '[[task]]\nid = "long"\nprompt = "x"\nagent = "s"\ntimeout = "2s"\n',
                      agents={"s": agent_cmd("slow", "60", journal)},
                      retry=fast_retry(attempts=1))
    proc = wf(repo, "run", str(path), timeout=30)
    assert proc.returncode == 1
    assert status(repo)["long"]["last_failure_kind"] == "timeout"
    assert not pid_alive(journal_pids(journal, "long")[0])


def test_dependencies_start_from_their_dependencies_work(repo):
    path = tasks_file(repo, """
[[task]]
id = "a"
prompt = "first"
agent = "c"
[[task]]
id = "b"
prompt = "independent"
agent = "c"
[[task]]
id = "c"
prompt = "after a"
agent = "c"
depends_on = ["a"]
[[task]]
id = "d"
prompt = "after c and b"
agent = "c"
depends_on = ["c", "b"]
""", agents={"c": agent_cmd("commit")})
    assert wf(repo, "run", str(path)).returncode == 0
    files = set(git(repo, "ls-tree", "-r", "--name-only", "wf/d", "notes").split())
    assert files == {"notes/a.txt", "notes/b.txt", "notes/c.txt", "notes/d.txt"}
    order = [e["stream"] for e in events(repo, "task.succeeded")]
    assert order.index("task:a") < order.index("task:c") < order.index("task:d")


def test_a_failed_dependency_blocks_its_dependents(repo):
    path = tasks_file(repo, """
[[task]]
id = "base"
prompt = "fails"
agent = "f"
[[task]]
id = "next"
prompt = "never runs"
agent = "c"
depends_on = ["base"]
""", agents={"f": agent_cmd("fail", "1"), "c": agent_cmd("commit")}, retry=fast_retry(1))
    assert wf(repo, "run", str(path)).returncode == 1
    tasks = status(repo)
    assert tasks["base"]["state"] == "failed"
    assert tasks["next"]["state"] == "blocked" and "base" in tasks["next"]["last_error"]
    assert tasks["next"]["attempts"] == 0


def test_cancel_stops_the_agents_process_group(repo, tmp_path):
    journal = tmp_path / "journal"
    path = tasks_file(repo, '[[task]]\nid = "stuck"\nprompt = "x"\nagent = "h"\n',
                      agents={"h": agent_cmd("hang", "", journal)})
    run = wf_bg(repo, "run", str(path), "--json")
    try:
        pid = wait_until(lambda: journal_pids(journal, "stuck"), what="agent start")[0]
        assert wf(repo, "cancel", "stuck").returncode == 0
        assert run.wait(timeout=30) == 1
    finally:
        run.kill()
        run.communicate()
    assert status(repo)["stuck"]["state"] == "cancelled"
    assert not pid_alive(pid)


def test_retry_runs_a_failed_task_again_with_a_fresh_budget(repo):
    path = tasks_file(repo, '[[task]]\nid = "again"\nprompt = "x"\nagent = "f"\n',
                      agents={"f": agent_cmd("flaky", "2")}, retry=fast_retry(attempts=1))
    assert wf(repo, "run", str(path)).returncode == 1
    assert status(repo)["again"]["last_failure_kind"] == "transient"
    proc = wf(repo, "retry", "again")
    assert proc.returncode == 0 and "wf resume" in proc.stderr
    assert wf(repo, "resume").returncode == 0
    row = status(repo)["again"]
    assert (row["state"], row["attempts"]) == ("done", 2)


def test_prompt_copies_are_numbered_across_runs(repo):
    (repo / "wf.toml").write_text(f"[agents.c]\ncommand = {agent_cmd('commit')}\n")
    git(repo, "add", "wf.toml")
    git(repo, "commit", "-qm", "config")
    assert wf(repo, "run", "-p", "add type hints", "--agent", "c", "-n", "2").returncode == 0
    assert wf(repo, "run", "-p", "add type hints", "--agent", "c", "-n", "1").returncode == 0
    assert sorted(status(repo)) == ["add-type-hints-1", "add-type-hints-2", "add-type-hints-3"]


def test_json_output_is_one_event_per_line(repo):
    path = tasks_file(repo, '[[task]]\nid = "j"\nprompt = "x"\nagent = "a"\n')
    proc = wf(repo, "run", str(path), "--json")
    assert proc.returncode == 0
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert all({"seq", "ts", "type"} <= set(e) for e in lines)
    assert [e["seq"] for e in lines] == sorted(e["seq"] for e in lines)
    started = next(e for e in lines if e["type"] == "attempt.started")
    assert (started["task"], started["attempt"]) == ("j", 1)


def test_a_second_engine_is_refused_and_names_the_first(repo, tmp_path):
    journal = tmp_path / "journal"
    path = tasks_file(repo, '[[task]]\nid = "slow"\nprompt = "x"\nagent = "s"\n',
                      agents={"s": agent_cmd("hang", "", journal)})
    first = wf_bg(repo, "run", str(path))
    try:
        wait_until(lambda: journal_pids(journal, "slow"), what="agent start")
        second = wf(repo, "resume")
        assert second.returncode == 3
        assert f"pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
        wf(repo, "cancel", "slow")
        assert first.wait(timeout=30) == 1
    finally:
        first.kill()
        first.communicate()


def test_secrets_in_wfs_environment_do_not_reach_the_agent(repo):
    (repo.parent / "env-agent.py").write_text(
        "import os, pathlib\npathlib.Path('env.txt').write_text('\\n'.join(sorted(os.environ)))\n")
    import sys
    cmd = json.dumps([sys.executable, str(repo.parent / "env-agent.py")])
    path = tasks_file(repo, '[[task]]\nid = "env"\nprompt = "x"\nagent = "e"\n',
                      agents={"e": cmd})
    proc = wf(repo, "run", str(path), env={"GH_TOKEN": "ghp_secret", "GITLAB_TOKEN": "glpat"})
    assert proc.returncode == 0, proc.stderr
    names = git(repo, "show", "wf/env:env.txt").split()
    assert "GH_TOKEN" not in names and "GITLAB_TOKEN" not in names
    assert {"WF_TASK_ID", "WF_ATTEMPT", "WF_WORKTREE", "WF_PROMPT", "WF_PORT", "PATH"} <= set(names)


@pytest.mark.parametrize("body, needle", [
    ('[[task]]\nid = "../x"\nprompt = "p"\nagent = "a"\n', "invalid task id"),
    ('[[task]]\nid = "--upload-pack=x"\nprompt = "p"\nagent = "a"\n', "invalid task id"),
    ('[[task]]\nid = "ok"\nprompt = "p"\nagent = "nope"\n', "nope"),
    ('[[task]]\nid = "ok"\nprompt = "p"\nagent = "a"\ndepends_on = ["ghost"]\n', "ghost"),
    ('[[task]]\nid = "ok"\nprompt = "p"\nagent = "a"\nbogus = 1\n', "bogus"),
    ('[[task]]\nid = "ok"\nprompt = "p\nagent = "a"\n', "line"),
])
def test_bad_task_files_are_one_line_and_exit_2(repo, body, needle):
    path = tasks_file(repo, body)
    proc = wf(repo, "run", str(path))
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2  # the error and at most a hint
    assert not any(p.name == "x" for p in repo.parent.rglob("x"))


def test_outside_a_repository_is_a_clear_error(tmp_path):
    proc = wf(tmp_path, "status")
    assert proc.returncode == 2 and "not a git repository" in proc.stderr


def test_status_of_a_fresh_repository_is_empty(repo):
    assert status(repo) == {}
    assert task_states(repo) == {}


def test_a_dirty_main_worktree_is_pointed_out(repo):
    (repo / "README.md").write_text("work in progress\n")
    path = tasks_file(repo, '[[task]]\nid = "d"\nprompt = "x"\nagent = "a"\n')
    proc = wf(repo, "run", str(path))
    assert proc.returncode == 0
    assert "uncommitted changes" in proc.stderr and "committed main" in proc.stderr
    assert (repo / "README.md").read_text() == "work in progress\n"


def test_last_error_is_what_the_agent_wrote_to_stderr_not_its_last_output_line(repo):
    agent = json.dumps(["sh", "-c", "echo working; echo 'fatal: the real cause' >&2; "
                        "echo 'cleaning up'; exit 3"])
    text = fast_retry(attempts=1) + f"\n[agents.loud]\ncommand = {agent}\n"
    text += '[[task]]\nid = "e"\nprompt = "x"\nagent = "loud"\n'
    out = wf(repo, "run", str(write_tasks(repo, text)))
    assert out.returncode == 1, out.stderr
    row = status(repo)["e"]
    assert "fatal: the real cause" in row["last_error"] and "cleaning up" not in row["last_error"]
    logs = wf(repo, "logs", "e").stdout  # the log still holds both streams
    assert all(line in logs for line in ("working", "fatal: the real cause", "cleaning up"))
