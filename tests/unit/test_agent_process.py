"""The agent's process (spawn, claim, adopt, signal) and its shim, with real processes."""

from __future__ import annotations

import os
import subprocess
import sys

from wf.agents import process
from wf.agents.process import AttemptFiles


def wait_exit(proc, files):
    proc.wait(timeout=30)
    return files.read_exit()


def test_shim_records_output_and_exit_status(tmp_path):
    files = AttemptFiles.of(tmp_path / "logs", "t", 1)
    proc = process.spawn([sys.executable, "-c", "print('hello'); raise SystemExit(3)"],
                        cwd=tmp_path, env=os.environ, files=files, max_log_bytes=1 << 20)
    assert wait_exit(proc, files)["exit_code"] == 3
    assert files.log.read_text() == "hello\n"
    pid, start = files.read_claim()
    assert pid == proc.pid and start > 0


def test_shim_rotates_a_flooding_log(tmp_path):
    files = AttemptFiles.of(tmp_path, "t", 1)
    code = "import sys\nfor i in range(3000): sys.stdout.write('x' * 99 + '\\n')"
    proc = process.spawn([sys.executable, "-c", code], cwd=tmp_path, env=os.environ,
                        files=files, max_log_bytes=100_000)
    assert wait_exit(proc, files)["exit_code"] == 0
    rotated = files.log.with_name("1.log.1")
    assert rotated.exists() and rotated.stat().st_size <= 100_000
    assert files.log.stat().st_size <= 100_000


def test_a_missing_agent_binary_is_a_spawn_error(tmp_path):
    files = AttemptFiles.of(tmp_path, "t", 1)
    proc = process.spawn(["/nonexistent/agent"], cwd=tmp_path, env=os.environ, files=files,
                        max_log_bytes=4096)
    record = wait_exit(proc, files)
    assert record["exit_code"] == 127 and "cannot start agent" in record["spawn_error"]


def test_a_claim_taken_as_lost_keeps_the_agent_from_ever_starting(tmp_path):
    files = AttemptFiles.of(tmp_path, "t", 1)
    assert files.claim_as_lost()
    marker = tmp_path / "ran"
    proc = process.spawn(["touch", str(marker)], cwd=tmp_path, env=os.environ, files=files,
                        max_log_bytes=4096)
    assert proc.wait(timeout=30) == 0
    assert not marker.exists() and files.read_exit() is None and files.read_claim() is None


def test_the_agent_survives_its_parent_and_the_group_can_be_stopped(tmp_path):
    files = AttemptFiles.of(tmp_path, "t", 1)
    # A parent process that starts the agent and exits at once, as a killed wf would.
    code = (
        "import os, sys; sys.path.insert(0, %r)\n"
        "from wf.agents import process\nfrom wf.agents.process import AttemptFiles\n"
        "from pathlib import Path\n"
        "process.spawn(['sleep', '60'], cwd=Path(%r), env=os.environ, "
        "files=AttemptFiles(Path(%r)), max_log_bytes=4096)\n"
    ) % (os.path.dirname(os.path.dirname(process.__file__)), str(tmp_path), str(files.prefix))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    claim = None
    while claim is None:
        claim = files.read_claim()
    assert process.is_alive(*claim)
    assert process.signal_group(claim[0])
    while files.read_exit() is None:
        pass
    assert files.read_exit()["exit_code"] == -15


def test_placeholders_are_replaced_without_a_shell():
    argv = process.fill_placeholders(["agent", "--msg={prompt}", "{task_id}", "{x}"],
                                    {"prompt": "$(rm -rf /); echo {task_id}", "task_id": "t1"})
    assert argv == ["agent", "--msg=$(rm -rf /); echo {task_id}", "t1", "{x}"]


def test_agent_environment_is_an_allowlist():
    env = process.agent_environment(
        {"PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "GH_TOKEN": "secret", "AWS_SECRET": "s",
         "MY_KEY": "k"},
        wf_vars={"WF_TASK_ID": "t"}, extra={"FOO": "1"}, pass_env=("MY_KEY",))
    assert env == {"PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "MY_KEY": "k", "FOO": "1",
                   "WF_TASK_ID": "t"}
