"""wf's overhead per task against the floor: a plain script doing the same git work.

    python bench/overhead.py [--tasks 200] [--files 5000] [--parallel 4] [--repeat 1]
                             [--dir PATH] [--keep] [--deferred-floor] [--profile] [--pool N]

Both sides start from identical copies of one generated repository (``--files`` small files
over many folders, one commit) and run ``--tasks`` tasks of the same no-op agent (``sh -c 'echo x
> out.txt'``: the least that counts as work, since an empty change is a ``no_changes`` failure)
``--parallel`` at a time:

* floor: a ThreadPoolExecutor that, per task, does ``git worktree add -b floor/<i>``, runs the
  agent, ``git add -A`` + ``git commit``, ``git worktree remove``; add and remove are serialized
  under a lock, as wf does (concurrent adds race on ``.git/worktrees/<n>/commondir``);
* wf: the engine in-process through ``wf.api`` (``run`` then ``clean``), in a child Python
  process that does nothing else, so its ``ru_maxrss`` is the wf process's peak RSS.

Prints the figures, a PASS/FAIL table against the targets (wall ≤ 1.25 × floor, peak RSS ≤
150 MB) and where each side's time goes per task. A benchmark, not a test: it exits 0 whatever
the verdict, and non-zero only when a run itself broke (a task not ``done``, a git error).

``--dir /dev/shm`` keeps the disk out of the figures (on a small VM its writeback noise swamps
everything else); ``--deferred-floor`` adds the floor with wf's lifecycle (every worktree kept
until the end, then removed one by one), which separates what that lifecycle costs from what
wf itself costs; ``--profile`` times every git command, lock and spawn wf makes, by phase and
caller (the figures are then slightly inflated). ``--pool N`` runs wf's side with
``[worktrees] pool = N`` and ``return_on_success`` (each task's worktree goes back to the pool
when it succeeds, the next task takes it), ending with ``wf pool drain`` so that, like the
floor, it leaves no worktree; its target is 1.0× (issue 16).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

RATIO_TARGET = 1.25
POOL_RATIO_TARGET = 1.0  # with --pool (issue 16)
RSS_TARGET_MB = 150.0
AGENT = ["sh", "-c", "echo x > out.txt"]
FLOOR_BRANCH = "floor/"

# Variables that would point git at another repository (set when run from a git hook).
_REPO_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR",
              "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_PREFIX",
              "GIT_CONFIG", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT")


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds of this process, of its waited-for descendants), user + system."""
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


class BenchError(Exception):
    """The run itself broke: no figure is meaningful."""


