"""Helpers for tests that need real git repositories. They call git directly (not wf.gitx), so
a bug in wf's git layer cannot hide itself in its own fixtures.

Import with ``from helpers import make_repo, git`` (``tests/`` is on ``sys.path`` through
``tests/conftest.py``). The ``hermetic_git`` fixture in conftest makes these independent of the
machine's git config.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

SEED_FILES: dict[str, str] = {
    "README.md": "# demo\n",
    "src/utils.py": "def add(a, b):\n    return a + b\n",
    ".gitignore": ".env\n__pycache__/\n",
}


def git(cwd: Path, *args: str, input: str | None = None) -> str:
    """Run git in ``cwd``; return stdout stripped. A failure raises with git's stderr."""
    proc = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed in {cwd}:\n{proc.stderr}")
    return proc.stdout.strip()


def write(root: Path, files: Mapping[str, str]) -> None:
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def commit_files(root: Path, files: Mapping[str, str], message: str = "change") -> str:
    """Write ``files`` (relative path -> content), commit them, return the new sha."""
    write(root, files)
    git(root, "add", "--", *files)
    git(root, "commit", "--quiet", "-m", message)
    return git(root, "rev-parse", "HEAD")


def make_repo(path: Path, files: Mapping[str, str] | None = None) -> Path:
    """``git init -b main`` at ``path`` with seed commits and return ``path``.

    Without ``files``: three commits (README.md; src/utils.py; a .gitignore ignoring ``.env``).
    With ``files``: one commit holding exactly those files.
    """
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "-b", "main")
    if files is None:
        commit_files(path, {"README.md": SEED_FILES["README.md"]}, "Initial commit")
        commit_files(path, {"src/utils.py": SEED_FILES["src/utils.py"]}, "Add utils")
        commit_files(path, {".gitignore": SEED_FILES[".gitignore"]}, "Ignore .env")
    else:
        commit_files(path, files, "Initial commit")
    return path


def make_origin(repo: Path, path: Path) -> Path:
    """Create a bare repository at ``path``, add it to ``repo`` as remote ``origin`` and push
    ``main`` to it (with upstream). Returns ``path``."""
    git(path.parent, "init", "--quiet", "--bare", "-b", "main", str(path))
    git(repo, "remote", "add", "origin", str(path))
    git(repo, "push", "--quiet", "-u", "origin", "main")
    return path


def clone(origin: Path, path: Path) -> Path:
    git(origin.parent, "clone", "--quiet", str(origin), str(path))
    return path
