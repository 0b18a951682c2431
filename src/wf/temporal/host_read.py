"""``HostReadWorkflow``: ``wf logs`` and ``wf diff`` of a task whose worktree is on another
host, one step on that host's queue.

A module of its own because the sandbox imports a workflow's module afresh for every run and
builds each workflow class in it: a task's run (``task_workflow.py``) does not build this one.
Workflow code: it runs in the sandbox.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from wf.temporal.shapes import HostRead, HostText


@workflow.defn(name="wf.host_read")
class HostReadWorkflow:
    """``wf logs`` and ``wf diff`` from another machine: one step on the host that has it."""

    @workflow.run
    async def run(self, inp: HostRead) -> HostText:
        queue = f"{workflow.info().task_queue}.host.{inp.host}"
        return await workflow.execute_activity(
            "wf.host_read", inp, result_type=HostText, task_queue=queue,
            schedule_to_start_timeout=timedelta(seconds=10),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=1))
