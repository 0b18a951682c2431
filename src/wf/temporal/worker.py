"""``wf worker``: one host's Temporal worker for a repository.

It polls three task queues: the repository's shared queue (the workflows, and the merge
queue's steps), the take queue (the first step of a task, which any host may take, polled
only while this host has a free slot) and its own host's queue (every later step of a task
whose worktree it holds). It runs the activities in ``activities.py`` against this clone.

Stopping it (Ctrl-C, SIGTERM) stops the polling at once and lets the agents run on: each
attempt's activity lets go of its agent without stopping it, and the worker that comes back
(or, after ``[engine] host_lost_after``, another host) adopts it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio.worker import (
    CustomSlotSupplier,
    FixedSizeSlotSupplier,
    SlotMarkUsedContext,
    SlotPermit,
    SlotReleaseContext,
    SlotReserveContext,
    Worker,
    WorkerTuner,
)
from temporalio.worker.workflow_sandbox import (
    SandboxedWorkflowRunner,
    SandboxRestrictions,
)

from wf.temporal.activities import WorkerActivities
from wf.temporal.connect import connect
from wf.temporal.engine import keep_mirrored, names_for
from wf.temporal.queue_activities import QueueWorker
from wf.temporal.workflows import HostReadWorkflow, QueueWorkflow, RepoWorkflow, TaskWorkflow

if TYPE_CHECKING:
    from wf.repository import Repo

Report = Callable[[str, dict[str, Any]], None]
QUEUE_SLOTS = 8  # integration worktrees a queue host may use (a run's [merge] may ask more
# checks at once than this clone's wf.toml says)
THROTTLE = timedelta(seconds=1)  # heartbeats reach the server at least this often: a cancel
# waits for the next one (temporal.md: 2.9 s at the default throttle, 0.99 s with this)


ROOM_POLL = 0.05  # seconds between looks for a free slot while this host has none


class FreeSlots(CustomSlotSupplier):
    """Activity slots of the take queue: one only while this host has a free attempt slot.

    Temporal polls a queue only after a slot is reserved, so a host whose slots are all
    running never takes a task's first step; a host with room gets it at once. (Before, any
    host took it and a busy one refused it as ``HostBusy``, asked again every 0.1 s until
    another host's poller got it: ~0.4 s per task with two hosts.) ``reserved`` counts the
    permits given out whose step has not ended, so that the pollers of one host never take
    more first steps than it has room for; ``WorkerActivities._take`` still refuses a step that
    finds no room after all (the race of two permits)."""

    def __init__(self, room: Callable[[], int]) -> None:
        self.room = room
        self.reserved = 0

    async def reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit:
        while self.room() - self.reserved <= 0:
            await asyncio.sleep(ROOM_POLL)  # cancelled at the worker's shutdown
        self.reserved += 1
        return SlotPermit()

    def try_reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit | None:
        if self.room() - self.reserved <= 0:
            return None
        self.reserved += 1
        return SlotPermit()

    def mark_slot_used(self, ctx: SlotMarkUsedContext) -> None:
        pass

    def release_slot(self, ctx: SlotReleaseContext) -> None:
        self.reserved -= 1


def take_tuner(room: Callable[[], int]) -> WorkerTuner:
    few = FixedSizeSlotSupplier(2)  # the take queue runs no workflows nor local activities
    return WorkerTuner.create_composite(workflow_supplier=few,
                                        activity_supplier=FreeSlots(room),
                                        local_activity_supplier=few, nexus_supplier=few)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox, with wf's modules passed through but the workflows' own: what the
    workflows import (the pure decisions, the dataclasses activities take) is imported once,
    outside, so the data converter and the workflows see the same classes (re-imported in the
    sandbox, a report's enums failed to convert); the workflow module itself is imported in
    the sandbox, which catches a clock, a random number or a file read in it."""
    import pkgutil

    import wf

    ours = {f"wf.{m.name}" for m in pkgutil.iter_modules(wf.__path__) if m.name != "temporal"}
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default
                                   .with_passthrough_modules(*ours, "wf.temporal.shapes"))


def byte_compile_workflows() -> None:
    """Write the bytecode of the modules the sandbox imports afresh for every workflow run
    (``wf.temporal``'s own). Without it (``PYTHONDONTWRITEBYTECODE``, an editable install)
    every task's run compiled them from source: 7 % of a worker's CPU on no-op tasks. Left
    as it is where the package's folder is not writable (an installed wf has its bytecode)."""
    import importlib.util
    import py_compile
    from pathlib import Path

    import wf
    import wf.temporal

    for source in [Path(wf.__file__), *Path(wf.temporal.__file__).parent.glob("*.py")]:
        with contextlib.suppress(OSError, py_compile.PyCompileError):
            py_compile.compile(str(source), cfile=importlib.util.cache_from_source(str(source)),
                               doraise=True)


async def serve(repo: Repo, environ: Mapping[str, str], stop: asyncio.Event, *,
                slots: int = 4, report: Report | None = None) -> None:
    """Run this host's worker until ``stop`` is set."""
    cfg = repo.config.engine
    names = names_for(repo)
    byte_compile_workflows()
    host = cfg.host_name()
    client = await connect(cfg, environ)
    acts = WorkerActivities(repo, host, environ, slots=slots, report=report)
    refill = None
    if acts.acts.worktree_pool is not None:  # this host keeps its own pool filled
        from wf.pool.refill import Refill

        refill = Refill(acts.acts.worktree_pool)
        refill.start()
    queue = QueueWorker(repo, host, environ, max(repo.config.merge.max_parallel_checks,
                                                 QUEUE_SLOTS))
    common: dict[str, Any] = dict(
        activities=[*acts.all(), *queue.all()], activity_executor=acts.pool,
        max_heartbeat_throttle_interval=THROTTLE, default_heartbeat_throttle_interval=THROTTLE,
        graceful_shutdown_timeout=timedelta(0),
        # A killed worker's workflows are sticky to its own queue until this passes; queries
        # (the mirror's) wait that long for a worker that will never answer.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=1))
    # The shared queue also takes the workflows; the host's own queue only this host's steps.
    shared = Worker(client, task_queue=names.shared_queue,
                    workflows=[RepoWorkflow, TaskWorkflow, HostReadWorkflow, QueueWorkflow],
                    workflow_runner=workflow_runner(), max_concurrent_activities=slots, **common)
    own = Worker(client, task_queue=names.host_queue(host),
                 max_concurrent_activities=slots + 8, **common)  # + short steps
    take = Worker(client, task_queue=names.take_queue, tuner=take_tuner(acts.free_slots),
                  **{**common, "activities": [acts.ensure_worktree]})
    if report is not None:
        report("ready", {"host": host, "queues": [names.shared_queue, names.take_queue,
                                                  names.host_queue(host)],
                         "address": cfg.address, "namespace": cfg.namespace, "slots": slots})
    async with shared, own, take:
        # This clone's log kept pulled, so that `wf status` here need not wait (it pulls only
        # a mirror older than 2 s). Not the running attempts' own events: a query to each
        # every second cost this worker more than the rest of the pull (wf dash asks itself).
        mirror = asyncio.create_task(keep_mirrored(repo, client, names.repo_workflow,
                                                   stop.is_set, every=1.0, live=False))
        await stop.wait()
        mirror.cancel()
    if refill is not None:
        refill.stop()
    acts.pool.shutdown(wait=False, cancel_futures=True)
