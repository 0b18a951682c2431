"""Each endpoint's delivery state, folded from the ``hooks`` stream alone (pure).

The log is the only record: ``hook.endpoint_added`` (where the endpoint starts reading),
``hook.delivered`` (successes in batches, with ``upto``: every event of the endpoint up to it
has an outcome recorded), ``hook.failed`` (each failed attempt, its next try or ``dead``),
``hook.replayed`` (deliveries sent again), ``hook.endpoint_disabled`` / ``_enabled``. From
them a restart knows, after any crash, what is pending (the endpoint's events after ``upto``
with no outcome), what waits for a retry and when, the dead letters and whether the endpoint
is disabled. ``wf hooks``, ``deliveries`` and ``dlq`` read the same fold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from wf.model import Event


@dataclass
class Delivery:
    """An event the endpoint has not had yet after a failure (or a replay)."""

    seq: int
    id: str | None
    attempts: int = 0  # attempts so far in the current schedule (a replay starts again)
    status: int | None = None
    error: str | None = None
    next_at: float | None = None
    dead: bool = False
    failed_ts: float | None = None


@dataclass
class EndpointState:
    name: str
    start: int = 0  # the log's last seq when the endpoint was first seen: it reads after it
    upto: int = 0
    delivered: set[int] = field(default_factory=set)  # delivered seqs after ``upto``
    waiting: dict[int, Delivery] = field(default_factory=dict)  # retrying, replayed or dead
    disabled: str | None = None
    disabled_ts: float | None = None
    failing_since: float | None = None
    delivered_total: int = 0
    failed_attempts: int = 0
    last_delivered_ts: float | None = None
    last_failed_ts: float | None = None
    last_error: str | None = None
    added: bool = False

    def dead(self) -> list[Delivery]:
        return sorted((d for d in self.waiting.values() if d.dead), key=lambda d: d.seq)

    def retrying(self) -> list[Delivery]:
        return sorted((d for d in self.waiting.values() if not d.dead), key=lambda d: d.seq)


def apply(states: dict[str, EndpointState], e: Event) -> None:
    """Fold one event of the ``hooks`` stream into ``states`` (other events: nothing)."""
    d: dict[str, Any] = e.data
    name = d.get("endpoint")
    if not e.type.startswith("hook.") or not isinstance(name, str):
        return
    s = states.get(name)
    if s is None:
        s = states[name] = EndpointState(name)
    t = e.type
    if t == "hook.endpoint_added":
        if not s.added:
            s.added, s.start = True, int(d.get("from_seq") or 0)
            s.upto = max(s.upto, s.start)
    elif t == "hook.delivered":
        for seq in d.get("seqs") or ():
            s.waiting.pop(seq, None)
            s.delivered.add(seq)
        s.delivered_total += len(d.get("seqs") or ())
        s.last_delivered_ts, s.failing_since = e.ts, None
        _advance(s, int(d.get("upto") or 0))
    elif t == "hook.failed":
        seq = int(d["seq"])
        s.waiting[seq] = Delivery(seq, d.get("id"), int(d.get("attempt") or 1), d.get("status"),
                                  d.get("error"), d.get("next_at"), bool(d.get("dead")), e.ts)
        s.failed_attempts += 1
        s.last_failed_ts, s.last_error = e.ts, d.get("error")
        if s.failing_since is None:
            s.failing_since = e.ts
        _advance(s, int(d.get("upto") or 0))
    elif t == "hook.replayed":
        for seq in d.get("seqs") or ():
            old = s.waiting.get(seq)
            s.waiting[seq] = Delivery(seq, old.id if old else None, 0, next_at=e.ts)
            s.delivered.discard(seq)
    elif t == "hook.endpoint_disabled":
        s.disabled, s.disabled_ts = str(d.get("reason") or "disabled"), e.ts
    elif t == "hook.endpoint_enabled":
        s.disabled = s.disabled_ts = s.failing_since = None


def _advance(s: EndpointState, upto: int) -> None:
    if upto > s.upto:
        s.upto = upto
        s.delivered = {seq for seq in s.delivered if seq > upto}


def fold(events: Iterable[Event]) -> dict[str, EndpointState]:
    states: dict[str, EndpointState] = {}
    for e in events:
        apply(states, e)
    return states
