"""WorktreeManager against real repositories, real processes and real concurrency."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import pytest
from helpers import clone, commit_files, git

from wf import gitx
from wf.engine.attempt_plan import port_for
from wf.errors import ConfigError, GitError
from wf.worktrees import Changes, WorktreeManager, fetch, repo_lock
from wf.worktrees.manager import POPULATING


@pytest.fixture
def manager(repo: Path, tmp_path: Path) -> WorktreeManager:
    return WorktreeManager(repo, tmp_path / "worktrees", clock=lambda: 1_700_000_000.0)


def registered(repo: Path) -> list[str]:
    out = git(repo, "worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


# --- ensure: create, adopt, recover ----------------------------------------------------


def test_ensure_creates_then_adopts(manager: WorktreeManager, repo: Path) -> None:
    main_tip = git(repo, "rev-parse", "main")
    first = manager.ensure("t1", "main")
    assert first.created
    assert first.path == manager.worktree_root / "t1"
    assert first.branch == "wf/t1"
    assert first.base_commit == main_tip
    assert git(first.path, "rev-parse", "--abbrev-ref", "HEAD") == "wf/t1"
    assert (first.path / "src" / "utils.py").exists()

    commit_files(first.path, {"feature.txt": "work\n"}, "agent work")
    commit_files(repo, {"later.txt": "main moved on\n"}, "main moves")
    again = manager.ensure("t1", "main")
    assert not again.created
    assert again.path == first.path
    assert again.base_commit == main_tip  # the fork point, not main's new tip


def test_ensure_from_start_point(manager: WorktreeManager, repo: Path) -> None:
    dep = manager.ensure("dep", "main")
    dep_tip = commit_files(dep.path, {"dep.txt": "dep\n"}, "dependency work")
    child = manager.ensure("child", "main", start_point="wf/dep")
    assert child.base_commit == dep_tip
    assert (child.path / "dep.txt").exists()
    assert manager.ensure("child", "main", start_point="wf/dep").base_commit == dep_tip


def test_ensure_recreates_worktree_for_existing_branch(manager: WorktreeManager,
                                                        repo: Path) -> None:
    fork = git(repo, "rev-parse", "main")
    info = manager.ensure("t1", "main")
    tip = commit_files(info.path, {"a.txt": "a\n"})
    manager.remove("t1")
    again = manager.ensure("t1", "main")
    assert again.created
    assert again.base_commit == fork
    assert git(again.path, "rev-parse", "HEAD") == tip


def test_folder_that_is_not_a_worktree_is_an_error_and_kept(manager: WorktreeManager) -> None:
    path = manager.worktree_root / "t1"
    path.mkdir(parents=True)
    (path / "precious.txt").write_text("mine\n")
    with pytest.raises(GitError, match="exists but is not a git worktree"):
        manager.ensure("t1", "main")
    assert (path / "precious.txt").read_text() == "mine\n"


def test_folder_registered_to_another_branch_is_an_error(manager: WorktreeManager,
                                                         repo: Path) -> None:
    path = manager.worktree_root / "t1"
    git(repo, "worktree", "add", "--quiet", "-b", "something-else", str(path))
    with pytest.raises(GitError, match="worktree of branch something-else, not of wf/t1"):
        manager.ensure("t1", "main")
    assert path.exists()


def test_vanished_folder_is_pruned_and_recreated(manager: WorktreeManager, repo: Path) -> None:
    info = manager.ensure("t1", "main")
    tip = commit_files(info.path, {"a.txt": "a\n"})
    shutil.rmtree(info.path)
    again = manager.ensure("t1", "main")
    assert again.created
    assert git(again.path, "rev-parse", "HEAD") == tip
    assert registered(repo).count(str(again.path)) == 1


def test_half_created_worktree_is_replaced(manager: WorktreeManager, repo: Path) -> None:
    # What a `git worktree add` killed half-way leaves: registered, still locked "initializing".
    path = manager.worktree_root / "t1"
    git(repo, "worktree", "add", "--quiet", "-b", "wf/t1", str(path))
    git(repo, "worktree", "lock", "--reason", "initializing", str(path))
    (path / "README.md").unlink()
    info = manager.ensure("t1", "main")
    assert info.created
    assert (path / "README.md").exists()
    assert "locked" not in git(repo, "worktree", "list", "--porcelain")


def unpopulated(repo: Path, path: Path, branch: str) -> None:
    """What wf leaves when it dies between registering a worktree and checking it out."""
    git(repo, "worktree", "add", "--quiet", "--no-checkout", "--lock", "--reason", POPULATING,
        "-b", branch, str(path), "main")


def test_unpopulated_worktree_is_checked_out_by_the_next_ensure(manager: WorktreeManager,
                                                                 repo: Path) -> None:
    path = manager.worktree_root / "t1"
    unpopulated(repo, path, "wf/t1")
    assert not (path / "README.md").exists()
    info = manager.ensure("t1", "main")
    assert info.created  # never handed to an agent: setup has not run either
    assert info.base_commit == git(repo, "rev-parse", "main")
    assert (path / "README.md").exists()
    assert git(path, "status", "--porcelain") == ""
    assert "locked" not in git(repo, "worktree", "list", "--porcelain")


def test_unpopulated_worktree_is_removed_without_force(manager: WorktreeManager,
                                                       repo: Path) -> None:
    path = manager.worktree_root / "t1"
    unpopulated(repo, path, "wf/t1")
    assert [(o.kind, o.safe) for o in manager.orphans(set())] == [
        ("worktree", True), ("branch", True)]
    result = manager.remove("t1")
    assert result.removed and result.backup_ref is None
    assert str(path) not in registered(repo)
    assert not path.exists()


def test_populate_never_falls_through_to_an_enclosing_repository(repo: Path) -> None:
    inside = repo / "not-a-worktree"
    inside.mkdir()
    (repo / "README.md").write_text("uncommitted edit in the main worktree\n")
    with pytest.raises(GitError, match="not a complete worktree"):
        gitx.populate_worktree(inside)
    assert (repo / "README.md").read_text() == "uncommitted edit in the main worktree\n"


def test_shared_repo_lock_admits_sharers_and_excludes_exclusive(tmp_path: Path) -> None:
    both_in = threading.Barrier(3, timeout=10)  # two sharers and this test
    release = threading.Event()

    def sharer() -> None:
        with repo_lock(tmp_path, "worktree", shared=True):
            both_in.wait()  # times out if one sharer excluded the other
            release.wait(timeout=10)

    with ThreadPoolExecutor(2) as pool:
        sharers = [pool.submit(sharer) for _ in range(2)]
        both_in.wait()
        fd = os.open(tmp_path / "wf" / "worktree.lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):  # what an exclusive holder would wait for
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        release.set()
        for f in sharers:
            f.result()
    with repo_lock(tmp_path, "worktree"):  # free again once they are out
        pass


def test_concurrent_ensure_from_threads(manager: WorktreeManager, repo: Path) -> None:
    ids = [f"task-{n}" for n in range(20)]
    barrier = threading.Barrier(len(ids))

    def ensure(task_id: str) -> Path:
        barrier.wait()
        return manager.ensure(task_id, "main").path

    with ThreadPoolExecutor(len(ids)) as pool:
        paths = list(pool.map(ensure, ids))
    assert sorted(p.name for p in paths) == sorted(ids)
    assert {str(p) for p in paths} <= set(registered(repo))
    for path in paths:
        assert git(path, "status", "--porcelain") == ""


def test_concurrent_removes_beside_concurrent_creates(manager: WorktreeManager,
                                                      repo: Path) -> None:
    old = [f"old-{n}" for n in range(12)]
    for task_id in old:
        manager.ensure(task_id, "main")
    new = [f"new-{n}" for n in range(12)]
    with ThreadPoolExecutor(8) as pool:
        futures = []
        for gone, made in zip(old, new, strict=True):
            futures.append(pool.submit(manager.remove, gone))
            futures.append(pool.submit(manager.ensure, made, "main"))
        for future in futures:
            future.result()  # re-raises a failure
    names = {Path(p).name for p in registered(repo)}
    assert names >= set(new) and not names & set(old)
    for task_id in new:
        assert git(manager.worktree_root / task_id, "status", "--porcelain") == ""


def test_concurrent_ensure_from_processes(repo: Path, tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from wf.worktrees import Changes, WorktreeManager
        manager = WorktreeManager(Path(sys.argv[1]), Path(sys.argv[2]))
        for task_id in sys.argv[3:]:
            manager.ensure(task_id, "main")
    """)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(repo), str(tmp_path / "wt"),
                          f"p{n}-a", f"p{n}-b", f"p{n}-c"], stderr=subprocess.PIPE, text=True)
        for n in range(6)
    ]
    errors = [proc.communicate(timeout=60)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 6, errors
    assert len(registered(repo)) == 1 + 18


def test_remote_tracking_base_is_fetched_first(manager: WorktreeManager, repo: Path,
                                               origin: Path, tmp_path: Path) -> None:
    other = clone(origin, tmp_path / "other")
    pushed = commit_files(other, {"upstream.txt": "from a colleague\n"}, "upstream work")
    git(other, "push", "--quiet", "origin", "main")
    assert git(repo, "rev-parse", "origin/main") != pushed

    info = manager.ensure("t1", "origin/main")
    assert info.base_commit == pushed
    assert git(info.path, "rev-parse", "HEAD") == pushed
    assert git(repo, "rev-parse", "origin/main") == pushed


def test_a_fetch_waits_until_a_worktree_add_is_done(repo: Path, origin: Path,
                                                    tmp_path: Path) -> None:
    """``git worktree add`` writes a placeholder HEAD (the null id) before the real one, and a
    fetch checks connectivity against every worktree's HEAD: it must not run in between."""
    other = clone(origin, tmp_path / "other")
    pushed = commit_files(other, {"upstream.txt": "from a colleague\n"}, "upstream work")
    git(other, "push", "--quiet", "origin", "main")
    half = repo / ".git" / "worktrees" / "half"
    with ThreadPoolExecutor(1) as pool:
        with repo_lock(gitx.common_dir(repo), "worktree"):  # what an add holds, half-way
            half.mkdir(parents=True)
            (half / "HEAD").write_text("0" * 40 + "\n")
            (half / "commondir").write_text("../..\n")
            (half / "gitdir").write_text(f"{tmp_path / 'half' / '.git'}\n")
            with pytest.raises(GitError, match="bad object worktrees/half/HEAD"):
                gitx.fetch(repo, "origin", "main")  # the race, unguarded
            fetching = pool.submit(fetch, repo, "origin", "main")
            # Unguarded, it would have failed by now; guarded, it waits for the lock.
            assert not wait([fetching], timeout=1.0).done
            (half / "HEAD").write_text(git(repo, "rev-parse", "main") + "\n")  # add is done
        fetching.result()
    assert git(repo, "rev-parse", "origin/main") == pushed


def test_unknown_base_ref_is_an_error(manager: WorktreeManager) -> None:
    with pytest.raises(GitError, match="base ref 'nope' does not name a commit"):
        manager.ensure("t1", "nope")


@pytest.mark.parametrize("bad", ["--upload-pack=x", "../x", "a/b", "-rf", "X", ""])
def test_bad_task_ids_are_rejected_before_git(manager: WorktreeManager, repo: Path,
                                              bad: str) -> None:
    for call in (lambda: manager.ensure(bad, "main"), lambda: manager.remove(bad),
                 lambda: manager.delete_branch(bad, force=True)):
        with pytest.raises(ConfigError, match="invalid task id"):
            call()
    assert not manager.worktree_root.exists()
    assert git(repo, "branch", "--list") == "* main"


def test_option_like_base_ref_is_rejected(manager: WorktreeManager) -> None:
    with pytest.raises(GitError, match="suspicious"):
        manager.ensure("t1", "--upload-pack=touch /tmp/pwned")


# --- .worktreeinclude ------------------------------------------------------------------


def test_worktreeinclude_copies_ignored_matching_files(manager: WorktreeManager,
                                                       repo: Path) -> None:
    git(repo, "rm", "--quiet", "--cached", ".gitignore")
    (repo / ".gitignore").write_text(".env\nconfig/local.json\n*.log\nlink-to-env\n")
    (repo / ".worktreeinclude").write_text(".env\nconfig/\nlink-to-env\n!config/skip.json\n")
    git(repo, "add", ".gitignore", ".worktreeinclude")
    git(repo, "commit", "--quiet", "-m", "include rules")
    (repo / ".env").write_text("SECRET=1\n")
    (repo / ".env").chmod(0o600)
    (repo / "config").mkdir()
    (repo / "config" / "local.json").write_text("{}\n")
    (repo / "config" / "skip.json").write_text("untracked, not ignored\n")
    (repo / "debug.log").write_text("ignored but not included\n")
    (repo / "link-to-env").symlink_to(".env")
    (repo / "README.md").write_text("uncommitted change to a tracked file\n")

    info = manager.ensure("t1", "main")
    assert (info.path / ".env").read_text() == "SECRET=1\n"
    assert (info.path / ".env").stat().st_mode & 0o777 == 0o600
    assert (info.path / "config" / "local.json").exists()
    assert not (info.path / "config" / "skip.json").exists()
    assert not (info.path / "debug.log").exists()
    assert os.readlink(info.path / "link-to-env") == ".env"
    assert (info.path / "README.md").read_text() == "# demo\n"
    assert git(info.path, "status", "--porcelain") == ""


def test_worktreeinclude_never_writes_through_a_tracked_symlink(
        manager: WorktreeManager, repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / ".gitignore").write_text(".env\nreal/\n")
    (repo / ".worktreeinclude").write_text("real/\n")
    commit_files(repo, {".gitignore": ".env\nreal/\n", ".worktreeinclude": "real/\n"})
    (repo / "real").mkdir()
    (repo / "real" / "x.txt").write_text("ignored and included\n")
    # A base commit in which `real` is a tracked symlink to a folder outside the repository.
    link = git(repo, "hash-object", "-w", "--stdin", input=str(outside))
    listing = git(repo, "ls-tree", "HEAD") + f"\n120000 blob {link}\treal\n"
    tree = git(repo, "mktree", input=listing)
    git(repo, "branch", "evil", git(repo, "commit-tree", tree, "-p", "HEAD", "-m", "evil"))

    info = manager.ensure("t1", "evil")
    assert (info.path / "real").is_symlink()
    assert list(outside.iterdir()) == []


# --- ports and setup -------------------------------------------------------------------


def test_port_is_stable_and_probes_past_taken() -> None:
    def port_of(tid: str, taken: set[int]) -> int:
        return port_for(tid, taken, (30000, 30009))

    port = port_of("alpha", set())
    assert 30000 <= port <= 30009
    assert port_of("alpha", set()) == port
    assert port_of("alpha", {port}) == (port + 1 if port < 30009 else 30000)
    all_but_one = set(range(30000, 30010)) - {port - 1 if port > 30000 else 30009}
    assert port_of("alpha", all_but_one) == (port - 1 if port > 30000 else 30009)
    with pytest.raises(ConfigError, match="no free port"):
        port_of("alpha", set(range(30000, 30010)))


def test_port_does_not_depend_on_python_hash_seed(repo: Path, tmp_path: Path) -> None:
    code = ("from wf.engine.attempt_plan import port_for; "
            "print(port_for('alpha', set(), (20000, 29999)))")
    ports = {
        subprocess.run([sys.executable, "-c", code, str(repo), str(tmp_path)], text=True,
                       capture_output=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(ports) == 1


def test_run_setup(manager: WorktreeManager, repo: Path) -> None:
    info = manager.ensure("t1", "main")
    env = {"PATH": os.environ["PATH"], "WF_PORT": "20001"}
    ok, out = manager.run_setup(info.path, ["sh", "-c", 'echo "port=$WF_PORT"; pwd'], env, 10)
    assert ok
    assert out.splitlines() == ["port=20001", str(info.path)]

    ok, out = manager.run_setup(info.path, ["sh", "-c", "echo boom >&2; exit 3"], env, 10)
    assert not ok and "boom" in out and "exited with code 3" in out

    ok, out = manager.run_setup(info.path, ["no-such-command-wf"], env, 10)
    assert not ok and "no-such-command-wf" in out

    ok, out = manager.run_setup(info.path, ["sh", "-c", "echo start; exec sleep 30"], env, 0.5)
    assert not ok and "start" in out and "timed out" in out

    ok, out = manager.run_setup(info.path, ["sh", "-c", "yes line | head -n 100000"], env, 10)
    assert ok and len(out) <= 4000 and out.endswith("line\n")


# --- remove ----------------------------------------------------------------------------


def test_remove_refuses_dirty_worktree_without_force(manager: WorktreeManager) -> None:
    info = manager.ensure("t1", "main")
    (info.path / "wip.txt").write_text("unsaved\n")
    with pytest.raises(GitError, match="has uncommitted changes; commit them or use --force"):
        manager.remove("t1")
    assert (info.path / "wip.txt").exists()


def test_remove_clean_worktree_keeps_branch(manager: WorktreeManager, repo: Path) -> None:
    info = manager.ensure("t1", "main")
    (info.path / ".env").write_text("ignored files do not make it dirty\n")
    result = manager.remove("t1")
    assert result.removed and result.backup_ref is None
    assert not info.path.exists()
    assert str(info.path) not in registered(repo)
    assert git(repo, "branch", "--list", "wf/t1")
    assert not manager.remove("t1").removed  # idempotent


def test_a_backup_reads_files_whose_stat_looks_unchanged(manager: WorktreeManager,
                                                        repo: Path) -> None:
    # A file rewritten with the same size within the clock tick of its recorded state keeps
    # the stat the index holds (made so here by hand: an old mtime put back, ctime not
    # trusted), and git takes it for unchanged. A backup must read it anyway.
    info = manager.ensure("t1", "main")
    git(info.path, "config", "core.trustctime", "false")
    readme = info.path / "README.md"
    old = readme.stat().st_mtime_ns - 3600 * 10**9
    os.utime(readme, ns=(old, old))
    git(info.path, "update-index", "--refresh")  # the index records the old mtime
    readme.write_text("edited\n")  # as long as "# demo\n", in place
    os.utime(readme, ns=(old, old))
    assert git(info.path, "status", "--porcelain") == ""  # git itself sees nothing
    ref = manager.save_backup(info.path, "t1", label="stat")
    assert ref and git(repo, "show", f"{ref}:README.md") == "edited"


def test_force_remove_backs_up_dirty_changes(manager: WorktreeManager, repo: Path) -> None:
    info = manager.ensure("t1", "main")
    tip = commit_files(info.path, {"committed.txt": "c\n"})
    (info.path / "wip.txt").write_text("unsaved\n")
    (info.path / "README.md").write_text("edited\n")
    result = manager.remove("t1", force=True)

    assert result.removed and not info.path.exists()
    assert result.backup_ref == "refs/wf-backup/t1/1700000000"
    assert git(repo, "show", f"{result.backup_ref}:wip.txt") == "unsaved"
    assert git(repo, "show", f"{result.backup_ref}:README.md") == "edited"
    assert git(repo, "rev-parse", f"{result.backup_ref}^") == tip
    assert git(repo, "rev-parse", "wf/t1") == tip  # the branch did not move


def test_remove_stops_processes_inside(manager: WorktreeManager) -> None:
    info = manager.ensure("t1", "main")
    (info.path / "sub").mkdir()
    sleeper = subprocess.Popen(["sleep", "60"], cwd=info.path / "sub")
    stubborn = subprocess.Popen(
        [sys.executable, "-c",
         "import signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
         "print('ready', flush=True); sys.stdin.read()"],
        cwd=info.path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == "ready\n"
        assert set(manager.processes_in(info.path)) == {sleeper.pid, stubborn.pid}
        result = manager.remove("t1", grace=0.3)
        assert set(result.stopped_pids) == {sleeper.pid, stubborn.pid}
        assert sleeper.wait(timeout=5) == -signal.SIGTERM
        assert stubborn.wait(timeout=5) == -signal.SIGKILL  # it ignored SIGTERM
        assert result.removed and not info.path.exists()
    finally:
        for proc in (sleeper, stubborn):
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream:
                    stream.close()


def test_processes_outside_are_left_alone(manager: WorktreeManager, tmp_path: Path) -> None:
    info = manager.ensure("t1", "main")
    sibling = manager.worktree_root / "t10"
    sibling.mkdir()
    outside = subprocess.Popen(["sleep", "60"], cwd=sibling)
    try:
        assert manager.processes_in(info.path) == []
        assert manager.stop_processes_in(info.path) == []
        assert outside.poll() is None
    finally:
        outside.kill()
        outside.wait()


# --- backups and resets ----------------------------------------------------------------


def test_save_backup_and_reset_for_retry(manager: WorktreeManager, repo: Path) -> None:
    info = manager.ensure("t1", "main")
    assert manager.save_backup(info.path, "t1", "attempt-1", base=info.base_commit) is None
    assert manager.changes(info.path, info.base_commit) == Changes(commits=0, dirty=False)

    commit_files(info.path, {"a.txt": "attempt one\n"})
    (info.path / "wip.txt").write_text("half done\n")
    (info.path / ".env").write_text("copied config\n")
    changes = manager.changes(info.path, info.base_commit)
    assert changes == Changes(commits=1, dirty=True)

    ref = manager.save_backup(info.path, "t1", "attempt-1", base=info.base_commit)
    assert ref == "refs/wf-backup/t1/1700000000-attempt-1"
    assert git(repo, "show", f"{ref}:a.txt") == "attempt one"
    assert git(repo, "show", f"{ref}:wip.txt") == "half done"
    assert (info.path / "wip.txt").exists()  # saving touched nothing

    manager.reset_to(info.path, info.base_commit)
    assert git(info.path, "rev-parse", "HEAD") == info.base_commit
    assert not (info.path / "a.txt").exists() and not (info.path / "wip.txt").exists()
    assert (info.path / ".env").read_text() == "copied config\n"

    # Only commits (no dirt): the backup points at the branch's old tip; same second -> suffix.
    commit_files(info.path, {"b.txt": "attempt two\n"})
    ref2 = manager.save_backup(info.path, "t1", "attempt-1", base=info.base_commit)
    assert ref2 == "refs/wf-backup/t1/1700000000-attempt-1.1"
    assert git(repo, "rev-parse", ref2) == git(info.path, "rev-parse", "HEAD")


# --- branches --------------------------------------------------------------------------


def test_branch_safety_merged_unmerged_pushed(manager: WorktreeManager, repo: Path,
                                              origin: Path) -> None:
    info = manager.ensure("t1", "main")
    assert manager.branch_is_safe_to_delete("t1", ["main"]) == (True, "merged into main")

    commit_files(info.path, {"a.txt": "a\n"})
    commit_files(info.path, {"b.txt": "b\n"})
    assert manager.branch_is_safe_to_delete("t1", ["main"]) == (
        False, "2 commits not merged into main or pushed")

    git(info.path, "push", "--quiet", "origin", "wf/t1")
    assert manager.branch_is_safe_to_delete("t1", ["main"]) == (True, "pushed to origin/wf/t1")

    commit_files(info.path, {"c.txt": "c\n"})
    assert manager.branch_is_safe_to_delete("t1", ["main"]) == (
        False, "1 commit not merged into main or pushed")
    git(repo, "merge", "--quiet", "--ff-only", "wf/t1")
    assert manager.branch_is_safe_to_delete("t1", ["main"]) == (True, "merged into main")
    assert manager.branch_is_safe_to_delete("t1") == (True, "merged into main")
    assert manager.branch_is_safe_to_delete("nope", ["main"])[0]


def test_delete_branch(manager: WorktreeManager, repo: Path) -> None:
    info = manager.ensure("t1", "main")
    tip = commit_files(info.path, {"a.txt": "a\n"})
    with pytest.raises(GitError, match="checked out in worktree .*; remove the worktree first"):
        manager.delete_branch("t1", force=True)
    manager.remove("t1")

    refused = manager.delete_branch("t1", targets=["main"])
    assert (refused.deleted, refused.backup_ref) == (False, None)
    assert refused.reason == "1 commit not merged into main or pushed"
    assert git(repo, "rev-parse", "wf/t1") == tip

    forced = manager.delete_branch("t1", force=True, targets=["main"])
    assert forced.deleted
    assert forced.backup_ref == "refs/wf-backup/t1/1700000000"
    assert git(repo, "rev-parse", forced.backup_ref) == tip
    assert git(repo, "branch", "--list", "wf/t1") == ""
    assert not manager.delete_branch("t1").deleted


def test_delete_safe_branch_needs_no_force_or_backup(manager: WorktreeManager,
                                                     repo: Path) -> None:
    manager.ensure("t1", "main")
    manager.remove("t1")
    result = manager.delete_branch("t1", targets=["main"])
    assert (result.deleted, result.backup_ref, result.reason) == (True, None, "merged into main")


def test_orphans(manager: WorktreeManager, repo: Path) -> None:
    manager.ensure("known", "main")
    clean = manager.ensure("clean", "main")
    dirty = manager.ensure("dirty", "main")
    (dirty.path / "wip.txt").write_text("x\n")
    gone = manager.ensure("gone", "main")
    shutil.rmtree(gone.path)
    git(repo, "branch", "wf/branch-only", "main")
    git(repo, "branch", "wf/unmerged", "main")
    git(repo, "branch", "unrelated", "main")
    unmerged_wt = repo.parent / "elsewhere"
    git(repo, "worktree", "add", "--quiet", str(unmerged_wt), "wf/unmerged")
    commit_files(unmerged_wt, {"u.txt": "u\n"})

    found = {(o.kind, o.task_id): o for o in manager.orphans({"known"})}
    assert set(found) == {
        ("worktree", "clean"), ("worktree", "dirty"), ("worktree", "gone"),
        ("branch", "clean"), ("branch", "dirty"), ("branch", "gone"),
        ("branch", "branch-only"), ("branch", "unmerged"),
    }
    assert found["worktree", "clean"].safe
    assert found["worktree", "clean"].path_or_ref == str(clean.path)
    assert not found["worktree", "dirty"].safe
    assert found["worktree", "dirty"].reason == "uncommitted changes"
    assert found["worktree", "gone"].safe
    assert found["branch", "branch-only"].safe
    assert found["branch", "branch-only"].path_or_ref == "refs/heads/wf/branch-only"
    assert not found["branch", "unmerged"].safe
