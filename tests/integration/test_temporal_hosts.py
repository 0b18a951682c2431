"""Two hosts on one Temporal server: two ``wf worker`` processes, each with its own clone of a
shared bare remote, and the client in the first clone.

Tasks spread over both hosts (a host with no free slot does not poll the take queue, where a
task's first step waits, so the other takes it); every step of a task runs on the host that holds its worktree; finished branches reach
the remote; ``wf status`` in the other clone lists them (its worker keeps its log mirrored);
``wf logs`` and ``wf diff`` of a task on the other host are sent by that host; the merge queue
lands branches finished on both hosts.
A host whose worker dies and never comes back loses its task to the other host after
``host_lost_after``, which the log says (``task.host_lost``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeforge import TOKEN, FakeForge
from runwf import agent_cmd, journal_pids, pid_alive, wait_until

from wf.api import open_repo
from wf.engine import build_engine
from wf.model import Event
from wf.task_input import plan_tasks_file

pytest.importorskip("temporalio")

BOUND = 60.0


class Host:
    """A clone of the remote and its ``wf worker`` (``--slots``), as host ``name``."""

    def __init__(self, name: str, clone: Path, env: dict[str, str], slots: int) -> None:
        self.name, self.clone = name, clone
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wf", "worker", "--json", "--slots", str(slots)], cwd=clone,
            env={**env, "WF_TEMPORAL_HOST": name}, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()
        assert '"ready"' in ready, ready

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=BOUND)

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


@contextlib.contextmanager
def two_hosts(repo: Path, origin: Path, tmp_path: Path, temporal_server: str, tag: str
              ) -> Iterator[tuple[Path, dict[str, str], list[Host]]]:
    """A second clone of ``origin`` and a ``wf worker`` with one slot in each clone (hosts h1
    and h2), on a task-queue prefix of their own: (the first clone, the workers'
    environment, the two hosts). The workers are killed on the way out."""
    queue = f"{tag}{os.getpid()}{tmp_path.name[-6:].replace('_', '')}".lower()
    env = {**os.environ, "WF_ENGINE": "temporal", "WF_TEMPORAL_ADDRESS": temporal_server,
           "WF_TEMPORAL_TASK_QUEUE": queue}
    other = tmp_path / "b"
    subprocess.run(["git", "clone", "-q", str(origin), str(other)], check=True)
    started: list[Host] = []
    try:
        started.append(Host("h1", repo, env, slots=1))
        started.append(Host("h2", other, env, slots=1))
        yield repo, env, started
    finally:
        for host in started:
            if host.proc.poll() is None:
                host.kill()


@pytest.fixture
def hosts(repo: Path, origin: Path, tmp_path: Path, temporal_server: str,
          ) -> Iterator[tuple[Path, dict[str, str], list[Host]]]:
    """(the client's clone, the workers' environment, the two hosts h1 and h2)."""
    with two_hosts(repo, origin, tmp_path, temporal_server, "hosts") as made:
        yield made


def tasks_file(tmp_path: Path, env: dict[str, str], agent: str, ids: list[str],
               extra: str = "") -> Path:
    path = tmp_path / "tasks.toml"
    text = (f'max_parallel = 4\n[engine]\nkind = "temporal"\n'
            f'address = "{env["WF_TEMPORAL_ADDRESS"]}"\n'
            f'task_queue = "{env["WF_TEMPORAL_TASK_QUEUE"]}"\n{extra}'
            f'[retry]\nmaximum_attempts = 2\ninitial_interval = "50ms"\n'
            f'[agents.g]\ncommand = {agent}\n')
    for tid in ids:
        text += f'\n[[task]]\nid = "{tid}"\nprompt = "work on {tid}"\nagent = "g"\n'
    path.write_text(text)
    return path


def host_of(events: list[Event], type_: str, tid: str) -> list[str]:
    return [e.data.get("host") for e in events if e.type == type_ and e.task_id == tid]


def one_on_each_host(root: Path, env: dict[str, str], tmp_path: Path, extra: str = ""
                     ) -> tuple[Any, Any]:
    """Run tasks a and b from ``root`` with agents that wait at a gate until both run: with
    one slot a host, one runs on each. (The engine, the run's outcome.)"""
    gate = tmp_path / "gate"
    path = tasks_file(tmp_path, env, agent_cmd("gated", str(gate)), ["a", "b"], extra=extra)
    repo, specs = plan_tasks_file(open_repo(root), path)
    engine = build_engine(repo, environ=env)
    seen: list[Event] = []

    def watch(events: list[Event]) -> None:
        seen.extend(events)
        if sum(e.type == "attempt.spawned" for e in seen) == 2:
            gate.touch()

    return engine, engine.run(specs, observers=[watch])


def test_tasks_spread_over_hosts_run_where_their_worktree_is_and_push_their_branch(
        hosts: tuple[Path, dict[str, str], list[Host]], origin: Path, tmp_path: Path,
        forge: FakeForge) -> None:
    root, env, (_, h2) = hosts
    engine, out = one_on_each_host(root, env, tmp_path)
    assert out.exit_code == 0, out.tasks
    events = engine.events()
    where = {tid: host_of(events, "task.worktree_ready", tid) for tid in ("a", "b")}
    assert sorted(h for hs in where.values() for h in hs) == ["h1", "h2"]
    for tid in ("a", "b"):  # every attempt ran on the host that holds its worktree
        assert host_of(events, "attempt.spawned", tid) == where[tid]
        [pushed] = [e for e in events if e.type == "task.pushed" and e.task_id == tid]
        [done] = [e for e in events if e.type == "task.succeeded" and e.task_id == tid]
        remote = subprocess.run(["git", "rev-parse", f"wf/{tid}"], cwd=origin, text=True,
                                capture_output=True, check=True).stdout.strip()
        assert remote == pushed.data["commit"] == done.data["commit"]
    # The same tasks from the other clone (h2's, whose worker keeps its log mirrored), and
    # the dashboard's view of them from this one.
    # A clone's log is as fresh as its last pull (its worker's, every second; wf status
    # pulls itself when that one is over 2 s old), so it shows the end within a few seconds.
    def other_status() -> list[tuple[str, str]] | None:
        other = subprocess.run([sys.executable, "-m", "wf", "status", "--json"],
                               cwd=h2.clone, env=env, capture_output=True, text=True,
                               timeout=BOUND)
        assert other.returncode == 0, other.stderr
        states = sorted((t["id"], t["state"]) for t in json.loads(other.stdout))
        return states if states == [("a", "done"), ("b", "done")] else None

    wait_until(other_status, what="the other clone's wf status showing both done",
               timeout=10)
    dash = subprocess.run([sys.executable, "-m", "wf", "dash", "--json"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=BOUND)
    assert dash.returncode == 0, dash.stderr
    assert sorted(t["id"] for t in json.loads(dash.stdout)["tasks"]) == ["a", "b"]
    # From the first clone, the log and the diff of the task that ran on h2: sent by h2.
    [there] = [tid for tid, hs in where.items() if hs == ["h2"]]
    logs = subprocess.run([sys.executable, "-m", "wf", "logs", there], cwd=root, env=env,
                          capture_output=True, text=True, timeout=BOUND)
    assert logs.returncode == 0, logs.stderr
    assert "waiting for the gate" in logs.stdout
    diff = subprocess.run([sys.executable, "-m", "wf", "diff", there], cwd=root, env=env,
                          capture_output=True, text=True, timeout=BOUND)
    assert diff.returncode == 0, diff.stderr
    assert f"+{there} attempt 1" in diff.stdout
    # `wf pr` in the other clone of the task that ran here: its branch is not in that clone,
    # so wf fetches what this host pushed and opens the PR on it.
    [here] = [tid for tid, hs in where.items() if hs == ["h1"]]
    assert subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"refs/heads/wf/{here}"],
                          cwd=h2.clone, capture_output=True).returncode != 0
    forge.add_github("octo/demo", origin)
    (h2.clone / "wf.toml").write_text(f'[provider]\nkind = "github"\n'
                                      f'api_url = "{forge.github_api}"\nrepo = "octo/demo"\n')
    pr = subprocess.run([sys.executable, "-m", "wf", "pr", here, "--json"], cwd=h2.clone,
                        env={**env, "GH_TOKEN": TOKEN}, capture_output=True, text=True,
                        timeout=BOUND)
    assert pr.returncode == 0, pr.stderr
    [pushed_here] = [e for e in events if e.type == "task.pushed" and e.task_id == here]
    assert json.loads(pr.stdout)["head"] == pushed_here.data["commit"]


