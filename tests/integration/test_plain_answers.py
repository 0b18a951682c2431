"""Input wf cannot act on gets one line that says what is wrong and a documented exit code:
a missing agent program, a folder outside any repository, `-h`, attempt 0, `wf events` with
no runs yet."""

from __future__ import annotations

import json

import pytest
from runwf import agent_cmd, wf, write_tasks


def test_dry_run_refuses_an_agent_whose_program_does_not_exist(repo):
    text = '[agents.ghost]\ncommand = ["no-such-agent-cli-wf", "{prompt}"]\n'
    text += '[[task]]\nid = "a"\nprompt = "x"\nagent = "ghost"\n'
    path = write_tasks(repo, text)
    for args in (["run", "--dry-run", str(path)], ["run", str(path)]):
        out = wf(repo, *args)
        assert out.returncode == 2, out.stderr
        assert "agent 'ghost'" in out.stderr and "'no-such-agent-cli-wf'" in out.stderr
        assert "not found on PATH" in out.stderr
    assert not (repo / ".git" / "wf" / "wf.db").exists()  # nothing was started or recorded


def test_dry_run_accepts_an_agent_given_by_a_path_in_the_repository(repo):
    script = repo / "my_agent.sh"
    script.write_text("#!/bin/sh\necho hi > out.txt\n")
    script.chmod(0o755)
    text = '[agents.mine]\ncommand = ["./my_agent.sh"]\n'
    text += '[[task]]\nid = "a"\nprompt = "x"\nagent = "mine"\n'
    out = wf(repo, "run", "--dry-run", str(write_tasks(repo, text)))
    assert out.returncode == 0, out.stderr
