"""The event log: an append-only log of events plus projection tables derived from it.

``EventStore`` is the contract (tests/contract/test_store.py runs against every
implementation); ``SqliteEventStore`` is the implementation; ``GroupCommitWriter`` batches
concurrent appends into one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from wf.model import Event, NewEvent
from wf.store.projections import Projection
from wf.store.sqlite import SqliteEventStore, open_store
from wf.store.writer import GroupCommitWriter

__all__ = ["EventStore", "GroupCommitWriter", "SqliteEventStore", "open_store"]


class EventStore(Protocol):
    """An event log with projections kept in step with it."""

    def append(self, events: Sequence[NewEvent], *, ts: float | None = None) -> list[Event]:
        """Append atomically; assign stream versions (or check ``expected_version``, raising
        ConcurrencyError); an event whose ``idempotency_key`` is known returns the stored one."""

    def append_many(self, batches: Sequence[Sequence[NewEvent]], *,
                    ts: float | None = None) -> list[list[Event] | Exception]:
        """Several all-or-nothing batches in one transaction; a rejected batch's slot holds
        its exception."""

    def read(self, since: int = 0, *, limit: int | None = None, stream: str | None = None,
             types: Sequence[str] | None = None) -> list[Event]:
        """Events with ``seq > since``, ascending."""

    def last_seq(self) -> int: ...

    def stream_version(self, stream: str) -> int: ...

    def tasks(self) -> list[dict[str, Any]]: ...

    def task(self, task_id: str) -> dict[str, Any] | None: ...

    def attempts(self, task_id: str | None = None) -> list[dict[str, Any]]: ...

    def signals(self, pending_only: bool = True) -> list[dict[str, Any]]: ...

    def runs(self) -> list[dict[str, Any]]: ...

    def queue(self) -> list[dict[str, Any]]:
        """The merge queue's entries, in the order they entered."""

    def projection(self) -> Projection:
        """Every projection table's current rows."""

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every projection table's rows, sorted by primary key."""

    def rebuild_projections(self) -> None:
        """Recompute the projections from the events alone."""

    def close(self) -> None: ...