def test_the_merge_queue_lands_the_branches_finished_on_both_hosts(
        hosts: tuple[Path, dict[str, str], list[Host]], origin: Path, tmp_path: Path) -> None:
    # Each host runs one task (one slot each, both agents at once); the queue's host fetches
    # the other host's branch from the shared remote, tests both and pushes main there.
    root, env, _ = hosts
    engine, out = one_on_each_host(root, env, tmp_path, extra=(
        '[merge]\nauto = true\nland = "push"\n'
        'check = ["sh", "-c", "test -e notes/a.txt || test -e notes/b.txt"]\n'))
    assert out.exit_code == 0, (out.tasks, out.queue_stopped)
    events = engine.events()
    assert sorted(h for tid in "ab" for h in host_of(events, "task.worktree_ready", tid)) == [
        "h1", "h2"]
    for tid in "ab":
        assert [e.type for e in events if e.task_id == tid].count("queue.landed") == 1
    landed = subprocess.run(["git", "ls-tree", "--name-only", "main", "notes/"], cwd=origin,
                            text=True, capture_output=True, check=True).stdout.split()
    assert sorted(landed) == ["notes/a.txt", "notes/b.txt"]
    checks = [e for e in events if e.type == "queue.check_finished"]
    assert checks and all(e.data["result"] == "pass" for e in checks)


