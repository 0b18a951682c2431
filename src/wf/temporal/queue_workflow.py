"""The merge queue of one repository and target as its own long-lived workflow.

``QueueWorkflow`` (id ``<prefix>.<repo>.merge.<target>``) runs the queue's rounds
(``queue_flow.QueueFlow``: the local queue loop's decisions, durably) and continues as new
when its history grows long, independently of the repository workflow: a queue that tests and
lands all day does not make the scheduler's history long, and the reverse.

The repository workflow stays the one log: every event has its place in one sequence that
``wf status`` and ``wf events`` mirror. The two workflows talk by signals:

- the repository workflow forwards each ``queue.*`` event it records (a task's success
  entering the queue, a person's approval, rejection or removal, ``wf queue add``) with the
  rows of those entries' tasks and their branches on the shared remote (``QueueFeed``);
- the queue workflow sends back the events it records (admissions, checks, landings,
  evictions, a conflict's send-back to the agent) and whether it is stopped
  (``QueueReport``); the repository workflow records them with the queue's keys.

People's commands go to the repository workflow's ``signal`` update, judged there by its
validator against the one projection, as on the local engine; what they do to the queue
reaches the queue workflow in the next feed. ``MergeLink`` is the repository workflow's side:
it starts the queue workflow (a child that outlives its parent's runs), feeds it, and takes
its reports. When the target changes, the old target's workflow ends after its current round
(``retire``) before the new one starts with the entries still in line.

Workflow code: no I/O, no clock but ``workflow.now()``; it runs in the sandbox.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import FailureError
from temporalio.workflow import ParentClosePolicy

# Workflow code too, imported in the sandbox.
from wf.temporal.queue_flow import QueueFlow
from wf.temporal.task_workflow import WorkflowLog

with workflow.unsafe.imports_passed_through():
    from wf.merge_queue import decide as mq
    from wf.store.projections import Projection, full_row
    from wf.temporal.carry import latest_tested, pack_json, unpack_json
    from wf.temporal.shapes import (
        MergeSettings,
        QueueFeed,
        QueueReport,
        QueueStart,
        Settings,
        WireEvent,
        merge_workflow,
    )

if TYPE_CHECKING:
    from wf.temporal.workflows import RepoWorkflow

# The patch that moves the merge queue out of the repository workflow into its own.
MERGE_WORKFLOW = "merge-workflow"
# A task row's columns the queue reads: its base commit (admission), and what a PR/MR's
# description says (``providers/pulls.describe``).
QUEUE_COLUMNS = ("id", "state", "agent", "prompt", "attempts", "base_commit", "branch")
# Events per feed or report: each well under 1 KiB with the rows of their tasks, so one
# signal stays far below the 2 MiB payload limit when many tasks succeed at once.
EVENTS_PER_SIGNAL = 100


def queue_row(task: dict[str, Any]) -> dict[str, Any]:
    return {k: task.get(k) for k in QUEUE_COLUMNS}


def in_line(queue: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The queue rows a queue workflow needs: entries not landed or removed (an evicted one
    may enter again; its row keeps its place)."""
    return {t: r for t, r in queue.items() if r["state"] not in ("landed", "removed")}