def hermetic_env() -> dict[str, str]:
    """Our environment with git's user/system config shut out, a pinned identity, and no WF_*
    variable (they would override the tasks file's configuration)."""
    env = {k: v for k, v in os.environ.items()
           if k not in _REPO_VARS and not k.startswith("WF_")}
    env.update(GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0")
    for role in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{role}_NAME"] = "wf bench"
        env[f"GIT_{role}_EMAIL"] = "bench@wf.invalid"
    return env


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise BenchError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
    return proc.stdout.strip()


# -- the repository ----------------------------------------------------------------------------
def generate_repo(path: Path, n_files: int) -> None:
    """``n_files`` small files, 50 to a folder in two levels of folders, in one commit."""
    path.mkdir(parents=True)
    for i in range(n_files):
        folder = path / "src" / f"pkg{i // 1000:02d}" / f"mod{(i // 50) % 20:02d}"
        if i % 50 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{i:05d}.txt").write_text(f"file {i}\n" + "lorem ipsum dolor\n" * 3)
    (path / "README.md").write_text("# bench repository\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", f"{n_files} files")


def copy_repo(template: Path, dest: Path) -> Path:
    """An identical, independent copy (`cp -a`, so both sides start with the same index)."""
    dest.mkdir(parents=True)
    subprocess.run(["cp", "-a", str(template), str(dest / "repo")], check=True)
    return dest / "repo"


# -- the floor ---------------------------------------------------------------------------------
def run_floor(repo: Path, n_tasks: int, parallel: int, deferred: bool = False) -> dict[str, Any]:
    """The same git work as wf, by the plainest script; seconds per step, summed over tasks.
    ``deferred``: wf's lifecycle instead, every worktree kept until all tasks ran, then removed
    one after the other (as ``wf clean`` does)."""
    wt_root = repo.parent / f"{repo.name}.worktrees"
    wt_root.mkdir()
    lock = threading.Lock()
    steps: dict[str, float] = defaultdict(float)
    steps_guard = threading.Lock()

    def timed(name: str, t0: float) -> float:
        t1 = time.perf_counter()
        with steps_guard:
            steps[name] += t1 - t0
        return t1

    def one(i: int) -> None:
        path = wt_root / f"t{i:04d}"
        t = time.perf_counter()
        with lock:
            t = timed("lock wait (add)", t)
            git(repo, "worktree", "add", "--quiet", "-b", f"{FLOOR_BRANCH}t{i:04d}", str(path),
                "HEAD")
        t = timed("worktree add", t)
        proc = subprocess.run(AGENT, cwd=path, stdin=subprocess.DEVNULL, check=False)
        if proc.returncode != 0:
            raise BenchError(f"floor agent exited {proc.returncode} in {path}")
        t = timed("agent", t)
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"floor: t{i:04d}")
        t = timed("add + commit", t)
        if deferred:
            return
        with lock:
            t = timed("lock wait (remove)", t)
            git(repo, "worktree", "remove", str(path))
        timed("worktree remove", t)

    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for fut in [pool.submit(one, i) for i in range(n_tasks)]:
            fut.result()
    if deferred:
        t = time.perf_counter()
        for i in range(n_tasks):
            git(repo, "worktree", "remove", str(wt_root / f"t{i:04d}"))
        timed("worktree remove, all at the end", t)
    wall = time.perf_counter() - t0
    cpu1 = cpu_seconds()
    commits = git(repo, "for-each-ref", "--count", str(n_tasks + 1), f"refs/heads/{FLOOR_BRANCH}")
    n_branches = len(commits.splitlines())
    if n_branches != n_tasks or any(wt_root.iterdir()):
        raise BenchError(f"floor left {n_branches} branches (want {n_tasks}) "
                         f"and {len(list(wt_root.iterdir()))} worktrees (want 0)")
    return {"wall": wall, "steps": dict(steps), "cpu_self": cpu1[0] - cpu0[0],
            "cpu_children": cpu1[1] - cpu0[1]}


# -- wf ----------------------------------------------------------------------------------------
def tasks_toml(n_tasks: int, parallel: int, extra: str = "", pool: int = 0) -> str:
    """The tasks file; ``extra``: more of its top-level settings (bench/hooks.py's
    ``[[hooks]]``), TOML placed before its tables; ``pool``: warm worktrees."""
    lines = [f"max_parallel = {parallel}", extra, "[retry]", "maximum_attempts = 1", "",
             "[agents.noop]", f"command = {json.dumps(AGENT)}", ""]
    if pool:  # warm worktrees, each given back as soon as its task succeeded
        lines += ["[worktrees]", f"pool = {pool}", "return_on_success = true", ""]
    for i in range(n_tasks):
        lines += ["[[task]]", f'id = "t{i:04d}"', f'prompt = "no-op {i}"', 'agent = "noop"', ""]
    return "\n".join(lines)


