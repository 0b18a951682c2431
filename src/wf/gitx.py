"""The one module that runs git.

Every function is a thin wrapper over one git command line (or two) and maps failures to
:class:`GitCommandError`, a :class:`~wf.errors.GitError` with a one-line message. Callers never
build git command lines themselves.

Safety rules kept here:

* Values that come from users (refs, remotes, paths) are never placed where git could read them as
  options: refs are checked with :func:`check_rev` (nothing starting with ``-``) and commands get
  ``--end-of-options`` or ``--`` where git supports it.
* Repository-locating variables inherited from a parent git process (``GIT_DIR``,
  ``GIT_INDEX_FILE``, ... set when wf runs inside a hook) are dropped, so ``cwd`` alone decides
  which repository is used.
* git never prompts: stdin is closed and ``GIT_TERMINAL_PROMPT=0``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wf.errors import GitError, resource_error

# Variables that point git at a repository or index; see `git rev-parse --local-env-vars`.
_LOCATION_VARS = (
    "GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_IMPLICIT_WORK_TREE", "GIT_PREFIX",
    "GIT_SHALLOW_FILE", "GIT_GRAFT_FILE",
)
# Forge tokens wf may hold in its own environment. git never needs them (wf hands a token to git
# explicitly, see credential_args), hooks, which an agent can write, would inherit them, and
# agents never get them (wf.agents.runner).
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


@dataclass(frozen=True)
class WorktreeEntry:
    """One record of ``git worktree list --porcelain``. ``branch`` is short (``wf/x``), None if
    detached; ``locked``/``prunable`` hold git's reason ("" when none was given) or None."""

    path: Path
    head: str | None
    branch: str | None
    bare: bool = False
    locked: str | None = None
    prunable: str | None = None


# --- running git ---------------------------------------------------------------------------


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
    name = _command_name(args)
    try:
        proc = subprocess.run(
            argv, cwd=cwd, env=full_env, input=input, timeout=timeout,
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
            f"git {name} failed: {_reason(proc)}",
            argv=argv, returncode=proc.returncode, stderr=proc.stderr,
        )
    return proc


def _command_name(args: Sequence[str]) -> str:
    """``worktree add`` for ``["-c", "x=y", "worktree", "add", ...]``: for error messages."""
    rest = list(args)
    while rest and rest[0].startswith("-"):
        rest = rest[2:] if rest[0] in ("-c", "-C") else rest[1:]
    if not rest:
        return "?"
    if rest[0] in _TWO_WORD_COMMANDS and len(rest) > 1 and not rest[1].startswith("-"):
        return f"{rest[0]} {rest[1]}"
    return rest[0]


