"""The merge queue's landing through the forge (``[merge] land = "pr"``) on Temporal.

The steps of the local engine's ``merge_queue/pr_landing.py``, asked of the same decisions
(``merge_queue/forge_decide.py``): find the entry's newest PR/MR (and record it as landed when
a crash came after the forge merged it), push the tested candidate to the entry's branch and
open or update its PR/MR, wait for the forge's checks on exactly that commit (polling with a
growing interval on durable timers), make sure the remote target has not moved, then merge
with the candidate as the expected head, or wait for the forge's own auto-merge. The forge's
calls are activities on the queue's host, whose environment holds the token; no token is in a
workflow's input or history.

Workflow code: no I/O, no clock but the workflow's; it runs in the sandbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from wf.merge_queue import forge_decide as fd
    from wf.merge_queue.candidates import Entry
    from wf.merge_queue.decide import LandOutcome
    from wf.merge_queue.forge_activities import FindLatest, Merge, OpenPr
    from wf.merge_queue.forge_wait import wait_for_checks, wait_for_forge_merge
    from wf.model import task_stream
    from wf.providers.base import ForgeChecks, MergeOutcome, PullRequest
    from wf.temporal.queue_activities import ForgeLatest, Publish, Published, ReadChecks

if TYPE_CHECKING:
    from wf.temporal.queue_flow import QueueFlow


class ForgeLanding:
    """Lands one entry through its PR/MR, for the merge queue ``q``."""

    def __init__(self, q: QueueFlow) -> None:
        self.q = q

    def _now(self) -> float:
        return self.q.w.log.now()

    async def land(self, entry: Entry, base: str, commit: str) -> LandOutcome:
        q, s = self.q, self.q.s
        stream = task_stream(entry.task_id)
        found: ForgeLatest = await q.step("wf.queue.forge.latest", FindLatest(
            entry.branch, s.target, entry.head, commit), ForgeLatest)
        kind, latest = found.kind, found.latest
        done = fd.landed_already(latest.pr, latest.carried, kind=kind, stream=stream)
        if done is not None:
            return self._recorded(done)
        tid = entry.task_id
        published: Published = await q.step("wf.queue.forge.publish", Publish(
            commit, entry.branch, OpenPr(q.w.p.tasks.get(tid), q.w.p.queue.get(tid),
                                         entry.branch, s.target, base, commit,
                                         fd.reusable(latest.pr))), Published)
        pr = published.opened.pr
        q.append(fd.pr_opened(stream, pr, created=published.opened.created, head=commit,
                              base=s.target, kind=kind))
        verdict = await self._wait_for_checks(pr, commit, stream, published.ci_config)
        failed = fd.checks_failed(verdict, kind=kind, number=pr.number)
        if failed is not None:
            return failed
        now: str = await q.step("wf.queue.forge.target_head", s.target, str)
        moved = fd.target_moved(now, base, remote=s.remote, target=s.target)
        if moved is not None:
            return moved
        outcome: MergeOutcome = await q.step("wf.queue.forge.merge", Merge(
            pr, commit, s.merge_method, s.auto_merge), MergeOutcome)
        decided = fd.merge_result(outcome, kind=kind, number=pr.number, stream=stream)
        if decided is None:  # auto-merge: the forge merges once its checks pass
            merged = await self._wait_for_forge_merge(pr)
            decided = fd.auto_merge_result(merged, kind=kind, number=pr.number, stream=stream)
        return self._recorded(decided)

    def _recorded(self, decided: fd.Decided) -> LandOutcome:
        outcome, events = decided
        self.q.append(*events)
        return outcome

    async def _wait_for_checks(self, pr: PullRequest, commit: str, stream: str,
                               ci_config: str | None) -> ForgeChecks:
        s = self.q.s

        async def read() -> ForgeChecks:
            return await self.q.step("wf.queue.forge.checks", ReadChecks(pr, commit),
                                     ForgeChecks)

        async def record(e: Any) -> None:
            self.q.append(e)

        return await wait_for_checks(read, record, self._now, workflow.sleep, stream=stream,
                                     number=pr.number, ci_config=ci_config,
                                     first=s.forge_poll_interval,
                                     timeout=s.forge_check_timeout, grace=s.forge_checks_grace)

    async def _wait_for_forge_merge(self, pr: PullRequest) -> PullRequest | None:
        async def get() -> PullRequest:
            return await self.q.step("wf.queue.forge.get", pr.number, PullRequest)

        return await wait_for_forge_merge(get, self._now, workflow.sleep,
                                          first=self.q.s.forge_poll_interval,
                                          timeout=self.q.s.forge_check_timeout)