class Profiler:
    """``--profile``: wraps wf's git runner, its repository lock and a few other blocking steps
    to total their time by phase (run / clean) and by who called them. Costs a few µs a call."""

    def __init__(self) -> None:
        self.phase = "plan"
        self.stats: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        self.guard = threading.Lock()

    def add(self, key: str, seconds: float) -> None:
        with self.guard:
            row = self.stats[f"{self.phase}|{key}"]
            row[0] += 1
            row[1] += seconds

    def install(self) -> None:
        from contextlib import contextmanager

        from wf import gitx
        from wf.agents import process
        from wf.gitx import commands, commits, refs, worktrees
        from wf.worktrees import manager

        real_git, real_lock = gitx.run_git, manager.repo_lock
        prof = self

        def caller() -> str:
            """The gitx function called and the first wf function outside gitx that called it."""
            f: Any = sys._getframe(2)
            inner = f.f_code.co_name
            while f is not None and str(f.f_globals.get("__name__", "")).startswith("wf.gitx."):
                inner = f.f_code.co_name  # the outermost gitx function, not a helper like output
                f = f.f_back
            while f is not None and not str(f.f_globals.get("__name__", "")).startswith("wf."):
                f = f.f_back  # through anyio's worker thread, when called via to_thread
            outer = f.f_code.co_name if f is not None else inner
            return f"{outer}>{inner}" if outer != inner else inner

        def run_git(args: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return real_git(args, **kw)
            finally:
                prof.add(f"git {commands.command_name(args)} [{caller()}]", time.perf_counter() - t)

        @contextmanager
        def repo_lock(common_dir: Path, name: str, *, shared: bool = False) -> Any:
            f = sys._getframe(2)  # _lock -> its caller
            site = f.f_code.co_name + (", shared" if shared else "")
            t = time.perf_counter()
            with real_lock(common_dir, name, shared=shared):
                t1 = time.perf_counter()
                prof.add(f"lock {name} wait [{site}]", t1 - t)
                try:
                    yield
                finally:
                    prof.add(f"lock {name} held [{site}]", time.perf_counter() - t1)

        def timed(module: Any, name: str) -> None:
            real = getattr(module, name)

            def wrapper(*a: Any, **kw: Any) -> Any:
                t = time.perf_counter()
                try:
                    return real(*a, **kw)
                finally:
                    prof.add(f"py {name}", time.perf_counter() - t)
            setattr(module, name, wrapper)

        for module in (gitx, commands, commits, refs, worktrees):  # each imports it by name
            module.run_git = run_git
        manager.repo_lock = repo_lock
        timed(manager, "stop_processes_in")
        timed(manager, "copy_included_files")
        timed(process, "spawn")


def wf_child(repo: Path, tasks_file: Path, profile: bool = False, pool: int = 0
             ) -> dict[str, Any]:
    """Run in the child process: the wf side alone, in-process, and its figures."""
    import resource
    import sqlite3

    from wf import api, task_input

    prof = Profiler() if profile else None
    if prof:
        prof.install()
    t0 = time.perf_counter()
    repo_obj = api.open_repo(repo)
    repo_obj, specs = task_input.plan_tasks_file(repo_obj, tasks_file)
    t1, c1 = time.perf_counter(), cpu_seconds()
    if prof:
        prof.phase = "run"
    result = api.run(repo_obj, specs, command="bench")
    t2, c2 = time.perf_counter(), cpu_seconds()
    if prof:
        prof.phase = "clean"
    report = api.clean(repo_obj, [])
    if pool:  # the floor leaves no worktree behind: neither does wf's side
        report += [{"result": "worktree removed" if r["result"] == "removed" else r["result"]}
                   for r in api.pool_drain(repo_obj)]
    t3, c3 = time.perf_counter(), cpu_seconds()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    con = sqlite3.connect(f"file:{repo_obj.db_path}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT stream, type, ts FROM events ORDER BY seq").fetchall()
        states = dict(con.execute("SELECT id, state FROM tasks").fetchall())
    finally:
        con.close()
    return {
        "plan": t1 - t0, "run": t2 - t1, "clean": t3 - t2, "rss_kib": rss_kib,
        "cpu_self": c3[0] - c1[0], "cpu_children": c3[1] - c1[1],
        "cpu_run": (c2[0] - c1[0], c2[1] - c1[1]), "cpu_clean": (c3[0] - c2[0], c3[1] - c2[1]),
        "exit_code": result.exit_code, "states": states,
        "removed": sum(1 for r in report if r["result"].startswith("worktree removed")),
        "events": [list(r) for r in rows],
        "profile": dict(prof.stats) if prof else None,
    }


def run_wf(repo: Path, n_tasks: int, parallel: int, env: dict[str, str],
           profile: bool = False, extra: str = "", pool: int = 0) -> dict[str, Any]:
    tasks_file = repo.parent / "tasks.toml"  # outside the repo: the main worktree stays clean
    tasks_file.write_text(tasks_toml(n_tasks, parallel, extra, pool))
    argv = [sys.executable, str(Path(__file__).resolve()), "--wf-only", str(repo), str(tasks_file),
            *(["--profile"] if profile else []), "--pool", str(pool)]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    process_wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise BenchError(f"the wf child failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall"] = process_wall
    bad = {t: s for t, s in out["states"].items() if s != "done"}
    if len(out["states"]) != n_tasks or bad or out["exit_code"] != 0:
        raise BenchError(f"wf: {len(out['states'])} tasks (want {n_tasks}), exit code "
                         f"{out['exit_code']}, not done: {dict(list(bad.items())[:5])}")
    left = list((repo.parent / f"{repo.name}.worktrees").iterdir())
    if (out["removed"] != n_tasks and not pool) or left:
        raise BenchError(f"wf clean removed {out['removed']} worktrees (want {n_tasks}); "
                         f"{len(left)} left")
    out["wall"] = out["run"] + out["clean"]
    return out


def wf_phases(events: list[list[Any]]) -> tuple[dict[str, float], int]:
    """Seconds between consecutive events of each task stream, summed over tasks and keyed by
    ``"A -> B"``; and the number of tasks seen."""
    by_stream: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for stream, type_, ts in events:
        if stream.startswith(("task:", "task-")):
            by_stream[stream].append((type_, ts))
    if not by_stream:  # unknown stream naming: fall back to anything not run/signals
        for stream, type_, ts in events:
            if stream not in ("run", "signals"):
                by_stream[stream].append((type_, ts))
    sums: dict[str, float] = defaultdict(float)
    for evs in by_stream.values():
        for (a, ta), (b, tb) in itertools.pairwise(evs):
            if a == "task.submitted" or b == "task.cleaned":
                continue  # queueing time, and the gap between run and clean
            sums[f"{a} -> {b}"] += tb - ta
    return dict(sums), len(by_stream)


def settle(limit_mb: float = 32.0, timeout: float = 120.0) -> None:
    """Flush the page cache's dirty data and wait for writeback to drain, so neither side pays
    for the files the other left behind (deleting a million files keeps ext4 busy for a while)."""
    deadline = time.monotonic() + timeout
    while True:
        os.sync()
        try:
            with open("/proc/meminfo") as f:
                info = {line.split(":")[0]: int(line.split()[1]) for line in f}
            pending_mb = (info.get("Dirty", 0) + info.get("Writeback", 0)) / 1024
        except (OSError, ValueError, IndexError):
            return
        if pending_mb <= limit_mb or time.monotonic() > deadline:
            return
        time.sleep(0.5)


# -- reporting ---------------------------------------------------------------------------------
def one_round(template: Path, root: Path, k: int, args: argparse.Namespace,
              env: dict[str, str]) -> dict[str, Any]:
    floor_repo = copy_repo(template, root / f"floor-{k}")
    wf_repo = copy_repo(template, root / f"wf-{k}")
    sides = [("floor", lambda: run_floor(floor_repo, args.tasks, args.parallel)),
             ("wf", lambda: run_wf(wf_repo, args.tasks, args.parallel, env, args.profile,
                                  pool=args.pool))]
    if args.deferred_floor:
        deferred_repo = copy_repo(template, root / f"deferred-{k}")
        sides.append(("deferred", lambda: run_floor(deferred_repo, args.tasks, args.parallel,
                                                    deferred=True)))
    if k % 2:  # alternate the order, so neither side always runs on a warmer cache
        sides.reverse()
    out = {}
    for name, fn in sides:
        settle()
        out[name] = fn()
    for name in ("floor", "wf", "deferred"):
        shutil.rmtree(root / f"{name}-{k}", ignore_errors=True)
    return out


def report(rounds: list[dict[str, Any]], args: argparse.Namespace) -> None:
    n, p = args.tasks, args.parallel
    med = statistics.median
    floor = med(r["floor"]["wall"] for r in rounds)
    wf_run = med(r["wf"]["run"] for r in rounds)
    wf_clean = med(r["wf"]["clean"] for r in rounds)
    wf_wall = med(r["wf"]["wall"] for r in rounds)
    ratio = med(r["wf"]["wall"] / r["floor"]["wall"] for r in rounds)
    rss = med(r["wf"]["rss_kib"] / 1024 for r in rounds)
    n_events = med(len(r["wf"]["events"]) for r in rounds)
    delta = (wf_wall - floor) / n

    print(f"\n{n} tasks, {args.files} files, parallel {p}, pool {args.pool}, "
          f"{len(rounds)} round(s), "
          f"{os.cpu_count()} CPUs; medians")
    print(f"  floor wall                {floor:8.2f} s   ({floor / n * 1000:6.1f} ms/task)")
    print(f"  wf wall (run + clean)     {wf_wall:8.2f} s   ({wf_wall / n * 1000:6.1f} ms/task)"
          f"   run {wf_run:.2f} s + clean {wf_clean:.2f} s")
    print(f"  wf child process wall     {med(r['wf']['process_wall'] for r in rounds):8.2f} s"
          f"   (interpreter + imports + planning included)")
    if "deferred" in rounds[0]:
        deferred = med(r["deferred"]["wall"] for r in rounds)
        vs = med(r["wf"]["wall"] / r["deferred"]["wall"] for r in rounds)
        print(f"  floor, wf's lifecycle     {deferred:8.2f} s   "
              f"({deferred / n * 1000:6.1f} ms/task)   every worktree kept, then removed one by "
              f"one; wf / this {vs:.2f}×")
    print(f"  wf overhead per task      {delta * 1000:+8.1f} ms wall"
          f"   (≈ {delta * p * 1000:+.0f} ms of one of the {p} slots)")
    print(f"  events in the log         {n_events:8.0f}     ({n_events / n:.1f} per task)")
    f_self = med(r["floor"]["cpu_self"] for r in rounds) / n * 1000
    f_kids = med(r["floor"]["cpu_children"] for r in rounds) / n * 1000
    w_self = med(r["wf"]["cpu_self"] for r in rounds) / n * 1000
    w_kids = med(r["wf"]["cpu_children"] for r in rounds) / n * 1000
    print(f"  CPU per task, floor       {f_self + f_kids:8.1f} ms   (script {f_self:.1f}, "
          f"git + agent {f_kids:.1f})")
    print(f"  CPU per task, wf          {w_self + w_kids:8.1f} ms   (wf process {w_self:.1f}, "
          f"git + shim + agent {w_kids:.1f}); {os.cpu_count()} CPUs for {p} slots")

    target = POOL_RATIO_TARGET if args.pool else RATIO_TARGET
    rows = [("wall ratio wf / floor", f"{ratio:.2f}×", f"≤ {target:.2f}×",
             ratio <= target),
            ("wf peak RSS", f"{rss:.1f} MB", f"≤ {RSS_TARGET_MB:.0f} MB", rss <= RSS_TARGET_MB)]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'figure':<{width}}  {'measured':>10}  {'target':>10}  result")
    for name, value, target, ok in rows:
        print(f"{name:<{width}}  {value:>10}  {target:>10}  {'PASS' if ok else 'FAIL'}")

    # Where the time goes, per task. Floor steps are timed around each call; wf phases are the
    # gaps between a task's consecutive events (worker time, so they overlap across slots).
    print(f"\nwhere the time goes, ms per task (summed over the {p} slots, not wall)")
    for side, label in (("floor", "floor"), ("deferred", "floor, wf's lifecycle")):
        if side not in rounds[0]:
            continue
        steps: dict[str, list[float]] = defaultdict(list)
        for r in rounds:
            for name, secs in r[side]["steps"].items():
                steps[name].append(secs / n * 1000)
        print(f"  {label}")
        for name, vals in steps.items():
            print(f"    {name:<44} {med(vals):8.1f}")
        print(f"    {'total':<44} {sum(med(v) for v in steps.values()):8.1f}")
    wsteps: dict[str, list[float]] = defaultdict(list)
    for r in rounds:
        sums, tasks = wf_phases(r["wf"]["events"])
        for name, secs in sums.items():
            wsteps[name].append(secs / max(tasks, 1) * 1000)
    print("  wf run (from event timestamps)")
    for name, vals in sorted(wsteps.items(), key=lambda kv: -med(kv[1])):
        print(f"    {name:<44} {med(vals):8.1f}")
    print(f"    {'total, started -> last event':<44} {sum(med(v) for v in wsteps.values()):8.1f}")
    print(f"  {'wf clean, wall per task (4 removals at a time)':<46} {wf_clean / n * 1000:8.1f}")
    if rounds[0]["wf"].get("profile"):
        print_profile(rounds, n)


