"""Running git: the one place a git process is started, and how its failures read.

Every other module of :mod:`wf.gitx` builds its command lines on :func:`run_git`, which maps
failures to :class:`GitCommandError`, a :class:`~wf.errors.GitError` with a one-line message.
Callers outside the package never build git command lines themselves.

Safety rules kept here:

* Values that come from users (refs, remotes, paths) are never placed where git could read them as
  options: refs are checked with :func:`check_rev` (nothing starting with ``-``) and commands get
  ``--end-of-options`` or ``--`` where git supports it.
* Repository-locating variables inherited from a parent git process (``GIT_DIR``,
  ``GIT_INDEX_FILE``, ... set when wf runs inside a hook) are dropped, so ``cwd`` alone decides
  which repository is used.
* git never prompts: stdin is closed and ``GIT_TERMINAL_PROMPT=0``.
* A forge token reaches git only through :func:`credential_args`.

:func:`output`, :func:`reason`, :func:`identity_args` and :func:`command_name` are helpers for
the package's other modules (and wf's benchmark), not re-exported by :mod:`wf.gitx`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from wf.errors import GitError, resource_error

# Variables that point git at a repository or index; see `git rev-parse --local-env-vars`.
_LOCATION_VARS = (
    "GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_IMPLICIT_WORK_TREE", "GIT_PREFIX",
    "GIT_SHALLOW_FILE", "GIT_GRAFT_FILE",
)
# Forge tokens wf may hold in its own environment. git never needs them (wf hands a token to git
# explicitly, see credential_args), hooks, which an agent can write, would inherit them, and
# agents never get them (wf.agents.process).
FORGE_TOKENS = frozenset({"GH_TOKEN", "GITHUB_TOKEN", "GH_ENTERPRISE_TOKEN",
                          "GITHUB_ENTERPRISE_TOKEN", "GITLAB_TOKEN", "GITLAB_PRIVATE_TOKEN",
                          "CI_JOB_TOKEN"})
_TWO_WORD_COMMANDS = {"worktree", "remote", "stash", "submodule", "notes"}
_FALLBACK_IDENTITY = ("-c", "user.name=wf", "-c", "user.email=wf@localhost")


class GitCommandError(GitError):
    """A git command exited non-zero. Keeps the details a caller may need to decide what to do."""

    def __init__(self, message: str, *, argv: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(message)
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr


def run_git(
    args: Sequence[str],
    *,
    cwd: Path,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``git -c core.quotepath=off ARGS`` in ``cwd`` and capture its output as text.

    ``env`` holds variables added to (or overriding) the inherited environment. With ``check``, a
    non-zero exit raises :class:`GitCommandError` (``git <subcommand> failed: <reason>``).
    """
    argv = ["git", "-c", "core.quotepath=off", *args]
    full_env = {k: v for k, v in os.environ.items()
                if k not in _LOCATION_VARS and k not in FORGE_TOKENS}
    full_env["GIT_TERMINAL_PROMPT"] = "0"  # a prompt on /dev/tty would hang wf (or its TUI)
    if env:
        full_env.update(env)
    name = command_name(args)
    try:
        proc = subprocess.run(
            argv, cwd=cwd, env=full_env, input=input, timeout=timeout, check=False,
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True, text=True, encoding="utf-8", errors="surrogateescape",
        )
    except FileNotFoundError as exc:
        if exc.filename not in (None, "git") and not Path(cwd).is_dir():
            raise GitError(f"not a directory: {cwd}") from exc
        raise GitError("git is not installed or not on PATH") from exc
    except NotADirectoryError as exc:
        raise GitError(f"not a directory: {cwd}") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {name} timed out after {timeout:g}s") from exc
    if check and proc.returncode != 0:
        refused = resource_error(proc.stderr or "", f"git {name} in {cwd}")
        if refused is not None:
            raise refused
        raise GitCommandError(
            f"git {name} failed: {reason(proc)}",
            argv=argv, returncode=proc.returncode, stderr=proc.stderr,
        )
    return proc


def command_name(args: Sequence[str]) -> str:
    """``worktree add`` for ``["-c", "x=y", "worktree", "add", ...]``: for error messages."""
    rest = list(args)
    while rest and rest[0].startswith("-"):
        rest = rest[2:] if rest[0] in ("-c", "-C") else rest[1:]
    if not rest:
        return "?"
    if rest[0] in _TWO_WORD_COMMANDS and len(rest) > 1 and not rest[1].startswith("-"):
        return f"{rest[0]} {rest[1]}"
    return rest[0]


def reason(proc: subprocess.CompletedProcess[str]) -> str:
    """git's own one-line reason for a failure (its ``fatal:``/``error:`` line)."""
    lines = [line.strip() for line in (proc.stderr or proc.stdout or "").splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        for prefix in ("fatal: ", "error: "):
            if line.startswith(prefix):
                return line[len(prefix):]
    return lines[0] if lines else f"exit code {proc.returncode}"


def output(args: Sequence[str], cwd: Path, *, env: Mapping[str, str] | None = None,
           input: str | None = None) -> str:
    """stdout of a git command that must succeed, stripped."""
    return run_git(args, cwd=cwd, env=env, input=input).stdout.strip()


def check_rev(rev: str) -> str:
    """Return ``rev`` if it is safe to hand to git as a revision or ref name."""
    if not isinstance(rev, str) or not rev or rev.startswith("-") or any(
        c in rev for c in "\0\n\r"
    ):
        raise GitError(f"refusing suspicious git ref {rev!r}")
    return rev


def identity_args(path: Path) -> list[str]:
    """``-c user.name=wf -c user.email=wf@localhost`` when git has no identity of its own."""
    for var in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"):
        if run_git(["var", var], cwd=path, check=False).returncode != 0:
            return list(_FALLBACK_IDENTITY)
    return []


# A credential helper that answers from the environment of the one git process it serves, so a
# forge token reaches git without appearing in a URL, an argument or a file. The empty helper
# first clears the user's own helpers for this push.
_ENV_CREDENTIAL_HELPER = ('!f() { test "$1" = get && printf "username=%s\\npassword=%s\\n" '
                          '"$WF_GIT_USERNAME" "$WF_GIT_PASSWORD"; }; f')


def credential_args(credentials: tuple[str, str] | None) -> tuple[list[str], dict[str, str]]:
    """(git options, environment) that make git authenticate with ``credentials`` over https.

    Hooks are switched off for that git process: the hooks folder is shared by every worktree,
    so an agent could have put a hook there, and a hook would inherit the token."""
    if credentials is None:
        return [], {}
    user, secret = credentials
    return (["-c", "core.hooksPath=/dev/null", "-c", "credential.helper=",
             "-c", f"credential.helper={_ENV_CREDENTIAL_HELPER}"],
            {"WF_GIT_USERNAME": user, "WF_GIT_PASSWORD": secret})
