"""The repository and its refs, through git: where the repository is, what a name points at,
how commits relate, and branches and refs moved with compare-and-swap, fetched and pushed.

Reads here are one git process each; the merge queue's hot path reads the same things in-process
through :mod:`wf.gitx.objects`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from wf.errors import GitError
from wf.gitx.commands import (
    GitCommandError,
    check_rev,
    credential_args,
    output,
    reason,
    run_git,
)

# --- the repository ------------------------------------------------------------------------


def repo_root(path: Path) -> Path:
    """Top of the working tree containing ``path``."""
    proc = run_git(["rev-parse", "--show-toplevel"], cwd=path, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise _not_a_repository(path)
    return Path(proc.stdout.strip())


def common_dir(path: Path) -> Path:
    """Absolute git common dir (shared by all worktrees): where wf keeps its state."""
    proc = run_git(["rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=path,
                   check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise _not_a_repository(path)
    return Path(proc.stdout.strip())


def _not_a_repository(path: Path) -> GitError:
    return GitError(f"not a git repository (or any parent folder): {Path(path).resolve()}",
                    hint="cd into a repository, or make one with `git init` and a first commit")


def git_path(path: Path, name: str) -> Path:
    """Absolute path of ``name`` inside this worktree's own git dir (e.g. its ``index``)."""
    return Path(output(["rev-parse", "--path-format=absolute", "--git-path", name], path))


