"""The Temporal engine's client side: the ``Engine`` protocol over a Temporal server.

``submit``, ``signal`` and ``run`` talk to the repository's workflow (``workflows.py``); the
work itself runs on ``wf worker`` processes, on any host with a clone. What the workflows
record is mirrored into this clone's SQLite log (``Mirror``), with the workflows' idempotency
keys, so ``wf status``, ``wf events`` and ``wf dash`` read one log through one reducer
whichever engine ran the work, and listing tasks needs no worker and no server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wf import gitx
from wf.engine.base import Clock, Observer, RunOutcome, SystemClock
from wf.errors import GitError, Interrupted, NotFound, Refused, WfError
from wf.merge_queue import decide as mq
from wf.model import SIGNAL_STREAM, Event, NewEvent, SignalKind
from wf.repository import Repo, open_store, read_log
from wf.store.projections import apply
from wf.temporal.freshness import CURSOR_FILE, mark_silent, needs_pull
from wf.temporal.shapes import (
    HostRead,
    HostText,
    MergeSettings,
    Names,
    Settings,
    SignalRequest,
    Submit,
    WireEvent,
)

if TYPE_CHECKING:
    from temporalio.client import Client

    from wf.spec import TaskSpec
    from wf.store import EventStore

FOLLOW_POLL = 0.1  # seconds between two looks at the workflows while a run is followed
# A query is a task a worker runs (in the sandbox) and the server routes: the attempts'
# live events, one query per running attempt, are asked for at most this often by one mirror
# (every FOLLOW_POLL, 8 attempts made ~90 queries a second, a tenth of this machine's CPU).
LIVE_EVERY = 1.0
QUERY_TIMEOUT = timedelta(seconds=3)  # a query waits for a worker to answer it, at most this


WORKER_HINT = "start `wf worker` on a host with a clone of the repository (docs/temporal.md)"


class WorkflowsSilent(WfError):
    """The workflows did not answer: no worker polls the repository's queue."""


def _silent_reason(exc: Exception) -> str:
    return ("no wf worker answered for the repository's workflows "
            f"({' '.join(str(exc).split())[:120]})")


def names_for(repo: Repo) -> Names:
    """The repository's queue and workflow names: ``[engine] task_queue`` and its root
    commit, the same in every clone (and different for every repository)."""
    root = gitx.root_commit(repo.root)
    if root is None:
        raise GitError("the repository has no commits yet", hint="commit something first")
    return Names(repo.config.engine.task_queue, root)


def settings_for(repo: Repo) -> Settings:
    c = repo.config
    merge = None
    if c.merge.enabled:
        m = c.merge
        merge = MergeSettings(
            target=m.target or repo.default_base(), land=m.land,
            remote=c.provider.remote if m.land == "pr" else m.remote,
            check=[list(argv) for argv in m.check], check_timeout=m.check_timeout, auto=m.auto,
            require_approval=m.require_approval, max_batch=m.max_batch,
            max_parallel_checks=m.max_parallel_checks, resolve_conflicts=m.resolve_conflicts,
            blame=m.blame, policy=c.policy.model_dump(mode="json"),
            merge_method=m.merge_method, auto_merge=m.auto_merge,
            forge_check_timeout=m.forge_check_timeout,
            forge_poll_interval=m.forge_poll_interval, forge_checks_grace=m.forge_checks_grace)
    return Settings(merge=merge, max_parallel=c.max_parallel,
                    agent_limits={name: a.max_parallel for name, a in c.agents.items()},
                    port_range=tuple(c.port_range), log_max_bytes=c.log_max_bytes,
                    heartbeat_timeout=c.engine.heartbeat_timeout,
                    host_lost_after=c.engine.host_lost_after,
                    continue_after=c.engine.continue_after,
                    return_on_success=bool(c.worktrees.pool and c.worktrees.return_on_success),
                    budget=c.budget.as_dict() if c.budget is not None else None,
                    adaptive={name: a.adaptive for name, a in c.agents.items()},
                    # Hosts share branches through the remote their clones came from; a clone
                    # without it is a trial on one machine, where there is nothing to push.
                    remote=c.merge.remote if gitx.remote_url(repo.root, c.merge.remote)
                    else None)


