"""The queue's candidate chain on real repositories: every prefix is the merge git would make,
whether an entry shares history only with the target or also with entries before it."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import commit_files, git

from wf import gitx
from wf.merge_queue.candidates import Chain, ChainBuilder, Entry, Fork


def branch(repo: Path, name: str, start: str, files: dict[str, str]) -> str:
    git(repo, "checkout", "--quiet", "-b", name, start)
    head = commit_files(repo, files, name)
    git(repo, "checkout", "--quiet", "main")
    return head


def entry(repo: Path, name: str, onto: str | None = None) -> Entry:
    """The entry of branch ``name``; with ``onto``, with the fork admission finds on it."""
    head = git(repo, "rev-parse", name)
    if onto is None:
        return Entry(name, name, head)
    db = gitx.object_db(repo)
    fork = db.merge_base(onto, head)
    own = db.own_commits(head, fork)
    return Entry(name, name, head, None if own is None else Fork(onto, fork, own))


@pytest.fixture(params=["searched", "from admission"])
def hinted(request):
    """Each chain test twice: merge bases found by libgit2, and given by admission's forks."""
    return request.param == "from admission"


def show(repo: Path, commit: str, path: str) -> str:
    return git(repo, "show", f"{commit}:{path}")


def test_independent_entries_merge_exactly_as_git_does(repo: Path, hinted: bool) -> None:
    base = git(repo, "rev-parse", "main")
    onto = base if hinted else None
    branch(repo, "a", base, {"a.txt": "a\n"})
    branch(repo, "b", base, {"src/utils.py": "def add(a, b):\n    return b + a\n"})
    chain = ChainBuilder(repo).build(base, [entry(repo, "a", onto), entry(repo, "b", onto)], 2)
    assert isinstance(chain, Chain)
    assert chain.trees[1] == git(repo, "merge-tree", "--write-tree", chain.commits[0], "b")
    assert git(repo, "rev-parse", f"{chain.commits[1]}^2") == git(repo, "rev-parse", "b")


def test_an_entry_stacked_on_an_earlier_one_merges_from_that_entry(
        repo: Path, hinted: bool) -> None:
    # b is built on a: merged from the target alone, both would "add" x.txt and conflict
    base = git(repo, "rev-parse", "main")
    onto = base if hinted else None
    branch(repo, "a", base, {"x.txt": "1\n"})
    branch(repo, "b", "a", {"x.txt": "2\n"})
    chain = ChainBuilder(repo).build(base, [entry(repo, "a", onto), entry(repo, "b", onto)], 2)
    assert isinstance(chain, Chain)
    assert show(repo, chain.commits[1], "x.txt") == "2"


def test_entries_forked_from_one_commit_off_the_target_merge_from_it(
        repo: Path, hinted: bool) -> None:
    # q and r both start at x, which the target does not hold; r leaves y.txt as x made it
    base = git(repo, "rev-parse", "main")
    onto = base if hinted else None
    x = branch(repo, "x", base, {"y.txt": "0\n"})
    branch(repo, "q", x, {"y.txt": "q\n"})
    branch(repo, "r", x, {"r.txt": "r\n"})
    chain = ChainBuilder(repo).build(base, [entry(repo, "q", onto), entry(repo, "r", onto)], 2)
    assert isinstance(chain, Chain)
    assert show(repo, chain.commits[1], "y.txt") == "q"
    assert chain.trees[1] == git(repo, "merge-tree", "--write-tree", chain.commits[0], "r")


def test_a_chain_kept_across_a_landing_still_merges_stacked_entries(
        repo: Path, hinted: bool) -> None:
    base = git(repo, "rev-parse", "main")
    onto = base if hinted else None
    branch(repo, "a", base, {"x.txt": "1\n"})
    branch(repo, "c", base, {"c.txt": "c\n"})
    branch(repo, "b", "a", {"x.txt": "2\n"})
    builder = ChainBuilder(repo)
    first = builder.build(base, [entry(repo, "a", onto), entry(repo, "c", onto)], 2)
    assert isinstance(first, Chain)
    landed = first.commits[0]  # the target moved to a's prefix; b is stacked on a
    chain = builder.build(landed, [entry(repo, "c", onto), entry(repo, "b", onto)], 2)
    assert isinstance(chain, Chain)
    assert chain.commits[0] == first.commits[1]  # reused
    assert show(repo, chain.commits[1], "x.txt") == "2"
    assert chain.trees[1] == git(repo, "merge-tree", "--write-tree", chain.commits[0], "b")


def test_the_queue_without_an_entry_built_ahead_is_reused_once_it_is_evicted(repo: Path) -> None:
    # while Q[:1] and Q[:2] are checked, the queue builds Q without entry 1 (the suspect);
    # once Q[:1] lands and entry 1 is evicted, the next chain is that one: no merge again
    base = git(repo, "rev-parse", "main")
    entries = [entry(repo, n) for n in ("a", "b", "c", "d")
               if branch(repo, n, base, {f"{n}.txt": f"{n}\n"})]
    builder = ChainBuilder(repo)
    chain = builder.build(base, entries, 4)
    assert isinstance(chain, Chain)
    ahead = builder.without(chain, entries, 1, 3)
    assert [e.task_id for e in ahead.entries] == ["a", "c", "d"]
    after = builder.build(chain.commits[0], [entries[2], entries[3]], 2)
    assert isinstance(after, Chain)
    assert after.commits == ahead.commits[1:]


def test_a_fork_is_known_only_for_a_branch_that_is_one_line_of_commits(repo: Path) -> None:
    base = git(repo, "rev-parse", "main")
    line = branch(repo, "line", base, {"a.txt": "1\n"})
    db = gitx.object_db(repo)
    assert db.own_commits(line, base) == {line}
    git(repo, "checkout", "--quiet", "-b", "merged", base)
    commit_files(repo, {"b.txt": "b\n"}, "b")
    git(repo, "merge", "--quiet", "--no-edit", "line")
    assert db.own_commits(git(repo, "rev-parse", "merged"), base) is None  # a merge in it
    git(repo, "checkout", "--quiet", "main")


def test_admission_forks_give_the_very_merges_libgit2_finds(repo: Path) -> None:
    base = git(repo, "rev-parse", "main")
    old = git(repo, "rev-parse", "main~1")  # one entry forked before the target's last commit
    names = {"a": base, "b": old, "c": base}
    for name, start in names.items():
        branch(repo, name, start, {f"{name}.txt": f"{name}\n"})
    searched = ChainBuilder(repo).build(base, [entry(repo, n) for n in names], 3)
    given = ChainBuilder(repo).build(base, [entry(repo, n, base) for n in names], 3)
    assert isinstance(searched, Chain) and isinstance(given, Chain)
    assert all(e.fork is not None for e in given.entries)
    assert given.trees == searched.trees
