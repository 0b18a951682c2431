"""The merge queue end to end against the naive sequential queue, on generated repositories.

    python bench/mqbench.py [--seeds 5] [--scenarios S1,S2,S3,S4,S6] [--parallel-checks 2]
                            [--no-blame]
                            [--quick] [--no-naive] [--naive-seeds 1] [--naive-jobs 1]
                            [--stream 200] [--keep] [--dir PATH]

For each scenario and seed, ``bench/mqrepo.py`` generates a repository (~50 modules and tests, a
shared registry, changelog slots, ``check.py``) with branches ``agent/1..N`` (good, bad,
textual-conflict pairs, semantic-conflict pairs; flakiness is a per-check-run probability).
Then:

* wf: ``wf.toml`` gets ``[merge] check = [[python, "check.py"]]`` and ``max_parallel_checks``;
  every branch is enqueued (``wf queue add --branch`` semantics, sent in-process through
  ``wf.api.send_signal`` to keep 50-200 CLI start-ups out of the run) and ``wf resume --json``
  runs the queue. S6 feeds 3 entries per T while the engine runs and restarts ``wf resume``
  whenever it exits with entries still to come. Figures come from the event log. The check
  prints a traceback for each failing test, as test runners do, which the queue reads to name
  suspects (``[merge] blame``); ``--no-blame`` turns that off, leaving prefix splitting alone.
* naive: a plain loop over the branches in queue order in a scratch worktree of its own copy:
  ``git merge``, one check run, advance the target on a pass (no retries). It runs on the
  first ``--naive-seeds`` seeds only (default 1: its figures hardly depend on the seed and each
  run costs N checks); for S6 its time-to-land is entry i's landing time minus i*T/3, exact
  because a loop that takes T per entry never waits for one arriving every T/3.
* planner alone: bench/mqsim.py on the very same branch sequence, i.e. the rounds and runs wf's
  planner needs when the queue's own overhead is zero, to tell the planner from the machinery.

Wall time is counted in T, the median wall time of one ``check.py`` run on the base measured at
start. wf's wall runs from the engine's ``run.started`` (S6: the first enqueue) to its last
queue event. Check time is the union of the intervals in which some ``check.py`` ran (its own
``MQ-START``/``MQ-END`` stamps); everything else is the queue's overhead, broken down into check
machinery (checkout, interpreter start/exit, log), start-up (signals, admission, first chain),
landing and the rest of the gaps between rounds (reconcile, chain building, planning, events).

Invariants, checked after every run; any breach makes the benchmark exit 1: every commit in the
target's reflog since the base has a tree that passed the check; no bad branch landed and no
pair landed whole; the final tree passes with flakes off; every eviction has its true reason
(a good entry is only ever evicted by a check failure that was a flake); every entry reported
landed has its head on the target; nothing is left pending or queued.

A benchmark, not a test: targets print PASS/FAIL and the exit status is 0 whatever they say;
non-zero only when an invariant breaks (1) or the run itself crashes (2).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mqrepo

TARGETS: dict[str, dict[str, float]] = {
    "S1": {"T": 2, "runs": 4},
    "S2": {"T": 17, "runs": 34},
    "S3": {"T": 19, "false": 0.5},
    "S4": {"T": 19},
    "S6": {"p95": 12},
}
OVERHEAD_TARGET = 0.15
ARRIVALS_PER_T = 3
# Seconds of one check run before its MQ-START and after its MQ-END (interpreter start, exit),
# measured with T: part of the check's own cost, not the queue's.
CHECK_EDGES = [0.0, 0.0]
WF_TIMEOUT = 900.0


class BenchError(Exception):
    """The run itself broke: no figure is meaningful."""


def wf_argv() -> list[str]:
    exe = Path(sys.executable).parent / "wf"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "wf"]


def wf_env() -> dict[str, str]:
    """wf's environment: ours without git variables, isolated from the user's git config (real
    dates, so the reflog and merge commits carry the time they were made)."""
    env = mqrepo.git_env()
    env.pop("GIT_AUTHOR_DATE", None)
    env.pop("GIT_COMMITTER_DATE", None)
    # Run wf as it is installed: with its bytecode cached (a sandbox that forbids writing
    # .pyc files makes every `wf resume` compile wf again, ~0.3 s before it starts).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# -- reading a run back ------------------------------------------------------------------------
def read_events(repo: Path) -> list[dict[str, Any]]:
    path = repo / ".git" / "wf" / "wf.db"
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        rows = con.execute("SELECT seq, stream, type, ts, data FROM events ORDER BY seq").fetchall()
    finally:
        con.close()
    return [{"seq": s, "stream": st, "type": t, "ts": ts, "data": json.loads(d)}
            for s, st, t, ts, d in rows]


def entry_of(e: dict[str, Any]) -> str | None:
    return e["stream"][5:] if e["stream"].startswith("task:") else None


_STAMP = re.compile(r"^MQ-(START|END) ([0-9.]+)", re.MULTILINE)


@dataclass
class CheckRun:
    tree: str
    result: str
    size: int | None
    entries: list[str]
    started: float  # wf began the run (the log's name), before the checkout
    finished: float  # the queue.check_finished event
    body: tuple[float, float] | None  # check.py's own MQ-START / MQ-END
    flake: bool  # tests passed, the run failed on the flake draw
    real_fail: bool  # some test failed


def parse_check(e: dict[str, Any]) -> CheckRun:
    d = e["data"]
    log = d.get("log")
    started, body, flake, real_fail = d.get("started", e["ts"]), None, False, False
    if log:
        m = re.search(r"-(\d{10,})\.log$", log)
        if m and "started" not in d:  # logs of wf before check_finished said when it started
            started = int(m.group(1)) / 1000
        try:
            text = Path(log).read_text(errors="replace")
        except OSError:
            text = ""
        stamps = {k: float(v) for k, v in _STAMP.findall(text)}
        if "START" in stamps and "END" in stamps:
            body = (stamps["START"], stamps["END"])
        flake = "\nFLAKE " in "\n" + text
        real_fail = "\nFAIL " in "\n" + text
    return CheckRun(d["tree"].split("/")[0], d["result"], d.get("size"), d.get("entries") or [],
                    started, e["ts"], body, flake, real_fail)


def union(intervals: list[tuple[float, float]], lo: float, hi: float) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted((max(a, lo), min(b, hi)) for a, b in intervals):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def length(intervals: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in intervals)


def complement(intervals: list[tuple[float, float]], lo: float, hi: float
               ) -> list[tuple[float, float]]:
    out, at = [], lo
    for a, b in union(intervals, lo, hi):
        if a > at:
            out.append((at, a))
        at = max(at, b)
    if hi > at:
        out.append((at, hi))
    return out


def clipped(span: tuple[float, float], gaps: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(span[1], b) - max(span[0], a)) for a, b in gaps)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[int(q * (len(v) - 1))]  # as bench/mqsim.py


# -- one wf run --------------------------------------------------------------------------------
@dataclass
class Result:
    side: str
    scenario: str
    seed: int
    wall: float = 0.0  # seconds
    runs: int = 0
    landed: int = 0
    evicted: dict[str, int] = field(default_factory=dict)
    false_rejects: int = 0
    flake_fails: int = 0
    p95: float | None = None  # seconds
    overhead: dict[str, float] = field(default_factory=dict)  # seconds, by cause
    breaches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sim: dict[str, float] = field(default_factory=dict)  # bench/mqsim.py on the same branches


def planner_alone(sc: mqrepo.Scenario, parallel: int, stream: bool, blame: bool = True
                  ) -> dict[str, float]:
    """bench/mqsim.py on this very sequence of branches: the planner with free overhead, in T
    (rounds) and check runs. The later half of a textual pair is left out: wf evicts it while
    building the chain, without a check run."""
    import mqsim

    kinds, seen = [], set()
    for b in sc.branches:
        if b.kind == "text":
            if b.pair in seen:
                continue
            seen.add(b.pair)
            kinds.append("good")
        elif b.kind == "sem":
            kinds.append(("sem", b.pair, b.role))
        else:
            kinds.append(b.kind)
    arrivals = [i / ARRIVALS_PER_T for i in range(len(kinds))] if stream else None
    return mqsim.simulate(kinds, parallel, sc.flake, sc.seed, max_batch=50, arrivals=arrivals,
                          blame=blame)


def write_config(repo: Path, parallel: int, blame: bool = True) -> None:
    check = json.dumps([sys.executable, "check.py"])
    (repo / "wf.toml").write_text(
        f"[merge]\ncheck = [{check}]\nmax_parallel_checks = {parallel}\n"
        + ("" if blame else "blame = false\n"))


def run_wf(sc: mqrepo.Scenario, work: Path, parallel: int, T: float, stream: bool,
           blame: bool = True) -> Result:
    from wf import api
    from wf.model import SignalKind

    repo = work / "repo"
    base = mqrepo.build(sc, repo)
    write_config(repo, parallel, blame)
    mqrepo.set_flake(repo, sc.flake, sc.seed)
    handle = api.open_repo(repo)

    def enqueue(b: mqrepo.Branch) -> None:  # what `wf queue add --branch agent/i` does
        api.send_signal(handle, SignalKind.ENQUEUE, b.entry, branch=b.name)

    res = Result("wf", sc.name, sc.seed)
    engine_runs: list[tuple[float, float, int]] = []

    def engine() -> None:
        t0 = time.time()
        proc = subprocess.run([*wf_argv(), "resume", "--json"], check=False, cwd=repo, env=wf_env(),
                              capture_output=True, text=True, timeout=WF_TIMEOUT)
        engine_runs.append((t0, time.time(), proc.returncode))
        if proc.returncode not in (0, 1) or "Traceback" in proc.stderr:
            raise BenchError(f"wf resume exited {proc.returncode}: {proc.stderr[-2000:]}")

    if not stream:
        for b in sc.branches:
            enqueue(b)
        engine()
    else:
        started = threading.Event()
        failure: list[BaseException] = []

        def feed() -> None:
            try:
                t0 = time.time()
                for i, b in enumerate(sc.branches):
                    delay = t0 + i * T / ARRIVALS_PER_T - time.time()
                    if delay > 0:
                        time.sleep(delay)
                    enqueue(b)
                    if i == ARRIVALS_PER_T - 1:
                        started.set()
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                failure.append(exc)
            finally:
                started.set()

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        started.wait()
        deadline = time.time() + WF_TIMEOUT
        while True:
            engine()
            if failure:
                raise BenchError(f"the feeder failed: {failure[0]!r}")
            if not feeder.is_alive() and not unsettled(repo):
                break
            if time.time() > deadline:
                raise BenchError("S6 did not settle in time")
        res.notes.append(f"engine started {len(engine_runs)}x")
        down = sum(b[0] - a[1] for a, b in itertools.pairwise(engine_runs))
        res.overhead["engine down"] = down
    analyze(sc, repo, base, read_events(repo), res, stream=stream)
    res.sim = planner_alone(sc, parallel, stream, blame)
    for row in api.queue_status(handle):  # what `wf queue --json` reports
        if row["state"] == "landed" and not (row["head"] and git_ok(
                repo, "merge-base", "--is-ancestor", row["head"], "main")):
            res.breaches.append(f"wf queue reports {row['task_id']} landed, but its head "
                                f"{str(row['head'])[:10]} is not on main")
    check_final_tree(repo, work, res)
    return res


def unsettled(repo: Path) -> bool:
    """Entries still to be decided: enqueue signals not handled yet, or entries pending/queued."""
    events = read_events(repo)
    sent = {e["seq"] for e in events if e["type"] == "signal.sent"}
    handled = {e["data"].get("signal_seq") for e in events if e["type"] == "signal.handled"}
    if sent - handled:
        return True
    state: dict[str, str] = {}
    for e in events:
        if e["type"] in ("queue.entered", "queue.admitted"):
            state[entry_of(e)] = "open"
        elif e["type"] in ("queue.landed", "queue.evicted", "queue.removed"):
            state[entry_of(e)] = "closed"
    return "open" in state.values()


def git_ok(repo: Path, *args: str) -> bool:
    return subprocess.run(["git", *args], check=False, cwd=repo, capture_output=True,
                          env=mqrepo.git_env()).returncode == 0


def analyze(sc: mqrepo.Scenario, repo: Path, base: str, events: list[dict[str, Any]],
            res: Result, *, stream: bool) -> None:
    by_entry = {b.entry: b for b in sc.branches}
    sent = {e["data"]["task"]: e["ts"] for e in events
            if e["type"] == "signal.sent" and e["data"].get("kind") == "enqueue"}
    landed: dict[str, dict] = {}
    evicted: dict[str, dict] = {}
    state: dict[str, str] = {}
    for e in events:
        tid = entry_of(e)
        if e["type"] == "queue.landed":
            if tid in landed:
                res.breaches.append(f"{tid} landed twice")
            landed[tid] = e
            state[tid] = "landed"
        elif e["type"] == "queue.evicted":
            evicted[tid] = e
            state[tid] = "evicted"
        elif e["type"] in ("queue.entered", "queue.admitted"):
            state[tid] = e["type"].split(".")[1]
    checks = [parse_check(e) for e in events if e["type"] == "queue.check_finished"]
    res.runs = len(checks)
    res.landed = len(landed)
    res.flake_fails = sum(1 for c in checks if c.result == "fail" and c.flake)
    for e in evicted.values():
        res.evicted[e["data"]["kind"]] = res.evicted.get(e["data"]["kind"], 0) + 1

    # -- invariants: every entry decided, truthfully ------------------------------------------
    for b in sc.branches:
        if b.entry not in state:
            res.breaches.append(f"{b.entry} never entered the queue")
        elif state[b.entry] not in ("landed", "evicted"):
            res.breaches.append(f"{b.entry} left {state[b.entry]}")
    for tid, e in landed.items():
        b = by_entry.get(tid)
        if b is None:
            res.breaches.append(f"unknown entry {tid} landed")
            continue
        if b.kind == "bad":
            res.breaches.append(f"bad branch {b.name} landed")
        head = mqrepo.git(repo, "rev-parse", b.name)
        if not git_ok(repo, "merge-base", "--is-ancestor", head, "main"):
            res.breaches.append(f"{tid} reported landed but {head[:10]} is not on main")
    pairs: dict[str, list[mqrepo.Branch]] = {}
    for b in sc.branches:
        if b.pair:
            pairs.setdefault(b.pair, []).append(b)
    for pid, group in pairs.items():
        if all(g.entry in landed for g in group):
            res.breaches.append(f"both halves of {pid} landed")
    fails_by_tree: dict[str, list[CheckRun]] = {}
    for c in checks:
        if c.result == "fail":
            fails_by_tree.setdefault(c.tree, []).append(c)
    for tid, e in evicted.items():
        b = by_entry[tid]
        kind, tree = e["data"].get("kind"), e["data"].get("tree")
        runs = fails_by_tree.get(tree or "", [])
        only_flakes = bool(runs) and all(r.flake and not r.real_fail for r in runs)
        partner = next((g for g in pairs.get(b.pair or "", []) if g is not b), None)
        ahead = partner is not None and partner.index < b.index and (
            partner.entry in landed or (partner.entry in evicted
                                        and evicted[partner.entry]["seq"] > e["seq"]))
        why = f"{tid} ({b.kind}{'/' + b.role if b.role else ''}) evicted as {kind}"
        if kind == "check" and not runs:
            res.breaches.append(f"{why} with no failed check of its tree")
        elif b.kind == "bad":
            if kind != "check":
                res.breaches.append(why)
        elif b.kind == "text" and kind == "conflict":
            if not ahead:
                res.breaches.append(f"{why} but its partner was not ahead of it")
        elif b.kind == "sem" and kind == "check" and ahead and not only_flakes:
            pass  # the union of the pair fails: the true reason
        elif kind == "check" and only_flakes:
            res.false_rejects += 1  # a good change rejected by flakes only
        else:
            res.breaches.append(f"{why}: not its true reason"
                                + (" (its tree failed for real)" if runs else ""))

    # -- the reflog holds only tested trees ---------------------------------------------------
    passed = {c.tree for c in checks if c.result == "pass"}
    reflog = mqrepo.git(repo, "reflog", "--format=%H", "refs/heads/main").split()
    for commit in reflog:
        if commit == base:
            continue
        tree = mqrepo.git(repo, "rev-parse", f"{commit}^{{tree}}")
        if tree not in passed:
            res.breaches.append(f"main moved to {commit[:10]} whose tree {tree[:10]} "
                                "never passed the check")

    # -- wall, latency, where the time went ---------------------------------------------------
    queue_types = ("queue.landed", "queue.evicted", "queue.target_moved")
    end = max((e["ts"] for e in events if e["type"] in queue_types), default=None)
    runs_started = [e["ts"] for e in events if e["type"] == "run.started"]
    start = min(sent.values()) if stream else min(runs_started, default=None)
    if start is None or end is None:
        raise BenchError("no run or no queue event in the log")
    res.wall = end - start
    if stream:
        lat = [landed[t]["ts"] - sent[t] for t in landed if t in sent]
        res.p95 = percentile(lat, 0.95)
    head, tail = CHECK_EDGES
    body = union([(max(c.started, c.body[0] - head), min(c.finished, c.body[1] + tail))
                  for c in checks if c.body], start, end)
    slot = union([(c.started, c.finished) for c in checks], start, end)
    gaps = complement(slot, start, end)
    ov = res.overhead
    ov["check machinery"] = length(slot) - length(body)
    first_check = min((c.started for c in checks), default=end)
    startup = (start, max(start, first_check))
    ov.setdefault("engine down", 0.0)
    if not stream:
        last = {t: max([e["ts"] for e in events if e["type"] == t and e["ts"] <= first_check]
                       or [start]) for t in ("signal.handled", "queue.admitted")}
        sig_end = min(max(start, last["signal.handled"]), startup[1])
        adm_end = min(max(sig_end, last["queue.admitted"]), startup[1])
        ov["start: signals"] = sig_end - start
        ov["start: admission"] = adm_end - sig_end
        ov["start: first chain+plan"] = startup[1] - adm_end
    else:
        ov["start: first chain+plan"] = startup[1] - start
    later_gaps = [g for g in gaps if g[0] >= startup[1]]
    req = {}
    land_spans = []
    for e in events:
        if e["type"] == "queue.land_requested":
            req[e["data"]["new"]] = e["ts"]
        elif e["type"] == "queue.target_moved" and e["data"]["new"] in req:
            land_spans.append((req[e["data"]["new"]], e["ts"]))
    ov["rounds: landing"] = sum(clipped(s, later_gaps) for s in land_spans)
    # admission of entries that arrived later: wf admits one entry at a time and appends its
    # verdict, so each admission costs about the time since the event before it
    adm_time = 0.0
    for prev, e in itertools.pairwise(events):
        if e["type"] == "queue.admitted" and e["ts"] > startup[1]:
            adm_time += clipped((max(prev["ts"], e["ts"] - 0.1), e["ts"]), later_gaps)
    ov["rounds: admission"] = min(adm_time, length(later_gaps) - ov["rounds: landing"])
    rest = length(later_gaps) - ov["rounds: landing"] - ov["rounds: admission"]
    # gaps in which an entry was evicted: the chain is rebuilt from the evicted entry on
    ev_ts = [e["ts"] for e in events if e["type"] == "queue.evicted" and e["ts"] > startup[1]]
    ev_gaps = [g for g in later_gaps if any(g[0] <= t <= g[1] for t in ev_ts)]
    ev_time = length(ev_gaps) - sum(clipped(s, ev_gaps) for s in land_spans)
    ov["rounds: after eviction"] = min(rest, ev_time)
    ov["rounds: other gaps"] = rest - ov["rounds: after eviction"]
    ov["_evgaps"] = len(ev_gaps)
    ov["_gaps"] = len(later_gaps)
    ov["_run_T"] = statistics.median([c.body[1] - c.body[0] + head + tail
                                      for c in checks if c.body] or [float("nan")])
    ov["_check"] = length(body)
    # a culprit re-check or a narrowing round that ran fewer checks than slots
    res.notes.append(f"check runs {res.runs} ({res.flake_fails} flake fails), rounds "
                     f"{len(later_gaps) + 1}")


def check_final_tree(repo: Path, work: Path, res: Result) -> None:
    final = work / "final"
    mqrepo.git(repo, "worktree", "add", "-q", "--detach", str(final), "main")
    env = {**mqrepo.git_env(), "MQ_NOFLAKE": "1"}
    proc = subprocess.run([sys.executable, "check.py"], check=False, cwd=final, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        res.breaches.append(f"the final tree fails its check: {proc.stdout[-500:]}")
    mqrepo.git(repo, "worktree", "remove", "--force", str(final))


# -- the naive queue ---------------------------------------------------------------------------
def run_naive(sc: mqrepo.Scenario, work: Path, T: float, stream: bool) -> Result:
    repo = work / "repo"
    mqrepo.build(sc, repo)
    mqrepo.set_flake(repo, sc.flake, sc.seed)
    scratch = work / "scratch"
    mqrepo.git(repo, "worktree", "add", "-q", "--detach", str(scratch), "main")
    res = Result("naive", sc.name, sc.seed)
    env = mqrepo.git_env()
    in_check = 0.0
    land_at: dict[int, float] = {}
    landed: set[str] = set()
    t0 = time.time()
    for b in sc.branches:
        target = mqrepo.git(repo, "rev-parse", "main")
        mqrepo.git(scratch, "checkout", "-q", "-f", "--detach", target)
        merge = subprocess.run(["git", "merge", "-q", "--no-ff", "--no-edit", b.name],
                               check=False, cwd=scratch, capture_output=True, text=True, env=env)
        if merge.returncode != 0:
            mqrepo.git(scratch, "merge", "--abort", check=False)
            res.evicted["conflict"] = res.evicted.get("conflict", 0) + 1
            continue
        tree = mqrepo.git(scratch, "rev-parse", "HEAD^{tree}")
        proc = subprocess.run([sys.executable, "check.py"], check=False, cwd=scratch,
                              capture_output=True, text=True, env={**env, "WF_CHECK_TREE": tree})
        res.runs += 1
        stamps = {k: float(v) for k, v in _STAMP.findall(proc.stdout)}
        if "START" in stamps and "END" in stamps:
            in_check += stamps["END"] - stamps["START"]
        if proc.returncode == 0:
            mqrepo.git(repo, "update-ref", "refs/heads/main",
                       mqrepo.git(scratch, "rev-parse", "HEAD"), target)
            land_at[b.index] = time.time() - t0
            landed.add(b.entry)
        else:
            res.evicted["check"] = res.evicted.get("check", 0) + 1
            if "\nFLAKE " in "\n" + proc.stdout:  # drawn only when the tests passed
                res.flake_fails += 1
                res.false_rejects += 1
    res.wall = time.time() - t0
    res.landed = len(land_at)
    res.overhead = {"_check": in_check}
    if stream:
        # the naive queue never waits for an arrival (a run takes T, entries come every T/3),
        # so the loop run back to back gives each entry's landing time; it arrived at i*T/3
        lat = [t - (i - 1) * T / ARRIVALS_PER_T for i, t in land_at.items()]
        res.p95 = percentile(lat, 0.95)
    return res


# -- T -----------------------------------------------------------------------------------------
def measure_T(work: Path, n: int = 7) -> float:
    sc = mqrepo.scenario("S1", 0)
    repo = work / "t-repo"
    mqrepo.build(sc, repo)
    env = mqrepo.git_env()  # no flake file: the check does what it does in a queue with p = 0
    times, heads, tails = [], [], []
    for _ in range(n + 1):
        t0 = time.time()
        proc = subprocess.run([sys.executable, "check.py"], check=False, cwd=repo, env=env,
                              capture_output=True, text=True)
        t1 = time.time()
        times.append(t1 - t0)
        if proc.returncode != 0:
            raise BenchError(f"check.py fails on the base: {proc.stdout[-1000:]}")
        stamps = {k: float(v) for k, v in _STAMP.findall(proc.stdout)}
        heads.append(stamps["START"] - t0)
        tails.append(t1 - stamps["END"])
    shutil.rmtree(repo)
    # the first is a cold start; the interpreter's start and exit belong to the check's cost
    CHECK_EDGES[:] = [statistics.median(heads[1:]), statistics.median(tails[1:])]
    return statistics.median(times[1:])


# -- report ------------------------------------------------------------------------------------
def fmt(v: float | None, nd: int = 1) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def summarize(name: str, wf: list[Result], naive: list[Result], T: float
              ) -> tuple[list[str], list[tuple[str, bool | None, str]]]:
    lines, verdicts = [], []
    tgt = TARGETS.get(name, {})

    def row(label: str, vals: list[float], nvals: list[float], target: str = "", nd: int = 1
            ) -> None:
        w = (f"{fmt(statistics.mean(vals), nd):>7} {fmt(max(vals), nd):>7}" if vals
             else f"{'-':>7} {'-':>7}")
        n = (f"{fmt(statistics.mean(nvals), nd):>7} {fmt(max(nvals), nd):>7}" if nvals
             else f"{'-':>7} {'-':>7}")
        lines.append(f"  {label:<26}{w}   {n}   {target}")

    lines.append(f"{name}  ({len(wf)} seeds)            wf mean     max   naive mean  max   "
                 "target")
    row("wall (T)", [r.wall / T for r in wf], [r.wall / T for r in naive],
        f"<= {tgt['T']:g} T" if "T" in tgt else "")
    row("planner alone (mqsim, T)", [r.sim["T"] for r in wf], [])
    row("check runs", [r.runs for r in wf], [r.runs for r in naive],
        f"<= {tgt['runs']:g}" if "runs" in tgt else "")
    row("  planner alone (mqsim)", [r.sim["runs"] for r in wf], [])
    row("landed", [r.landed for r in wf], [r.landed for r in naive])
    row("evicted: check", [r.evicted.get("check", 0) for r in wf],
        [r.evicted.get("check", 0) for r in naive])
    row("evicted: conflict", [r.evicted.get("conflict", 0) for r in wf],
        [r.evicted.get("conflict", 0) for r in naive])
    row("flake failures", [r.flake_fails for r in wf], [r.flake_fails for r in naive])
    row("false rejections", [r.false_rejects for r in wf], [r.false_rejects for r in naive],
        f"<= {tgt['false']:g} mean" if "false" in tgt else "", nd=2)
    if any(r.p95 is not None for r in wf):
        row("p95 time-to-land (T)", [r.p95 / T for r in wf if r.p95 is not None],
            [r.p95 / T for r in naive if r.p95 is not None],
            f"<= {tgt['p95']:g} T" if "p95" in tgt else "")
        row("  planner alone (mqsim)", [r.sim["p95"] for r in wf], [])
    share = [1 - r.overhead["_check"] / r.wall for r in wf if r.wall]
    nshare = [1 - r.overhead["_check"] / r.wall for r in naive if r.wall]
    row("overhead share (%)", [100 * s for s in share], [100 * s for s in nshare],
        f"<= {100 * OVERHEAD_TARGET:.0f}%")
    # where wf's non-check time went, in T per run (mean over seeds)
    keys = [k for k in wf[0].overhead if not k.startswith("_")
            and any(r.overhead.get(k) for r in wf)] if wf else []
    parts = ", ".join(f"{k} {statistics.mean(r.overhead.get(k, 0) for r in wf) / T:.2f}"
                      for k in keys)
    if wf:
        lines.append(f"  one check inside wf (median): "
                     f"{statistics.mean(r.overhead['_run_T'] for r in wf) / T:.2f} T")
        lines.append(f"  wf overhead in T per run: {parts}; rounds "
                     f"{statistics.mean(r.overhead['_gaps'] + 1 for r in wf):.1f} "
                     f"({statistics.mean(r.overhead['_evgaps'] for r in wf):.1f} after an "
                     "eviction)")
    for r in wf:
        if r.notes:
            lines.append(f"    seed {r.seed}: " + "; ".join(r.notes))

    def judge(label: str, value: float, limit: float, fmt_: str) -> None:
        verdicts.append((f"{name} {label}", value <= limit + 1e-9,
                         f"{fmt_.format(value)} (target <= {limit:g})"))

    if wf:
        if "T" in tgt:
            judge("wall", statistics.mean(r.wall / T for r in wf), tgt["T"], "{:.1f} T mean")
        if "runs" in tgt:
            judge("check runs", statistics.mean(r.runs for r in wf), tgt["runs"], "{:.1f} mean")
        if "false" in tgt:
            judge("false rejections", statistics.mean(r.false_rejects for r in wf), tgt["false"],
                  "{:.2f} mean")
        if "p95" in tgt:
            judge("p95 time-to-land", statistics.mean(r.p95 / T for r in wf), tgt["p95"],
                  "{:.1f} T mean")
        judge("overhead share", statistics.mean(share), OVERHEAD_TARGET, "{:.3f}")
    return lines, verdicts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--scenarios", default="S1,S2,S3,S4,S6")
    ap.add_argument("--parallel-checks", type=int, default=2)
    ap.add_argument("--no-blame", action="store_true",
                    help="[merge] blame = false: the queue does not read the checks' output")
    ap.add_argument("--quick", action="store_true", help="1 seed, S1 and S2 only")
    ap.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    ap.add_argument("--naive-seeds", type=int, default=1,
                    help="seeds the naive baseline runs for (its figures barely vary by seed)")
    ap.add_argument("--naive-jobs", type=int, default=1,
                    help="naive runs of different seeds at once (more than 1 slows each run)")
    ap.add_argument("--stream", type=int, default=200, help="S6: branches in the stream")
    ap.add_argument("--keep", action="store_true", help="keep the repositories")
    ap.add_argument("--dir", help="work here instead of a temporary directory")
    a = ap.parse_args(argv)
    if a.quick:
        a.seeds, a.scenarios = 1, "S1,S2"
    names = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    for name in names:
        if name not in TARGETS:
            ap.error(f"unknown scenario {name}")
    os.environ.update(mqrepo.GIT_ENV)  # the in-process enqueue runs git too
    for k in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):
        os.environ.pop(k, None)
    root = Path(tempfile.mkdtemp(prefix="mqbench-", dir=a.dir))
    breaches: list[str] = []
    try:
        t_start = time.time()
        T = measure_T(root)
        print(f"T = {T:.3f} s (median wall of one check.py run on the base); "
              f"max_parallel_checks = {a.parallel_checks}; blame {not a.no_blame}; "
              f"{a.seeds} seed(s); "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
        all_lines, all_verdicts = [], []
        for name in names:
            stream = name == "S6"
            scs = [mqrepo.scenario(name, seed, a.stream) for seed in range(a.seeds)]
            naive: list[Result] = []
            if not a.no_naive:
                with ThreadPoolExecutor(max(1, a.naive_jobs)) as pool:
                    naive = list(pool.map(
                        lambda sc, stream=stream: run_naive(
                            sc, root / f"naive-{sc.name}-{sc.seed}", T, stream),
                        scs[:max(1, a.naive_seeds)]))
                for r in naive:
                    print(f"  naive {name} seed {r.seed}: {r.wall / T:5.1f} T, {r.runs} runs, "
                          f"{r.landed} landed, {r.wall / max(r.runs, 1):.3f} s/run"
                          + (f", p95 {r.p95 / T:.1f} T" if r.p95 is not None else ""), flush=True)
            wf: list[Result] = []
            for sc in scs:
                work = root / f"wf-{name}-{sc.seed}"
                r = run_wf(sc, work, a.parallel_checks, T, stream, not a.no_blame)
                wf.append(r)
                print(f"  wf    {name} seed {sc.seed}: {r.wall / T:5.1f} T, {r.runs} runs, "
                      f"{r.landed} landed, evicted {r.evicted}, false rejects "
                      f"{r.false_rejects}, overhead {1 - r.overhead['_check'] / r.wall:.0%}"
                      + (f", p95 {r.p95 / T:.1f} T" if r.p95 is not None else "")
                      + (f"  BREACHES: {r.breaches}" if r.breaches else ""), flush=True)
                breaches += [f"{name} seed {sc.seed}: {b}" for b in r.breaches]
                if not a.keep:
                    shutil.rmtree(work, ignore_errors=True)
            lines, verdicts = summarize(name, wf, naive, T)
            all_lines += lines + [""]
            all_verdicts += verdicts
        print()
        print("\n".join(all_lines))
        print("targets:")
        for label, ok, detail in all_verdicts:
            print(f"  {'PASS' if ok else 'FAIL'}  {label}: {detail}")
        print("invariants: " + ("all held" if not breaches else f"{len(breaches)} BREACHED"))
        for b in breaches:
            print(f"  BREACH {b}")
        T_end = measure_T(root)
        print(f"(bench wall {time.time() - t_start:.0f} s; T re-measured at the end "
              f"{T_end:.3f} s; load average {os.getloadavg()[0]:.2f})")
    except BenchError as exc:
        print(f"benchmark broke: {exc}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001 - a crash of the run itself
        traceback.print_exc()
        return 2
    finally:
        if a.keep:
            print(f"kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())