class TemporalEngine:
    """``Engine`` on a Temporal server; the work runs on ``wf worker`` processes."""

    def __init__(self, repo: Repo, *, clock: Clock | None = None,
                 rng: random.Random | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.repo = repo
        self.clock = clock or SystemClock()
        self.environ = dict(os.environ if environ is None else environ)
        self.names = names_for(repo)
        self._offset_sent = 0.0

    # -- the protocol ------------------------------------------------------------------------
    def submit(self, specs: Sequence[TaskSpec]) -> list[Event]:
        return self._call(self._submit, specs)

    def signal(self, kind: SignalKind, task_id: str, **data: Any) -> Event:
        return self._call(self._signal, kind, task_id, data)

    def events(self, since: int = 0, *, stream: str | None = None,
               limit: int | None = None) -> list[Event]:
        """The mirrored log's events, after pulling what the workflows recorded since (when
        the server and a worker answer; otherwise what this clone has)."""
        with contextlib.suppress(WfError):
            self._call(self._sync)
        return read_log(self.repo, since, stream=stream, limit=limit)

    def run(self, specs: Sequence[TaskSpec] | None = None, *, command: str = "wf run",
            observers: Sequence[Observer] = ()) -> RunOutcome:
        try:
            return self._call(self._run, specs, observers)
        except KeyboardInterrupt:
            raise Interrupted("stopped following; the tasks keep running on the workers",
                              hint="`wf status` or `wf events -f` follows them again; "
                                   "`wf cancel TASK` stops one") from None

    # -- plumbing ----------------------------------------------------------------------------
    def _call(self, fn: Any, *args: Any) -> Any:
        async def main() -> Any:
            from wf.temporal.connect import connect

            client = await connect(self.repo.config.engine, self.environ)
            return await fn(client, *args)

        return asyncio.run(main())

    def _store(self) -> EventStore:
        return open_store(self.repo)

    async def _sync(self, client: Client) -> None:
        store = self._store()
        try:
            await Mirror(store, client.get_workflow_handle(self.names.repo_workflow),
                         client).sync()
        finally:
            store.close()

    async def _ensure_started(self, client: Client) -> Any:
        from temporalio.common import WorkflowIDConflictPolicy

        from wf.temporal.workflows import RepoWorkflow

        return await client.start_workflow(
            RepoWorkflow.run, self.names.shared_queue, id=self.names.repo_workflow,
            task_queue=self.names.shared_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)

    async def _submit(self, client: Client, specs: Sequence[TaskSpec]) -> list[Event]:
        """Submit the specs the log does not hold yet; their ``task.submitted`` events."""
        handle = await self._ensure_started(client)
        store = self._store()
        try:
            mirror = Mirror(store, handle, client)
            with contextlib.suppress(WorkflowsSilent):  # no worker yet: submit all the same
                await mirror.sync()
            from wf.engine.local import submit_events

            now = time.time()
            wire = [WireEvent(e.stream, e.type, e.data, now, e.idempotency_key or "")
                    for e in submit_events(store, specs)]
            # A signal, not an update: submitting needs no worker. The log has the events at
            # once; the workflow records them under the same keys, which the mirror skips.
            await handle.signal("submit", Submit(wire, settings_for(self.repo)))
            return [e for e in mirror.write(wire) if e.type == "task.submitted"]
        finally:
            store.close()

    async def _signal(self, client: Client, kind: SignalKind, task_id: str,
                      data: dict[str, Any]) -> Event:
        from temporalio.client import WorkflowUpdateFailedError

        handle = await self._ensure_started(client)
        try:
            seq = await handle.execute_update("signal", SignalRequest(str(kind), task_id, data),
                                              result_type=int)
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            message = getattr(cause, "message", None) or str(cause)
            details = getattr(cause, "details", ()) or ()
            raise Refused(message, hint=details[0] if details else None) from None
        store = self._store()
        try:
            with contextlib.suppress(WorkflowsSilent):  # it is sent: the log catches up later
                await Mirror(store, handle, client).sync()
            sent = [e for e in store.read(stream=SIGNAL_STREAM, types=["signal.sent"])
                    if e.idempotency_key and e.idempotency_key.endswith(f":{seq}")]
        finally:
            store.close()
        if sent:
            return sent[-1]
        return Event(seq, SIGNAL_STREAM, 0, "signal.sent", time.time(),
                     {"kind": str(kind), "task": task_id, **data})

    async def _run(self, client: Client, specs: Sequence[TaskSpec] | None,
                   observers: Sequence[Observer]) -> RunOutcome:
        store = self._store()
        try:
            p = store.projection()  # then folded forward, not read whole at every poll
            folded = store.last_seq()  # the observers see every event after this one
            if specs:
                await self._submit(client, specs)
            handle = await self._ensure_started(client)
            if not specs:  # a resume: the run's settings all the same (a submit carries them)
                await handle.signal("submit", Submit([], settings_for(self.repo)))
            mirror = Mirror(store, handle, client)
            scope = [s.id for s in specs] if specs else None
            touched: set[str] = set()
            while True:
                await self._forward_clock(handle)
                with contextlib.suppress(WorkflowsSilent):  # a worker restarting: work waits
                    await mirror.sync()
                # What this mirror wrote and what another wrote (a worker's on this clone, a
                # wf dash): the observers see every event the log gets, whoever wrote it.
                committed = store.read(folded)
                if committed:
                    for observer in observers:
                        observer(committed)
                    folded = committed[-1].seq
                touched |= {e.task_id for e in committed if e.task_id}
                for e in committed:
                    apply(p, e)
                ids = scope if scope is not None else sorted(
                    t for t in touched if t in p.tasks) or [
                    t for t, row in p.tasks.items() if row["state"] not in _ENDED]
                rows = [p.tasks[t] for t in ids if t in p.tasks]
                if all(r["state"] in _ENDED for r in rows) and not mirror.running \
                        and not mirror.queue_busy:
                    goal = "merged" if self.repo.config.merge.auto else "done"
                    stopped = mirror.queue_paused if mq.waiting(p.queue) else None
                    code = 0 if all(r["state"] in (goal, "merged") for r in rows) \
                        and not stopped else 1
                    entries = sorted((p.queue[t] for t in touched if t in p.queue),
                                     key=lambda q: q["position"] or 0)
                    return RunOutcome(code, rows, stopped, idle=not touched, queue=entries)
                await asyncio.sleep(FOLLOW_POLL)
        finally:
            store.close()

    async def _forward_clock(self, handle: Any) -> None:
        """The engine's clock is the wall clock in use; a test's shifted clock moves the
        workflow's timers by the same offset."""
        offset = round(self.clock.now() - time.time(), 3)
        if abs(offset - self._offset_sent) >= 0.5:
            await handle.signal("clock_offset", offset)
            self._offset_sent = offset


_ENDED = frozenset({"done", "failed", "cancelled", "blocked", "merged", "evicted"})


class Mirror:
    """Copies the repository workflow's events (and the live events of the attempts running
    now) into this clone's log, in order, each once: the workflows' idempotency keys are the
    log's, so two mirrors (``wf run`` and ``wf dash``) can run at once."""

    def __init__(self, store: EventStore, handle: Any, client: Client, *,
                 timeout: timedelta = QUERY_TIMEOUT, live: bool = True) -> None:
        self.store, self.handle, self.client = store, handle, client
        self.timeout = timeout
        self.live = live  # also the running attempts' events (else they come when it ends)
        self.queue_busy = False
        self.queue_paused: str | None = None
        self.running: list[str] = []
        self.live_at: float | None = None  # when the attempts' live events were last asked

    async def sync(self) -> list[Event]:
        """Pull what is new; the events newly written to this log."""
        from temporalio.service import RPCError, RPCStatusCode

        from wf.temporal.shapes import EVENTS_PER_QUERY, EventsPage

        out: list[Event] = []
        since = self._since()
        # The latest run of the repository workflow's chain; an earlier run when that one
        # says the events after ``since`` are there (continued as new since this mirror
        # last read): each is read to its end, then the run after it.
        runs = [self.handle]
        while True:
            try:
                page: EventsPage = await runs[-1].query(
                    "events", since, result_type=EventsPage, rpc_timeout=self.timeout)
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND and len(runs) == 1:
                    return out  # no repository workflow yet: nothing to mirror
                raise WorkflowsSilent(_silent_reason(exc), hint=WORKER_HINT) from None
            if page.earlier is not None:
                runs.append(self.client.get_workflow_handle(self.handle.id,
                                                            run_id=page.earlier))
                continue
            out += self.write(page.events)
            if len(runs) == 1:
                self.running = page.running
                self.queue_busy, self.queue_paused = page.queue_busy, page.queue_paused
            if page.events:
                since = page.next
                self._save_since(since)
            if len(page.events) < EVENTS_PER_QUERY:  # that run is read to its end
                if len(runs) == 1:
                    break
                runs.pop()
        now = time.monotonic()
        if self.live and (self.live_at is None or now - self.live_at >= LIVE_EVERY):
            self.live_at = now
            for wid in self.running:
                out += self.write(await self._live(wid))
        with contextlib.suppress(OSError):  # pulled just now: wf status need not pull again
            os.utime(self._cursor_file())
        return out

    async def _live(self, workflow_id: str) -> list[WireEvent]:
        from temporalio.client import WorkflowQueryRejectedError
        from temporalio.common import QueryRejectCondition
        from temporalio.service import RPCError

        try:
            # A workflow that has just ended is not asked: the server says so itself. (A
            # worker answered by replaying the ended run from its start, a sandbox and all.)
            return await self.client.get_workflow_handle(workflow_id).query(
                "events", result_type=list[WireEvent], rpc_timeout=self.timeout,
                reject_condition=QueryRejectCondition.NOT_OPEN)
        except (RPCError, WorkflowQueryRejectedError):
            return []  # not started yet, or just ended: the repository workflow has them

    def write(self, events: list[WireEvent]) -> list[Event]:
        written: list[Event] = []
        if events:
            [result] = self.store.append_many(
                [[NewEvent(w.stream, w.type, w.data, idempotency_key=w.key, ts=w.ts)
                  for w in events]], on_commit=written.extend)
            if isinstance(result, Exception):
                raise result
        return written

    # Where the mirror got to in the repository workflow's events, kept beside the log so a
    # new process does not read them all again (a lost cursor costs time, never an event).
    def _cursor_file(self) -> Path:
        return self.store.path.parent / CURSOR_FILE

    def _since(self) -> int:
        try:
            return int(json.loads(self._cursor_file().read_text()).get(self.handle.id, 0))
        except (OSError, ValueError, AttributeError):
            return 0

    def _save_since(self, since: int) -> None:
        path = self._cursor_file()
        # Its own file per thread: two mirrors of one process (a worker's and wf run's in a
        # test, wf dash's and its refresh) raced on one name, and the second rename failed.
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({self.handle.id: since}))
        os.replace(tmp, path)



