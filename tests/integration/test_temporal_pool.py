"""Warm worktrees on the Temporal engine: two hosts (two ``wf worker`` processes, each with its
own clone), each with a pool of its own. A task's worktree is a pooled one of the host that
took it, its setup is skipped there when the host's pool already ran it for the same inputs,
and each clone's log holds only its own host's pool."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import git
from runwf import agent_cmd, wait_until
from test_temporal_hosts import (
    BOUND,
    Host,
    host_of,
    one_on_each_host,
    tasks_file,
    two_hosts,
)

from wf.api import open_repo
from wf.engine import build_engine
from wf.task_input import plan_tasks_file

pytest.importorskip("temporalio")

# The setup logs who ran it (a task's id, or "pool") beside the worktrees.
SETUP = ('setup = ["sh", "-c", "mkdir -p deps && cp lock.txt deps/ && '
         'echo ${WF_TASK_ID:-pool} >> ../setup-runs"]\n')


def pool_rows(clone: Path, env: dict[str, str]) -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "wf", "pool", "--json"], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=BOUND)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["slots"]


@pytest.fixture
def pooled_hosts(repo: Path, origin: Path, tmp_path: Path, temporal_server: str,
                 ) -> Iterator[tuple[Path, dict[str, str], list[Host]]]:
    (repo / "lock.txt").write_text("v1\n")
    (repo / ".gitignore").write_text(".env\ndeps/\n")
    (repo / "wf.toml").write_text(
        f'{SETUP}[worktrees]\npool = 1\nsetup_inputs = ["lock.txt"]\nkeep = ["/deps"]\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pool")
    git(repo, "push", "-q", "origin", "main")
    with two_hosts(repo, origin, tmp_path, temporal_server, "pool") as (root, env, started):
        for host in started:  # each worker warms its own host's pool
            wait_until(lambda c=host.clone: [s for s in pool_rows(c, env)
                                             if s["state"] == "ready"],
                       timeout=BOUND, what=f"the pool of {host.name} to be warm")
        yield root, env, started


def test_each_host_hands_its_tasks_worktrees_from_its_own_pool(
        pooled_hosts: tuple[Path, dict[str, str], list[Host]], tmp_path: Path) -> None:
    root, env, (h1, h2) = pooled_hosts
    engine, out = one_on_each_host(root, env, tmp_path)
    assert out.exit_code == 0, out.tasks
    events = engine.events()
    for host in (h1, h2):
        [tid] = [t for t in ("a", "b") if host_of(events, "task.worktree_ready", t)
                 == [host.name]]
        [ready] = [e for e in events if e.type == "task.worktree_ready" and e.task_id == tid]
        worktree = Path(ready.data["path"])
        assert worktree.parent == Path(f"{host.clone}.worktrees").resolve()
        assert worktree.name.startswith(".wf-pool-")
        rows = pool_rows(host.clone, env)
        assert [r["task"] for r in rows if r["task"]] == [tid]  # only this host's task
        assert (worktree / "deps" / "lock.txt").read_text() == "v1\n"
    runs = [line for host in (h1, h2) for line in _lines(Path(f"{host.clone}.worktrees")
                                                              / "setup-runs")]
    assert "pool" in runs and "a" not in runs and "b" not in runs  # warm setups held


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_a_succeeded_tasks_worktree_goes_back_to_its_hosts_pool(
        pooled_hosts: tuple[Path, dict[str, str], list[Host]], tmp_path: Path) -> None:
    # [worktrees] return_on_success on Temporal: the task workflow records
    # task.worktree_released after task.succeeded, then the host that holds the worktree
    # gives it back to its own pool, set up for the next task.
    root, env, (h1, h2) = pooled_hosts
    extra = ('[worktrees]\npool = 1\nsetup_inputs = ["lock.txt"]\nkeep = ["/deps"]\n'
             'return_on_success = true\n')
    path = tasks_file(tmp_path, env, agent_cmd("commit"), ["a", "b"], extra=extra)
    repo, specs = plan_tasks_file(open_repo(root), path)
    engine = build_engine(repo, environ=env)
    out = engine.run(specs)
    assert out.exit_code == 0, out.tasks
    events = engine.events()
    for tid in ("a", "b"):
        types = [e.type for e in events if e.task_id == tid]
        assert types.index("task.worktree_released") > types.index("task.succeeded"), types
    for host in (h1, h2):
        wait_until(lambda h=host: all(r["task"] is None for r in pool_rows(h.clone, env)),
                   timeout=BOUND, what=f"{host.name}'s pool holding no task")
