"""The one error tree of wf.

    WfError                      root; the CLI catches it once, prints one line, exits with .exit_code
    ├── UsageError               bad command-line input                      exit 2
    ├── ConfigError              bad wf.toml / tasks file / task id / DAG    exit 2
    ├── GitError                 git missing, failed, or the repo is in a bad state   exit 2
    ├── StoreError               the event log cannot be opened or written  exit 2
    │   ├── ConcurrencyError     an append lost a race on (stream, stream_version)
    │   └── StoreDamaged         the event log is damaged: not SQLite, truncated, bad JSON  exit 4
    ├── EngineBusy               another `wf run`/`wf resume` holds the repository   exit 3
    ├── ResourceError            the machine refused wf's own step: disk full, read-only   exit 5
    ├── NotFound                 a task or attempt that the log does not know      exit 2
    ├── AgentSpawnError          the agent process could not be started
    ├── ForgeError               GitHub/GitLab refused or failed a call             exit 2
    │   └── ForgeAuthError       no token, or the forge rejected it (names the variables)
    ├── Refused                  a signal or step that cannot apply to the task's state  exit 1
    └── Interrupted              Ctrl-C or SIGTERM stopped the engine; state kept  exit 130

Foreign errors (subprocess, sqlite3, tomllib, pydantic) are mapped to these at the edge that
calls them, chained with ``from exc`` so a debugger still sees the cause.
"""

from __future__ import annotations


class WfError(Exception):
    """Root of every error wf raises on purpose. ``hint`` is an optional second line."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(WfError):
    pass


class ConfigError(WfError):
    pass


class GitError(WfError):
    pass


class StoreError(WfError):
    pass


class ConcurrencyError(StoreError):
    """An append was rejected because its stream moved on: a decision taken on stale state."""


class StoreDamaged(StoreError):
    """The event log is damaged (not an SQLite file, malformed, truncated while wf's branches
    exist, an event whose data is not JSON). Nothing is written to it; the message names a
    copy of it and the hint says how to recover."""

    exit_code = 4


class EngineBusy(WfError):
    exit_code = 3


class ResourceError(WfError):
    """The machine refused one of wf's own steps (no space left on device, a quota, a read-only
    file system). Not the agent's fault and not a bad config: nothing is charged to a task, the
    step is left unfinished in the log, and `wf resume` does it again once the user made room."""

    exit_code = 5


class NotFound(WfError):
    pass


class AgentSpawnError(WfError):
    pass


class ForgeError(WfError):
    """A forge (GitHub, GitLab, ...) call failed; ``status``: the HTTP status, if there was one."""

    def __init__(self, message: str, *, hint: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class ForgeAuthError(ForgeError):
    """No token was found, or the forge rejected it. The message names the variables to set."""


class Refused(WfError):
    """What was asked cannot apply to the task or queue entry as the log has it (approve an
    entry that landed, cancel a task that failed, forget a running one): nothing was
    recorded. Exit 1, as for a task that did not succeed."""

    exit_code = 1


class Interrupted(WfError):
    """Ctrl-C or SIGTERM stopped the engine; the log is intact and `wf resume` continues."""

    exit_code = 130


def first_in_group(group: BaseExceptionGroup, kind: type[BaseException]) -> BaseException | None:
    """The first exception of ``kind`` in ``group``, however deeply nested; None if none is.
    Task groups wrap what their tasks raise: this finds the error a person should read."""
    match = group.subgroup(lambda e: isinstance(e, kind))
    if match is None:
        return None
    leaf: BaseException = match
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


def sole_wf_error(group: BaseExceptionGroup) -> BaseException | None:
    """The first WfError of ``group`` when it holds nothing else; None otherwise (a bug or an
    interrupt beside it must not be reported as that error)."""
    _, rest = group.split(WfError)
    return first_in_group(group, WfError) if rest is None else None


# How git, SQLite and the OS say that the machine refused a write.
_RESOURCE_WORDS = {"No space left on device": "no space left on device",
                   "database or disk is full": "no space left on device",
                   "Disk quota exceeded": "disk quota exceeded",
                   "Read-only file system": "read-only file system"}
_RESOURCE_ERRNOS = {28: "no space left on device", 122: "disk quota exceeded",
                    30: "read-only file system"}  # ENOSPC, EDQUOT, EROFS


def resource_error(text: str, where: str, errno: int | None = None) -> ResourceError | None:
    """A ResourceError when ``text`` (an error's words) or ``errno`` says the machine refused
    a write; None otherwise. ``where``: what wf was doing and on which path."""
    what = _RESOURCE_ERRNOS.get(errno or -1) or next(
        (said for words, said in _RESOURCE_WORDS.items() if words in text), None)
    if what is None:
        return None
    return ResourceError(f"{what}: {where}",
                         hint="make room, then `wf resume` finishes the step; no agent runs "
                              "again and no attempt is charged for it")