REFRESH_BOUND = 0.4  # seconds a read-only command waits for the workflows before reading


def refresh_mirror(repo: Repo) -> bool:
    """One bounded pull of the workflows' events into the clone's log (``wf status``), unless
    the mirror is fresh (``freshness.needs_pull``); False when nobody answered in time."""
    if not needs_pull(repo.state_dir):  # a pull just done (here or by a worker) touched it
        return True

    async def pull() -> None:
        from wf.temporal.connect import connect

        names = names_for(repo)
        client = await connect(repo.config.engine, os.environ, timeout=REFRESH_BOUND)
        store = open_store(repo)
        try:
            await Mirror(store, client.get_workflow_handle(names.repo_workflow), client,
                         timeout=timedelta(seconds=REFRESH_BOUND)).sync()
        finally:
            store.close()

    try:
        asyncio.run(asyncio.wait_for(pull(), REFRESH_BOUND))
    except (WfError, TimeoutError, RuntimeError):
        mark_silent(repo.state_dir)
        return False
    return True


async def keep_mirrored(repo: Repo, client: Client, workflow_id: str,
                        stopped: Callable[[], bool], every: float, *, live: bool = True) -> None:
    """Pull the repository workflow's events into the clone's log every ``every`` seconds
    until ``stopped()``; a pull that fails (no worker answered, the server is restarting)
    only leaves the log as it was until the next one. ``live``: the running attempts' own
    events too (a query to each, every pass); else they come when each attempt ends."""
    from temporalio.service import RPCError

    while not stopped():
        with contextlib.suppress(WfError, RPCError, OSError):
            store = open_store(repo)
            try:
                await Mirror(store, client.get_workflow_handle(workflow_id), client,
                             live=live).sync()
            finally:
                store.close()
        await asyncio.sleep(every)


