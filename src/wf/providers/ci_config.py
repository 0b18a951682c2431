"""Whether a commit's tree configures the forge's CI, read from git locally.

Right after a push, a forge that will run CI often reports nothing on the head yet. The
repository's own CI configuration tells the merge queue whether anything is expected: if the
tree has one, "nothing reported yet" means "wait"; if not, a short grace decides. The answer
comes from the commit wf pushed, never from the forge, so it is the configuration the forge's
CI will actually read.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from wf import gitx

# Paths (relative to the repository root) that make each forge run CI on a push.
CI_CONFIG_FILES = {"gitlab": (".gitlab-ci.yml",)}
CI_CONFIG_DIRS = {"github": ".github/workflows"}


def ci_config_in(kind: str, paths: Iterable[str]) -> str | None:
    """The first path among ``paths`` (a tree's file list) that configures ``kind``'s CI."""
    files = CI_CONFIG_FILES.get(kind, ())
    folder = CI_CONFIG_DIRS.get(kind)
    for path in paths:
        if path in files:
            return path
        pure = PurePosixPath(path)
        if folder and str(pure.parent) == folder and pure.suffix in (".yml", ".yaml"):
            return path
    return None


def ci_config_of(root: Path, kind: str, commit: str) -> str | None:
    """The file in ``commit``'s tree that configures ``kind``'s CI, if any (one ``ls-tree``
    of the few places a forge reads, not of the whole tree)."""
    wanted = [*CI_CONFIG_FILES.get(kind, ())]
    if kind in CI_CONFIG_DIRS:
        wanted.append(CI_CONFIG_DIRS[kind] + "/")
    if not wanted:
        return None
    out = gitx.run_git(["ls-tree", "--name-only", commit, "--", *wanted], cwd=root).stdout
    return ci_config_in(kind, out.splitlines())
