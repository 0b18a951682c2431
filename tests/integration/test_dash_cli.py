"""`wf dash` at the command line: its JSON, its errors, and that no other command loads textual."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from runwf import agent_cmd, fast_retry, wf, write_tasks


@pytest.fixture
def tasks(repo):
    return write_tasks(repo, fast_retry(1) + f"\n[agents.c]\ncommand = {agent_cmd('commit')}\n"
                       '\n[[task]]\nid = "one"\nprompt = "p"\nagent = "c"\n')


def test_dash_json_prints_what_the_dashboard_shows(repo, tasks):
    assert wf(repo, "run", str(tasks)).returncode == 0
    proc = wf(repo, "dash", "--json")
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stdout)
    assert [t["id"] for t in state["tasks"]] == ["one"] and state["queue"] == []
    assert state["totals"]["done"] == 1 and state["engine_active"] is False


def test_dash_needs_a_terminal(repo):
    proc = wf(repo, "dash")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == "wf: error: the dashboard needs a terminal"


def test_run_dash_and_json_do_not_go_together(repo, tasks):
    proc = wf(repo, "run", "--dash", "--json", str(tasks))
    assert proc.returncode == 2 and "--dash and --json" in proc.stderr


# Runs wf's real entry point in-process, then reports whether textual was ever imported.
PROBE = """
import atexit, sys
atexit.register(lambda: print("TEXTUAL" if "textual" in sys.modules else "NO-TEXTUAL",
                              file=sys.stderr))
from wf.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("args", [
    ["run", "--json", "TASKS"], ["status", "--json"], ["events"], ["logs", "one"],
    ["diff", "one"], ["queue", "--json"], ["retry", "one"], ["dash", "--json"],
])
def test_other_commands_never_load_textual(repo, tasks, args):
    if args[0] != "run":
        assert wf(repo, "run", str(tasks)).returncode == 0
    argv = [str(tasks) if a == "TASKS" else a for a in args]
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=repo, capture_output=True,
                          text=True, timeout=120)
    # `wf retry` of a task that is done is refused (exit 1), textual unloaded all the same
    assert proc.returncode == (1 if args[0] == "retry" else 0), proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "NO-TEXTUAL"