def current_branch(root: Path) -> str | None:
    """Short name of the checked-out branch, None when HEAD is detached."""
    proc = run_git(["symbolic-ref", "--quiet", "HEAD"], cwd=root, check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout.strip().removeprefix("refs/heads/")


def root_commit(root: Path) -> str | None:
    """The first root commit of HEAD's history (the lowest id, if several): the same in every
    clone of a repository; None before the first commit."""
    proc = run_git(["rev-list", "--max-parents=0", "HEAD"], cwd=root, check=False)
    roots = proc.stdout.split() if proc.returncode == 0 else []
    return min(roots) if roots else None


def rev_parse(root: Path, rev: str) -> str | None:
    """Commit sha that ``rev`` names, None if it names no commit."""
    proc = run_git(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{check_rev(rev)}^{{commit}}"],
        cwd=root, check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def resolve_commit(root: Path, rev: str) -> str:
    """Like :func:`rev_parse` but a missing commit is an error."""
    sha = rev_parse(root, rev)
    if sha is None:
        raise GitError(f"unknown revision {rev!r}")
    return sha


def head(path: Path) -> str:
    """Sha of HEAD in the worktree at ``path``."""
    return resolve_commit(path, "HEAD")


def symbolic_full_name(root: Path, rev: str) -> str | None:
    """``refs/remotes/origin/main`` for ``origin/main``; None for a sha or an unknown name."""
    proc = run_git(
        ["rev-parse", "--symbolic-full-name", "--end-of-options", check_rev(rev)],
        cwd=root, check=False,
    )
    name = proc.stdout.strip()
    return name if proc.returncode == 0 and name.startswith("refs/") else None


def is_ancestor(root: Path, a: str, b: str) -> bool:
    """Whether commit ``a`` is reachable from ``b`` (``a`` is merged into ``b``)."""
    proc = run_git(
        ["merge-base", "--is-ancestor", "--end-of-options", check_rev(a), check_rev(b)],
        cwd=root, check=False,
    )
    if proc.returncode in (0, 1):
        return proc.returncode == 0
    raise GitCommandError(f"git merge-base failed: {reason(proc)}", argv=proc.args,
                          returncode=proc.returncode, stderr=proc.stderr)


def merge_base(root: Path, a: str, b: str) -> str | None:
    """Best common ancestor of two commits, None when they share no history."""
    proc = run_git(["merge-base", "--end-of-options", check_rev(a), check_rev(b)],
                   cwd=root, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def commits_beyond(root: Path, base: str, head_rev: str) -> int:
    """Number of commits in ``base..head``."""
    return int(output(["rev-list", "--count", f"{check_rev(base)}..{check_rev(head_rev)}",
                       "--"], root))


def count_unreachable(root: Path, tip: str, excluded: Sequence[str], *,
                      remotes_too: bool = False) -> int:
    """Commits reachable from ``tip`` but from none of ``excluded`` (nor any remote-tracking
    branch when ``remotes_too``)."""
    args = ["rev-list", "--count", check_rev(tip), "--not", *map(check_rev, excluded)]
    if remotes_too:
        args.append("--remotes")
    return int(output([*args, "--"], root))


# --- refs and branches -------------------------------------------------------------------


def branch_exists(root: Path, name: str) -> bool:
    proc = run_git(["show-ref", "--verify", "--quiet", f"refs/heads/{check_rev(name)}"],
                   cwd=root, check=False)
    return proc.returncode == 0


def create_branch(root: Path, name: str, start: str) -> str:
    """Create branch ``name`` at ``start`` (no upstream); fails if it exists. Returns its sha."""
    sha = resolve_commit(root, start)
    update_ref(root, f"refs/heads/{check_rev(name)}", sha, old="",
               message=f"branch: Created from {start}")
    return sha


def update_ref(root: Path, ref: str, new: str, old: str | None = None, *,
               message: str = "wf") -> None:
    """Point ``ref`` at ``new``. With ``old``, only if it still points there (compare-and-swap;
    ``old=""`` means "only if it does not exist yet")."""
    args = ["update-ref", "-m", message, check_rev(ref), check_rev(new)]
    if old is not None:
        args.append(old if old == "" else check_rev(old))
    run_git(args, cwd=root)


def delete_ref(root: Path, ref: str, old: str | None = None) -> None:
    """Delete ``ref``; with ``old``, only if it still points there."""
    args = ["update-ref", "-d", check_rev(ref)]
    if old is not None:
        args.append(check_rev(old))
    run_git(args, cwd=root)


def list_refs(root: Path, prefix: str) -> dict[str, str]:
    """Full ref name -> commit sha for the refs under ``prefix`` (e.g. ``refs/wf-backup/``)."""
    out = run_git(["for-each-ref", "--format=%(refname)%00%(objectname)", check_rev(prefix)],
                  cwd=root).stdout
    pairs = (line.split("\0", 1) for line in out.splitlines() if line)
    return {name: sha for name, sha in pairs}


def list_branches(root: Path, prefix: str = "wf/") -> dict[str, str]:
    """Short branch name -> sha for local branches whose name starts with ``prefix``."""
    refs = list_refs(root, "refs/heads/")
    names = ((name.removeprefix("refs/heads/"), sha) for name, sha in refs.items())
    return {name: sha for name, sha in names if name.startswith(prefix)}


def remote_tracking_branches_containing(root: Path, sha: str) -> list[str]:
    """Full names (``refs/remotes/origin/main``) of remote-tracking branches containing ``sha``."""
    out = output(["for-each-ref", "--format=%(refname)%00%(symref)", "--contains", check_rev(sha),
                "refs/remotes/"], root)
    pairs = (line.split("\0", 1) for line in out.splitlines() if line)
    return [name for name, symref in pairs if not symref]


# --- remotes ---------------------------------------------------------------------------------


def remotes(root: Path) -> list[str]:
    return output(["remote"], root).split()


def fetch(root: Path, remote: str, ref: str, *, timeout: float | None = 300,
          credentials: tuple[str, str] | None = None) -> None:
    """``git fetch REMOTE REF``; the remote-tracking branch is updated through the remote's
    configured refspec. ``credentials`` as for :func:`push_branch`."""
    opts, env = credential_args(credentials)
    run_git([*opts, "fetch", "--quiet", "--no-tags", "--", check_rev(remote), check_rev(ref)],
            cwd=root, timeout=timeout, env=env)


def split_remote_ref(root: Path, rev: str) -> tuple[str, str] | None:
    """``("origin", "main")`` when ``rev`` names a remote-tracking branch (``origin/main`` or
    ``refs/remotes/origin/main``), even one not fetched yet; None otherwise."""
    full = symbolic_full_name(root, rev)
    if full is not None and not full.startswith("refs/remotes/"):
        return None
    name = (full or rev).removeprefix("refs/remotes/")
    # Remote names may contain '/': prefer the longest remote that matches.
    for remote in sorted(remotes(root), key=len, reverse=True):
        if name.startswith(remote + "/") and len(name) > len(remote) + 1:
            return remote, name[len(remote) + 1:]
    return None


def push_branch(root: Path, remote: str, commit: str, branch: str, *,
                credentials: tuple[str, str] | None = None, timeout: float | None = 300) -> None:
    """Force-push ``commit`` to ``remote``'s ``branch`` (a wf branch: wf owns its history)."""
    opts, env = credential_args(credentials)
    ref = f"refs/heads/{check_rev(branch)}"
    run_git([*opts, "push", "--quiet", "--porcelain", "--", check_rev(remote),
             f"+{check_rev(commit)}:{ref}"], cwd=root, env=env, timeout=timeout)


def push_branches(root: Path, remote: str, pushes: Sequence[tuple[str, str]], *,
                  timeout: float | None = 300) -> None:
    """Force-push each ``(commit, branch)`` to ``remote`` in one ``git push`` (one connection
    and one pack for all): all of them, or a GitCommandError (which may have moved some)."""
    refspecs = [f"+{check_rev(commit)}:refs/heads/{check_rev(branch)}"
                for commit, branch in pushes]
    run_git(["push", "--quiet", "--porcelain", "--", check_rev(remote), *refspecs], cwd=root,
            timeout=timeout)


def remote_url(root: Path, remote: str) -> str | None:
    """``git remote get-url REMOTE`` (``insteadOf`` rewrites applied), None if no such remote."""
    proc = run_git(["remote", "get-url", "--", check_rev(remote)], cwd=root, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def push_with_lease(root: Path, remote: str, commit: str, branch: str, expected: str) -> None:
    """Push ``commit`` to ``remote``'s ``branch`` only if it is still at ``expected``."""
    ref = f"refs/heads/{check_rev(branch)}"
    run_git(["push", "--quiet", "--porcelain", f"--force-with-lease={ref}:{check_rev(expected)}",
             "--", check_rev(remote), f"{check_rev(commit)}:{ref}"], cwd=root)
