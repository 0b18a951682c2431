"""The delivery worker: a thread that follows the event log by sequence number and delivers
each event to the endpoints that take it, recording every outcome in the ``hooks`` stream.

It never slows the engine: it reads and writes through its own connection to the log, the
engine hands it nothing but a wake-up (``wake``, an observer of each commit, so a first try
starts within milliseconds of its event's commit), and it polls the log for what other
processes write (``wf hooks replay``, a Temporal mirror). Each endpoint has its own
``max_in_flight`` sender threads; first tries start in sequence order; a failure is recorded
with its next try (``decide.after_failure``), successes are recorded in batches. One process
delivers at a time (``hooks.lock``); a crash between a send and its record sends again, with
the same ``webhook-id``, after the restart (at least once).
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wf.hooks import decide
from wf.hooks.config import HookConfig
from wf.hooks.payload import Message, message
from wf.hooks.send import Result
from wf.hooks.signing import message_id
from wf.hooks.state import EndpointState, fold
from wf.model import Event, NewEvent

log = logging.getLogger(__name__)

POLL = 0.25  # how often the log is read for other processes' writes
READ_GAP = 0.03  # commits closer than this are read together: one query, not one a commit
FLUSH_EVERY = 0.1  # successes are recorded at most this often, in one event per endpoint
READ_CHUNK = 5000

Send = Callable[[Message], Result]


@dataclass
class Target:
    """One endpoint while delivery runs."""

    hook: HookConfig
    send: Send
    close: Callable[[], None]
    repo: str
    state: EndpointState
    ready: list[int] = field(default_factory=list)  # heap of seqs to send now
    retries: list[tuple[float, int]] = field(default_factory=list)  # heap of (due, seq)
    attempts: dict[int, int] = field(default_factory=dict)  # seq -> attempts so far
    events: dict[int, Event] = field(default_factory=dict)  # seq -> event, while it waits
    fresh: deque[int] = field(default_factory=deque)  # read, no outcome recorded yet, in order
    recorded: set[int] = field(default_factory=set)  # of ``fresh``: outcome now recorded
    inflight: set[int] = field(default_factory=set)
    ok: list[int] = field(default_factory=list)  # delivered, not recorded yet
    jobs: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)

    def upto(self, cursor: int) -> int:
        """Every event of this endpoint up to the returned seq has an outcome recorded."""
        while self.fresh and self.fresh[0] in self.recorded:
            self.recorded.discard(self.fresh.popleft())
        return self.fresh[0] - 1 if self.fresh else cursor


class HookRunner:
    """Delivers to ``targets``, reading and appending through ``store`` (its own)."""

    def __init__(self, store: Any, targets: list[Target], *,
                 clock: Callable[[], float] = time.time, poll: float = POLL) -> None:
        self.store = store
        self.targets = {t.hook.name: t for t in targets}
        self.clock = clock
        self.poll = poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._results: deque[tuple[Target, int, int, Result]] = deque()
        self._thread: threading.Thread | None = None
        self._last_flush = 0.0
        self._log_changed = True  # the log may hold new events: read it on the next turn
        self._last_read = 0.0
        self.cursor = 0
        self.boot_seq = 0
        self.error: str | None = None
        self.sent = self.failed = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """Fold the ``hooks`` stream, record endpoints seen for the first time (they start
        after the log's last event), and find what is pending."""
        last = self.store.last_seq()
        states = fold(self.store.read(stream=decide.HOOKS_STREAM))
        added = []
        for name, t in self.targets.items():
            s = states.get(name)
            if s is None or not s.added:
                added.append(NewEvent(decide.HOOKS_STREAM, "hook.endpoint_added",
                                      {"endpoint": name, "from_seq": last,
                                       "target": t.hook.shown}))
                s = EndpointState(name, start=last, upto=max(last, s.upto if s else 0),
                                  added=True, waiting=s.waiting if s else {},
                                  disabled=s.disabled if s else None)
            t.state = s
            for d in s.waiting.values():
                if not d.dead:
                    t.attempts[d.seq] = d.attempts
                    heapq.heappush(t.retries, (d.next_at or 0.0, d.seq))
        if added:
            self.store.append(added)
        self.boot_seq = self.store.last_seq()
        self.cursor = min((t.state.upto for t in self.targets.values()), default=last)
        for t in self.targets.values():
            for _ in range(t.hook.max_in_flight):
                threading.Thread(target=self._sender, args=(t,), daemon=True,
                                 name=f"wf-hook-{t.hook.name}").start()

    def start(self) -> None:
        self.prepare()
        self._thread = threading.Thread(target=self._main, name="wf-hooks", daemon=True)
        self._thread.start()

    def wake(self, _events: object = None) -> None:
        """Look at the log now (an observer of the engine's commits)."""
        self._log_changed = True
        self._wake.set()

    def stop(self, drain: float = 0.0) -> None:
        """Stop; with ``drain``, first wait up to that many seconds for every first try to be
        sent and recorded. What is in flight when it stops is sent again by the next run."""
        deadline = time.monotonic() + drain
        while drain and time.monotonic() < deadline and self.busy() and self.error is None:
            self.wake()
            time.sleep(0.02)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        for t in self.targets.values():
            for _ in range(t.hook.max_in_flight):
                t.jobs.put(None)

    def busy(self) -> bool:
        """Whether a first try, a due retry or a record is still to be made."""
        now = self.clock()
        if self.cursor < self.store.last_seq():
            return True
        return any((t.ready or t.inflight or t.ok or (t.retries and t.retries[0][0] <= now))
                   and not t.state.disabled for t in self.targets.values())

    def run_once(self) -> None:
        """One turn: read the log (when woken for it, or every ``poll``), start what is
        due, record what came back. A turn woken by a sender's result does not read the log:
        at a thousand results a second that would be a thousand queries."""
        since = time.monotonic() - self._last_read
        if (self._log_changed and since >= READ_GAP) or since >= self.poll:
            self._log_changed = False
            self._last_read = time.monotonic()
            self._read()
        now = self.clock()
        for t in self.targets.values():
            self._dispatch(t, now)
        self._collect(now)

    # -- the main thread --------------------------------------------------------------------
    def _main(self) -> None:
        try:
            while not self._stop.is_set():
                self.run_once()
                self._wake.wait(self._sleep())
                self._wake.clear()
            self._collect(self.clock(), force=True)
        except Exception as exc:  # never take the engine down: say so, deliver next time
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("hook delivery stopped")

    def _sleep(self) -> float:
        now, due = self.clock(), self.poll
        for t in self.targets.values():
            if t.retries and not t.state.disabled:
                due = min(due, max(0.0, t.retries[0][0] - now))
            if t.ok:
                due = min(due, FLUSH_EVERY)
        if self._log_changed:  # woken for new events inside READ_GAP: read them then
            due = min(due, max(0.0, READ_GAP - (time.monotonic() - self._last_read)))
        return due

    def _read(self) -> None:
        while True:
            batch = self.store.read(self.cursor, limit=READ_CHUNK)
            for e in batch:
                if e.stream == decide.HOOKS_STREAM and e.seq > self.boot_seq:
                    self._control(e)
                for t in self.targets.values():
                    s = t.state
                    if e.seq <= s.upto or e.seq in s.delivered or e.seq in s.waiting \
                            or e.seq in t.events or not decide.takes(t.hook, e.type, e.data):
                        continue
                    t.events[e.seq] = e
                    t.fresh.append(e.seq)
                    heapq.heappush(t.ready, e.seq)
            if batch:
                self.cursor = batch[-1].seq
            if len(batch) < READ_CHUNK:
                return

    def _control(self, e: Event) -> None:
        """What ``wf hooks replay`` / ``enable`` wrote since this runner started."""
        t = self.targets.get(e.data.get("endpoint"))
        if t is None:
            return
        if e.type == "hook.replayed":
            for seq in e.data.get("seqs") or ():
                t.attempts[seq] = 0
                t.state.waiting.pop(seq, None)
                heapq.heappush(t.retries, (0.0, seq))
        elif e.type == "hook.endpoint_enabled":
            t.state.disabled = None
            t.state.failing_since = None

    def _dispatch(self, t: Target, now: float) -> None:
        if t.state.disabled:
            return
        while t.retries and t.retries[0][0] <= now:
            _, seq = heapq.heappop(t.retries)
            if seq not in t.inflight and seq not in t.ready:
                heapq.heappush(t.ready, seq)
        while t.ready and len(t.inflight) < t.hook.max_in_flight:
            seq = heapq.heappop(t.ready)
            e = t.events.get(seq) or self._event(seq)
            if e is None:  # gone from the log (cannot happen: it is append-only)
                continue
            t.events[seq] = e
            t.inflight.add(seq)
            attempt = t.attempts.get(seq, 0) + 1
            t.jobs.put((seq, attempt, message(e, t.hook.name, t.hook.format, t.repo)))

    def _event(self, seq: int) -> Event | None:
        found = self.store.read(seq - 1, limit=1)
        return found[0] if found and found[0].seq == seq else None

    def _sender(self, t: Target) -> None:
        while True:
            job = t.jobs.get()
            if job is None or self._stop.is_set():
                t.close()
                return
            seq, attempt, msg = job
            try:
                result = t.send(msg)
            except Exception as exc:  # a sink's failure is an attempt's failure
                result = Result(None, f"{type(exc).__name__}: {exc}"[:300])
            self._results.append((t, seq, attempt, result))
            self._wake.set()

    def _collect(self, now: float, force: bool = False) -> None:
        out: list[NewEvent] = []
        while self._results:
            t, seq, attempt, result = self._results.popleft()
            t.inflight.discard(seq)
            if self._stop.is_set() and not force:
                break
            if decide.verdict(result.status, result.error) == "delivered":
                t.ok.append(seq)
                t.state.failing_since = None
                t.attempts.pop(seq, None)
                self.sent += 1
                continue
            self.failed += 1
            t.recorded.add(seq)
            failure = decide.after_failure(
                t.hook, seq=seq, msg_id=message_id(t.hook.name, seq,
                                                   t.events[seq].idempotency_key),
                attempt=attempt, now=now, status=result.status, error=result.error,
                retry_after=result.retry_after, failing_since=t.state.failing_since,
                upto=t.upto(self.cursor))
            if t.state.failing_since is None:
                t.state.failing_since = now
            t.attempts[seq] = attempt
            if failure.next_at is not None:
                heapq.heappush(t.retries, (failure.next_at, seq))
            else:
                t.events.pop(seq, None)
            if failure.disabled:
                t.state.disabled = "disabled"
            out.extend(failure.events)
        # Batching is measured on the monotonic clock: the injected one may stand still.
        if force or out or time.monotonic() - self._last_flush >= FLUSH_EVERY:
            for t in self.targets.values():
                if t.ok:
                    t.recorded.update(t.ok)
                    for seq in t.ok:
                        t.events.pop(seq, None)
                    out.append(decide.delivered_event(t.hook.name, sorted(t.ok),
                                                      t.upto(self.cursor)))
                    t.ok = []
            self._last_flush = time.monotonic()
        if out:
            self.store.append(out)


def build_targets(hooks: tuple[HookConfig, ...], secrets: dict[str, str], repo_root: Path,
                  state_dir: Path) -> tuple[list[Target], list[str]]:
    """A ``Target`` per endpoint: its sender (HTTP, or its sink) and its empty state; and
    notes for the person (a desktop sink where there is no ``notify-send``)."""
    from wf.hooks.send import HttpSender
    from wf.hooks.signing import secret_key
    from wf.hooks.sinks import SinkContext, load_sink

    targets, notes = [], []
    for hook in hooks:
        if hook.url is not None:
            secret = secrets.get(hook.secret_env or "")
            sender = HttpSender(hook.url, key=secret_key(secret) if secret else None,
                                connect_timeout=hook.connect_timeout, timeout=hook.timeout)
            send, close = sender.send, sender.close
        else:
            try:
                sink = load_sink(hook.sink or "", hook.options,
                                 SinkContext(repo_root, state_dir), endpoint=hook.name)
            except FileNotFoundError as exc:
                notes.append(f"desktop notifications are off: {exc.args[0]} is not "
                             "installed here ([notify] desktop = true)")
                continue
            send, close = _sink_send(sink), sink.close
        targets.append(Target(hook, send, close, repo_root.name, EndpointState(hook.name)))
    return targets, notes


def _sink_send(sink: Any) -> Send:
    def send(msg: Message) -> Result:
        started = time.monotonic()
        sink.deliver(msg)
        return Result(None, None, None, time.monotonic() - started)
    return send
