"""Warm worktrees (issue 16): how fast a task gets a worktree from the pool, and what a warm
pool saves a run whose setup is slow.

    python bench/pool.py [--dir PATH] [--files 50000] [--samples 9]
                         [--tasks 20] [--setup-seconds 20] [--parallel 4] [--only ready|setup]

``ready``: a generated repository of ``--files`` small files (one commit); the time until a
worktree is ready for a task, p50 of ``--samples``:

* ``git worktree add -b``: git alone, the floor of a new worktree;
* wf without a pool: ``TaskActivities.ensure_worktree`` as the engine calls it;
* wf with a pool, the slot at the task's commit: the same activity, taking a warm worktree;
* wf with a pool, the base moved one commit since the slot was prepared (git writes the
  files that differ).

After each pooled sample the worktree is given back (``wf clean``'s path, not timed).

``setup``: ``--tasks`` tasks whose setup sleeps ``--setup-seconds`` (then "installs" a
lock file into ``node_modules``), at ``max_parallel = --parallel``, in one run of this script:
``wf run`` without a pool, then ``wf run`` with ``pool = --parallel``, ``return_on_success``
and the pool warmed first by ``wf pool warm`` (timed apart: a CI cache step). Target: the pool's
wall ≤ 0.3 × the other's.

``--dir`` must be on the disk to measure (not tmpfs): the filesystem type is printed. A
benchmark, not a test: it prints figures and exits 0 unless a run itself broke.
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
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import copy_repo, generate_repo, git, hermetic_env  # noqa: E402

READY_TARGET_MS = 100.0
SETUP_RATIO_TARGET = 0.3
AGENT = ["sh", "-c", "echo $WF_TASK_ID > out.txt; cat node_modules/installed >> out.txt"]


def fs_type(path: Path) -> str:
    proc = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True)
    return proc.stdout.strip() or "?"


def p50(values: list[float]) -> float:
    return statistics.median(values)


# -- ready: one worktree -----------------------------------------------------------------------
def bench_ready(root: Path, files: int, samples: int) -> dict[str, list[float]]:
    from wf import api
    from wf.engine.activities import EnsureWorktree, TaskActivities
    from wf.pool.keeper import pool_for
    from wf.pool.refill import warm
    from wf.worktrees import WorktreeManager

    repo = root / "ready" / "repo"
    t0 = time.perf_counter()
    generate_repo(repo, files)
    print(f"generated {files} files in {time.perf_counter() - t0:.1f} s", flush=True)
    out: dict[str, list[float]] = {"git worktree add": [], "wf, no pool": [],
                                   "wf, pool (slot at the task's commit)": [],
                                   "wf, pool (base moved 1 commit)": []}
    for i in range(samples):  # git alone
        path = root / "ready" / f"add{i}"
        t = time.perf_counter()
        git(repo, "worktree", "add", "-q", "-b", f"add/{i}", str(path), "main")
        out["git worktree add"].append(time.perf_counter() - t)
        git(repo, "worktree", "remove", "--force", str(path))
    (repo / "wf.toml").write_text("[worktrees]\npool = 1\n")
    git(repo, "add", "wf.toml")
    git(repo, "commit", "-q", "-m", "pool")
    r = api.open_repo(repo)
    wt = WorktreeManager(r.root, r.worktree_root)
    plain = TaskActivities(wt, os.environ, r.logs_dir)
    for i in range(samples):
        t = time.perf_counter()
        plain.ensure_worktree(EnsureWorktree(f"plain{i}", "main", None))
        out["wf, no pool"].append(time.perf_counter() - t)
        wt.remove(f"plain{i}", force=True)
    pool = pool_for(r, wt, os.environ)
    acts = TaskActivities(wt, os.environ, r.logs_dir, pool)
    warm(pool, 1, 1)
    for label, move in (("wf, pool (slot at the task's commit)", False),
                        ("wf, pool (base moved 1 commit)", True)):
        for i in range(samples):
            if move:
                (repo / "README.md").write_text(f"# moved {i}\n")
                git(repo, "commit", "-q", "-am", f"move {i}")
            tid = f"{'m' if move else 's'}{i}"
            t = time.perf_counter()
            ready = acts.ensure_worktree(EnsureWorktree(tid, "main", None))
            out[label].append(time.perf_counter() - t)
            assert Path(ready.path).name.startswith(".wf-pool-"), ready
            back = pool.give_back(tid, force=True)
            assert back is not None and back.returned, back
            git(repo, "branch", "-q", "-D", f"wf/{tid}")
    pool.close()
    return out


# -- setup: a run with a slow setup ------------------------------------------------------------
def tasks_toml(n: int, parallel: int, setup_seconds: float, pool: int) -> str:
    setup = ["sh", "-c", f"sleep {setup_seconds}; mkdir -p node_modules && "
             "cp package-lock.json node_modules/installed"]
    lines = [f"max_parallel = {parallel}", f"setup = {json.dumps(setup)}", "",
             "[retry]", "maximum_attempts = 1", "", "[agents.noop]",
             f"command = {json.dumps(AGENT)}", ""]
    lines += ["[worktrees]", f"pool = {pool}", 'setup_inputs = ["package-lock.json"]',
              'keep = ["/node_modules"]', f"return_on_success = {'true' if pool else 'false'}",
              ""]
    for i in range(n):
        lines += ["[[task]]", f'id = "t{i:02d}"', f'prompt = "task {i}"', 'agent = "noop"', ""]
    return "\n".join(lines)


def wf_cmd(repo: Path, env: dict[str, str], *args: str) -> float:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "wf", *args], cwd=repo, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"wf {' '.join(args)} failed ({proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t


def bench_setup(root: Path, n: int, parallel: int, setup_seconds: float) -> dict[str, float]:
    template = root / "setup" / "template" / "repo"
    generate_repo(template, 2000)
    (template / "package-lock.json").write_text('{"lockfileVersion": 3}\n')
    (template / ".gitignore").write_text("node_modules/\n")
    git(template, "add", "-A")
    git(template, "commit", "-q", "-m", "lock file")
    env = hermetic_env()
    out: dict[str, float] = {}
    for label, pool in (("no pool", 0), ("pool", parallel)):
        repo = copy_repo(template, root / "setup" / label.replace(" ", "-"))
        conf = tasks_toml(n, parallel, setup_seconds, pool)
        (repo / "wf.toml").write_text(conf[:conf.index("[[task]]")])
        git(repo, "add", "wf.toml")
        git(repo, "commit", "-q", "-m", "config")
        tasks = repo.parent / "tasks.toml"
        tasks.write_text("".join(f'[[task]]\nid = "t{i:02d}"\nprompt = "task {i}"\n'
                                 f'agent = "noop"\n\n' for i in range(n)))
        if pool:
            out["pool warm (apart)"] = wf_cmd(repo, env, "pool", "warm")
        out[label] = wf_cmd(repo, env, "run", str(tasks))
        events = [json.loads(line) for line in subprocess.run(
            [sys.executable, "-m", "wf", "events", "--json"], cwd=repo, env=env,
            capture_output=True, text=True).stdout.splitlines() if line.strip()]
        kinds = [e["type"] for e in events]
        # A task's setup ran unless the pool skipped it (pool.setup_started: it did run).
        ran = kinds.count("task.setup_done") if not pool else kinds.count("pool.setup_started")
        out[f"{label}: setups the tasks ran"] = ran
        print(f"  {label}: {out[label]:.1f} s", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--files", type=int, default=50000)
    parser.add_argument("--samples", type=int, default=9)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--setup-seconds", type=float, default=20.0)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--only", choices=("ready", "setup"), default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    for key, value in hermetic_env().items():
        os.environ[key] = value
    for key in [k for k in os.environ if k.startswith("WF_")]:
        del os.environ[key]
    root = Path(tempfile.mkdtemp(prefix="wf-bench-pool-", dir=args.dir))
    print(f"working in {root} ({fs_type(root)}), {os.cpu_count()} CPUs", flush=True)
    rows: list[tuple[str, str, str, bool]] = []
    try:
        if args.only in (None, "ready"):
            ready = bench_ready(root, args.files, args.samples)
            print(f"\nworktree ready for a task, {args.files} files, p50 of {args.samples}:")
            for label, values in ready.items():
                print(f"  {label:<40} {p50(values) * 1000:8.1f} ms   "
                      f"(min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})")
            pooled = p50(ready["wf, pool (slot at the task's commit)"]) * 1000
            rows.append(("ready from the pool, p50", f"{pooled:.1f} ms",
                         f"≤ {READY_TARGET_MS:.0f} ms", pooled <= READY_TARGET_MS))
        if args.only in (None, "setup"):
            print(f"\n{args.tasks} tasks, setup {args.setup_seconds:g} s, "
                  f"max_parallel {args.parallel}:", flush=True)
            setup = bench_setup(root, args.tasks, args.parallel, args.setup_seconds)
            for label, value in setup.items():
                print(f"  {label:<40} {value:8.1f}" if isinstance(value, float)
                      else f"  {label:<40} {value:8d}")
            ratio = setup["pool"] / setup["no pool"]
            rows.append(("run wall, pool warm / no pool", f"{ratio:.2f}×",
                         f"≤ {SETUP_RATIO_TARGET}×", ratio <= SETUP_RATIO_TARGET))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    width = max((len(r[0]) for r in rows), default=10)
    print(f"\n{'figure':<{width}}  {'measured':>10}  {'target':>10}  result")
    for name, value, target, ok in rows:
        print(f"{name:<{width}}  {value:>10}  {target:>10}  {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
