"""Task worktrees: create-or-adopt, `.worktreeinclude`, the setup command, backups, removal, gc."""

from wf.worktrees.backups import BACKUP_PREFIX
from wf.worktrees.include import INCLUDE_FILE, copy_included_files, files_to_include
from wf.worktrees.locks import fetch, repo_lock
from wf.worktrees.manager import (
    BRANCH_PREFIX,
    Changes,
    DeleteResult,
    Orphan,
    RemoveResult,
    WorktreeInfo,
    WorktreeManager,
)
from wf.worktrees.processes import processes_in, stop_processes_in

__all__ = [
    "BACKUP_PREFIX",
    "BRANCH_PREFIX",
    "INCLUDE_FILE",
    "Changes",
    "DeleteResult",
    "Orphan",
    "RemoveResult",
    "WorktreeInfo",
    "WorktreeManager",
    "copy_included_files",
    "fetch",
    "files_to_include",
    "processes_in",
    "repo_lock",
    "stop_processes_in",
]
