"""Ctrl-C and SIGTERM stop `wf run` within a second while agents run, and leave those agents
running for `wf resume` to adopt (docs/cli.md, exit 130)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from runwf import agent_cmd, journal_pids, pid_alive, status, wait_until, wf, wf_bg, write_tasks

STOP_WITHIN = 1.0  # seconds from the signal to wf's exit, the promise in docs/cli.md


def _long_running(repo, journal, gate):
    text = f"[agents.long]\ncommand = {agent_cmd('gated', str(gate), journal)}\n"
    text += '[[task]]\nid = "long"\nprompt = "runs until the test lets it finish"\nagent = "long"\n'
    return write_tasks(repo, text)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_one_signal_stops_wf_within_a_second_and_the_agent_keeps_running(repo, tmp_path, sig):
    journal, gate = tmp_path / "journal", tmp_path / "gate"
    run = wf_bg(repo, "run", str(_long_running(repo, journal, gate)))
    pid = wait_until(lambda: journal_pids(journal, "long"), what="the agent to start")[0]
    wait_until(lambda: status(repo)["long"]["state"] == "running", what="attempt.spawned")
    sent = time.monotonic()
    run.send_signal(sig)
    _, err = run.communicate(timeout=30)
    took = time.monotonic() - sent
    assert run.returncode == 130, err
    assert "Traceback" not in err and "1 agent(s) keep running" in err
    assert took < STOP_WITHIN, f"wf took {took:.2f}s to stop"
    assert pid_alive(pid)  # left for `wf resume` to adopt
    gate.touch()
    resumed = wf(repo, "resume", timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert status(repo)["long"]["state"] == "done"
    assert journal_pids(journal, "long") == [pid]  # adopted, never started again


def _sleeper(marker) -> str:
    """A TOML argv that writes its pid to ``marker`` and then sleeps for a minute."""
    return json.dumps(["sh", "-c", f'echo $$ > "{marker}"; exec sleep 60'])


def _stop_and_time(run, sig=signal.SIGINT) -> tuple[float, str]:
    sent = time.monotonic()
    run.send_signal(sig)
    _, err = run.communicate(timeout=30)
    return time.monotonic() - sent, err


def _pid_in(marker) -> int | None:
    text = marker.read_text().strip() if marker.exists() else ""
    return int(text) if text else None


def test_ctrl_c_during_setup_stops_wf_and_the_setup_command(repo, tmp_path):
    """Setup is wf's own step, not the agent: stopped with wf, run again by `wf resume`."""
    marker = tmp_path / "setup.pid"
    text = f"[agents.quick]\ncommand = {agent_cmd('commit')}\n"
    text += f'[[task]]\nid = "s"\nprompt = "x"\nagent = "quick"\nsetup = {_sleeper(marker)}\n'
    run = wf_bg(repo, "run", str(write_tasks(repo, text)))
    pid = wait_until(lambda: _pid_in(marker), what="the setup command to start")
    took, err = _stop_and_time(run)
    assert run.returncode == 130, err
    assert took < STOP_WITHIN, f"wf took {took:.2f}s to stop"
    wait_until(lambda: not pid_alive(pid), timeout=5, what="the setup command to be stopped")


def test_ctrl_c_during_a_merge_queue_check_stops_wf_and_the_check(repo, tmp_path):
    marker = tmp_path / "check.pid"
    text = f"[merge]\nauto = true\ncheck = [{_sleeper(marker)}]\n"
    text += f"[agents.quick]\ncommand = {agent_cmd('commit')}\n"
    text += '[[task]]\nid = "q"\nprompt = "x"\nagent = "quick"\n'
    run = wf_bg(repo, "run", str(write_tasks(repo, text)))
    pid = wait_until(lambda: _pid_in(marker), what="the check to start")
    took, err = _stop_and_time(run, signal.SIGTERM)
    assert run.returncode == 130, err
    assert took < STOP_WITHIN, f"wf took {took:.2f}s to stop"
    wait_until(lambda: not pid_alive(pid), timeout=5, what="the check to be stopped")


def test_a_refused_engine_names_the_holder_even_before_it_wrote_who_it_is(repo, tmp_path):
    """Two `wf run` started together: the second may look between the first's flock and its
    write of pid, command and time. The kernel's lock table names the holder all the same."""
    lock = repo / ".git" / "wf" / "engine.lock"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(  # takes the lock and writes nothing, like a holder mid-start
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        text = f"[agents.quick]\ncommand = {agent_cmd('commit')}\n"
        text += '[[task]]\nid = "t"\nprompt = "x"\nagent = "quick"\n'
        refused = wf(repo, "run", str(write_tasks(repo, text)))
        assert refused.returncode == 3, refused.stderr
        assert f"pid {holder.pid}," in refused.stderr and "pid None" not in refused.stderr
        assert len(refused.stderr.splitlines()) == 2  # the error and its hint
    finally:
        holder.stdin.close()
        holder.stdout.close()
        holder.wait(timeout=10)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (.ci/run installs it)")
def test_the_first_ctrl_c_in_a_real_terminal_stops_wf(repo, tmp_path):
    """A person's Ctrl-C: tmux sends SIGINT to the terminal's whole foreground process group.
    The agents run in sessions of their own, so they do not get it and keep running."""
    journal, gate = tmp_path / "journal", tmp_path / "gate"
    tasks = _long_running(repo, journal, gate)
    socket = f"wf-stop-{uuid.uuid4().hex[:8]}"

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", *args],
                              capture_output=True, text=True, check=True).stdout

    script = (f"env -u COLUMNS -u LINES {sys.executable} -m wf run {tasks}; "
              "echo EXITED $?; sleep 600")
    tmux("new-session", "-d", "-x", "120", "-y", "30", "-c", str(repo), script)
    try:
        pid = wait_until(lambda: journal_pids(journal, "long"), what="the agent to start")[0]
        wait_until(lambda: status(repo)["long"]["state"] == "running", what="attempt.spawned")
        sent = time.monotonic()
        tmux("send-keys", "C-c")
        screen = wait_until(lambda: "EXITED" in (s := tmux("capture-pane", "-p")) and s,
                            timeout=30, what="wf to exit")
        took = time.monotonic() - sent
        assert "EXITED 130" in screen and "1 agent(s) keep running" in screen, screen
        assert took < STOP_WITHIN, f"wf took {took:.2f}s to stop"
        assert pid_alive(pid)
    finally:
        gate.touch()
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)


def test_a_run_into_a_pipe_says_what_still_runs_while_an_attempt_is_quiet(repo, tmp_path):
    journal, gate = tmp_path / "journal", tmp_path / "gate"
    run = wf_bg(repo, "run", str(_long_running(repo, journal, gate)),
                env={"WF_HEARTBEAT": "0.3"})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(run.stdout), daemon=True)
    reader.start()
    try:
        beat = wait_until(lambda: [ln for ln in list(lines) if "still running" in ln],
                          what="a heartbeat line")[0]
        assert "long (" in beat
    finally:
        gate.touch()
        run.wait(timeout=60)
        reader.join(timeout=10)
        run.stdout.close()
        run.stderr.close()
    assert run.returncode == 0
