"""Copy the files named by ``.worktreeinclude`` into a new worktree.

A fresh worktree has only tracked files; the ignored ones a project needs to run (``.env``,
``config/local.json``) live only in the main working tree. ``.worktreeinclude`` (gitignore syntax,
at the repository root) lists which of them to copy. A file is copied when git ignores it AND a
pattern of ``.worktreeinclude`` matches it; git itself does the matching, so negations, ``**`` and
directory patterns mean exactly what they mean in .gitignore.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from wf import gitx

INCLUDE_FILE = ".worktreeinclude"


def files_to_include(source_root: Path) -> list[str]:
    """Paths (relative, '/'-separated) that would be copied from ``source_root``."""
    include = source_root / INCLUDE_FILE
    if not include.is_file():
        return []
    candidates = gitx.untracked_matching(source_root, include)
    return sorted(gitx.ignored_among(source_root, candidates))


def copy_included_files(source_root: Path, dest_root: Path) -> list[str]:
    """Copy the ``.worktreeinclude`` files from ``source_root`` into ``dest_root`` and return the
    paths copied. Modes are kept and symlinks are copied as symlinks (never followed); a file
    that already exists in the destination is left alone; nothing is written outside
    ``dest_root``, even through a symlinked directory."""
    source_real, dest_real = source_root.resolve(), dest_root.resolve()
    copied = []
    for rel in files_to_include(source_root):
        src, dst = source_root / rel, dest_root / rel
        if not _inside(src.parent, source_real) or os.path.lexists(dst):
            continue
        try:
            mode = os.lstat(src).st_mode
        except FileNotFoundError:  # deleted since git listed it
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            continue  # sockets, fifos: nothing to copy
        if not _inside(_nearest_existing(dst.parent), dest_real):
            continue  # a tracked symlink would lead the copy out of the worktree
        dst.parent.mkdir(parents=True, exist_ok=True)
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst, follow_symlinks=False)
        copied.append(rel)
    return copied


def _nearest_existing(path: Path) -> Path:
    while not os.path.lexists(path):
        path = path.parent
    return path


def _inside(path: Path, root_real: Path) -> bool:
    return path.resolve().is_relative_to(root_real)