@workflow.defn(name="wf.merge")
class QueueWorkflow:
    """The merge queue of one repository and target, for as long as that target is used."""

    @workflow.init
    def __init__(self, start: QueueStart) -> None:
        c = unpack_json(start.carried)
        self.queue = start.queue  # the repository's shared task queue
        self.settings: Settings = start.settings
        assert start.settings.merge is not None
        self.target = start.settings.merge.target
        self.p = Projection(
            tasks={t: full_row("tasks", r) for t, r in c["tasks"].items()},
            queue={t: full_row("queue", r) for t, r in c["queue"].items()},
            tested_trees={r["tree"]: full_row("tested_trees", r) for r in c["tested"]})
        self.log = WorkflowLog(self.p, c.get("offset", 0.0))
        self.pushed: dict[str, str] = dict(c["pushed"])
        self.recorded = c.get("recorded", 0)  # how many events this chain has recorded
        self.outbox: list[WireEvent] = []  # recorded here, not yet reported
        self.chain = workflow.info().first_execution_run_id[:12]
        self.retiring = False  # the target changed: end at the next rest
        self.woken = False
        self.told_paused: str | None = None  # what the last report said
        flow = c.get("flow")
        self.flow = QueueFlow.resumed(self, flow, full=True) if flow \
            else QueueFlow(self, start.settings.merge, full=True)

    # -- what QueueFlow asks of the workflow it runs in ---------------------------------------
    def record_event(self, e: Any) -> WireEvent:
        """Record a decision's ``NewEvent``: folded here, reported to the repository."""
        self.recorded += 1
        w = WireEvent(e.stream, e.type, e.data, self.log.now(),
                      e.idempotency_key or f"mq:{self.chain}:{self.recorded}")
        if e.type.startswith("queue."):  # a task's own events are the repository's to fold
            self.log.fold(w)
        self.outbox.append(w)
        self.flow.poke()
        self.woken = True
        return w

    def wake(self) -> None:
        self.woken = True

    @property
    def continuing(self) -> bool:
        """Whether to stop at the next rest: retired, or the history is long. Asked by the
        queue at each round's start, so a queue that waits and looks again every second (a
        refused landing) continues as new too."""
        return self.retiring or self._history_long()

    # -- the repository workflow's feed --------------------------------------------------------
    @workflow.signal(name="feed")
    def feed(self, f: QueueFeed) -> None:
        for tid, row in f.tasks.items():
            self.p.tasks[tid] = full_row("tasks", row)
        self.pushed.update(f.pushed)
        for w in f.events:  # with the repository's sequence numbers: an entry's place in line
            self.log.fold(w)
        if f.settings is not None and f.settings.merge is not None:
            self.settings = f.settings
            self.flow.configure(f.settings.merge)
        if f.retire:
            self.retiring = True
        self.flow.poke()
        self.woken = True

    @workflow.run
    async def run(self, start: QueueStart) -> None:
        rounds = asyncio.create_task(self.flow.run())
        while True:
            await workflow.wait_condition(
                lambda: self.woken or bool(self.outbox) or rounds.done())
            if rounds.done():  # it never ends but by a bug: fail the workflow task, loudly
                rounds.result()
            self.woken = False
            if self.outbox or self.flow.paused != self.told_paused:
                if not await self._report():
                    return  # the repository workflow is gone: nobody to land for
            if self.continuing and not self.flow.parked:
                self.flow.poke()  # it stops at its next round's start, and wakes this loop
            if self.continuing and self.flow.parked and not self.outbox \
                    and workflow.all_handlers_finished():
                if self.retiring:
                    await self._report(ended=True)
                    return
                workflow.continue_as_new(QueueStart(self.queue, self.settings, self._carry()))

    async def _report(self, *, ended: bool = False) -> bool:
        events = self.outbox[:EVENTS_PER_SIGNAL]
        del self.outbox[:EVENTS_PER_SIGNAL]
        paused = self.flow.paused
        try:
            await workflow.get_external_workflow_handle(f"{self.queue}.repo").signal(
                "queue_report", QueueReport(self.target, events, paused, ended))
        except FailureError:
            return False
        self.told_paused = paused
        return True

    def _history_long(self) -> bool:
        info = workflow.info()
        return (info.get_current_history_length() >= self.settings.continue_after
                or info.is_continue_as_new_suggested())

    def _carry(self) -> bytes:
        queue = in_line(self.p.queue)
        return pack_json({
            "tasks": {t: queue_row(r) for t, r in self.p.tasks.items() if t in queue},
            "queue": queue, "tested": latest_tested(self.p.tested_trees),
            "pushed": {t: b for t, b in self.pushed.items() if t in queue},
            "offset": self.log.offset, "recorded": self.recorded,
            "flow": self.flow.state()})


