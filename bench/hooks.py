"""Hooks' three figures: throughput, first-try latency, and the engine's overhead.

    python bench/hooks.py [--events 10000] [--latency-events 500] [--tasks 200]
                          [--files 5000] [--parallel 4] [--rounds 2] [--dir PATH]
                          [--skip-overhead]

1. ``--events`` events already in a log, delivered to a local receiver (a separate process,
   http.server with keep-alive) by the delivery thread as ``wf hooks deliver`` runs it: every
   delivery recorded in the log; deliveries/s = events / (last recorded - start).
2. first try after the event's commit: events committed one by one through the engine's
   group-commit writer (as the engine does, the delivery thread woken by its listener), about
   100 a second; latency = the receiver's arrival time - the commit's time; p50/p99.
3. bench/overhead.py's wf side (``--tasks`` no-op tasks) with two endpoints taking every
   task event, against none, alternating in the same run; the ratio of medians of wall time.

Targets: ≥ 1,000 deliveries/s; p99 ≤ 250 ms; ≤ 1.05×. Prints PASS/FAIL; a benchmark, not a
test: it exits 0 whatever the verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

TARGET_RATE, TARGET_P99, TARGET_RATIO = 1000.0, 0.250, 1.05


# -- the receiver: its own process ------------------------------------------------------------
def receiver_main(port_file: str) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    arrivals: list[tuple[float, str]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            now = time.time()
            seq = json.loads(body).get("seq")
            with lock:
                arrivals.append((now, f"{self.path}|{seq}|{self.headers.get('webhook-id')}"))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            with lock:
                data = json.dumps(arrivals).encode()
                if self.path == "/reset":
                    arrivals.clear()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    Path(port_file).write_text(str(server.server_address[1]))
    server.serve_forever()


class ReceiverProcess:
    def __init__(self, tmp: Path) -> None:
        port_file = tmp / "receiver.port"
        self.proc = subprocess.Popen([sys.executable, __file__, "--receiver", str(port_file)])
        deadline = time.monotonic() + 10
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline:
                raise RuntimeError("the receiver did not start")
            time.sleep(0.02)
        self.base = f"http://127.0.0.1:{port_file.read_text()}"

    def arrivals(self, reset: bool = False) -> list[tuple[float, str]]:
        with urllib.request.urlopen(self.base + ("/reset" if reset else "/all")) as resp:
            return [tuple(x) for x in json.loads(resp.read())]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


# -- figures 1 and 2: in-process delivery ----------------------------------------------------
def runner_for(db: Path, url: str, events: list[str]):
    from wf.hooks.config import HookConfig
    from wf.hooks.runner import HookRunner, build_targets
    from wf.store import SqliteEventStore

    hook = HookConfig(name="bench", url=url, events=events, secret_env="S")
    targets, _ = build_targets((hook,), {"S": "whsec_YmVuY2gtc2VjcmV0LWJ5dGVz"}, db.parent,
                              db.parent)
    return HookRunner(SqliteEventStore(db), targets)


def throughput(tmp: Path, receiver: ReceiverProcess, n: int) -> dict[str, float]:
    from wf.hooks.state import fold
    from wf.model import NewEvent
    from wf.store import SqliteEventStore

    db = tmp / "throughput" / "wf.db"
    store = SqliteEventStore(db)
    runner = runner_for(db, receiver.base + "/t", ["task.*"])
    runner.prepare()  # the endpoint starts after the log's end: then the events come
    for i in range(0, n, 1000):
        store.append([NewEvent("bench", "task.requeued", {"i": j})
                      for j in range(i, min(n, i + 1000))])
    receiver.arrivals(reset=True)
    t0 = time.perf_counter()
    runner._thread = threading.Thread(target=runner._main, daemon=True)
    runner._thread.start()
    while runner.busy():
        time.sleep(0.005)
    runner.stop()
    elapsed = time.perf_counter() - t0
    state = fold(store.read(stream="hooks"))["bench"]
    got = receiver.arrivals()
    hook_events = len(store.read(stream="hooks"))
    store.close()
    runner.store.close()
    if state.delivered_total != n or len({a[1] for a in got}) != n:
        raise RuntimeError(f"{state.delivered_total} recorded, {len(got)} received, want {n}")
    return {"rate": n / elapsed, "seconds": elapsed, "hook_events": hook_events}


def latency(tmp: Path, receiver: ReceiverProcess, n: int) -> dict[str, float]:
    from wf.model import NewEvent
    from wf.store import GroupCommitWriter, SqliteEventStore

    db = tmp / "latency" / "wf.db"
    store = SqliteEventStore(db)
    writer = GroupCommitWriter(store)
    runner = runner_for(db, receiver.base + "/l", ["task.*"])
    committed: dict[int, float] = {}

    def on_commit(events: list) -> None:  # the engine's listener: wakes the delivery thread
        now = time.time()
        for e in events:
            committed[e.seq] = now
        runner.wake()

    writer.add_listener(on_commit)
    runner.start()
    receiver.arrivals(reset=True)
    for i in range(n):
        writer.append_sync([NewEvent("bench", "task.requeued", {"i": i})])
        time.sleep(0.01)
    deadline = time.monotonic() + 30
    while len(receiver.arrivals()) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    runner.stop(drain=5)
    writer.close()
    store.close()
    runner.store.close()
    waits = sorted(ts - committed[int(key.split("|")[1])] for ts, key in receiver.arrivals())
    if len(waits) != n:
        raise RuntimeError(f"{len(waits)} first tries arrived, want {n}")
    return {"p50": statistics.median(waits), "p99": waits[int(0.99 * (n - 1))],
            "max": waits[-1]}


# -- figure 3: bench/overhead.py's wf side with two endpoints, against none ----------------
def overhead(tmp: Path, receiver: ReceiverProcess, args: argparse.Namespace) -> dict:
    import overhead as ov

    env = ov.hermetic_env()
    template = tmp / "template"
    ov.generate_repo(template, args.files)
    hooks = "".join(f'[[hooks]]\nname = "e{i}"\nurl = "{receiver.base}/e{i}"\n'
                    f'events = ["task.*", "attempt.*", "finished"]\n\n' for i in (1, 2))
    walls: dict[str, list[float]] = {"off": [], "on": []}
    cpus: dict[str, list[float]] = {"off": [], "on": []}  # the wf process's own CPU seconds
    for k in range(args.rounds):
        order = ["off", "on"] if k % 2 == 0 else ["on", "off"]
        for side in order:
            repo = ov.copy_repo(template, tmp / f"{side}-{k}")
            ov.settle()
            out = ov.run_wf(repo, args.tasks, args.parallel, env,
                            extra=hooks if side == "on" else "")
            walls[side].append(out["run"])
            cpus[side].append(out["cpu_run"][0])
            print(f"  round {k + 1} {side:3}: run {out['run']:.2f} s, wf's CPU "
                  f"{out['cpu_run'][0]:.2f} s", flush=True)
            shutil.rmtree(repo.parent, ignore_errors=True)
    got = receiver.arrivals()
    off, on = statistics.median(walls["off"]), statistics.median(walls["on"])
    cpu = statistics.median(cpus["on"]) / statistics.median(cpus["off"])
    return {"off": off, "on": on, "ratio": on / off, "delivered": len(got), "cpu_ratio": cpu}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--receiver":
        receiver_main(sys.argv[2])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--latency-events", type=int, default=500)
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--skip-overhead", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wf-hooks-bench-", dir=args.dir))
    receiver = ReceiverProcess(tmp)
    try:
        rows = []
        t = throughput(tmp, receiver, args.events)
        print(f"1. {args.events} events delivered in {t['seconds']:.2f} s: "
              f"{t['rate']:,.0f} deliveries/s ({t['hook_events']} hook events recorded)")
        rows.append(("deliveries/s", f"{t['rate']:,.0f}", "≥ 1,000", t["rate"] >= TARGET_RATE))
        lat = latency(tmp, receiver, args.latency_events)
        print(f"2. first try after commit ({args.latency_events} events, ~100/s): p50 "
              f"{lat['p50'] * 1000:.1f} ms, p99 {lat['p99'] * 1000:.1f} ms, max "
              f"{lat['max'] * 1000:.1f} ms")
        rows.append(("first try p99", f"{lat['p99'] * 1000:.1f} ms", "≤ 250 ms",
                     lat["p99"] <= TARGET_P99))
        if not args.skip_overhead:
            o = overhead(tmp, receiver, args)
            print(f"3. overhead.py's wf side, {args.tasks} tasks: off {o['off']:.2f} s, two "
                  f"endpoints on {o['on']:.2f} s: {o['ratio']:.3f}x ({o['delivered']} "
                  f"deliveries); wf's own CPU {o['cpu_ratio']:.3f}x")
            rows.append(("two endpoints on / off", f"{o['ratio']:.3f}x", "≤ 1.05x",
                         o["ratio"] <= TARGET_RATIO))
        print(f"\n{os.cpu_count()} CPUs")
        for name, value, target, ok in rows:
            print(f"  {name:24} {value:>12}  target {target:10} {'PASS' if ok else 'FAIL'}")
    finally:
        receiver.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
