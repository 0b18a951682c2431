"""wf status, logs, diff, events, init from another terminal."""

from __future__ import annotations

import json

from runwf import agent_cmd, fast_retry, journal_pids, wait_until, wf, wf_bg, write_tasks


def _run(repo, mode="commit", arg="", journal=""):
    text = fast_retry(1) + f"\n[agents.a]\ncommand = {agent_cmd(mode, arg, journal)}\n"
    text += '[[task]]\nid = "t"\nprompt = "do it"\nagent = "a"\n'
    return write_tasks(repo, text)


def test_logs_show_the_agents_output(repo):
    assert wf(repo, "run", str(_run(repo))).returncode == 0
    out = wf(repo, "logs", "t").stdout
    assert "agent commit task=t attempt=1" in out


def test_logs_follow_streams_until_the_attempt_ends(repo, tmp_path):
    journal = tmp_path / "journal"
    run = wf_bg(repo, "run", str(_run(repo, "slow", "2", journal)))
    try:
        wait_until(lambda: journal_pids(journal, "t"), what="agent start")
        follow = wf(repo, "logs", "t", "-f", timeout=60)
        assert "working 0" in follow.stdout and "working 1" in follow.stdout
        assert run.wait(timeout=60) == 0
    finally:
        run.kill()
        run.communicate()


def test_logs_of_a_flooding_agent_are_size_capped(repo):
    (repo / "wf.toml").write_text("log_max_bytes = 65536\n")
    assert wf(repo, "run", str(_run(repo, "flood", "1"))).returncode == 0
    logs = list((repo / ".git" / "wf" / "logs" / "t").glob("1.log*"))
    assert {p.name for p in logs} == {"1.log", "1.log.1"}
    assert all(p.stat().st_size <= 65536 for p in logs)


def test_diff_shows_the_change_against_the_base(repo):
    assert wf(repo, "run", str(_run(repo))).returncode == 0
    out = wf(repo, "diff", "t").stdout
    assert "+++ b/notes/t.txt" in out and "+t attempt 1" in out
    data = json.loads(wf(repo, "diff", "t", "--json", "--stat").stdout)
    assert data["branch"] == "wf/t" and "notes/t.txt" in data["diff"]


def test_events_since_and_json(repo):
    assert wf(repo, "run", str(_run(repo))).returncode == 0
    all_events = [json.loads(x) for x in wf(repo, "events", "--json").stdout.splitlines()]
    assert all_events[0]["seq"] == 1
    types = [e["type"] for e in all_events]
    for t in ("task.submitted", "attempt.started", "attempt.spawned", "attempt.finished",
              "task.succeeded", "run.finished"):
        assert t in types
    later = [json.loads(x) for x in
             wf(repo, "events", "--json", "--since", "3").stdout.splitlines()]
    assert [e["seq"] for e in later] == [e["seq"] for e in all_events if e["seq"] > 3]
    human = wf(repo, "events").stdout
    assert "t: done at" in human


def test_init_writes_a_config_that_loads(repo):
    proc = wf(repo, "init")
    assert proc.returncode == 0 and (repo / "wf.toml").exists()
    assert wf(repo, "init").returncode == 2  # refuses to overwrite
    assert wf(repo, "status").returncode == 0


def test_unknown_task_and_usage_errors_are_one_line(repo):
    for args in (["logs", "nope"], ["cancel", "nope"], ["run"], ["run", "--bogus"],
                 ["run", "-p", "x", "-n", "0"]):
        proc = wf(repo, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert proc.stderr.startswith("wf: error:"), proc.stderr


def test_logs_json_is_one_object_per_line(repo):
    assert wf(repo, "run", str(_run(repo))).returncode == 0
    lines = [json.loads(x) for x in wf(repo, "logs", "t", "--json").stdout.splitlines()]
    assert lines[0] == {"task": "t", "attempt": 1,
                        "line": lines[0]["line"]} and "agent commit" in lines[0]["line"]


def test_version(repo):
    proc = wf(repo, "--version")
    assert proc.returncode == 0 and proc.stdout.startswith("wf ")
