"""Event log figures: group-commit append rate, projection rebuild time, `wf status --json`.

    python bench/eventlog.py [--events N] [--rebuild-events N] [--status-events N]

Prints figures and a PASS/FAIL table against the targets; it is not a timed test. Everything
happens in a temporary directory with synchronous=FULL, as in production.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from wf.model import NewEvent, task_stream
from wf.store import GroupCommitWriter, SqliteEventStore

APPEND_TARGET = 20_000  # events/s
REBUILD_TARGET = 10.0  # seconds for --rebuild-events
STATUS_TARGET = 1.0  # seconds for `wf status --json` (our own budget; the brief sets none)


# -- a realistic log ---------------------------------------------------------------------------
def spec(tid: str, rng: random.Random) -> dict[str, Any]:
    return {
        "id": tid, "prompt": f"Fix issue #{rng.randrange(10_000)} in module {tid}",
        "agent": "shell",
        "command": ["sh", "-c", "make fix"], "env": {"WF_LEVEL": "2"},
        "depends_on": [f"t{rng.randrange(10)}"] if rng.random() < 0.3 else [],
        "base": "main", "timeout": 1800.0, "no_output_timeout": 300.0,
        "retry": {"maximum_attempts": 3, "initial_interval": 5.0, "backoff_coefficient": 2.0,
                  "maximum_interval": 300.0, "jitter": 0.2, "non_retryable": ["config_error"]},
        "setup": ["make", "deps"] if rng.random() < 0.5 else None,
    }


def task_history(tid: str, per_task: int, rng: random.Random,
                 notes: tuple[int, int]) -> Iterator[tuple[str, dict]]:
    """About ``per_task`` events of one task: worktree, attempts with ``notes`` progress notes
    each (a range), retries, an outcome, sometimes a requeue and more attempts, the clean-up."""
    yield "task.submitted", {"spec": spec(tid, rng)}
    path = f"/tmp/wt/{tid}"
    yield "task.worktree_requested", {"branch": f"wf/{tid}", "path": path}
    yield "task.worktree_ready", {"branch": f"wf/{tid}", "path": path,
                                  "base_commit": f"{rng.getrandbits(160):040x}", "port": 8000}
    yield "task.setup_done", {}
    left, n = per_task - 5, 0
    while left > 0:
        n += 1
        yield "attempt.started", {"n": n, "log_path": f"{path}.{n}.log"}
        yield "attempt.spawned", {"n": n, "pid": rng.randrange(2, 1 << 22), "pid_start": 123456}
        count = min(left, rng.randrange(*notes))
        for i in range(count):  # informational: the projections ignore them
            yield "attempt.progress", {"n": n, "lines": i * 40, "bytes": i * 2100}
        ok = rng.random() < 0.4
        yield "attempt.finished", {"n": n, "state": "succeeded" if ok else "failed",
                                   "exit_code": 0 if ok else 1,
                                   "failure_kind": None if ok else "agent_error",
                                   "error": None if ok else "exit status 1",
                                   "commit": f"{rng.getrandbits(160):040x}" if ok else None}
        left -= count + 4
        if ok:
            yield "task.succeeded", {"commit": f"{rng.getrandbits(160):040x}"}
            if left > 0:
                yield "task.requeued", {}
        else:
            yield "task.retry_scheduled", {"n": n, "delay": 5.0,
                                           "error": "exit status 1", "kind": "agent_error"}
    yield "task.cleaned", {"worktree_removed": True}


REALISTIC = (20, 120)  # progress notes per attempt: about 9 events in 10 are notes
ALL_PROJECTED = (0, 1)  # no notes: every event moves a projection row (the worst case)


def log_rows(n_events: int, n_tasks: int, notes: tuple[int, int] = REALISTIC,
             seed: int = 1) -> Iterator[tuple]:
    """Event rows for ``executemany``: the tasks' histories interleaved as a scheduler would,
    with signals and runs sprinkled in."""
    rng = random.Random(seed)
    per_task = max(8, n_events // n_tasks)
    live = [(f"t{i}", task_history(f"t{i}", per_task, rng, notes)) for i in range(n_tasks)]
    versions: dict[str, int] = {}
    seq, ts = 0, 1.7e9

    def row(stream: str, type_: str, data: dict) -> tuple:
        nonlocal seq, ts
        seq += 1
        ts += 0.001
        versions[stream] = versions.get(stream, 0) + 1
        return (seq, stream, versions[stream], type_, ts, json.dumps(data), None)

    yield row("run", "run.started", {"run_id": "r1", "pid": 1, "host": "bench", "argv": ["run"]})
    while live and seq < n_events - 1:
        i = rng.randrange(len(live))
        tid, history = live[i]
        item = next(history, None)
        if item is None:
            live[i] = live[-1]
            live.pop()
            continue
        yield row(task_stream(tid), *item)
        if rng.random() < 0.002:
            sent = seq + 1
            yield row("signals", "signal.sent", {"kind": "retry", "task": tid})
            yield row("signals", "signal.handled", {"signal_seq": sent, "result": "ok"})
    yield row("run", "run.finished", {"run_id": "r1", "exit_code": 0})


def write_log(path: Path, n_events: int, n_tasks: int,
              notes: tuple[int, int] = REALISTIC) -> None:
    """A log of ``n_events`` with its projections, written fast (raw inserts, then a rebuild)."""
    SqliteEventStore(path).close()  # the schema
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    with conn:
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                         log_rows(n_events, n_tasks, notes))
    conn.close()
    with SqliteEventStore(path) as store:
        store.rebuild_projections()


# -- 1. group commit ---------------------------------------------------------------------------
def bench_append(root: Path, n_events: int, batch_size: int, producers: int = 8,
                 window: int | None = 64) -> float:
    """Events/s with ``producers`` threads each appending ``batch_size``-event batches, keeping
    up to ``window`` batches in flight (None: wait for each commit, i.e. append_sync)."""
    path = root / f"append-{batch_size}-{window}.db"
    with SqliteEventStore(path) as store, GroupCommitWriter(store) as writer:
        per_producer = n_events // producers
        for p in range(producers):
            writer.append_sync([NewEvent(task_stream(f"p{p}"), "task.submitted",
                                         {"spec": spec(f"p{p}", random.Random(p))})])
        start = threading.Barrier(producers + 1)

        def produce(p: int) -> None:
            stream = task_stream(f"p{p}")
            inflight: list[Future] = []
            start.wait()
            for i in range(0, per_producer, batch_size):
                batch = [NewEvent(stream, "attempt.spawned", {"n": (i + j) % 5 + 1, "pid": i + j})
                         for j in range(batch_size)]
                if window is None:
                    writer.append_sync(batch)
                    continue
                inflight.append(writer.submit(batch))
                if len(inflight) >= window:
                    inflight.pop(0).result()
            for fut in inflight:
                fut.result()

        threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        written = store.last_seq() - producers
    path.unlink()
    return written / elapsed


# -- 2. rebuild --------------------------------------------------------------------------------
def bench_rebuild(root: Path, n_events: int, n_tasks: int,
                  notes: tuple[int, int]) -> tuple[float, int, float]:
    """Seconds to rebuild, events in the log, share of them that move a projection row."""
    path = root / "rebuild.db"
    t0 = time.perf_counter()
    write_log(path, n_events, n_tasks, notes)
    generated = time.perf_counter() - t0
    with SqliteEventStore(path) as store:
        before = store.snapshot()
        n = store.last_seq()
        with contextlib.closing(sqlite3.connect(path)) as conn:
            [(notes_seen,)] = conn.execute(
                "SELECT COUNT(*) FROM events WHERE type = 'attempt.progress'").fetchall()
        t0 = time.perf_counter()
        store.rebuild_projections()
        elapsed = time.perf_counter() - t0
        assert store.snapshot() == before, "rebuild changed the projections"
    path.unlink()
    print(f"(generated a {n:,}-event log in {generated:.1f} s)")
    return elapsed, n, 1 - notes_seen / n


# -- 3. status ---------------------------------------------------------------------------------
def bench_status(root: Path, n_events: int, n_tasks: int) -> tuple[float, float | str]:
    repo = root / "repo"
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_AUTHOR_NAME": "bench",
           "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@example.com"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=env)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "seed"], cwd=repo, check=True,
                   env=env)
    common = subprocess.run(["git", "rev-parse", "--git-common-dir"], cwd=repo, check=True,
                            capture_output=True, text=True, env=env).stdout.strip()
    db = (repo / common).resolve() / "wf" / "wf.db"
    write_log(db, n_events, n_tasks)

    t0 = time.perf_counter()
    with SqliteEventStore(db) as store:
        json.dumps({"tasks": store.tasks()})
    in_process = time.perf_counter() - t0

    wf = Path(sys.executable).with_name("wf")
    if not wf.exists():
        return in_process, "no wf executable"
    t0 = time.perf_counter()
    proc = subprocess.run([str(wf), "status", "--json"], cwd=repo, capture_output=True,
                          text=True, env=env)
    cli = time.perf_counter() - t0
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return in_process, f"not available (exit {proc.returncode}: {last[:70]})"
    try:
        json.loads(proc.stdout)
    except ValueError:
        return in_process, "not available (output is not JSON)"
    return in_process, cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per append figure")
    parser.add_argument("--rebuild-events", type=int, default=1_000_000)
    parser.add_argument("--status-events", type=int, default=100_000)
    args = parser.parse_args()

    rows: list[tuple[str, str, str, bool | None]] = []
    root = Path(tempfile.mkdtemp(prefix="wf-bench-"))
    try:
        for size in (1, 10):
            rate = bench_append(root, args.events, size)
            rows.append((f"append, 8 threads, {size}-event batches, 64 in flight",
                         f"{rate:,.0f} ev/s", f">= {APPEND_TARGET:,} ev/s", rate >= APPEND_TARGET))
        rate = bench_append(root, min(args.events, 20_000), 1, window=None)
        rows.append(("append, 8 threads, 1-event append_sync (info)", f"{rate:,.0f} ev/s", "-",
                     None))

        tasks = 2000
        for label, notes in (("realistic", REALISTIC), ("all projected", ALL_PROJECTED)):
            elapsed, n, share = bench_rebuild(root, args.rebuild_events, tasks, notes)
            rows.append((f"rebuild, {n:,} events, {tasks:,} tasks, {label} "
                         f"({share:.0%} projected)", f"{elapsed:.2f} s",
                         f"<= {REBUILD_TARGET:.0f} s", elapsed <= REBUILD_TARGET))

        in_process, cli = bench_status(root, args.status_events, 200)
        rows.append((f"status: tasks() + json, {args.status_events:,} events",
                     f"{in_process * 1000:.0f} ms", f"<= {STATUS_TARGET:.0f} s",
                     in_process <= STATUS_TARGET))
        if isinstance(cli, float):
            rows.append(("`wf status --json` subprocess", f"{cli * 1000:.0f} ms",
                         f"<= {STATUS_TARGET:.0f} s", cli <= STATUS_TARGET))
        else:
            rows.append(("`wf status --json` subprocess", cli, "-", None))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    print(f"\n{'figure':<{width}}  {'measured':>14}  {'target':>16}  result")
    for name, value, target, ok in rows:
        verdict = "-" if ok is None else "PASS" if ok else "FAIL"
        print(f"{name:<{width}}  {value:>14}  {target:>16}  {verdict}")


if __name__ == "__main__":
    main()