class MirrorThread:
    """Keeps the clone's log up to date with the workflows, in a thread of its own, while a
    command shows the log live (``wf events -f``, ``wf dash``). It never stops the command: a
    server or worker that does not answer only leaves the log as it was."""

    def __init__(self, repo: Repo, *, interval: float = 0.5) -> None:
        self.repo, self.interval = repo, interval
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._body, name="wf-mirror", daemon=True)

    def __enter__(self) -> MirrorThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()  # a daemon thread: the command never waits for a slow server

    def _body(self) -> None:
        with contextlib.suppress(WfError):  # no server: the command shows the log as it is
            asyncio.run(self._loop())

    async def _loop(self) -> None:
        from wf.temporal.connect import connect

        client = await connect(self.repo.config.engine, os.environ)
        await keep_mirrored(self.repo, client, names_for(self.repo).repo_workflow,
                            self.stopping.is_set, self.interval)


def read_on_host(repo: Repo, inp: HostRead) -> HostText:
    """What only host ``inp.host`` has (a log's end, a diff), through a one-step workflow on
    that host's queue; WfError saying why not when the host or the server does not answer."""
    from temporalio.client import WorkflowFailureError

    from wf.temporal.connect import connect
    from wf.temporal.workflows import HostReadWorkflow

    names = names_for(repo)

    async def read() -> HostText:
        client = await connect(repo.config.engine, os.environ)
        return await client.execute_workflow(
            HostReadWorkflow.run, inp, id=f"{names.base}.read.{uuid.uuid4().hex[:12]}",
            task_queue=names.shared_queue, execution_timeout=timedelta(seconds=90))

    try:
        return asyncio.run(read())
    except WorkflowFailureError as exc:
        cause = exc.cause
        while getattr(cause, "cause", None) is not None:
            cause = cause.cause
        why = " ".join(str(cause).split()) or "it did not answer"
        if "schedule" in why.lower() or "timeout" in why.lower():
            why = "no worker of that host answered within 10 s"
        raise NotFound(f"the {inp.kind} is on host {inp.host} ({inp.path}), which could not "
                       f"send it: {why}", hint=f"run the command on {inp.host}") from None


def worker_polls(repo: Repo, within: float = 120.0) -> bool | None:
    """Whether a ``wf worker`` polled the repository's shared queue in the last ``within``
    seconds; None when the server could not be asked (it says so itself when it matters)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    from wf.temporal.connect import connect

    names = names_for(repo)

    async def ask() -> bool:
        client = await connect(repo.config.engine, os.environ)
        got = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=names.shared_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
        now = time.time()
        return any(now - p.last_access_time.ToSeconds() < within for p in got.pollers)

    try:
        return asyncio.run(asyncio.wait_for(ask(), 5.0))
    except (WfError, TimeoutError, RuntimeError):
        return None
