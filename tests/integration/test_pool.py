"""The pool of warm worktrees, through the real `wf` command: a task takes a prepared worktree
and skips a setup already done for its inputs; `wf clean` gives the worktree back wiped of
everything the task left but the `keep` folders; a preparation cut short by kill -9 is never
handed out and is finished by the next wf; `wf pool`, `wf pool warm`, `wf pool drain`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from helpers import commit_files, git, write
from runwf import events, pid_alive, status, wait_until, wf, wf_bg, write_tasks


def _configure(repo: Path, log: Path, *, pool: int = 1, gate: Path | None = None,
               top: str = "", worktrees: str = "") -> None:
    """A repository whose setup "installs" package-lock.json into node_modules and logs who
    ran it (the task id, or "pool"); with ``gate``, setup waits for that file first."""
    wait = f"while [ ! -e {gate} ]; do sleep 0.05; done; " if gate else ""
    setup = (f"echo start >> {log}.started; {wait}mkdir -p node_modules && "
             f"cp package-lock.json node_modules/installed && "
             f"echo ${{WF_TASK_ID:-pool}} >> {log}")
    agent = ("echo $WF_TASK_ID > out-$WF_TASK_ID.txt; cat node_modules/installed > seen.txt;"
             " git branch --show-current > branch.txt")
    write(repo, {"package-lock.json": '{"v": 1}\n', ".gitignore": "node_modules/\n*.log\n.env\n"})
    (repo / "wf.toml").write_text(
        f'{top}setup = ["sh", "-c", {json.dumps(setup)}]\n'
        f'[worktrees]\npool = {pool}\nsetup_inputs = ["package-lock.json"]\n'
        f'keep = ["/node_modules"]\n{worktrees}'
        f'[agents.ed]\ncommand = ["sh", "-c", {json.dumps(agent)}]\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pool config")


def _tasks(repo: Path, *ids: str) -> Path:
    text = "".join(f'[[task]]\nid = "{t}"\nprompt = "x"\nagent = "ed"\n' for t in ids)
    return write_tasks(repo, text, name=f"tasks-{'-'.join(ids)}.toml")


def _pool(repo: Path) -> dict:
    proc = wf(repo, "pool", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _run(repo: Path, *ids: str) -> None:
    proc = wf(repo, "run", str(_tasks(repo, *ids)))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_task_takes_a_warm_worktree_and_skips_its_setup(repo, tmp_path):
    log = tmp_path / "setup.log"
    _configure(repo, log)
    warmed = wf(repo, "pool", "warm", "--json")
    assert warmed.returncode == 0, warmed.stderr
    [slot] = json.loads(warmed.stdout)
    assert slot["result"] == "ready" and slot["slot"] == "p1"
    _run(repo, "t1")
    path = Path(status(repo)["t1"]["worktree"])
    assert path == Path(slot["path"])
    assert (path / "seen.txt").read_text() == '{"v": 1}\n'
    assert "t1" not in log.read_text().split()  # the warm setup was valid: skipped
    assert (path / "branch.txt").read_text().strip() == "wf/t1"
    taken = [e["data"] for e in events(repo) if e["type"] == "pool.taken"]
    assert taken[0]["slot"] == "p1" and taken[0]["task"] == "t1"

    # The setup inputs change: a pooled worktree's setup is no longer valid, so it runs again.
    commit_files(repo, {"package-lock.json": '{"v": 2}\n'}, "bump the lock file")
    warmed = wf(repo, "pool", "warm", "1")
    assert warmed.returncode == 0, warmed.stderr
    _run(repo, "t2")
    path2 = Path(status(repo)["t2"]["worktree"])
    assert (path2 / "seen.txt").read_text() == '{"v": 2}\n'


def test_a_returned_worktree_carries_nothing_from_its_previous_task(repo, tmp_path):
    log = tmp_path / "setup.log"
    _configure(repo, log)
    hook = repo / ".git" / "hooks" / "post-commit"
    hook.write_text("#!/bin/sh\ngit log -1 --format=%s >> hook-output.log\n")
    hook.chmod(0o755)
    git(repo, "stash", "list")  # a person's own stash, made in the main worktree, survives
    (repo / "README.md").write_text("a person's unfinished edit\n")
    git(repo, "stash", "push", "-q", "-m", "mine")
    assert wf(repo, "pool", "warm").returncode == 0
    _run(repo, "t1")
    path = Path(status(repo)["t1"]["worktree"])
    # Every kind of leftover a task can leave: a stash of its own, a tracked change, an
    # untracked file, an ignored file outside keep, a hook's output, a branch of its own
    # checked out, a file inside a keep folder (which stays).
    (path / "README.md").write_text("stashed by the agent\n")
    git(path, "stash", "push", "-q", "-m", "agent's")
    (path / "notes.txt").write_text("committed\n")
    git(path, "add", "notes.txt")
    git(path, "commit", "-q", "-m", "agent commit")  # runs the post-commit hook
    assert (path / "hook-output.log").exists()
    git(path, "checkout", "-q", "-b", "t1-own-branch")
    git(path, "bisect", "start")  # per-worktree state in the worktree's own git dir
    (path / "README.md").write_text("tracked change\n")
    (path / "untracked.txt").write_text("untracked\n")
    (path / "debug.log").write_text("ignored\n")
    (path / "node_modules" / "cache.bin").write_text("kept between tasks\n")
    # The engine refilled the pool meanwhile; with it full, `wf clean` would remove t1's.
    assert wf(repo, "pool", "drain").returncode == 0
    cleaned = wf(repo, "clean", "t1", "--force", "--json")
    assert cleaned.returncode == 0, cleaned.stderr
    [item] = json.loads(cleaned.stdout)
    assert "returned to the pool" in item["result"], item
    assert [s["state"] for s in _pool(repo)["slots"]] == ["ready"]

    _run(repo, "t2")
    path2 = Path(status(repo)["t2"]["worktree"])
    assert path2 == path  # the same folder, handed to the next task
    assert (path2 / "README.md").read_text() == (repo / "README.md").read_text()
    for gone in ("notes.txt", "untracked.txt", "debug.log", "out-t1.txt"):
        assert not (path2 / gone).exists(), gone
    # t2's own commit ran the hook again (wf's commits skip only pre-commit and commit-msg)
    assert "agent commit" not in (path2 / "hook-output.log").read_text()
    assert (path2 / "node_modules" / "cache.bin").read_text() == "kept between tasks\n"
    assert (path2 / "branch.txt").read_text().strip() == "wf/t2"
    assert git(path2, "rev-parse", "HEAD~1") == git(repo, "rev-parse", "main")
    own_git_dir = Path(git(path2, "rev-parse", "--absolute-git-dir"))
    assert not (own_git_dir / "BISECT_START").exists()
    assert "t1-own-branch" not in git(path2, "reflog")  # HEAD's moves in t1's time are gone
    stashes = git(repo, "stash", "list")
    assert "mine" in stashes and "agent's" not in stashes
    worktrees = git(repo, "worktree", "list", "--porcelain")
    assert "refs/heads/wf/t1" not in worktrees and "t1-own-branch" not in worktrees
    # Nothing was lost: the branches stay, the stash and the changes are under backup refs.
    assert git(repo, "rev-parse", "--verify", "refs/heads/t1-own-branch")
    backups = git(repo, "for-each-ref", "--format=%(refname)", "refs/wf-backup/t1")
    assert "-stash-" in backups and len(backups.splitlines()) >= 2
    assert "t2" not in log.read_text().split()  # setup still valid: not run for t2


def test_clean_refuses_a_pooled_worktree_with_uncommitted_work(repo, tmp_path):
    _configure(repo, tmp_path / "setup.log")
    _run(repo, "t1")
    path = Path(status(repo)["t1"]["worktree"])
    (path / "README.md").write_text("unsaved\n")
    cleaned = wf(repo, "clean", "t1", "--json")
    assert cleaned.returncode == 0
    assert "uncommitted changes" in json.loads(cleaned.stdout)[0]["result"]
    assert (path / "README.md").read_text() == "unsaved\n"
    assert [s["state"] for s in _pool(repo)["slots"] if s["task"] == "t1"] == ["taken"]


def test_a_preparation_killed_half_way_is_never_handed_out_and_is_finished_later(repo,
                                                                                 tmp_path):
    log, gate = tmp_path / "setup.log", tmp_path / "gate"
    _configure(repo, log, gate=gate)
    warming = wf_bg(repo, "pool", "warm", "1")
    wait_until(lambda: Path(f"{log}.started").exists(), what="the pool's setup to start")
    os.kill(warming.pid, signal.SIGKILL)
    warming.communicate(timeout=30)
    gate.touch()  # the orphaned setup may end now; its slot stays half-prepared
    [half] = _pool(repo)["slots"]
    assert half["state"] == "preparing"

    _run(repo, "t1")  # the task is never given the half-prepared worktree
    of_slot = [e["type"] for e in events(repo)
               if e["stream"] == "pool" and e["data"].get("slot") == half["slot"]]
    if "pool.take_requested" in of_slot:
        # The run's keeper prepared it again first (its setup may end now): only then, ready,
        # was it taken. Which comes first, that or the task's start, is a race.
        assert of_slot.index("pool.prepared") < of_slot.index("pool.take_requested"), of_slot
        assert Path(status(repo)["t1"]["worktree"]) == Path(half["path"])
        return
    assert Path(status(repo)["t1"]["worktree"]) != Path(half["path"])
    assert "t1" in log.read_text().split()  # its own worktree: setup ran for it

    warmed = wf(repo, "pool", "warm", "--json")  # the next wf finishes the preparation
    assert warmed.returncode == 0, warmed.stderr
    slots = {s["slot"]: s for s in _pool(repo)["slots"]}
    assert slots[half["slot"]]["state"] == "ready" and slots[half["slot"]]["key"]
    assert not git(Path(half["path"]), "status", "--porcelain")


def test_pool_drain_removes_idle_worktrees_and_keeps_a_tasks(repo, tmp_path):
    _configure(repo, tmp_path / "setup.log", pool=2)
    assert wf(repo, "pool", "warm").returncode == 0
    _run(repo, "t1")
    before = _pool(repo)
    assert before["pool"] == 2 and {s["state"] for s in before["slots"]} >= {"taken", "ready"}
    drained = wf(repo, "pool", "drain", "--json")
    assert drained.returncode == 0, drained.stderr
    items = json.loads(drained.stdout)
    assert any(i["result"] == "removed" for i in items)
    assert any(i["result"] == "kept: held by task t1" for i in items)
    after = _pool(repo)["slots"]
    assert [s["task"] for s in after] == ["t1"] and after[0]["state"] == "taken"
    assert Path(after[0]["path"]).is_dir()
    text = wf(repo, "pool")
    assert text.returncode == 0 and "t1" in text.stdout


def test_pool_warm_with_the_pool_off_is_a_usage_error(repo):
    proc = wf(repo, "pool", "warm")
    assert proc.returncode == 2 and "pool is off" in proc.stderr
    assert wf(repo, "pool", "drain", "--json").stdout.strip() == "[]"
    assert subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True,
                          text=True).stdout.count("\n") == 1


def test_a_bad_pool_setting_is_one_line_and_exit_2(repo):
    (repo / "wf.toml").write_text('[worktrees]\npool = 2\npool_max_disk = "lots"\n')
    proc = wf(repo, "pool", "warm")
    assert proc.returncode == 2 and "pool_max_disk" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2 and "Traceback" not in proc.stderr
    (repo / "wf.toml").write_text('[worktrees]\nkeep = ["../outside"]\n')
    proc = wf(repo, "pool")
    assert proc.returncode == 2 and "keep" in proc.stderr


def test_with_return_on_success_the_tasks_of_a_run_share_one_set_up_worktree(repo, tmp_path):
    log = tmp_path / "setup.log"
    _configure(repo, log, top="max_parallel = 1\n", worktrees="return_on_success = true\n")
    assert wf(repo, "pool", "warm").returncode == 0
    _run(repo, "t1", "t2", "t3")
    taken = [e["data"] for e in events(repo) if e["type"] == "pool.taken"]
    assert sorted(t["task"] for t in taken) == ["t1", "t2", "t3"]
    assert {t["slot"] for t in taken} == {"p1"}  # each given back, then taken by the next
    assert log.read_text().split() == ["pool"]  # one setup for the three tasks: the refill
    # counts the slot a task holds, which comes back when the task succeeds
    released = [e["data"] for e in events(repo) if e["type"] == "task.worktree_released"]
    assert len(released) == 3
    rows = status(repo)
    assert all(rows[t]["state"] == "done" and rows[t]["worktree"] is None
               for t in ("t1", "t2", "t3"))
    diff = wf(repo, "diff", "t2")  # from its branch, the worktree being another's now
    assert diff.returncode == 0 and "out-t2.txt" in diff.stdout and "t3" not in diff.stdout
    assert [s["state"] for s in _pool(repo)["slots"]] == ["ready"]


def test_the_idle_pool_stays_within_pool_max_disk(repo, tmp_path):
    _configure(repo, tmp_path / "setup.log")
    assert wf(repo, "pool", "warm").returncode == 0
    [one] = _pool(repo)["slots"]
    cap = one["size"] * 2 + one["size"] // 2  # room for two slots, not three
    text = (repo / "wf.toml").read_text()
    (repo / "wf.toml").write_text(text.replace("pool = 1\n", f"pool = 5\npool_max_disk = {cap}\n"))
    git(repo, "commit", "-q", "-am", "cap")
    warmed = wf(repo, "pool", "warm", "--json")
    assert warmed.returncode == 0, warmed.stderr
    status_ = _pool(repo)
    assert status_["pool_max_disk"] == cap and status_["idle_bytes"] <= cap
    assert 1 <= status_["idle"] <= 2


def test_ctrl_c_stops_pool_warm_and_its_setup_within_a_second(repo, tmp_path):
    log, gate = tmp_path / "setup.log", tmp_path / "never"
    _configure(repo, log, gate=gate)
    warming = wf_bg(repo, "pool", "warm", "1")
    wait_until(lambda: Path(f"{log}.started").exists(), what="the pool's setup to start")
    setup_pids = [int(p) for p in subprocess.run(
        ["pgrep", "-f", str(gate)], capture_output=True, text=True).stdout.split()]
    assert setup_pids
    t0 = time.monotonic()
    warming.send_signal(signal.SIGINT)
    warming.communicate(timeout=30)
    assert warming.returncode == 130 and time.monotonic() - t0 < 2.0
    wait_until(lambda: not any(pid_alive(p) for p in setup_pids), timeout=2.0,
               what="the setup to be stopped")
    assert [s["state"] for s in _pool(repo)["slots"]] == ["preparing"]  # finished later