def test_a_host_that_never_comes_back_loses_its_task_to_the_other(
        hosts: tuple[Path, dict[str, str], list[Host]], tmp_path: Path) -> None:
    root, env, (h1, h2) = hosts
    gate, journal = tmp_path / "gate", tmp_path / "journal"
    extra = 'heartbeat_timeout = "1s"\nhost_lost_after = "2s"\n'
    path = tasks_file(tmp_path, env, agent_cmd("gated", str(gate), journal), ["a", "b"],
                      extra=extra)
    repo, specs = plan_tasks_file(open_repo(root), path)
    engine = build_engine(repo, environ=env)
    seen: list[Event] = []
    killed: list[str] = []

    def watch(events: list[Event]) -> None:
        seen.extend(events)
        spawned = [e for e in seen if e.type == "attempt.spawned"]
        if len(spawned) == 2 and not killed:
            victim = next(e for e in spawned if e.data["host"] == "h2")
            killed.append(victim.task_id or "")
            h2.kill()  # and never again
            gate.touch()

    try:
        out = engine.run(specs, observers=[watch])
    finally:
        gate.touch()
        for pid in journal_pids(journal, "a") + journal_pids(journal, "b"):
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)  # the dead host's agent, left running
    assert out.exit_code == 0, out.tasks
    [lost_task] = killed
    events = engine.events()
    [lost] = [e for e in events if e.type == "task.host_lost"]
    assert lost.task_id == lost_task and lost.data["host"] == "h2"
    assert lost.data["start_from"] == "main"  # h2 had pushed nothing for it
    assert host_of(events, "attempt.spawned", lost_task) == ["h2", "h1"]
    wait_until(lambda: h1.proc.poll() is None, what="h1 still serving")


def test_ctrl_c_stops_following_at_once_and_wf_cancel_stops_the_agent_on_its_host(
        hosts: tuple[Path, dict[str, str], list[Host]], tmp_path: Path) -> None:
    root, env, _ = hosts
    journal = tmp_path / "journal"
    path = tasks_file(tmp_path, env, agent_cmd("hang", "", journal), ["a"])
    run = subprocess.Popen([sys.executable, "-m", "wf", "run", str(path)], cwd=root, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        [agent] = wait_until(lambda: journal_pids(journal, "a"), timeout=BOUND,
                             what="the agent's start")
        sent = time.monotonic()
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=BOUND)
        took = time.monotonic() - sent
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 130, err
    assert took < 1.5, f"wf run took {took:.2f}s to stop following"
    assert "keep running on the workers" in err
    assert pid_alive(agent)  # the work goes on without anyone following it
    cancel = subprocess.run([sys.executable, "-m", "wf", "cancel", "a"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=BOUND)
    assert cancel.returncode == 0, cancel.stderr
    wait_until(lambda: not pid_alive(agent), timeout=BOUND, what="the agent stopped")
    again = subprocess.run([sys.executable, "-m", "wf", "cancel", "a"], cwd=root, env=env,
                           capture_output=True, text=True, timeout=BOUND)
    assert again.returncode == 1 and "cannot cancel a: it is already cancelled" in again.stderr


def test_wf_run_says_when_no_worker_polls_and_the_tasks_wait_for_one(
        repo: Path, tmp_path: Path, temporal_server: str) -> None:
    env = {**os.environ, "WF_ENGINE": "temporal", "WF_TEMPORAL_ADDRESS": temporal_server,
           "WF_TEMPORAL_TASK_QUEUE": f"lonely{os.getpid()}"}
    path = tasks_file(tmp_path, env, agent_cmd("commit"), ["a"])
    run = subprocess.Popen([sys.executable, "-m", "wf", "run", str(path)], cwd=repo, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert run.stderr is not None
        line = run.stderr.readline()  # the note comes before anything is submitted
        assert "no `wf worker` polls this repository's Temporal queue" in line, line
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=BOUND)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 130
    with Host("h1", repo, env, slots=1) as _:  # a worker comes: the submitted task runs
        done = subprocess.run([sys.executable, "-m", "wf", "resume"], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=BOUND)
    assert done.returncode == 0, done.stderr