def print_profile(rounds: list[dict[str, Any]], n: int) -> None:
    """Calls and ms per task of each profiled step, by phase, largest first (medians)."""
    keys = {k for r in rounds for k in r["wf"]["profile"]}
    rows = []
    for key in keys:
        vals = [r["wf"]["profile"].get(key, [0, 0.0]) for r in rounds]
        phase, name = key.split("|", 1)
        rows.append((phase, name, statistics.median(v[0] for v in vals) / n,
                     statistics.median(v[1] for v in vals) / n * 1000))
    print("\nwf profile: calls and ms per task (worker time; lock 'held' includes what runs "
          "under it)")
    for phase in ("plan", "run", "clean"):
        part = sorted((r for r in rows if r[0] == phase), key=lambda r: -r[3])
        if not part:
            continue
        git_total = sum(r[3] for r in part if r[1].startswith("git "))
        git_calls = sum(r[2] for r in part if r[1].startswith("git "))
        print(f"  {phase}: {git_calls:.1f} git commands per task, {git_total:.1f} ms")
        for _, name, calls, ms in part:
            print(f"    {name:<66} {calls:5.2f} {ms:8.1f}")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=positive, default=200)
    parser.add_argument("--files", type=positive, default=5000)
    parser.add_argument("--parallel", type=positive, default=4)
    parser.add_argument("--repeat", type=positive, default=1, help="rounds; medians are reported")
    parser.add_argument("--dir", type=Path, default=None, help="work here instead of a temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--deferred-floor", action="store_true",
                        help="also run the floor with wf's lifecycle (keep every worktree until "
                             "the end, then remove them one by one), to separate the cost of "
                             "that lifecycle from wf's own")
    parser.add_argument("--profile", action="store_true",
                        help="time wf's git commands, locks and spawns by phase and caller "
                             "(adds a little overhead; RSS and wall are then not the real figures)")
    parser.add_argument("--pool", type=int, default=0,
                        help="wf side with [worktrees] pool = N and return_on_success")
    parser.add_argument("--wf-only", nargs=2, metavar=("REPO", "TASKS"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.wf_only:  # the child: wf alone, figures as JSON on the last line of stdout
        print(json.dumps(wf_child(Path(args.wf_only[0]), Path(args.wf_only[1]), args.profile,
                                  args.pool)))
        return 0

    env = hermetic_env()
    os.environ.clear()
    os.environ.update(env)  # the floor's git and the copies run under the same environment
    root = Path(tempfile.mkdtemp(prefix="wf-bench-overhead-", dir=args.dir))
    try:
        t0 = time.perf_counter()
        generate_repo(root / "template" / "repo", args.files)
        print(f"generated a repository of {args.files} files in {time.perf_counter() - t0:.1f} s "
              f"({root})")
        rounds = []
        for k in range(args.repeat):
            rounds.append(one_round(root / "template" / "repo", root, k, args, env))
            r = rounds[-1]
            extra = (f", deferred floor {r['deferred']['wall']:.2f} s" if "deferred" in r else "")
            print(f"round {k + 1}: floor {r['floor']['wall']:.2f} s, wf {r['wf']['wall']:.2f} s "
                  f"(run {r['wf']['run']:.2f} + clean {r['wf']['clean']:.2f}), "
                  f"ratio {r['wf']['wall'] / r['floor']['wall']:.2f}, "
                  f"RSS {r['wf']['rss_kib'] / 1024:.1f} MB{extra}", flush=True)
        report(rounds, args)
    except BenchError as exc:
        print(f"bench broke: {exc}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
