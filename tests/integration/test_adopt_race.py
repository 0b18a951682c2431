"""An engine that stopped right after spawning a supervisor, before the supervisor claimed its
attempt: the next engine must adopt the live supervisor, not declare the attempt lost.

The supervisor here is a real process that claims the attempt only after a delay (as a slow
start of ``_shim.py`` would); the activity runs with a small control of the test's own.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from wf.agents import process
from wf.engine.activities import AgentEnvironment, RunAttempt, TaskActivities

# Claims the attempt after 0.5 s (as "PID STARTTIME", like the shim), then writes its exit
# record and ends.
LATE_SUPERVISOR = r"""
import json, os, sys, time
prefix = sys.argv[1]
time.sleep(0.5)
with open(f"/proc/{os.getpid()}/stat", "rb") as f:
    start = int(f.read().rsplit(b")", 1)[1].split()[19])
fd = os.open(prefix + ".claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
os.write(fd, f"{os.getpid()} {start}\n".encode())
os.close(fd)
time.sleep(0.3)
with open(prefix + ".exit", "w") as f:
    json.dump({"exit_code": 3}, f)
"""


class Control:
    """The test's AttemptControl: records what the activity reports."""

    def __init__(self) -> None:
        self.adopted_pids: list[int] = []
        self.wake = threading.Event()

    def spawned(self, pid: int, pid_start: int | None, session: str | None) -> None:
        raise AssertionError("an adopted attempt is never spawned again")

    def adopted(self, pid: int) -> None:
        self.adopted_pids.append(pid)

    def agent_events(self, events: list) -> None:
        pass

    def cancel_requested(self) -> bool:
        return False

    def heartbeat(self) -> None:
        pass

    def wait(self, seconds: float, fd: int | None) -> None:
        self.wake.wait(seconds)


def test_a_spawned_supervisor_that_has_not_claimed_yet_is_adopted_not_lost(
        tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    files = process.AttemptFiles.of(logs, "t", 1)
    files.prefix.parent.mkdir(parents=True)
    worktree = tmp_path / "wt"
    worktree.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", LATE_SUPERVISOR, str(files.prefix)])
    try:
        spawned = (proc.pid, process.process_starttime(proc.pid))
        acts = TaskActivities(worktrees=None, environ={}, logs_dir=logs)  # type: ignore[arg-type]
        control = Control()
        report = acts.run_attempt(RunAttempt(
            task_id="t", n=1, path=str(worktree), argv=(), env=AgentEnvironment({}),
            started=0.0, base_commit=None, branch="wf/t", commit_message="m", adopt=True,
            spawned=spawned), control)
    finally:
        proc.wait(timeout=10)
    assert control.adopted_pids == [proc.pid]
    assert report.ended == "exited" and report.record == {"exit_code": 3}
    assert files.claim.read_text().split()[0] == str(proc.pid)  # the supervisor's, not "lost"


def test_a_spawned_supervisor_that_is_gone_without_a_claim_is_lost(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    files = process.AttemptFiles.of(logs, "t", 1)
    files.prefix.parent.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    spawned = (proc.pid, process.process_starttime(proc.pid) or 1)
    proc.wait()
    acts = TaskActivities(worktrees=None, environ={}, logs_dir=logs)  # type: ignore[arg-type]
    report = acts.run_attempt(RunAttempt(
        task_id="t", n=1, path=str(tmp_path), argv=(), env=AgentEnvironment({}), started=0.0,
        base_commit=None, branch="wf/t", commit_message="m", adopt=True, spawned=spawned),
        Control())
    assert report.ended == "lost" and files.claim.read_text() == "lost\n"
