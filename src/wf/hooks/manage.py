"""What the ``wf hooks`` commands and ``wf run`` ask of hooks: the endpoints' health, the
deliveries, the dead letters, replay, enable, a test send, and delivery itself
(``delivery.py``: around an engine's run, and ``wf hooks deliver``).

Everything is read from the log's ``hooks`` stream through ``state.fold``; what is written
(``hook.replayed``, ``hook.endpoint_enabled``) is appended to the log, where the running
delivery thread (``runner.py``) picks it up.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from wf.errors import ConfigError, NotFound, UsageError
from wf.hooks import decide
from wf.hooks.config import HookConfig, check_secrets
from wf.hooks.state import EndpointState, fold
from wf.model import Event, NewEvent

if TYPE_CHECKING:
    from wf.repository import Repo

DESKTOP = "notify.desktop"


def endpoints(repo: Repo) -> tuple[HookConfig, ...]:
    """``[[hooks]]``, and the desktop sink when ``[notify] desktop = true``."""
    config = repo.config
    hooks = config.hooks
    if config.notify.desktop:
        hooks = (*hooks, HookConfig(name=DESKTOP, sink="desktop", events=("attention",),
                                    schedule=(), disable_after=0, max_in_flight=1))
    return hooks


def _hook(repo: Repo, name: str) -> HookConfig:
    for hook in endpoints(repo):
        if hook.name == name:
            return hook
    names = ", ".join(h.name for h in endpoints(repo)) or "none"
    raise NotFound(f"no endpoint named {name!r} in [[hooks]] (configured: {names})")


def _states(repo: Repo) -> tuple[dict[str, EndpointState], Any]:
    from wf.repository import open_store

    if not repo.db_path.exists():
        return {}, None
    store = open_store(repo, create=False)
    return fold(store.read(stream=decide.HOOKS_STREAM)), store


# -- reading ---------------------------------------------------------------------------------

def health(repo: Repo) -> list[dict[str, Any]]:
    """Each configured endpoint: where it delivers (redacted), what it takes, and how it
    fares: ``state`` is ``disabled``, ``failing`` (its last attempt failed), ``ok`` or
    ``new`` (nothing sent yet); ``pending`` counts events with no outcome recorded yet."""
    states, store = _states(repo)
    try:
        out = []
        for hook in endpoints(repo):
            s = states.get(hook.name) or EndpointState(hook.name)
            pending = _pending(store, hook, s) if store is not None and s.added else 0
            state = ("disabled" if s.disabled else "failing" if s.failing_since is not None
                     else "ok" if s.delivered_total else "new")
            out.append({"name": hook.name, "target": hook.shown, "events": list(hook.events),
                        "format": hook.format, "signed": bool(hook.secret_env),
                        "state": state, "disabled_reason": s.disabled,
                        "delivered": s.delivered_total, "failed_attempts": s.failed_attempts,
                        "retrying": len(s.retrying()), "dead": len(s.dead()),
                        "pending": pending, "last_delivered_ts": s.last_delivered_ts,
                        "last_failed_ts": s.last_failed_ts, "last_error": s.last_error})
        return out
    finally:
        if store is not None:
            store.close()


def _pending(store: Any, hook: HookConfig, s: EndpointState) -> int:
    count, since = 0, s.upto
    while True:
        batch = store.read(since, limit=5000)
        for e in batch:
            if e.seq not in s.delivered and e.seq not in s.waiting \
                    and decide.takes(hook, e.type, e.data):
                count += 1
        if len(batch) < 5000:
            return count
        since = batch[-1].seq


def deliveries(repo: Repo, *, failed: bool = False, endpoint: str | None = None,
               limit: int = 50) -> list[dict[str, Any]]:
    """The last ``limit`` attempts, oldest first: failures one by one (status, error, next
    try or dead letter), successes as recorded (in batches, without a status)."""
    from wf.repository import open_store

    if not repo.db_path.exists():
        return []
    store = open_store(repo, create=False)
    try:
        events = store.read(stream=decide.HOOKS_STREAM, types=["hook.failed", "hook.delivered"])
    finally:
        store.close()
    rows: list[dict[str, Any]] = []
    for e in events:
        d = e.data
        if endpoint is not None and d.get("endpoint") != endpoint:
            continue
        if e.type == "hook.failed":
            rows.append({"endpoint": d.get("endpoint"), "seq": d.get("seq"), "id": d.get("id"),
                         "attempt": d.get("attempt"), "result": "dead" if d.get("dead")
                         else "failed", "status": d.get("status"), "error": d.get("error"),
                         "next_at": d.get("next_at"), "ts": e.ts})
        elif not failed:
            rows.extend({"endpoint": d.get("endpoint"), "seq": seq, "id": None,
                         "attempt": None, "result": "delivered", "status": None,
                         "error": None, "next_at": None, "ts": e.ts}
                        for seq in d.get("seqs") or ())
    return rows[-limit:] if limit else rows


def dead_letters(repo: Repo) -> list[dict[str, Any]]:
    """Every dead letter: the event that used up its endpoint's schedule, with its last
    answer. ``id`` is its webhook-id, what ``wf hooks replay ID`` takes."""
    states, store = _states(repo)
    try:
        out = []
        for name, s in sorted(states.items()):
            for d in s.dead():
                e = _event(store, d.seq)
                out.append({"endpoint": name, "id": d.id, "seq": d.seq,
                            "type": e.type if e else None, "attempts": d.attempts,
                            "status": d.status, "error": d.error, "failed_ts": d.failed_ts})
        return out
    finally:
        if store is not None:
            store.close()


def _event(store: Any, seq: int) -> Event | None:
    found = store.read(seq - 1, limit=1)
    return found[0] if found and found[0].seq == seq else None


# -- writing ---------------------------------------------------------------------------------

def replay(repo: Repo, ids: list[str], *, all_failed: bool = False) -> list[dict[str, Any]]:
    """Send dead letters (or any delivery, by its webhook-id or ``ENDPOINT:SEQ``) again, with
    the same webhook-id and a fresh schedule; ``all_failed``: every dead letter and every
    delivery waiting for a retry. Recorded as ``hook.replayed``; the delivery thread of a
    running engine sends them at once, else the next ``wf hooks deliver`` or ``wf run``."""
    from wf.repository import open_store

    if bool(ids) == all_failed:
        raise UsageError("give delivery ids or --all-failed", hint="`wf hooks dlq` lists them")
    states, store = _states(repo)
    if store is None:
        raise NotFound("no wf runs in this repository yet")
    try:
        chosen: dict[str, list[int]] = {}
        if all_failed:
            for name, s in states.items():
                chosen[name] = sorted(s.waiting)
        for wanted in ids:
            name, seq = _find(states, wanted)
            chosen.setdefault(name, []).append(seq)
        batch = [NewEvent(decide.HOOKS_STREAM, "hook.replayed",
                          {"endpoint": name, "seqs": sorted(set(seqs))})
                 for name, seqs in sorted(chosen.items()) if seqs]
        if batch:
            store = store if store is not None else open_store(repo)
            store.append(batch)
        return [{"endpoint": e.data["endpoint"], "seqs": e.data["seqs"]} for e in batch]
    finally:
        store.close()


def _find(states: dict[str, EndpointState], wanted: str) -> tuple[str, int]:
    name, _, seq = wanted.rpartition(":")
    if name and seq.isdigit():
        if name not in states:
            raise NotFound(f"no deliveries recorded for endpoint {name!r}")
        return name, int(seq)
    for endpoint, s in states.items():
        for d in s.waiting.values():
            if d.id == wanted:
                return endpoint, d.seq
    raise NotFound(f"no failed delivery with id {wanted!r}",
                   hint="`wf hooks dlq` and `wf hooks deliveries --failed` list them")


def enable(repo: Repo, name: str) -> dict[str, Any]:
    """Enable a disabled endpoint again: what waited for it is sent, oldest first."""
    from wf.repository import open_store

    _hook(repo, name)
    store = open_store(repo)
    try:
        store.append([NewEvent(decide.HOOKS_STREAM, "hook.endpoint_enabled",
                               {"endpoint": name})])
    finally:
        store.close()
    return {"endpoint": name, "enabled": True}


def disabled(repo: Repo) -> list[dict[str, Any]]:
    """The endpoints disabled now (an attention item for ``wf status``)."""
    from wf.repository import open_store

    if not repo.db_path.exists():
        return []
    store = open_store(repo, create=False)
    try:
        events = store.read(stream=decide.HOOKS_STREAM,
                            types=["hook.endpoint_disabled", "hook.endpoint_enabled"])
    finally:
        store.close()
    now: dict[str, dict[str, Any]] = {}
    for e in events:
        name = e.data.get("endpoint")
        if e.type == "hook.endpoint_enabled":
            now.pop(name, None)
        else:
            now[name] = {"endpoint": name, "reason": e.data.get("reason"), "ts": e.ts}
    return list(now.values())


def send_test(repo: Repo, name: str) -> dict[str, Any]:
    """Send a ``hook.test`` event to endpoint ``name`` now, signed as every delivery is; not
    recorded in the log. Returns the answer: ``ok``, ``status``, ``error``, ``id``."""
    from wf.hooks.payload import message, test_event
    from wf.hooks.runner import build_targets

    hook = _hook(repo, name)
    _check_secrets(hook)
    targets, notes = build_targets((hook,), dict(os.environ), repo.root, repo.state_dir)
    if not targets:
        raise ConfigError(notes[0] if notes else f"endpoint {name!r} cannot be used here")
    t = targets[0]
    now = time.time()
    e = test_event(now)
    msg = message(e, hook.name, hook.format, repo.root.name)
    msg = type(msg)(f"{msg.id[:4]}test_{int(now * 1000)}", 0, e.type, now, msg.body)
    try:
        result = t.send(msg)
    except Exception as exc:
        from wf.hooks.send import Result

        result = Result(None, f"{type(exc).__name__}: {exc}"[:300])
    finally:
        t.close()
    return {"endpoint": name, "target": hook.shown, "id": msg.id,
            "ok": result.error is None, "status": result.status, "error": result.error,
            "duration": round(result.duration, 3)}


def _check_secrets(*hooks: HookConfig) -> None:
    problem = check_secrets(tuple(hooks), os.environ)
    if problem:
        raise ConfigError(problem, hint="export it, or drop secret_env to send unsigned")
