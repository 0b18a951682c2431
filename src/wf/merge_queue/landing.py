"""Moving the target: the only place wf writes it, and only by compare-and-swap.

``land_local`` moves ``refs/heads/<target>`` from ``old`` to ``new`` with ``git update-ref``
(it fails if the ref is not at ``old`` any more). When the target is checked out in a worktree
(usually the user's main one), that worktree is fast-forwarded with a two-tree ``read-tree``
so it does not look modified afterwards; if it has uncommitted changes to tracked files the
landing is refused before anything moves, and the entry stays queued.

``land_push`` pushes ``new`` to the remote's target branch with ``--force-with-lease`` on
``old``, the remote's equivalent of the same compare-and-swap.
"""

from __future__ import annotations

from pathlib import Path

from wf import gitx
from wf.errors import GitError
from wf.merge_queue.decide import LandOutcome
from wf.worktrees.manager import repo_lock

# LandOutcome lives in the pure decide.py (the forge's decisions build it too); callers
# import it from here as well.
__all__ = ["LandOutcome", "land_local", "land_push"]


def land_local(root: Path, target: str, old: str, new: str) -> LandOutcome:
    ref = f"refs/heads/{target}"
    with repo_lock(gitx.common_dir(root), "worktree", shared=True):  # not beside an add
        holder = next((w for w in gitx.list_worktrees(root) if w.branch == target), None)
    if holder is not None and gitx.has_tracked_changes(holder.path):
        return LandOutcome("refused", f"{target} is checked out in {holder.path} with "
                                      "uncommitted changes; commit or stash them to let the "
                                      "queue land")
    if holder is not None and (why := gitx.read_tree_refusal(holder.path, old, new)):
        return LandOutcome("refused", f"{target} is checked out in {holder.path}, where "
                                      f"landing would fail: {why.rstrip('.')}; move those "
                                      "files away to let the queue land")
    try:
        gitx.update_ref(root, ref, new, old, message="wf merge queue: land")
    except GitError:
        now = gitx.rev_parse(root, ref)
        if now == new:
            return LandOutcome("landed", "already landed")
        return LandOutcome("moved", f"{target} moved to {str(now)[:10]} meanwhile; retesting")
    if holder is not None:
        gitx.read_tree_update(holder.path, old, new)
    return LandOutcome("landed", f"{target} moved to {new[:10]}")


def land_push(root: Path, remote: str, target: str, old: str, new: str) -> LandOutcome:
    try:
        gitx.push_with_lease(root, remote, new, target, old)
    except GitError as exc:
        return LandOutcome("moved", f"push to {remote}/{target} refused: {exc.message}")
    return LandOutcome("landed", f"{remote}/{target} moved to {new[:10]}")
