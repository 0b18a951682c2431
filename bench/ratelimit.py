"""Adaptive parallelism against a rate-limited model API (issue 17): the same 30 tasks with
``adaptive`` off and on, in the same run.

    python bench/ratelimit.py [--tasks 30] [--parallel 8] [--slots 2] [--hold 2.0]
                              [--retry-after 1] [--repeat 1] [--initial-interval 5s] [--dir PATH]

The model API is tests/stub_ratelimit.py on 127.0.0.1: it takes ``--slots`` (K) requests at
once, holds each ``--hold`` (D) seconds (the model call) and answers 429 with ``retry-after:
--retry-after`` (R) beyond that. Each task's agent is tests/agents/model_cli.py, a stand-in
for Claude Code read by the claude adapter: one request, Claude Code's own retry once
(``CLAUDE_CODE_MAX_RETRIES=1``: an ``api_retry`` line, R seconds, one more request), then an
error result with ``api_error_status: 429`` (TRANSIENT, rate limited, ``retry_after`` R).
Each round makes a fresh repository and a fresh server and runs `wf run` of ``--tasks`` tasks
at ``max_parallel = --parallel``, first with ``[agents.m] adaptive = false`` then ``true``
(``--repeat`` alternates more rounds). Both use the same retry policy, wf's default but for
``maximum_attempts = 10`` (3 would fail tasks with adaptive off): ``initial_interval = "5s"``
(``--initial-interval``), ``backoff_coefficient = 2``, ``maximum_interval = "300s"``,
``jitter = 0.2``; with adaptive off every rate-limited task must retry through that backoff.
(A policy scaled down to 2 s / 30 s makes adaptive off's wall swing from 46 to 102 s between
runs, by how many tasks draw long waits: with the stub's K slots always busy, off loses
time only in its backoff tail.)

The choice of D = 2 s and R = 1 s: the floor of the work is tasks x D / K = 30 s, long beside
wf's own cost per task (a worktree, a commit: about 0.3 s on this machine) and beside
Claude Code's own retry (R), so the figures measure scheduling, and the whole bench (both
modes) takes about 3-5 minutes.

It prints, per mode: the wall time, attempts and tasks that failed as rate limited (from
``attempt.finished`` with ``rate_limited``), the tasks finally failed, the server's answers
(admitted, 429), and with adaptive on the limit's path (``agent.limit_changed``: seconds since
the run started, limit, how long starts are held for a retry-after, reason); then the ratio
on/off. Targets: adaptive on has no task
finally failed for rate limiting, and its wall is <= 0.6x adaptive off. A benchmark, not a
test: it exits 0 whatever the verdict, non-zero only when a run itself broke.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from stub_ratelimit import LimitedModel  # noqa: E402

MODEL_CLI = ROOT / "tests" / "agents" / "model_cli.py"
# wf's default retry policy but for maximum_attempts (3 would fail tasks with adaptive off
# instead of letting them retry through the backoff).
RETRY = ('[retry]\nmaximum_attempts = 10\ninitial_interval = "{initial}"\n'
         'backoff_coefficient = 2.0\nmaximum_interval = "300s"\njitter = 0.2\n')
TARGET_RATIO = 0.6


@dataclass
class Round:
    adaptive: bool
    wall: float = 0.0
    exit_code: int = 0
    attempts: int = 0
    limited_attempts: int = 0
    limited_tasks: int = 0
    failed_tasks: int = 0
    failed_limited: int = 0
    done_tasks: int = 0
    admitted: int = 0
    rejected: int = 0
    path: list[tuple[float, int, float, str]] = field(default_factory=list)


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null",
                        "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
                        "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"})


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("bench\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "seed")
    return repo


def tasks_file(root: Path, url: str, args: argparse.Namespace, adaptive: bool) -> Path:
    command = json.dumps([sys.executable, str(MODEL_CLI)])
    retry = RETRY.format(initial=args.initial_interval)
    text = (f"max_parallel = {args.parallel}\n{retry}\n[agents.m]\ncommand = {command}\n"
            f'adapter = "claude"\nadaptive = {str(adaptive).lower()}\n'
            f'env = {{ ANTHROPIC_BASE_URL = "{url}", CLAUDE_CODE_MAX_RETRIES = "1" }}\n')
    text += "".join(f'\n[[task]]\nid = "t{i:02d}"\nprompt = "note {i}"\nagent = "m"\n'
                    for i in range(args.tasks))
    path = root / "tasks.toml"
    path.write_text(text)
    return path


def read_log(repo: Path, r: Round) -> None:
    con = sqlite3.connect(f"file:{repo / '.git' / 'wf' / 'wf.db'}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT stream, type, ts, data FROM events ORDER BY seq").fetchall()
        states = dict(con.execute("SELECT id, state FROM tasks").fetchall())
    finally:
        con.close()
    start = next(ts for _, t, ts, _ in rows if t == "run.started")
    limited: set[str] = set()
    last: tuple[int, str] | None = None
    for stream, type_, ts, raw in rows:
        d = json.loads(raw)
        if type_ == "attempt.finished":
            r.attempts += 1
            if d.get("rate_limited"):
                r.limited_attempts += 1
                limited.add(stream)
        elif type_ == "agent.limit_changed" and (d["limit"], d["reason"]) != last:
            # a change of the limit: not a success counted, nor a rate limit of an attempt
            # of the same overload that only pushed the hold on
            last = (d["limit"], d["reason"])
            r.path.append((ts - start, d["limit"], max(0.0, d["not_before"] - ts), d["reason"]))
    r.limited_tasks = len(limited)
    r.failed_tasks = sum(1 for s in states.values() if s == "failed")
    r.failed_limited = sum(1 for t, s in states.items() if s == "failed"
                           and f"task:{t}" in limited)
    r.done_tasks = sum(1 for s in states.values() if s == "done")


def run_round(base: Path, args: argparse.Namespace, adaptive: bool, n: int) -> Round:
    root = base / f"{n}-{'on' if adaptive else 'off'}"
    repo = make_repo(root)
    r = Round(adaptive)
    with LimitedModel(slots=args.slots, hold=args.hold, retry_after=args.retry_after) as model:
        path = tasks_file(root, model.url, args, adaptive)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "GIT_CONFIG_GLOBAL": "/dev/null"}
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "wf", "run", str(path), "--json"],
                              cwd=repo, env=env, capture_output=True, text=True)
        r.wall = time.monotonic() - started
        r.exit_code = proc.returncode
        r.admitted, r.rejected = len(model.served) - model.rejected, model.rejected
    if proc.returncode not in (0, 1):
        sys.exit(f"wf run broke (exit {proc.returncode}): {proc.stderr[-2000:]}")
    read_log(repo, r)
    return r


def report(r: Round) -> None:
    mode = "adaptive on " if r.adaptive else "adaptive off"
    print(f"{mode}: wall {r.wall:6.1f} s, exit {r.exit_code}; {r.done_tasks} done, "
          f"{r.failed_tasks} failed ({r.failed_limited} of them rate limited); attempts "
          f"{r.attempts}, {r.limited_attempts} rate limited, in {r.limited_tasks} tasks; "
          f"server: {r.admitted} admitted, {r.rejected} answered 429")
    if r.path:
        print("  limit path (s since the run started, limit, starts held for, reason):")
        for t, limit, hold, reason in r.path:
            print(f"    {t:6.1f}  {limit}  {hold:4.1f} s  {reason}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=30)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--hold", type=float, default=2.0)
    ap.add_argument("--retry-after", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--initial-interval", default="5s", help="the retry policy's first delay")
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="wf-ratelimit-", dir=args.dir))
    print(f"{args.tasks} tasks, max_parallel {args.parallel}, model API: {args.slots} at once, "
          f"{args.hold:g} s a call, 429 with retry-after {args.retry_after}; retries from "
          f"{args.initial_interval}; "
          f"load average {os.getloadavg()[0]:.2f}")
    rounds: list[Round] = []
    try:
        for n in range(args.repeat):
            for adaptive in (False, True):
                rounds.append(run_round(base, args, adaptive, n))
                report(rounds[-1])
    finally:
        shutil.rmtree(base, ignore_errors=True)
    off = [r for r in rounds if not r.adaptive]
    on = [r for r in rounds if r.adaptive]
    ratio = sum(r.wall for r in on) / sum(r.wall for r in off)
    no_failure = all(r.failed_limited == 0 and r.failed_tasks == 0 for r in on)
    print(f"wall on/off: {ratio:.2f} (target <= {TARGET_RATIO}); load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"{'PASS' if no_failure else 'FAIL'}: adaptive on, no task failed for rate limiting")
    print(f"{'PASS' if ratio <= TARGET_RATIO else 'FAIL'}: wall on <= {TARGET_RATIO}x off")
    return 0


if __name__ == "__main__":
    sys.exit(main())
