"""wf's access to git: the one package that runs git or reads a repository's objects.

Callers use the package, never its modules: ``from wf import gitx; gitx.head(path)`` or
``from wf.gitx import ChangedFile``. It was one module; it is split by what the git work is:

* :mod:`~wf.gitx.commands`: running git (:func:`run_git`), its errors, the check on names handed
  to git (:func:`check_rev`), and the credentials and identity wf gives git. Every git process
  starts there.
* :mod:`~wf.gitx.refs`: locating the repository, revisions and how commits relate, branches and
  refs, remotes (fetch, push).
* :mod:`~wf.gitx.commits`: a worktree's files: their state, commits and merges made from them,
  snapshots, resets, diffs.
* :mod:`~wf.gitx.worktrees`: ``git worktree`` (list, add, populate, remove) and the files a new
  worktree may copy.
* :mod:`~wf.gitx.pooled`: a pooled worktree's moves (detach, wipe, switch to a task's branch),
  its setup inputs and its own stashes.
* :mod:`~wf.gitx.objects`: in-process object work through libgit2 for the merge queue
  (:class:`ObjectDb`, :class:`WorktreeCheckout`). pygit2 is imported only when that is used, so
  importing this package does not load it.

A function that replaces ``gitx.run_git`` (a profiler) must replace it in each module that
calls it: the modules import it by name.
"""

from __future__ import annotations

from wf.errors import GitError
from wf.gitx.commands import (
    FORGE_TOKENS,
    GitCommandError,
    check_rev,
    credential_args,
    run_git,
)
from wf.gitx.commits import (
    commit_all,
    commit_tree,
    diff,
    diff_worktree,
    has_tracked_changes,
    init_repo,
    is_dirty,
    merge_into_worktree,
    merge_leaving_conflicts,
    read_tree_refusal,
    read_tree_update,
    reset_hard,
    snapshot_tree,
    tree_of,
)
from wf.gitx.objects import (
    ChangedFile,
    MergeTreeResult,
    ObjectDb,
    WorktreeCheckout,
    object_db,
)
from wf.gitx.pooled import (
    detach_at,
    drop_stash,
    git_dir,
    inputs_listing,
    stashes_of,
    switch_to_branch,
    wipe,
    worktree_add_detached_unpopulated,
)
from wf.gitx.refs import (
    branch_exists,
    commits_beyond,
    common_dir,
    count_unreachable,
    create_branch,
    current_branch,
    delete_ref,
    fetch,
    git_path,
    head,
    is_ancestor,
    list_branches,
    list_refs,
    merge_base,
    push_branch,
    push_branches,
    push_with_lease,
    remote_tracking_branches_containing,
    remote_url,
    remotes,
    repo_root,
    resolve_commit,
    rev_parse,
    root_commit,
    split_remote_ref,
    symbolic_full_name,
    update_ref,
)
from wf.gitx.worktrees import (
    WorktreeEntry,
    ignored_among,
    list_worktrees,
    populate_worktree,
    untracked_matching,
    worktree_add_detached,
    worktree_add_unpopulated,
    worktree_prune,
    worktree_remove,
    worktree_unlock,
)

__all__ = [  # what callers use; the modules' helpers (output, reason, ...) stay out
    "FORGE_TOKENS", "ChangedFile", "GitCommandError", "GitError", "MergeTreeResult", "ObjectDb",
    "WorktreeCheckout", "WorktreeEntry", "branch_exists", "check_rev", "commit_all", "commit_tree",
    "commits_beyond", "common_dir", "count_unreachable", "create_branch", "credential_args",
    "current_branch", "delete_ref", "diff", "diff_worktree", "fetch", "git_path",
    "has_tracked_changes", "head", "ignored_among", "init_repo", "is_ancestor", "is_dirty",
    "list_branches", "list_refs", "list_worktrees", "merge_base", "merge_into_worktree",
    "merge_leaving_conflicts", "object_db", "populate_worktree", "push_branch", "push_branches",
    "push_with_lease", "read_tree_refusal", "read_tree_update",
    "remote_tracking_branches_containing", "remote_url",
    "remotes", "repo_root", "reset_hard", "resolve_commit", "rev_parse", "root_commit", "run_git",
    "snapshot_tree", "split_remote_ref", "symbolic_full_name", "tree_of", "untracked_matching",
    "update_ref", "worktree_add_detached", "worktree_add_unpopulated", "worktree_prune",
    "worktree_remove", "worktree_unlock",
    # pooled worktrees
    "detach_at", "drop_stash", "git_dir", "inputs_listing", "stashes_of", "switch_to_branch",
    "wipe", "worktree_add_detached_unpopulated",
]
