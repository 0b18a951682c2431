"""How long `wf run` takes to exit after one Ctrl-C (or SIGTERM) while its agents run.

    python bench/stop.py [--runs 20] [--agents 4] [--signal INT|TERM] [--load] [--dir PATH]

Each run makes a fresh repository with ``--agents`` tasks whose agent waits until the bench lets
it finish, starts `wf run` in a process of its own, waits until the log says every agent was
spawned, sends the signal and times the exit (target: exit 130 within 1 s, p95). The agents are
left running, as wf promises; the bench checks that and then ends them. ``--load`` keeps a
busy-loop process on each core meanwhile, as a loaded CI machine would. A benchmark, not a
test: it exits 0 whatever the verdict, non-zero only when a run itself broke.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_P95 = 1.0
AGENT = """import os, sys, time, pathlib
gate = pathlib.Path(sys.argv[1])
print("waiting", flush=True)
with open(sys.argv[2], "a") as f:
    f.write(f"{os.getpid()}\\n")
while not gate.exists():
    time.sleep(0.05)
pathlib.Path("out.txt").write_text("x")
"""


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_repo(root: Path, agents: int) -> tuple[Path, Path, Path, Path]:
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("bench\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "seed")
    agent, gate, pids = root / "agent.py", root / "gate", root / "pids"
    agent.write_text(AGENT)
    command = json.dumps([sys.executable, str(agent), str(gate), str(pids)])
    text = f"[agents.wait]\ncommand = {command}\n"
    text += "".join(f'[[task]]\nid = "t{i}"\nprompt = "wait"\nagent = "wait"\n'
                    for i in range(agents))
    tasks = root / "tasks.toml"
    tasks.write_text(text)
    return repo, tasks, gate, pids


def spawned(repo: Path) -> int:
    db = repo / ".git" / "wf" / "wf.db"
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("SELECT count(*) FROM events WHERE type = 'attempt.spawned'"
                           ).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def one_run(root: Path, agents: int, sig: int) -> float:
    repo, tasks, gate, pids = make_repo(root, agents)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "b@b"}
    run = subprocess.Popen([sys.executable, "-m", "wf", "run", str(tasks)], cwd=repo, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    def started() -> int:  # the log says spawned, and each agent has written its pid
        listed = len(pids.read_text().split()) if pids.exists() else 0
        return min(spawned(repo), listed)

    while started() < agents:
        if time.monotonic() > deadline or run.poll() is not None:
            raise SystemExit(f"the agents did not start: {run.stderr.read() if run.stderr else ''}")
        time.sleep(0.02)
    sent = time.monotonic()
    run.send_signal(sig)
    _, err = run.communicate(timeout=60)
    took = time.monotonic() - sent
    if run.returncode != 130:
        raise SystemExit(f"exit {run.returncode}, not 130: {err}")
    agent_pids = [int(p) for p in pids.read_text().split()]
    left = sum(alive(p) for p in agent_pids)
    gate.touch()  # let them finish; they commit nothing the bench reads
    if left != agents:
        raise SystemExit(f"only {left} of {agents} agents kept running")
    for pid in agent_pids:
        while alive(pid):
            time.sleep(0.02)
    return took


def busy() -> None:
    while True:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--signal", choices=("INT", "TERM"), default="INT")
    parser.add_argument("--load", action="store_true", help="a busy loop on every core")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    sig = signal.SIGINT if args.signal == "INT" else signal.SIGTERM
    loaders = [multiprocessing.Process(target=busy, daemon=True)
               for _ in range(os.cpu_count() or 1)] if args.load else []
    for p in loaders:
        p.start()
    times = []
    try:
        for i in range(args.runs):
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                times.append(one_run(Path(tmp), args.agents, sig))
            print(f"run {i + 1}: {times[-1] * 1000:.0f} ms", flush=True)
    finally:
        for p in loaders:
            p.terminate()
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    print(f"\nSIG{args.signal} with {args.agents} agents running, {args.runs} runs"
          f"{' under load' if args.load else ''}: p50 {statistics.median(times) * 1000:.0f} ms, "
          f"p95 {p95 * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms")
    print(f"{'PASS' if p95 <= TARGET_P95 else 'FAIL'}: exit 130 within {TARGET_P95:g} s, p95")
    return 0


if __name__ == "__main__":
    sys.exit(main())