class MergeLink:
    """The repository workflow's side of its merge-queue workflow: the same questions as
    ``QueueFlow`` answers when the queue runs inside it (``busy``, ``paused``, ``parked``)."""

    def __init__(self, repo_wf: RepoWorkflow, s: MergeSettings) -> None:
        self.w = repo_wf
        self.s = s
        self.started: str | None = None  # the target whose workflow runs
        self.retired: str | None = None  # a target whose workflow ends after its round
        self.paused: str | None = None
        self.outbox: list[WireEvent] = []
        self.settings_due = False
        self.sending = False
        self.flow: dict[str, Any] | None = None  # an inner queue's state, handed over once
        self.poked = True  # the loop starts the queue's workflow at once

    def state(self) -> dict[str, Any]:
        return {"link": {"settings": asdict(self.s), "started": self.started,
                         "retired": self.retired, "paused": self.paused,
                         "outbox": [asdict(w) for w in self.outbox],
                         "settings_due": self.settings_due, "flow": self.flow}}

    @classmethod
    def resumed(cls, repo_wf: RepoWorkflow, state: dict[str, Any]) -> MergeLink:
        link = cls(repo_wf, MergeSettings(**state["settings"]))
        link.started, link.retired, link.paused = (state["started"], state["retired"],
                                                   state["paused"])
        link.outbox = [WireEvent(**w) for w in state["outbox"]]
        link.settings_due = state["settings_due"]
        link.flow = state["flow"]
        return link

    @classmethod
    def taking_over(cls, repo_wf: RepoWorkflow, inner: QueueFlow) -> MergeLink:
        """The link that replaces a queue run inside the repository workflow (started before
        the patch), at a run's start: the inner queue was parked between two rounds."""
        link = cls(repo_wf, inner.s)
        link.paused, link.flow = inner.paused, inner.state()
        return link

    # -- what the repository workflow asks (as of QueueFlow) ----------------------------------
    def configure(self, s: MergeSettings) -> None:
        """The latest run's settings; a run also starts a stopped queue again."""
        if self.started is not None and s.target != self.started:
            self.retired = self.started  # the old target's queue ends after its round
        self.s, self.paused, self.settings_due = s, None, True
        self.poked = True

    def busy(self) -> bool:
        return self.paused is None and mq.waiting(self.w.p.queue) > 0

    @property
    def parked(self) -> bool:
        """Nothing on its way: the repository workflow may continue as new (it carries the
        rest)."""
        return not self.sending

    def poke(self) -> None:
        pass  # the queue hears of events by ``forward``

    def forward(self, w: WireEvent) -> None:
        """A ``queue.*`` event the repository recorded (not one the queue reported)."""
        self.outbox.append(w)
        self.poked = True

    def report(self, r: QueueReport) -> None:
        for w in r.events:
            self.w.record_reported(w)
        if r.ended:
            if self.retired == r.target:
                self.retired = None
        elif r.target == self.s.target:
            self.paused = r.paused
        self.poked = True

    # -- the link's loop ----------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            await workflow.wait_condition(lambda: self.poked)
            self.poked = False
            if self.retired is not None:
                if self.started == self.retired:
                    self.started = None
                    if not await self._send(self.retired, QueueFeed(retire=True)):
                        self.retired, self.poked = None, True  # gone already: start anew
                continue  # else its ended report pokes again
            if self.started is None:
                await self._start()
            elif self.outbox or self.settings_due:
                if not await self._send(self.s.target, self._feed()):
                    # Not running (terminated by hand): start it again from the rows,
                    # which hold what that feed carried.
                    self.started, self.poked = None, True

    def _feed(self) -> QueueFeed:
        events = self.outbox[:EVENTS_PER_SIGNAL]
        del self.outbox[:EVENTS_PER_SIGNAL]
        tids = {w.stream[len("task:"):] for w in events if w.stream.startswith("task:")}
        settings = self.w.settings if self.settings_due else None
        self.settings_due = False
        if self.outbox:
            self.poked = True  # the rest in the next feed
        p = self.w.p
        return QueueFeed(events, {t: queue_row(p.tasks[t]) for t in tids if t in p.tasks},
                         {t: self.w.pushed[t] for t in tids if t in self.w.pushed}, settings)

    async def _start(self) -> None:
        """Start the target's queue workflow with the queue rows recorded so far (the
        events forwarded before now are in them)."""
        p, target = self.w.p, self.s.target
        queue = in_line(p.queue)
        carried = pack_json({
            "tasks": {t: queue_row(p.tasks[t]) for t in queue if t in p.tasks},
            "queue": {t: dict(r) for t, r in queue.items()},
            "tested": latest_tested(p.tested_trees),
            "pushed": {t: b for t, b in self.w.pushed.items() if t in queue},
            "offset": self.w.log.offset, "flow": self.flow})
        self.outbox, self.settings_due = [], False
        settings = replace(self.w.settings, merge=self.s)
        self.sending = True
        try:
            await workflow.start_child_workflow(
                QueueWorkflow.run, QueueStart(self.w.queue, settings, carried),
                id=merge_workflow(self.w.queue, target), task_queue=self.w.queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                parent_close_policy=ParentClosePolicy.ABANDON)
        except FailureError:  # running already (a later run of this chain): feed it
            self.settings_due = True
        finally:
            self.sending = False
        self.started, self.flow = target, None
        self.poked = True

    async def _send(self, target: str, feed: QueueFeed) -> bool:
        """Signal the target's queue workflow; False when it is not running (it ended)."""
        self.sending = True
        try:
            await workflow.get_external_workflow_handle(
                merge_workflow(self.w.queue, target)).signal("feed", feed)
        except FailureError:
            return False
        finally:
            self.sending = False
        return True
