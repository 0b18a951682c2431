"""Commands from people (cancel, retry, enqueue, approve, ...) written to the log as signals.

A signal is a row of the ``signals`` stream that the running engine consumes (or the next one,
first thing), so it works from another terminal, from the dashboard, or before an engine runs.
Before it is recorded it is judged by the same rule the engine applies
(``engine.signal_rules.judge_signal``), so a command that cannot apply is refused at once.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from wf import gitx
from wf.errors import ConfigError, NotFound, Refused
from wf.model import SIGNAL_STREAM, Event, NewEvent, SignalKind
from wf.repository import Repo, engine_active, get_task, open_store

if TYPE_CHECKING:
    from wf.store import EventStore


def record_signal(repo: Repo, kind: SignalKind, task_id: str,
                  **data: Any) -> tuple[Event, bool]:
    """Write a signal for the engine; (the event, whether an engine is active to act on it).

    A signal that cannot apply to the task or entry as the log has it is refused (Refused,
    exit 1) and not recorded, by the same rule the engine applies (``judge_signal``); one
    whose outcome depends on what the engine finds first (cancel of a running task) is
    recorded. Neither the engine nor wf.toml is needed (wf.toml only for a queue signal while
    no engine runs), so a broken config never keeps a person from cancelling."""
    from wf.engine.signal_rules import QUEUE_SIGNALS, VERBS, judge_signal

    store = open_store(repo, create=bool(data.get("branch")))
    try:
        task = store.task(task_id)
        entry = _queue_entry(store, task_id)
        if data.get("branch"):  # wf queue add --branch: an entry with no task behind it
            _check_plain_entry(repo, store, task_id, data["branch"])
        elif task is None and (kind not in QUEUE_SIGNALS or entry is None):
            get_task(store, task_id)
        # A running engine may have its [merge] from a tasks file: then only it can tell.
        active = engine_active(repo)
        queue_enabled = kind in QUEUE_SIGNALS and (active or repo.config.merge.enabled)
        verdict = judge_signal(kind, task_id, task, entry, queue_enabled=queue_enabled,
                               running=bool(task) and task["state"] == "running",
                               branch=data.get("branch"))
        if not verdict.applies:
            raise Refused(f"cannot {VERBS.get(kind, kind)} {task_id}: {verdict.reason}",
                          hint=verdict.hint)
        [event] = store.append([NewEvent(SIGNAL_STREAM, "signal.sent",
                                         {"kind": str(kind), "task": task_id, **data})])
    finally:
        store.close()
    return event, active


def _queue_entry(store: EventStore, entry_id: str) -> dict[str, Any] | None:
    return next((q for q in store.queue() if q["task_id"] == entry_id), None)


def _check_plain_entry(repo: Repo, store: EventStore, entry_id: str, branch: str) -> None:
    from wf.model import check_task_id

    try:
        check_task_id(entry_id)
    except ValueError as exc:
        raise ConfigError(str(exc), hint="pass --id with a valid name") from None
    if store.task(entry_id) is not None:
        raise ConfigError(f"{entry_id!r} is a task; use `wf queue add {entry_id}`")
    if gitx.rev_parse(repo.root, f"refs/heads/{gitx.check_rev(branch)}") is None:
        raise NotFound(f"no branch {branch!r} in this repository")


def entry_id_for(branch: str) -> str:
    """A queue entry id for a plain branch: its name made safe (``agent/7`` -> ``agent-7``)."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", branch.lower()).strip("-.")[:63]
    return slug.replace("..", ".") or "branch"


