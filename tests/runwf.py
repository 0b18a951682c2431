"""Helpers for tests that drive the real `wf` command in subprocesses."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

AGENT = Path(__file__).parent / "agents" / "agent.py"


def agent_cmd(mode: str, arg: str = "", journal: Path | str = "") -> str:
    """A TOML array for `command = ...` running the test agent."""
    args = [sys.executable, str(AGENT), mode, arg, str(journal)]
    return json.dumps(args)


def wf_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "wf", *args]


def wf(repo: Path, *args: str, timeout: float = 120, env: dict | None = None,
       input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(wf_argv(*args), cwd=repo, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, input=input)


def wf_bg(repo: Path, *args: str, env: dict | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(wf_argv(*args), cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def status(repo: Path) -> dict[str, dict]:
    proc = wf(repo, "status", "--json", "--all")
    assert proc.returncode == 0, proc.stderr
    return {t["id"]: t for t in json.loads(proc.stdout)}


def db_path(repo: Path) -> Path:
    return repo / ".git" / "wf" / "wf.db"


def events(repo: Path, type_: str | None = None) -> list[dict]:
    path = db_path(repo)
    if not path.exists():
        return []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute("SELECT seq, stream, type, ts, data FROM events ORDER BY seq").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()
    out = [{"seq": s, "stream": st, "type": t, "ts": ts, "data": json.loads(d)}
           for s, st, t, ts, d in rows]
    return [e for e in out if type_ is None or e["type"] == type_]


def task_states(repo: Path) -> dict[str, str]:
    path = db_path(repo)
    if not path.exists():
        return {}
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return dict(con.execute("SELECT id, state FROM tasks").fetchall())
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def journal_pids(journal: Path, task: str) -> list[int]:
    if not journal.exists():
        return []
    return [int(line.split()[2]) for line in journal.read_text().splitlines()
            if line.split()[0] == task and line.split()[3] == "start"]


def journal_ticks(journal: Path, task: str) -> int:
    """How many "tick" lines ``task``'s agents wrote (agent.py's ``spend`` mode)."""
    if not journal.exists():
        return 0
    return sum(1 for line in journal.read_text().splitlines()
               if line.split()[0] == task and line.split()[3] == "tick")


def proc_state(pid: int) -> str:
    """The kernel's state letter of ``pid`` (T: stopped), "" when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


def write_tasks(repo: Path, text: str, name: str = "tasks.toml") -> Path:
    path = repo.parent / name  # outside the repo, so the main worktree stays clean
    path.write_text(text)
    return path


FAST_RETRY = """
[retry]
maximum_attempts = {attempts}
initial_interval = "{interval}"
backoff_coefficient = 2.0
jitter = 0.0
"""


def fast_retry(attempts: int = 3, interval: str = "50ms") -> str:
    return FAST_RETRY.format(attempts=attempts, interval=interval)


FAKE_CLI = Path(__file__).parent / "agents" / "fake_cli.py"


def install_fake_clis(bin_dir: Path, names=("claude", "codex", "gemini", "opencode", "aider")):
    """Executables named like the agent CLIs in ``bin_dir``, each running fake_cli.py; put
    ``bin_dir`` first on PATH to have wf's adapters run them."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        exe = bin_dir / name
        exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CLI}" {name} "$@"\n')
        exe.chmod(0o755)
    return bin_dir


CI_DIR = Path(__file__).resolve().parent.parent / ".ci"
CLI_DIRS = (CI_DIR / "node" / "node_modules" / ".bin", CI_DIR / "aider" / "bin")


def ci_cli(name: str):
    """The folder holding agent CLI ``name`` as .ci/run installs it (npm packages into
    .ci/node, aider into the venv .ci/aider), or None. Under CI it must be there: a missing
    one is an error, not a skip."""
    for folder in CLI_DIRS:
        if (folder / name).exists():
            return folder
    if os.environ.get("CI"):
        raise RuntimeError(f"{name} is not installed: .ci/run installs it under .ci/")
    return None


def run_agent_tasks(repo: Path, env: dict, agent: str, *prompts: str, attempts: int = 3,
                    settings: str = "", timeout: float = 240):
    """`wf run` of one task per prompt (ids t1, t2, ...) with ``agent``, retries 50 ms apart
    without jitter, and ``settings`` as the body of ``[agents.AGENT]`` (none if empty)."""
    body = fast_retry(attempts=attempts)
    if settings:
        body += f"\n[agents.{agent}]\n{settings}\n"
    for i, prompt in enumerate(prompts, 1):
        body += f'\n[[task]]\nid = "t{i}"\nagent = "{agent}"\nprompt = {json.dumps(prompt)}\n'
    return wf(repo, "run", str(write_tasks(repo, body)), env=env, timeout=timeout)


def assert_projections_rebuild(repo: Path) -> None:
    """The live projection tables equal a rebuild from the events alone."""
    from wf.store import SqliteEventStore

    store = SqliteEventStore(db_path(repo))
    try:
        live = store.snapshot()
        store.rebuild_projections()
        assert store.snapshot() == live
    finally:
        store.close()
