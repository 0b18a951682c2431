"""wf.gitx against real repositories: each wrapper, its parsing, and its error mapping."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import commit_files, git, make_repo

from wf import gitx
from wf.errors import GitError


def test_run_git_failure_is_one_line_git_error(repo: Path) -> None:
    with pytest.raises(gitx.GitCommandError) as info:
        gitx.run_git(["checkout", "no-such-branch"], cwd=repo)
    assert info.value.message.startswith("git checkout failed: ")
    assert "\n" not in info.value.message
    assert info.value.returncode != 0
    assert isinstance(info.value, GitError)


def test_run_git_names_two_word_subcommands(repo: Path) -> None:
    with pytest.raises(GitError, match=r"^git worktree remove failed: "):
        gitx.run_git(["worktree", "remove", str(repo / "nope")], cwd=repo)


def test_missing_git_is_reported(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(repo / "empty-bin"))
    with pytest.raises(GitError, match="git is not installed or not on PATH"):
        gitx.run_git(["status"], cwd=repo)


def test_missing_cwd_is_not_reported_as_missing_git(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="not a directory"):
        gitx.run_git(["status"], cwd=tmp_path / "nowhere")


def test_inherited_git_dir_is_ignored(repo: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    other = make_repo(tmp_path / "other", {"x.txt": "x\n"})
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))  # as inside a hook of another repo
    assert gitx.repo_root(repo) == repo


def test_repo_root_and_common_dir(repo: Path, tmp_path: Path) -> None:
    assert gitx.repo_root(repo / "src") == repo
    assert gitx.common_dir(repo / "src") == repo / ".git"
    with pytest.raises(GitError, match="not a git repository"):
        gitx.repo_root(tmp_path)


def test_current_branch_and_detached_head(repo: Path) -> None:
    assert gitx.current_branch(repo) == "main"
    git(repo, "checkout", "--quiet", "--detach")
    assert gitx.current_branch(repo) is None


def test_rev_parse(repo: Path) -> None:
    assert gitx.rev_parse(repo, "main") == git(repo, "rev-parse", "HEAD")
    assert gitx.rev_parse(repo, "nope") is None
    tree = git(repo, "rev-parse", "HEAD^{tree}")
    assert gitx.rev_parse(repo, tree) is None  # a tree is not a commit


@pytest.mark.parametrize("bad", ["-x", "--upload-pack=touch pwned", "", "a\nb"])
def test_option_like_refs_never_reach_git(repo: Path, bad: str) -> None:
    with pytest.raises(GitError, match="suspicious"):
        gitx.rev_parse(repo, bad)
    with pytest.raises(GitError, match="suspicious"):
        gitx.fetch(repo, bad, "main")
    with pytest.raises(GitError, match="suspicious"):
        gitx.create_branch(repo, bad, "main")


def test_is_dirty_respects_gitignore(repo: Path) -> None:
    assert not gitx.is_dirty(repo)
    (repo / ".env").write_text("SECRET=1\n")
    assert not gitx.is_dirty(repo)
    (repo / "new.txt").write_text("new\n")
    assert gitx.is_dirty(repo)
    (repo / "new.txt").unlink()
    (repo / "README.md").write_text("changed\n")
    assert gitx.is_dirty(repo)


def test_ancestry_and_counting(repo: Path) -> None:
    first = git(repo, "rev-list", "--max-parents=0", "HEAD")
    assert gitx.is_ancestor(repo, first, "main")
    assert not gitx.is_ancestor(repo, "main", first)
    assert gitx.commits_beyond(repo, first, "main") == 2
    assert gitx.merge_base(repo, first, "main") == first


def test_branches_and_compare_and_swap(repo: Path) -> None:
    tip = gitx.rev_parse(repo, "main")
    assert tip is not None
    assert gitx.create_branch(repo, "wf/a", "main~1") == gitx.rev_parse(repo, "main~1")
    with pytest.raises(GitError):
        gitx.create_branch(repo, "wf/a", "main")  # create never overwrites
    gitx.create_branch(repo, "other", "main")
    assert gitx.branch_exists(repo, "wf/a")
    assert gitx.list_branches(repo) == {"wf/a": gitx.rev_parse(repo, "main~1")}
    with pytest.raises(GitError):
        gitx.update_ref(repo, "refs/heads/wf/a", tip, old=tip)  # wf/a is not at tip
    gitx.update_ref(repo, "refs/heads/wf/a", tip, old=gitx.rev_parse(repo, "main~1"))
    assert gitx.rev_parse(repo, "wf/a") == tip
    with pytest.raises(GitError):
        gitx.delete_ref(repo, "refs/heads/wf/a", gitx.rev_parse(repo, "main~1"))  # moved since
    gitx.delete_ref(repo, "refs/heads/wf/a", tip)
    assert not gitx.branch_exists(repo, "wf/a")


def test_commit_all_with_trailers(repo: Path) -> None:
    assert gitx.commit_all(repo, "nothing", {"Wf-Task": "t"}) is None
    (repo / "new.txt").write_text("new\n")
    (repo / ".env").write_text("ignored\n")
    sha = gitx.commit_all(repo, "agent work", {"Wf-Task": "t1", "Wf-Attempt": "2"})
    assert sha == git(repo, "rev-parse", "HEAD")
    body = git(repo, "log", "-1", "--format=%B")
    assert body.splitlines()[0] == "agent work"
    assert "Wf-Task: t1" in body and "Wf-Attempt: 2" in body
    assert git(repo, "show", "--name-only", "--format=", "HEAD") == "new.txt"


def test_commit_all_without_identity_falls_back(repo: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)
    (repo / "new.txt").write_text("new\n")
    assert gitx.commit_all(repo, "work", {}) is not None
    assert git(repo, "log", "-1", "--format=%an <%ae>") == "wf <wf@localhost>"


def test_merge_into_worktree_clean_and_conflicting(repo: Path) -> None:
    git(repo, "branch", "a")
    git(repo, "branch", "b")
    git(repo, "checkout", "--quiet", "a")
    commit_files(repo, {"a.txt": "a\n"})
    git(repo, "checkout", "--quiet", "b")
    commit_files(repo, {"README.md": "b side\n"})
    git(repo, "checkout", "--quiet", "main")
    commit_files(repo, {"README.md": "main side\n"})
    start = gitx.head(repo)

    assert gitx.merge_into_worktree(repo, ["a", "b"]) is False
    assert gitx.head(repo) == start  # the merge of a was undone too
    assert not gitx.is_dirty(repo)
    assert gitx.merge_into_worktree(repo, ["a"]) is True
    assert (repo / "a.txt").exists()
    with pytest.raises(GitError):
        gitx.merge_into_worktree(repo, ["no-such-ref"])


def test_list_worktrees_parses_porcelain(repo: Path, tmp_path: Path) -> None:
    git(repo, "worktree", "add", "--quiet", "-b", "wf/x", str(tmp_path / "wt x"))
    git(repo, "worktree", "add", "--quiet", "--detach", str(tmp_path / "det"))
    git(repo, "worktree", "lock", "--reason", "busy now", str(tmp_path / "det"))
    git(repo, "worktree", "add", "--quiet", "-b", "wf/gone", str(tmp_path / "gone"))
    git(repo, "worktree", "add", "--quiet", "-b", "wf/lockless", str(tmp_path / "plain-lock"))
    git(repo, "worktree", "lock", str(tmp_path / "plain-lock"))
    shutil.rmtree(tmp_path / "gone")

    entries = {e.path.name: e for e in gitx.list_worktrees(repo)}
    assert entries["repo"].branch == "main"
    assert entries["wt x"].branch == "wf/x"
    assert entries["wt x"].head == gitx.rev_parse(repo, "main")
    assert entries["det"].branch is None and entries["det"].locked == "busy now"
    assert entries["plain-lock"].locked == ""
    assert entries["gone"].prunable is not None
    assert entries["wt x"].locked is None and entries["wt x"].prunable is None


def test_snapshot_and_diff_worktree_leave_index_alone(repo: Path) -> None:
    (repo / "README.md").write_text("changed\n")
    (repo / "untracked.txt").write_text("hello\n")
    (repo / ".env").write_text("SECRET=1\n")
    index_before = (repo / ".git" / "index").read_bytes()

    patch = gitx.diff_worktree(repo, "HEAD")
    assert "+changed" in patch and "untracked.txt" in patch and ".env" not in patch
    assert (repo / ".git" / "index").read_bytes() == index_before
    git(repo, "diff", "--cached", "--quiet")  # nothing got staged
    assert not list((repo / ".git").glob("wf-index-*"))


def test_diff_between_commits(repo: Path) -> None:
    assert "src/utils.py" in gitx.diff(repo, "main~2", "main", stat=True)
    assert "+def add" in gitx.diff(repo, "main~2", "main")


def test_remote_tracking_branches_containing(repo: Path, origin: Path) -> None:
    tip = gitx.head(repo)
    assert gitx.remote_tracking_branches_containing(repo, tip) == ["refs/remotes/origin/main"]
    new = commit_files(repo, {"x.txt": "x\n"})
    assert gitx.remote_tracking_branches_containing(repo, new) == []


def test_split_remote_ref(repo: Path, origin: Path) -> None:
    assert gitx.split_remote_ref(repo, "origin/main") == ("origin", "main")
    assert gitx.split_remote_ref(repo, "refs/remotes/origin/main") == ("origin", "main")
    assert gitx.split_remote_ref(repo, "origin/not-fetched-yet") == ("origin", "not-fetched-yet")
    assert gitx.split_remote_ref(repo, "main") is None
    assert gitx.split_remote_ref(repo, gitx.head(repo)) is None


def test_ignored_files_matching_include_patterns(repo: Path) -> None:
    (repo / ".env").write_text("x\n")
    (repo / "notes.txt").write_text("untracked, not ignored\n")
    include = repo / ".worktreeinclude"
    include.write_text(".env\nnotes.txt\nREADME.md\n")
    candidates = gitx.untracked_matching(repo, include)
    assert sorted(candidates) == [".env", "notes.txt"]  # tracked README.md is not "other"
    assert gitx.ignored_among(repo, candidates) == [".env"]
    assert gitx.ignored_among(repo, []) == []


def test_reset_hard_keeps_ignored_files(repo: Path) -> None:
    start = gitx.head(repo)
    commit_files(repo, {"later.txt": "later\n"})
    (repo / ".env").write_text("kept\n")
    (repo / "junk").mkdir()
    (repo / "junk" / "file").write_text("removed\n")
    gitx.reset_hard(repo, start)
    assert gitx.head(repo) == start
    assert not (repo / "later.txt").exists()
    assert not (repo / "junk").exists()
    assert (repo / ".env").read_text() == "kept\n"


def test_init_repo(tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "a.txt").write_text("a\n")
    sha = gitx.init_repo(tmp_path / "new", "seed")
    assert sha == git(tmp_path / "new", "rev-parse", "HEAD")
    assert gitx.current_branch(tmp_path / "new") == "main"
    assert gitx.init_repo(tmp_path / "empty") is None
    assert gitx.repo_root(tmp_path / "empty") == tmp_path / "empty"
