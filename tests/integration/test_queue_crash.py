"""kill -9 of wf during the merge queue's checks and landing, then `wf resume`: no branch lands
twice, the target is still green, every entry ends in a truthful state."""

from __future__ import annotations

import signal

import pytest
from runwf import events, wf
from test_queue_cases import assert_target_green, branch, enqueue, git, setup, states

KINDS = ["ok", "ok", "BAD", "ok", "ok"]


@pytest.mark.parametrize("point", [
    "queue.admitted:3",        # during admission
    "queue.check_started:1",   # checks about to run
    "queue.check_finished:1",  # one check of a round recorded, the other not
    "queue.land_requested:1",  # intent recorded, target not moved yet
    "queue.target_moved:1",    # target moved, entries not yet recorded as landed
    "queue.landed:1",          # part of a landing recorded
])
def test_kill_9_in_the_queue_then_resume(repo, point):
    setup(repo)
    before = git(repo, "rev-parse", "main")
    for i, kind in enumerate(KINDS):
        branch(repo, f"e{i}", {f"f{i}.txt": kind})
    enqueue(repo, *(f"e{i}" for i in range(len(KINDS))))
    crashed = wf(repo, "resume", env={"WF_CRASH_AFTER": point})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    resumed = wf(repo, "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert states(repo) == {"e0": "landed", "e1": "landed", "e2": "evicted", "e3": "landed",
                            "e4": "landed"}
    # no branch landed twice: each entry has one landed event, each head is merged once
    landed = [e["stream"] for e in events(repo, "queue.landed")]
    assert sorted(landed) == ["task:e0", "task:e1", "task:e3", "task:e4"]
    for i in (0, 1, 3, 4):
        head = git(repo, "rev-parse", f"e{i}")
        merges = git(repo, "log", "--format=%P", f"{before}..main").split()
        assert merges.count(head) == 1
    assert_target_green(repo, before)
    assert git(repo, "status", "--porcelain") == ""