def _reason(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (proc.stderr or proc.stdout or "").splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        for prefix in ("fatal: ", "error: "):
            if line.startswith(prefix):
                return line[len(prefix):]
    return lines[0] if lines else f"exit code {proc.returncode}"


def _out(args: Sequence[str], cwd: Path, *, env: Mapping[str, str] | None = None,
         input: str | None = None) -> str:
    return run_git(args, cwd=cwd, env=env, input=input).stdout.strip()


def check_rev(rev: str) -> str:
    """Return ``rev`` if it is safe to hand to git as a revision or ref name."""
    if not isinstance(rev, str) or not rev or rev.startswith("-") or any(
        c in rev for c in "\0\n\r"
    ):
        raise GitError(f"refusing suspicious git ref {rev!r}")
    return rev


# --- repository --------------------------------------------------------------------------


def init_repo(path: Path, message: str | None = None, *, branch: str = "main") -> str | None:
    """``git init`` at ``path`` (existing repositories are left as they are) on ``branch``; with
    ``message``, commit every file there. Returns the new commit's sha, if one was made."""
    path.mkdir(parents=True, exist_ok=True)
    run_git(["init", "--quiet", f"--initial-branch={check_rev(branch)}"], cwd=path)
    return commit_all(path, message) if message is not None else None


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
    return Path(_out(["rev-parse", "--path-format=absolute", "--git-path", name], path))


def current_branch(root: Path) -> str | None:
    """Short name of the checked-out branch, None when HEAD is detached."""
    proc = run_git(["symbolic-ref", "--quiet", "HEAD"], cwd=root, check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout.strip().removeprefix("refs/heads/")


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


def remotes(root: Path) -> list[str]:
    return _out(["remote"], root).split()


def is_dirty(path: Path) -> bool:
    """True when tracked files changed or untracked, not-ignored files exist."""
    out = run_git(
        ["--no-optional-locks", "status", "--porcelain", "-z", "--untracked-files=normal"],
        cwd=path,
    ).stdout
    return bool(out)


def is_ancestor(root: Path, a: str, b: str) -> bool:
    """Whether commit ``a`` is reachable from ``b`` (``a`` is merged into ``b``)."""
    proc = run_git(
        ["merge-base", "--is-ancestor", "--end-of-options", check_rev(a), check_rev(b)],
        cwd=root, check=False,
    )
    if proc.returncode in (0, 1):
        return proc.returncode == 0
    raise GitCommandError(f"git merge-base failed: {_reason(proc)}", argv=proc.args,
                          returncode=proc.returncode, stderr=proc.stderr)


def merge_base(root: Path, a: str, b: str) -> str | None:
    """Best common ancestor of two commits, None when they share no history."""
    proc = run_git(["merge-base", "--end-of-options", check_rev(a), check_rev(b)],
                   cwd=root, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def commits_beyond(root: Path, base: str, head_rev: str) -> int:
    """Number of commits in ``base..head``."""
    return int(_out(["rev-list", "--count", f"{check_rev(base)}..{check_rev(head_rev)}", "--"],
                    root))


def count_unreachable(root: Path, tip: str, excluded: Sequence[str], *,
                      remotes_too: bool = False) -> int:
    """Commits reachable from ``tip`` but from none of ``excluded`` (nor any remote-tracking
    branch when ``remotes_too``)."""
    args = ["rev-list", "--count", check_rev(tip), "--not", *map(check_rev, excluded)]
    if remotes_too:
        args.append("--remotes")
    return int(_out([*args, "--"], root))


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


def delete_branch(root: Path, name: str) -> None:
    """Force-delete a local branch (callers decide whether that is safe). git refuses when the
    branch is checked out in a worktree."""
    run_git(["branch", "-D", "--", check_rev(name)], cwd=root)


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
    out = _out(["for-each-ref", "--format=%(refname)%00%(symref)", "--contains", check_rev(sha),
                "refs/remotes/"], root)
    pairs = (line.split("\0", 1) for line in out.splitlines() if line)
    return [name for name, symref in pairs if not symref]


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


# --- commits and trees -------------------------------------------------------------------


def _identity_args(path: Path) -> list[str]:
    """``-c user.name=wf -c user.email=wf@localhost`` when git has no identity of its own."""
    for var in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"):
        if run_git(["var", var], cwd=path, check=False).returncode != 0:
            return list(_FALLBACK_IDENTITY)
    return []


def commit_all(path: Path, message: str, trailers: Mapping[str, str] | None = None) -> str | None:
    """Stage everything (respecting .gitignore) and commit with ``trailers``. Returns the new sha,
    or None when there was nothing to commit. Hooks are skipped: this records an agent's work,
    the merge queue runs the checks."""
    run_git(["add", "-A"], cwd=path)
    if run_git(["diff", "--cached", "--quiet"], cwd=path, check=False).returncode == 0:
        return None
    args = [*_identity_args(path), "commit", "--quiet", "--no-verify", "-F", "-"]
    for key, value in (trailers or {}).items():
        args += ["--trailer", f"{key}: {value}"]
    run_git(args, cwd=path, input=message)
    return head(path)


def merge_into_worktree(path: Path, refs: Sequence[str]) -> bool:
    """Merge ``refs`` into the branch checked out at ``path``, one after the other. On a conflict
    every merge of this call is undone and False is returned."""
    start = head(path)
    ident = _identity_args(path)
    for ref in refs:
        proc = run_git([*ident, "merge", "--no-edit", "--no-verify", "--end-of-options",
                        check_rev(ref)], cwd=path, check=False)
        if proc.returncode == 0:
            continue
        in_merge = rev_parse(path, "MERGE_HEAD") is not None
        if in_merge:
            run_git(["merge", "--abort"], cwd=path)
        if head(path) != start:
            run_git(["reset", "--keep", start], cwd=path)  # keeps unrelated local changes
        if in_merge:
            return False
        raise GitCommandError(f"git merge failed: {_reason(proc)}", argv=proc.args,
                              returncode=proc.returncode, stderr=proc.stderr)
    return True


@contextmanager
def _temporary_index(path: Path, *, exact: bool) -> Iterator[dict[str, str]]:
    """Environment for git commands that use a throw-away index of the worktree: a copy of its
    own (stat info kept: ``add -A`` then hashes only files whose stat changed), or, ``exact``,
    HEAD's entries without any stat info, so that every file is read."""
    real = git_path(path, "index")
    tmp = real.with_name(f"wf-index-{uuid.uuid4().hex}")
    env = {"GIT_INDEX_FILE": str(tmp)}
    try:
        if exact:
            run_git(["read-tree", "HEAD"], cwd=path, env=env)
        elif real.exists():
            shutil.copyfile(real, tmp)
        yield env
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".lock")):
            leftover.unlink(missing_ok=True)


def snapshot_tree(path: Path, *, exact: bool = True) -> str:
    """Tree id of the working tree as it is, untracked files included, ignored ones not.
    Neither the real index nor any ref is touched. ``exact`` (for backups) reads every file:
    with the index's stat info, a file rewritten with the same size within the same clock tick
    as its recorded state looks unchanged to git, and a backup would miss the change. Without
    it (a diff to show), only files whose stat changed are read."""
    with _temporary_index(path, exact=exact) as env:
        run_git(["add", "-A"], cwd=path, env=env)
        return _out(["write-tree"], path, env=env)


def tree_of(root: Path, rev: str) -> str:
    return _out(["rev-parse", "--verify", "--end-of-options", f"{check_rev(rev)}^{{tree}}"], root)


def commit_tree(root: Path, tree: str, parents: Sequence[str], message: str) -> str:
    """Create a commit object (no ref moves) and return its sha."""
    args = [*_identity_args(root), "commit-tree", check_rev(tree)]
    for parent in parents:
        args += ["-p", check_rev(parent)]
    return _out(args, root, input=message)


def reset_hard(path: Path, commit: str) -> None:
    """``git reset --hard COMMIT`` then ``git clean -fd``: ignored files (a copied .env) stay."""
    sha = resolve_commit(path, commit)
    run_git(["reset", "--quiet", "--hard", sha, "--"], cwd=path)
    run_git(["clean", "-fdq"], cwd=path)


# --- diffs -------------------------------------------------------------------------------


def diff(root: Path, base: str, head_rev: str, stat: bool = False) -> str:
    """Diff between two commits (or trees)."""
    args = ["diff", "--no-color", "--no-ext-diff", *(["--stat"] if stat else []),
            "--end-of-options", check_rev(base), check_rev(head_rev), "--"]
    return run_git(args, cwd=root).stdout


def diff_worktree(path: Path, base: str, stat: bool = False) -> str:
    """Diff from ``base`` to the working tree as it is, uncommitted and untracked files included."""
    return diff(path, base, snapshot_tree(path, exact=False), stat=stat)


# --- worktrees ---------------------------------------------------------------------------


def list_worktrees(root: Path) -> list[WorktreeEntry]:
    """Every worktree of the repository, the main one first."""
    out = run_git(["worktree", "list", "--porcelain", "-z"], cwd=root).stdout
    entries: list[WorktreeEntry] = []
    record: dict[str, str] = {}
    for field in out.split("\0"):
        if field:
            key, _, value = field.partition(" ")
            record[key] = value
        elif record:
            entries.append(_worktree_entry(record))
            record = {}
    if record:
        entries.append(_worktree_entry(record))
    return entries


def _worktree_entry(record: dict[str, str]) -> WorktreeEntry:
    branch = record.get("branch")
    return WorktreeEntry(
        path=Path(record["worktree"]),
        head=record.get("HEAD"),
        branch=branch.removeprefix("refs/heads/") if branch else None,
        bare="bare" in record,
        locked=record.get("locked"),
        prunable=record.get("prunable"),
    )


def worktree_add_unpopulated(root: Path, path: Path, branch: str, *, lock_reason: str,
                             create_at: str | None = None) -> None:
    """Register a worktree at ``path`` for ``branch`` (created at ``create_at`` when given,
    which fails if it exists) without checking out its files, locked with ``lock_reason``:
    the quick part of ``git worktree add``. :func:`populate_worktree` does the rest."""
    new_branch = ["-b", check_rev(branch)] if create_at else []
    start = [check_rev(create_at)] if create_at else [check_rev(branch)]
    run_git(["worktree", "add", "--quiet", "--no-checkout", "--lock", "--reason", lock_reason,
             *new_branch, "--", str(path), *start], cwd=root)


def populate_worktree(path: Path) -> None:
    """Check out the files of a worktree made by :func:`worktree_add_unpopulated` (or redo it
    after a crash half-way): what ``git worktree add`` does after registering, post-checkout
    hook included. Touches only this worktree, so it needs no repository-wide lock.

    The worktree's git dir is named explicitly: were its ``.git`` file missing, git would
    otherwise find an enclosing repository and force a checkout there."""
    try:
        gitfile = (path / ".git").read_text(encoding="utf-8")
    except OSError as exc:
        raise GitError(f"{path} is not a complete worktree: {exc.strerror or exc}") from exc
    if not gitfile.startswith("gitdir: "):
        raise GitError(f"{path} is not a complete worktree: its .git file is not a gitdir link")
    git_dir = gitfile.removeprefix("gitdir: ").strip()
    run_git([f"--git-dir={git_dir}", f"--work-tree={path}", "checkout", "--force", "--quiet"],
            cwd=path)


def worktree_remove(root: Path, path: Path, *, force: bool = False) -> None:
    run_git(["worktree", "remove", *(["--force"] if force else []), "--", str(path)], cwd=root)


def worktree_prune(root: Path) -> None:
    run_git(["worktree", "prune"], cwd=root)


def worktree_unlock(root: Path, path: Path) -> None:
    run_git(["worktree", "unlock", "--", str(path)], cwd=root)


# --- files -------------------------------------------------------------------------------


def untracked_matching(root: Path, exclude_file: Path) -> list[str]:
    """Untracked files (paths relative to ``root``) matched by the patterns in ``exclude_file``,
    ignoring .gitignore."""
    out = run_git(["ls-files", "-z", "--others", "--ignored", f"--exclude-from={exclude_file}"],
                  cwd=root).stdout
    return [p for p in out.split("\0") if p]


def ignored_among(root: Path, paths: Sequence[str]) -> list[str]:
    """Those of ``paths`` that .gitignore (and info/exclude, core.excludesFile) ignore."""
    if not paths:
        return []
    proc = run_git(["check-ignore", "-z", "--stdin"], cwd=root, check=False,
                   input="".join(p + "\0" for p in paths))
    if proc.returncode not in (0, 1):  # 1: none of them is ignored
        raise GitCommandError(f"git check-ignore failed: {_reason(proc)}", argv=proc.args,
                              returncode=proc.returncode, stderr=proc.stderr)
    return [p for p in proc.stdout.split("\0") if p]


# --- merging without a worktree ----------------------------------------------------------


@dataclass(frozen=True)
class MergeTreeResult:
    """What ``git merge-tree --write-tree`` says about merging two commits. ``tree`` is the
    merged tree when ``clean`` (None otherwise: git's tree then holds conflict markers);
    ``messages`` are git's lines about a conflicted merge (``CONFLICT (content): Merge conflict
    in a.py``, ``Auto-merging a.py``); git prints none for a clean one."""

    clean: bool
    tree: str | None
    conflicted_files: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()


def merge_tree(root: Path, onto: str, branch: str) -> MergeTreeResult:
    """Merge ``branch`` into ``onto`` in memory (the same ort merge ``git merge`` does, from their
    merge base) without touching a worktree, the index or any ref. Histories that share no
    commit are an error, as are names that are not commits."""
    args = ["merge-tree", "--write-tree", "--name-only", "-z", "--end-of-options",
            check_rev(onto), check_rev(branch)]
    proc = run_git(args, cwd=root, check=False)
    fields = proc.stdout.split("\0")
    # git 2.39 also exits 1, with nothing on stdout, for a name that is not a commit.
    if proc.returncode not in (0, 1) or not _is_object_id(fields[0]):
        raise GitCommandError(f"git merge-tree failed: {_reason(proc)}", argv=proc.args,
                              returncode=proc.returncode, stderr=proc.stderr)
    if proc.returncode == 0:
        return MergeTreeResult(clean=True, tree=fields[0])
    # -z output: TREE NUL (FILE NUL)* NUL (COUNT NUL (PATH NUL){COUNT} TYPE NUL MESSAGE NUL)*
    end = fields.index("", 1) if "" in fields[1:] else len(fields)
    files = tuple(dict.fromkeys(fields[1:end]))
    return MergeTreeResult(clean=False, tree=None, conflicted_files=files,
                           messages=_merge_messages(fields[end + 1:]))


def _merge_messages(fields: Sequence[str]) -> tuple[str, ...]:
    messages: list[str] = []
    i = 0
    while i < len(fields) and fields[i].isdigit():
        i += 1 + int(fields[i])  # skip the count and the paths the message is about
        if i + 1 < len(fields):  # fields[i] is the type ("CONFLICT (contents)"), then the text
            messages.append(fields[i + 1].strip())
        i += 2
    return tuple(messages)


def _is_object_id(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


@dataclass(frozen=True)
class ChangedFile:
    """One record of ``git diff --numstat``: lines added and deleted, both None for a binary
    file; ``old_path`` is the path before a rename."""

    path: str
    added: int | None
    deleted: int | None
    old_path: str | None = None


def diff_numstat(root: Path, base: str, head_rev: str) -> tuple[ChangedFile, ...]:
    """Files changed from ``base`` to ``head_rev`` (commits or trees), renames detected. Raw
    counts: no textconv, no external diff, paths relative to the top of the repository."""
    out = run_git(["diff", "--numstat", "-z", "-M", "--no-textconv", "--no-ext-diff",
                   "--no-relative", "--end-of-options", check_rev(base), check_rev(head_rev),
                   "--"], cwd=root).stdout
    fields = out.split("\0")
    changes: list[ChangedFile] = []
    i = 0
    while i < len(fields) and fields[i]:
        added, deleted, path = fields[i].split("\t", 2)
        old_path = None
        if not path:  # a rename: "ADDED\tDELETED\t" NUL OLD NUL NEW
            old_path, path = fields[i + 1], fields[i + 2]
            i += 2
        changes.append(ChangedFile(path, _count(added), _count(deleted), old_path))
        i += 1
    return tuple(changes)


def _count(field: str) -> int | None:
    return None if field == "-" else int(field)


# --- the merge queue: integration worktrees and landing ----------------------------------------

def worktree_add_detached(root: Path, path: Path, commit: str) -> None:
    """A new worktree at ``path`` with a detached HEAD at ``commit`` (no branch)."""
    run_git(["worktree", "add", "--quiet", "--detach", "--", str(path), check_rev(commit)],
            cwd=root)


def checkout_detached(path: Path, commit: str) -> None:
    """Move a worktree to ``commit`` exactly: forced checkout, then untracked files removed
    (ignored ones stay, like a CI cache)."""
    run_git(["checkout", "--quiet", "--force", "--detach", check_rev(commit), "--"], cwd=path)
    run_git(["clean", "-fdq"], cwd=path)


def has_tracked_changes(path: Path) -> bool:
    """Uncommitted changes to tracked files (staged or not); untracked files do not count."""
    return bool(_out(["status", "--porcelain", "--untracked-files=no"], path))


def read_tree_refusal(path: Path, old: str, new: str) -> str | None:
    """Why :func:`read_tree_update` would fail (git's reason, e.g. an untracked file it would
    overwrite), or None: a dry run that touches nothing."""
    proc = run_git(["read-tree", "-n", "-m", "-u", check_rev(old), check_rev(new)], cwd=path,
                   check=False)
    return _reason(proc) if proc.returncode != 0 else None


def read_tree_update(path: Path, old: str, new: str) -> None:
    """Bring the index and files of the worktree at ``path`` from ``old`` to ``new`` (a
    two-tree merge: local changes that do not conflict are kept)."""
    run_git(["read-tree", "-m", "-u", check_rev(old), check_rev(new)], cwd=path)


def push_with_lease(root: Path, remote: str, commit: str, branch: str, expected: str) -> None:
    """Push ``commit`` to ``remote``'s ``branch`` only if it is still at ``expected``."""
    ref = f"refs/heads/{check_rev(branch)}"
    run_git(["push", "--quiet", "--porcelain", f"--force-with-lease={ref}:{check_rev(expected)}",
             "--", check_rev(remote), f"{check_rev(commit)}:{ref}"], cwd=root)


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


def push_branch(root: Path, remote: str, commit: str, branch: str, *,
                credentials: tuple[str, str] | None = None, timeout: float | None = 300) -> None:
    """Force-push ``commit`` to ``remote``'s ``branch`` (a wf branch: wf owns its history)."""
    opts, env = credential_args(credentials)
    ref = f"refs/heads/{check_rev(branch)}"
    run_git([*opts, "push", "--quiet", "--porcelain", "--", check_rev(remote),
             f"+{check_rev(commit)}:{ref}"], cwd=root, env=env, timeout=timeout)


def remote_url(root: Path, remote: str) -> str | None:
    """``git remote get-url REMOTE`` (``insteadOf`` rewrites applied), None if no such remote."""
    proc = run_git(["remote", "get-url", "--", check_rev(remote)], cwd=root, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def merge_leaving_conflicts(path: Path, ref: str) -> tuple[str, ...]:
    """Merge ``ref`` into the worktree at ``path`` and leave any conflict in place for someone
    to resolve (the merge completes with the next commit). Returns the conflicted files."""
    proc = run_git([*_identity_args(path), "merge", "--no-edit", "--no-verify",
                    "--end-of-options", check_rev(ref)], cwd=path, check=False)
    if proc.returncode == 0:
        return ()
    if rev_parse(path, "MERGE_HEAD") is None:
        raise GitCommandError(f"git merge failed: {_reason(proc)}", argv=proc.args,
                              returncode=proc.returncode, stderr=proc.stderr)
    files = _out(["diff", "--name-only", "--diff-filter=U", "-z"], path)
    return tuple(f for f in files.split("\0") if f)


# --- in-process object access (pygit2) for the merge queue's hot path --------------------------

class ObjectDb:
    """In-process reads and merges of one repository's objects through pygit2 (libgit2).

    The merge queue admits and merges hundreds of entries per minute; one git process per
    step costs ~4 ms, libgit2 well under 1 ms. Only objects are written (trees and commits,
    no refs, no index, no worktree), so this never competes with the git CLI for locks.
    Merges are libgit2's, which can differ from git's ort in rename corner cases: the queue
    checks and lands the very tree it built, so the rule "only tested trees land" holds either
    way. Calls are serialised by a lock: a pygit2 Repository is not safe to share across
    threads at once."""

    def __init__(self, root: Path) -> None:
        import pygit2

        self._pygit2 = pygit2
        try:
            self.repo = pygit2.Repository(str(root))
        except pygit2.GitError as exc:
            raise GitError(f"cannot open the repository at {root}: {exc}") from exc
        self.lock = threading.Lock()

    def _commit(self, rev: str) -> Any:
        try:
            return self.repo.revparse_single(check_rev(rev)).peel(self._pygit2.Commit)
        except (KeyError, ValueError, self._pygit2.GitError) as exc:
            raise GitError(f"unknown revision {rev!r}: not a commit of this repository") from exc

    def resolve(self, rev: str) -> str:
        with self.lock:
            return str(self._commit(rev).id)

    def merge_base(self, a: str, b: str) -> str | None:
        with self.lock:
            base = self.repo.merge_base(self._commit(a).id, self._commit(b).id)
            return None if base is None else str(base)

    def is_ancestor(self, a: str, b: str) -> bool:
        with self.lock:
            ca, cb = self._commit(a).id, self._commit(b).id
            return ca == cb or self.repo.descendant_of(cb, ca)

    def commits_beyond(self, base: str, head_rev: str) -> int:
        with self.lock:
            ahead, _behind = self.repo.ahead_behind(self._commit(head_rev).id,
                                                    self._commit(base).id)
            return ahead

    def diff_numstat(self, base: str, head_rev: str) -> tuple[ChangedFile, ...]:
        with self.lock:
            diff = self.repo.diff(self._commit(base).tree, self._commit(head_rev).tree)
            diff.find_similar()
            out = []
            for patch in diff:
                delta = patch.delta
                renamed = delta.status == self._pygit2.enums.DeltaStatus.RENAMED
                if delta.is_binary:
                    added = deleted = None
                else:
                    _context, added, deleted = patch.line_stats
                out.append(ChangedFile(delta.new_file.path, added, deleted,
                                       delta.old_file.path if renamed else None))
            return tuple(out)

    def own_commits(self, head: str, fork: str, limit: int = 1000) -> frozenset[str] | None:
        """The commits after ``fork`` up to ``head`` when they are one line of single-parent
        commits (the usual shape of a task's branch); None otherwise, or past ``limit``."""
        with self.lock:
            commit, stop = self._commit(head), self._commit(fork).id
            own: set[str] = set()
            while commit.id != stop:
                if len(commit.parent_ids) != 1 or len(own) >= limit:
                    return None
                own.add(str(commit.id))
                commit = commit.parents[0]
            return frozenset(own)

    def changed_paths(self, old: str, new: str) -> frozenset[str]:
        """The paths that differ between two trees (or commits' trees), both sides of each."""
        with self.lock:
            try:
                trees = [self.repo[check_rev(rev)].peel(self._pygit2.Tree) for rev in (old, new)]
            except (KeyError, ValueError, self._pygit2.GitError) as exc:
                raise GitError(f"cannot compare {old[:10]} with {new[:10]}: {exc}") from exc
            return frozenset(path for delta in self.repo.diff(*trees).deltas
                             for path in (delta.old_file.path, delta.new_file.path))

    def merge_tree(self, onto: str, branch: str, *, base: str | None = None,
                   write: bool = True) -> MergeTreeResult:
        """``branch`` merged into ``onto`` from their merge base (``base`` when the caller
        knows it already), in memory. Without ``write`` a clean merge's tree is not written
        (``tree`` is None): half the cost, for a caller that only asks whether it conflicts."""
        with self.lock:
            ours, theirs = self._commit(onto), self._commit(branch)
            if base is None:
                base = self.repo.merge_base(ours.id, theirs.id)
            else:
                base = self._commit(base).id
            if base is None:
                raise GitError(f"{branch} shares no history with {onto}")
            index = self.repo.merge_trees(self.repo[base].tree, ours.tree, theirs.tree)
            if index.conflicts is not None:
                files: list[str] = []
                messages: list[str] = []
                for ancestor, mine, other in index.conflicts:
                    path = next(e.path for e in (ancestor, mine, other) if e is not None)
                    if path not in files:
                        files.append(path)
                        messages.append(_conflict_message(path, ancestor, mine, other,
                                                          onto, branch))
                return MergeTreeResult(clean=False, tree=None, conflicted_files=tuple(files),
                                       messages=tuple(messages))
            return MergeTreeResult(clean=True,
                                   tree=str(index.write_tree(self.repo)) if write else None)

    def create_commit(self, tree: str, parents: Sequence[str], message: str) -> str:
        """A commit object (no ref moves), signed by git's configured identity or wf's."""
        with self.lock:
            sig = self._signature()
            oid = self.repo.create_commit(None, sig, sig, message,
                                          self._pygit2.Oid(hex=tree),
                                          [self._pygit2.Oid(hex=p) for p in parents])
            return str(oid)

    def _signature(self) -> Any:
        name = os.environ.get("GIT_COMMITTER_NAME")
        email = os.environ.get("GIT_COMMITTER_EMAIL")
        if not (name and email):
            try:
                cfg = self.repo.config
                name, email = name or cfg["user.name"], email or cfg["user.email"]
            except (KeyError, self._pygit2.GitError):
                name, email = "wf", "wf@localhost"
        return self._pygit2.Signature(name, email)


def _conflict_message(path: str, ancestor: Any, mine: Any, other: Any, onto: str,
                      branch: str) -> str:
    """git's wording for a conflict, from the index stages libgit2 reports."""
    if mine is None:
        return f"CONFLICT (modify/delete): {path} deleted in {onto} and modified in {branch}."
    if other is None:
        return f"CONFLICT (modify/delete): {path} deleted in {branch} and modified in {onto}."
    kind = "add/add" if ancestor is None else "content"
    return f"CONFLICT ({kind}): Merge conflict in {path}"


_object_dbs: dict[str, ObjectDb] = {}
_object_dbs_lock = threading.Lock()


def object_db(root: Path) -> ObjectDb:
    """The shared ObjectDb of the repository at ``root``."""
    key = str(Path(root).resolve())
    with _object_dbs_lock:
        if key not in _object_dbs:
            _object_dbs[key] = ObjectDb(Path(key))
        return _object_dbs[key]
