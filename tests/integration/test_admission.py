"""Admission to the merge queue against real repositories: commits, policy, conflicts, and the
object work under it (``gitx.ObjectDb``'s in-memory merges and change counts)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from helpers import commit_files, git, make_repo

from wf import gitx
from wf.errors import GitError
from wf.merge_queue.admission import Admission, check_admission
from wf.merge_queue.policy import PolicyConfig

NO_POLICY = PolicyConfig()


def make_branch(repo: Path, name: str, files: Mapping[str, str] | None = None, *,
                start: str = "main", delete: tuple[str, ...] = (),
                rename: tuple[tuple[str, str], ...] = ()) -> str:
    """Branch ``name`` off ``start`` with one commit writing ``files``, deleting and renaming
    paths; main stays checked out. Returns the commit."""
    git(repo, "checkout", "--quiet", "-b", name, start)
    for old, new in rename:
        (repo / new).parent.mkdir(parents=True, exist_ok=True)
        git(repo, "mv", "--", old, new)
    if delete:
        git(repo, "rm", "--quiet", "--", *delete)
    if files:
        commit_files(repo, files, f"work on {name}")
    else:
        git(repo, "commit", "--quiet", "-m", f"work on {name}")
    sha = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "--quiet", "main")
    return sha


def land(repo: Path, branch: str) -> None:
    git(repo, "merge", "--quiet", "--no-edit", branch)


def admit(repo: Path, branch: str, policy: PolicyConfig = NO_POLICY,
          base_commit: str | None = None) -> Admission:
    return check_admission(repo, branch, "main", base_commit=base_commit, policy=policy)


def real_merge_tree(repo: Path, tmp_path: Path, branch: str) -> str:
    """The tree ``git merge`` makes of main + branch, in a scratch worktree."""
    scratch = tmp_path / "scratch"
    git(repo, "worktree", "add", "--quiet", "--detach", str(scratch), "main")
    git(scratch, "merge", "--quiet", "--no-edit", branch)
    return git(scratch, "rev-parse", "HEAD^{tree}")


# --- admit -------------------------------------------------------------------------------


def test_clean_branch_is_admitted_with_the_tree_git_merge_makes(repo: Path,
                                                                 tmp_path: Path) -> None:
    tip = make_branch(repo, "wf/a", {"src/utils.py": "def add(a, b):\n    return b + a\n",
                                     "src/new.py": "x = 1\n"})
    commit_files(repo, {"README.md": "# demo, moved on\n"}, "main moves on")
    main = git(repo, "rev-parse", "main")

    result = admit(repo, "wf/a")

    assert result.verdict == "admit"
    assert result.detail == "merges cleanly into main"
    assert result.merge_tree == real_merge_tree(repo, tmp_path, "wf/a")
    assert (result.target_commit, result.branch_commit) == (main, tip)
    assert result.conflicted_files == () and result.rule is None
    # nothing moved: no ref, no worktree file, no index entry
    assert git(repo, "rev-parse", "main", "wf/a").split() == [main, tip]
    assert git(repo, "status", "--porcelain") == ""


def test_branch_on_the_current_target_is_admitted_with_its_own_tree(repo: Path) -> None:
    make_branch(repo, "wf/a", {"src/new.py": "x = 1\n"})
    result = admit(repo, "wf/a")
    assert result.verdict == "admit"
    assert result.merge_tree == git(repo, "rev-parse", "wf/a^{tree}")


def test_admission_accepts_shas_and_full_ref_names(repo: Path) -> None:
    tip = make_branch(repo, "wf/a", {"src/new.py": "x = 1\n"})
    by_name = admit(repo, "wf/a")
    by_sha = check_admission(repo, tip, "refs/heads/main", base_commit=None, policy=NO_POLICY)
    assert by_sha.verdict == "admit" and by_sha.merge_tree == by_name.merge_tree


# --- no commits --------------------------------------------------------------------------


def test_branch_without_commits_is_refused(repo: Path) -> None:
    git(repo, "branch", "wf/idle", "main")
    result = admit(repo, "wf/idle")
    assert result.verdict == "no_commits"
    assert result.detail.startswith("wf/idle has no commits beyond its base ")
    assert result.merge_tree is None


def test_no_commits_is_counted_from_the_given_base(repo: Path) -> None:
    base = git(repo, "rev-parse", "main~1")
    git(repo, "branch", "wf/old", base)  # started at main~1, did nothing: behind, not ahead
    assert admit(repo, "wf/old", base_commit=base).verdict == "no_commits"
    # a task whose base is ahead of where its branch is now has nothing to bring either
    assert admit(repo, "wf/old", base_commit=git(repo, "rev-parse", "main")).verdict == \
        "no_commits"


def test_branch_already_in_the_target_has_nothing_to_land(repo: Path) -> None:
    base = git(repo, "rev-parse", "main")
    make_branch(repo, "wf/a", {"src/new.py": "x = 1\n"})
    land(repo, "wf/a")  # fast-forward: main is now wf/a
    result = admit(repo, "wf/a", base_commit=base)
    assert result.verdict == "no_commits"
    assert result.detail == "wf/a is already in main"


# --- conflicts ---------------------------------------------------------------------------


def test_branch_conflicting_with_a_landed_one_names_the_files(repo: Path) -> None:
    make_branch(repo, "wf/a", {"src/utils.py": "def add(a, b):\n    return a + b + 0\n",
                               "README.md": "# a\n", "src/a_only.py": "a = 1\n"})
    make_branch(repo, "wf/b", {"src/utils.py": "def add(a, b):\n    return b + a\n",
                               "README.md": "# b\n", "src/b_only.py": "b = 1\n"})
    assert admit(repo, "wf/a").verdict == "admit"
    assert admit(repo, "wf/b").verdict == "admit"  # each alone merges into main

    land(repo, "wf/a")
    result = admit(repo, "wf/b")

    assert result.verdict == "conflict"
    assert result.conflicted_files == ("README.md", "src/utils.py")
    assert result.detail == "conflicts with main in README.md, src/utils.py"
    assert result.merge_tree is None
    assert "CONFLICT (content): Merge conflict in src/utils.py" in result.messages


def test_modify_delete_and_odd_file_names_are_reported(repo: Path) -> None:
    odd = "dir with space/new\nline.txt"
    commit_files(repo, {odd: "one\n"}, "odd name")
    make_branch(repo, "wf/a", {odd: "two\n"}, delete=("src/utils.py",))
    make_branch(repo, "wf/b", {odd: "three\n", "src/utils.py": "changed = True\n"})
    land(repo, "wf/a")

    result = admit(repo, "wf/b")

    assert result.verdict == "conflict"
    assert set(result.conflicted_files) == {odd, "src/utils.py"}
    assert any(m.startswith("CONFLICT (modify/delete): src/utils.py") for m in result.messages)


def test_long_conflict_lists_are_shortened_in_the_detail(repo: Path) -> None:
    names = [f"f{i}.txt" for i in range(7)]
    commit_files(repo, dict.fromkeys(names, "base\n"), "seven files")
    make_branch(repo, "wf/a", dict.fromkeys(names, "a\n"))
    make_branch(repo, "wf/b", dict.fromkeys(names, "b\n"))
    land(repo, "wf/a")
    result = admit(repo, "wf/b")
    assert result.conflicted_files == tuple(names)
    assert result.detail == ("conflicts with main in f0.txt, f1.txt, f2.txt, f3.txt, f4.txt "
                             "and 2 more")


def test_unrelated_history_goes_back_as_a_conflict(repo: Path) -> None:
    git(repo, "checkout", "--quiet", "--orphan", "wf/lone")
    git(repo, "rm", "-r", "--quiet", "--cached", ".")
    commit_files(repo, {"lone.txt": "x\n"}, "lone")
    git(repo, "checkout", "--quiet", "--force", "main")
    result = admit(repo, "wf/lone")
    assert result.verdict == "conflict"
    assert result.detail == "wf/lone shares no history with main"


# --- policy ------------------------------------------------------------------------------


def test_forbidden_path_is_denied_with_the_rule(repo: Path) -> None:
    make_branch(repo, "wf/a", {".github/workflows/ci.yml": "on: push\n"})
    result = admit(repo, "wf/a", PolicyConfig(forbidden_paths=(".github/workflows/**",)))
    assert result.verdict == "denied"
    assert result.rule == "forbidden_paths"
    assert result.detail == ("forbidden_paths: changes .github/workflows/ci.yml "
                             "(matches .github/workflows/**)")
    assert result.merge_tree is None


def test_denial_is_reported_before_a_conflict(repo: Path) -> None:
    make_branch(repo, "wf/a", {"README.md": "# a\n"})
    make_branch(repo, "wf/b", {"README.md": "# b\n"})
    land(repo, "wf/a")
    result = admit(repo, "wf/b", PolicyConfig(forbidden_paths=("README.md",)))
    assert (result.verdict, result.rule) == ("denied", "forbidden_paths")


def test_policy_sees_only_what_the_branch_brings(repo: Path) -> None:
    make_branch(repo, "wf/a", {"src/new.py": "x = 1\n"})
    # the target changes a forbidden file and many lines after the branch forked: not the
    # branch's doing
    commit_files(repo, {"secrets/key": "k\n" * 50}, "main adds a secret")
    policy = PolicyConfig(forbidden_paths=("secrets/",), max_changed_lines=1)
    assert admit(repo, "wf/a", policy).verdict == "admit"


def test_approval_path_holds_a_clean_branch(repo: Path) -> None:
    make_branch(repo, "wf/a", {".github/workflows/ci.yml": "on: push\n"})
    result = admit(repo, "wf/a", PolicyConfig(approval_paths=(".github/workflows/**",)))
    assert result.verdict == "needs_approval"
    assert result.rule == "approval_paths"
    assert result.detail == ("approval_paths: changes .github/workflows/ci.yml "
                             "(matches .github/workflows/**)")
    assert result.merge_tree == git(repo, "rev-parse", "wf/a^{tree}")


def test_conflict_beats_needs_approval(repo: Path) -> None:
    make_branch(repo, "wf/a", {"README.md": "# a\n"})
    make_branch(repo, "wf/b", {"README.md": "# b\n"})
    land(repo, "wf/a")
    result = admit(repo, "wf/b", PolicyConfig(approval_paths=("*.md",)))
    assert result.verdict == "conflict"
    assert result.conflicted_files == ("README.md",)


def test_line_limit(repo: Path) -> None:
    # src/utils.py: 2 lines deleted, 3 added; new.txt: 5 added -> 10 changed lines
    make_branch(repo, "wf/a", {"src/utils.py": "a\nb\nc\n", "new.txt": "1\n2\n3\n4\n5\n"})
    assert admit(repo, "wf/a", PolicyConfig(max_changed_lines=10)).verdict == "admit"
    result = admit(repo, "wf/a", PolicyConfig(max_changed_lines=9))
    assert (result.verdict, result.rule) == ("denied", "max_changed_lines")
    assert result.detail == "max_changed_lines: 10 changed lines, more than 9"


def test_file_limit(repo: Path) -> None:
    make_branch(repo, "wf/a", {"a.txt": "a\n", "b.txt": "b\n"}, delete=("README.md",))
    assert admit(repo, "wf/a", PolicyConfig(max_changed_files=3)).verdict == "admit"
    result = admit(repo, "wf/a", PolicyConfig(max_changed_files=2))
    assert (result.verdict, result.rule) == ("denied", "max_changed_files")
    assert result.detail == "max_changed_files: 3 changed files, more than 2"


def test_renames_are_one_file_whose_old_path_policy_sees(repo: Path) -> None:
    commit_files(repo, {"secrets/config.py": "".join(f"line {i}\n" for i in range(20))},
                 "a config")
    make_branch(repo, "wf/a", rename=(("secrets/config.py", "app/config.py"),))
    assert admit(repo, "wf/a", PolicyConfig(max_changed_files=1, max_changed_lines=1)).verdict \
        == "admit"
    result = admit(repo, "wf/a", PolicyConfig(forbidden_paths=("secrets/",)))
    assert result.detail == "forbidden_paths: changes secrets/config.py (matches secrets/)"


def test_binary_files_count_as_files_not_lines(repo: Path) -> None:
    git(repo, "checkout", "--quiet", "-b", "wf/bin")
    (repo / "logo.png").write_bytes(bytes(range(256)) * 40)
    git(repo, "add", "logo.png")
    git(repo, "commit", "--quiet", "-m", "a binary")
    git(repo, "checkout", "--quiet", "main")
    assert admit(repo, "wf/bin", PolicyConfig(max_changed_lines=1)).verdict == "admit"
    assert gitx.object_db(repo).diff_numstat("main", "wf/bin") == (
        gitx.ChangedFile("logo.png", None, None),)


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(("branch", "target"), [("-x", "main"), ("wf/a", "--all")])
def test_names_starting_with_a_dash_are_refused_before_git(repo: Path, branch: str,
                                                           target: str) -> None:
    git(repo, "update-ref", "refs/heads/-x", "main")  # exists, so only the name can be wrong
    make_branch(repo, "wf/a", {"x.txt": "x\n"})
    with pytest.raises(GitError, match="refusing suspicious git ref"):
        check_admission(repo, branch, target, base_commit=None, policy=NO_POLICY)


def test_unknown_branch_is_a_git_error(repo: Path) -> None:
    with pytest.raises(GitError, match="unknown revision 'wf/nope'"):
        admit(repo, "wf/nope")


# --- the object work under it ------------------------------------------------------------


def test_merge_tree_with_a_name_that_is_no_commit_is_an_error_not_a_conflict(
        repo: Path) -> None:
    db = gitx.object_db(repo)
    with pytest.raises(GitError, match="unknown revision 'no-such-branch'"):
        db.merge_tree("main", "no-such-branch")
    with pytest.raises(GitError, match="not a commit of this repository"):
        db.merge_tree("main", git(repo, "rev-parse", "main^{tree}"))


def test_merge_tree_of_unrelated_histories_is_an_error(tmp_path: Path) -> None:
    one = make_repo(tmp_path / "one", {"a": "a\n"})
    git(one, "fetch", "--quiet", str(make_repo(tmp_path / "two", {"b": "b\n"})),
        "main:other")
    with pytest.raises(GitError, match="other shares no history with main"):
        gitx.object_db(one).merge_tree("main", "other")


def test_diff_numstat_reports_renames_binaries_and_odd_names(repo: Path) -> None:
    body = "".join(f"line {i}\n" for i in range(20))
    commit_files(repo, {"old/name.py": body}, "a module")
    odd = "tab\there/new\nline ü.txt"
    make_branch(repo, "wf/a", {"new/name.py": body + "one more\n", odd: "x\ny\n"},
                rename=(("old/name.py", "new/name.py"),), delete=("README.md",))
    db = gitx.object_db(repo)
    changes = sorted(db.diff_numstat("main", "wf/a"), key=lambda c: c.path)
    assert changes == [
        gitx.ChangedFile("README.md", 0, 1),
        gitx.ChangedFile("new/name.py", 1, 0, old_path="old/name.py"),
        gitx.ChangedFile(odd, 2, 0),
    ]
    assert db.diff_numstat("main", "main") == ()


def test_without_the_tree_admission_decides_the_same_and_writes_nothing(repo: Path) -> None:
    make_branch(repo, "wf/a", {"src/new.py": "x = 1\n"})
    make_branch(repo, "wf/b", {"README.md": "theirs\n"})
    commit_files(repo, {"README.md": "ours\n"}, "main moves on")
    objects = git(repo, "count-objects")
    clean = check_admission(repo, "wf/a", "main", base_commit=None, policy=NO_POLICY,
                            want_tree=False)
    assert (clean.verdict, clean.merge_tree) == ("admit", None)
    assert git(repo, "count-objects") == objects  # no tree written
    conflict = check_admission(repo, "wf/b", "main", base_commit=None, policy=NO_POLICY,
                               want_tree=False)
    assert conflict.verdict == "conflict" and conflict.conflicted_files == ("README.md",)
