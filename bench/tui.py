"""The dashboard under load: 500 tasks and a stream of events, measured with Pilot.

    python bench/tui.py [--tasks 500] [--rate 200] [--presses 200] [--idle 10]
                        [--size 160x48]

A real event log in a temporary repository holds ``--tasks`` submitted tasks, a fifth of them
running with a log file each. A child process (so its CPU is not the dashboard's) appends
``--rate`` events a second in batches of a tenth of that: agent messages, attempts finishing
and retries scheduled and started again, the mix of a busy run. The dashboard runs in this
process under Pilot at ``--size``:

* keypress-to-screen: the time from a key press (down/up in the table, d/l to switch tabs)
  until the app is idle again with the change made, over ``--presses`` presses while the
  stream runs. Target p95 ≤ 100 ms.
* idle CPU: the stream stops, the dashboard catches up, then this process's CPU time over
  ``--idle`` seconds of wall time. Target ≤ 5% of one core.

Prints the figures and a PASS/FAIL line per target; exits 0 whatever the verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

P95_TARGET_MS = 100.0
IDLE_TARGET = 0.05


def make_repo(root: Path, tasks: int) -> Path:
    from wf.model import NewEvent, task_stream
    from wf.store import SqliteEventStore

    repo = root / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_AUTHOR_NAME": "b",
           "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "seed"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    store = SqliteEventStore(repo / ".git" / "wf" / "wf.db")
    batch = []
    for i in range(tasks):
        tid = f"task-{i:03d}"
        batch.append(NewEvent(task_stream(tid), "task.submitted", {"spec": {
            "id": tid, "prompt": f"do thing {i}", "agent": "claude", "base": "main",
            "retry": {"maximum_attempts": 5}}}))
        if i % 5 == 0:
            batch.append(NewEvent(task_stream(tid), "attempt.started", {"n": 1}))
            log = repo / ".git" / "wf" / "logs" / tid / "1.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("".join(f"line {k} of {tid}\n" for k in range(50)))
    store.append(batch)
    store.close()
    return repo


def stream(db: str, tasks: int, rate: int) -> None:
    """The child: ``rate`` events a second, in ten batches a second, until terminated."""
    from wf.model import NewEvent, task_stream
    from wf.store import SqliteEventStore

    store = SqliteEventStore(db)
    running = [f"task-{i:03d}" for i in range(0, tasks, 5)]
    attempt = dict.fromkeys(running, 1)
    per_batch, k = max(1, rate // 10), 0
    start = time.monotonic()
    while True:
        batch = []
        for _ in range(per_batch):
            tid = running[k % len(running)]
            k += 1
            n = attempt[tid]
            phase = k % 4
            if phase in (0, 1):
                batch.append(NewEvent(task_stream(tid), "agent.message",
                                      {"n": n, "role": "assistant", "text": f"step {k}"}))
            elif phase == 2:
                batch.append(NewEvent(task_stream(tid), "task.retry_scheduled", {
                    "n": n, "kind": "transient", "delay": 1.0, "error": "rate limited"}))
            else:
                attempt[tid] = n + 1
                batch.append(NewEvent(task_stream(tid), "attempt.started", {"n": n + 1}))
        store.append(batch)
        next_at = start + (k / per_batch) / 10
        time.sleep(max(0.0, next_at - time.monotonic()))


KEYS = ["down", "down", "d", "up", "l", "down", "up", "up"]


async def keypress_to_screen(app, key: str) -> float:
    """Milliseconds from a key reaching the app (as the terminal driver delivers it) to the
    first frame drawn after its effect shows in the widgets."""
    from textual import events

    from wf.tui.detail import DetailPane
    from wf.tui.tasks_table import TasksTable

    table, detail = app.query_one(TasksTable), app.query_one(DetailPane)
    if key in ("down", "up"):
        row = table.cursor_row + (1 if key == "down" else -1)
        done = lambda: table.cursor_row == row and app.selected == table.selected  # noqa: E731
    else:
        tab = {"d": "diff", "l": "log"}[key]
        done = lambda: detail.active == tab  # noqa: E731
    t0 = time.perf_counter()
    app._driver.send_message(events.Key(key, key if len(key) == 1 else None))
    while not done():
        await asyncio.sleep(0.001)
    seen = time.perf_counter()
    while app.frames[-1] < seen:
        await asyncio.sleep(0.001)
    drawn = next(t for t in app.frames[-5:] if t >= seen)  # the first frame after it
    await asyncio.sleep(0.05)  # a person's pace, not a flood of keys
    return (drawn - t0) * 1000


async def measure(repo: Path, args: argparse.Namespace) -> dict[str, float]:
    from wf import api
    from wf.tui.app import Dashboard
    from wf.tui.tasks_table import TasksTable

    width, height = (int(v) for v in args.size.split("x"))
    app = Dashboard(api.open_repo(repo))
    app.frames = [0.0]  # when each frame was composed, for keypress-to-screen
    display = app._display

    def timed_display(screen, renderable) -> None:
        display(screen, renderable)
        if renderable is not None:
            app.frames.append(time.perf_counter())

    app._display = timed_display
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    async with app.run_test(size=(width, height)) as pilot:
        while not (app.loaded and len(app.query_one(TasksTable).shown) == args.tasks):
            await pilot.pause(0.01)
        out["load_s"] = time.perf_counter() - t0

        child = subprocess.Popen([sys.executable, __file__, "--stream", str(repo), "--tasks",
                                  str(args.tasks), "--rate", str(args.rate)])
        await pilot.pause(1.0)
        seq0, cpu0, wall0 = app.feed.seq, time.process_time(), time.perf_counter()
        latencies = [await keypress_to_screen(app, KEYS[i % len(KEYS)])
                     for i in range(args.presses)]
        out["stream_events_per_s"] = (app.feed.seq - seq0) / (time.perf_counter() - wall0)
        out["stream_cpu"] = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        child.terminate()
        child.wait()
        latencies.sort()
        out["p50_ms"] = statistics.median(latencies)
        out["p95_ms"] = latencies[int(len(latencies) * 0.95) - 1]
        out["max_ms"] = latencies[-1]

        await pilot.pause(3.0)  # catch up with the last events
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await pilot.pause(args.idle)
        out["idle_cpu"] = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=500)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--presses", type=int, default=200)
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--size", default="160x48")
    ap.add_argument("--stream", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stream:
        stream(str(Path(args.stream) / ".git" / "wf" / "wf.db"), args.tasks, args.rate)
        return
    with tempfile.TemporaryDirectory(prefix="wf-bench-tui-") as tmp:
        repo = make_repo(Path(tmp), args.tasks)
        out = asyncio.run(measure(repo, args))
    print(f"tasks {args.tasks}, stream {args.rate} events/s requested, "
          f"{out['stream_events_per_s']:.0f} events/s seen, size {args.size}, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"first load of the log: {out['load_s'] * 1000:.0f} ms")
    print(f"keypress-to-screen over {args.presses} presses: p50 {out['p50_ms']:.1f} ms, "
          f"p95 {out['p95_ms']:.1f} ms, max {out['max_ms']:.1f} ms")
    print(f"CPU while streaming (keys included): {out['stream_cpu'] * 100:.1f}% of one core")
    print(f"CPU while idle over {args.idle:.0f} s: {out['idle_cpu'] * 100:.1f}% of one core")
    print(f"{'PASS' if out['p95_ms'] <= P95_TARGET_MS else 'FAIL'} p95 keypress-to-screen "
          f"{out['p95_ms']:.1f} ms <= {P95_TARGET_MS:.0f} ms")
    print(f"{'PASS' if out['idle_cpu'] <= IDLE_TARGET else 'FAIL'} idle CPU "
          f"{out['idle_cpu'] * 100:.1f}% <= {IDLE_TARGET * 100:.0f}%")


if __name__ == "__main__":
    main()
