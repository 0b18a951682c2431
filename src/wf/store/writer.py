"""Group commit: one writer thread turns many concurrent appends into one transaction.

With ``synchronous=FULL`` every commit costs an fsync, so committing each append on its own
caps the log at a few thousand commits a second. Producers instead ``submit`` their batch and
get a Future; the writer thread takes everything queued, commits it with one
``store.append_many`` (each batch still all-or-nothing), tells the listeners, then resolves
the futures. A producer whose append returned therefore knows the listeners have seen it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from wf.errors import StoreError
from wf.model import Event, NewEvent
from wf.store.sqlite import SqliteEventStore

log = logging.getLogger(__name__)

Listener = Callable[[list[Event]], None]


class GroupCommitWriter:
    """Appends to ``store`` from one background thread, many batches per transaction.

    The writer does not own the store: ``close()`` stops the thread, not the store.
    ``max_events_per_commit`` bounds one transaction (and so the latency of the first batch
    in it); a single larger batch is still committed whole.
    """

    def __init__(self, store: SqliteEventStore, *, max_events_per_commit: int = 10_000) -> None:
        self._store = store
        self._max_events = max_events_per_commit
        self._queue: list[tuple[list[NewEvent], Future[list[Event]]]] = []
        self._wakeup = threading.Condition()
        self._closing = False
        self._listeners: tuple[Listener, ...] = ()
        self._thread = threading.Thread(target=self._run, name="wf-group-commit", daemon=True)
        self._thread.start()

    # -- producers ------------------------------------------------------------------------
    def submit(self, events: Sequence[NewEvent]) -> Future[list[Event]]:
        """Queue ``events`` as one all-or-nothing batch; the Future gets the stored events.

        Cancelling the Future before the writer picks the batch up drops it; after that the
        batch commits regardless.
        """
        future: Future[list[Event]] = Future()
        batch = list(events)
        with self._wakeup:
            if self._closing:
                raise StoreError("the event log writer is closed")
            self._queue.append((batch, future))
            self._wakeup.notify()
        return future

    def append_sync(self, events: Sequence[NewEvent], timeout: float | None = None) -> list[Event]:
        """Submit and wait for the commit. Not callable from a listener (it would deadlock)."""
        if threading.current_thread() is self._thread:
            raise StoreError("append_sync called from the writer thread (a listener) would "
                             "wait for itself", hint="use submit() in listeners")
        return self.submit(events).result(timeout)

    async def append(self, events: Sequence[NewEvent]) -> list[Event]:
        """Submit and await the commit without blocking the event loop."""
        import asyncio  # here, not at the top: read-only commands never load asyncio

        future = self.submit(events)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not on asyncio (anyio on trio): park a worker thread instead
            import anyio.to_thread

            return await anyio.to_thread.run_sync(future.result)
        return await asyncio.wrap_future(future)

    # -- listeners ------------------------------------------------------------------------
    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(events)`` on the writer thread after each commit, with the events
        that commit newly wrote, in seq order. It should be quick and must not block on the
        writer; an exception it raises is logged and does not stop the writer."""
        with self._wakeup:
            self._listeners = (*self._listeners, callback)

    def remove_listener(self, callback: Listener) -> None:
        with self._wakeup:
            self._listeners = tuple(cb for cb in self._listeners if cb is not callback)

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Commit whatever is queued, then stop the thread. Idempotent."""
        with self._wakeup:
            self._closing = True
            self._wakeup.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def __enter__(self) -> GroupCommitWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the writer thread ----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._queue and not self._closing:
                    self._wakeup.wait()
                if not self._queue:
                    return
                work = self._take()
            try:
                self._commit(work)
            except Exception as exc:  # a bug here must not strand the producers
                log.exception("event log writer failed")
                for _, fut in work:
                    if not fut.done():
                        fut.set_exception(exc)

    def _take(self) -> list[tuple[list[NewEvent], Future[list[Event]]]]:
        """The queue's first batches, until they hold ``max_events_per_commit`` events."""
        count, end = 0, 0
        while end < len(self._queue) and (end == 0 or count < self._max_events):
            count += len(self._queue[end][0])
            end += 1
        work, self._queue = self._queue[:end], self._queue[end:]
        return work

    def _commit(self, work: list[tuple[list[NewEvent], Future[list[Event]]]]) -> None:
        work = [(batch, fut) for batch, fut in work if fut.set_running_or_notify_cancel()]
        if not work:
            return
        try:
            results: list[Any] = self._store.append_many([batch for batch, _ in work],
                                                         on_commit=self._notify)
        except Exception as exc:  # the transaction failed: every batch in it failed
            results = [exc] * len(work)
        for (_, fut), result in zip(work, results, strict=True):
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    def _notify(self, events: list[Event]) -> None:
        for callback in self._listeners:
            try:
                callback(events)
            except Exception:
                log.exception("event log listener %r failed", callback)
