"""Landing through the forge (``[merge] land = "pr"``): push, PR/MR, the forge's checks, merge.

The queue has already tested the candidate locally. For the entry at the front it then:

1. pushes the candidate commit (the target with the entry merged in, whose tree passed the
   checks) to the entry's branch, so the forge's CI runs on exactly the tested tree;
2. opens or updates the entry's PR/MR (idempotent: found by head branch first);
3. waits for the forge's checks on that commit, polling with a growing interval while nothing
   changes; a failure evicts the entry with the forge's reason. "Nothing reported yet" is not
   a pass (right after a push the forge has often not created the pipeline): when the commit's
   tree configures the forge's CI (``.gitlab-ci.yml``, ``.github/workflows/*.yml``) wf waits
   for it up to ``forge_check_timeout``; when it does not, ``forge_checks_grace`` decides how
   long "none yet" waits before it means "none" (``forge_decide.judge_checks``);
4. makes sure the remote target is still the commit the candidate was built on, then merges
   with the candidate as the expected head SHA, so the forge cannot merge anything untested.
   A head that moved (409) is retested; a PR/MR the forge will not merge (405) is evicted.

A PR/MR merges one branch, so one entry lands per round; the next round finds the following
entries' prefixes in the tested-tree cache. Crash safety: a newest PR/MR already merged with the
candidate as its head is recorded as landed instead of being pushed and merged again.

This module is the interpreter of that landing: the side effects are ``ForgeActivities``
(``forge_activities.py``), what their facts mean and which ``pr.*`` events they record are
decisions (``forge_decide.py``); this reads the clock, sleeps, records and runs the activities.
Every blocking call (git, HTTP) runs in a worker thread; the waits are ``anyio.sleep``, so
stopping the engine cancels a landing that waits for checks. The forge's reads run in daemon
threads abandoned on cancel (:func:`forge_read`; a read is safe to drop half-way), so Ctrl-C
never waits for an HTTP answer; the merge call is not abandoned.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from wf.daemon_thread import in_daemon_thread
from wf.merge_queue import forge_decide as fd
from wf.merge_queue.decide import LandOutcome
from wf.merge_queue.forge_activities import FindLatest, ForgeActivities, Merge, OpenPr
from wf.merge_queue.forge_wait import wait_for_checks, wait_for_forge_merge
from wf.model import task_stream
from wf.providers.base import Forge, ForgeChecks, PullRequest

if TYPE_CHECKING:
    from wf.config import Config

Record = Callable[..., Awaitable[None]]


async def forge_read(read: Callable[..., Any], *args: Any) -> Any:
    """A forge READ that a cancelled caller stops waiting for at once (a read is safe to drop
    half-way; the merge call never goes through here)."""
    return await in_daemon_thread(lambda: read(*args), name="wf-forge-read")


class PrLanding:
    """The forge side of the queue for one target branch. The forge is built on first use, so
    a missing token surfaces as the queue's pause reason, not as a crash at start."""

    def __init__(self, root: Path, config: Config, target: str, environ: Mapping[str, str], *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = anyio.sleep) -> None:
        self.cfg, self.target, self.clock, self.sleep = config.merge, target, clock, sleep
        self.acts = ForgeActivities(root, config.provider, environ)

    @property
    def remote(self) -> str:
        return self.acts.remote

    @property
    def target_ref(self) -> str:
        return f"refs/remotes/{self.remote}/{self.target}"

    async def connect(self) -> Forge:
        return await anyio.to_thread.run_sync(self.acts.connect)

    async def fetch(self) -> None:
        """Bring the remote-tracking target up to date, with the forge's credentials."""
        await self.connect()
        await anyio.to_thread.run_sync(self.acts.fetch_target, self.target)

    async def land(self, entry: Any, task: Mapping[str, Any] | None,
                   queue_row: Mapping[str, Any] | None, base: str, commit: str,
                   record: Record) -> LandOutcome:
        forge = await self.connect()
        stream = task_stream(entry.task_id)
        latest = await forge_read(self.acts.find_latest, FindLatest(
            entry.branch, self.target, entry.head, commit))
        done = fd.landed_already(latest.pr, latest.carried, kind=forge.kind, stream=stream)
        if done is not None:
            return await self._recorded(done, record)
        await anyio.to_thread.run_sync(self.acts.push_candidate, commit, entry.branch)
        opened = await anyio.to_thread.run_sync(self.acts.open_pr, OpenPr(
            task, queue_row, entry.branch, self.target, base, commit, fd.reusable(latest.pr)))
        pr = opened.pr
        await record(fd.pr_opened(stream, pr, created=opened.created, head=commit,
                                  base=self.target, kind=forge.kind))
        ci_config = await anyio.to_thread.run_sync(self.acts.ci_config, commit)
        verdict = await self._wait_for_checks(pr, commit, stream, record, ci_config=ci_config)
        failed = fd.checks_failed(verdict, kind=forge.kind, number=pr.number)
        if failed is not None:
            return failed
        await self.fetch()
        now = await anyio.to_thread.run_sync(self.acts.target_head, self.target)
        moved = fd.target_moved(now, base, remote=self.remote, target=self.target)
        if moved is not None:
            return moved
        return await self._merge(forge.kind, pr, commit, stream, record)

    async def _merge(self, kind: str, pr: PullRequest, commit: str, stream: str,
                     record: Record) -> LandOutcome:
        outcome = await anyio.to_thread.run_sync(self.acts.merge, Merge(
            pr, commit, self.cfg.merge_method, self.cfg.auto_merge))
        decided = fd.merge_result(outcome, kind=kind, number=pr.number, stream=stream)
        if decided is None:  # auto-merge: the forge merges once its checks pass
            merged = await self._wait_for_forge_merge(pr)
            decided = fd.auto_merge_result(merged, kind=kind, number=pr.number, stream=stream)
        return await self._recorded(decided, record)

    @staticmethod
    async def _recorded(decided: fd.Decided, record: Record) -> LandOutcome:
        outcome, events = decided
        if events:
            await record(*events)
        return outcome

    async def _wait_for_checks(self, pr: PullRequest, commit: str, stream: str,
                               record: Record, *, ci_config: str | None) -> ForgeChecks:
        return await wait_for_checks(
            lambda: forge_read(self.acts.read_checks, pr, commit), record, self.clock,
            self.sleep, stream=stream, number=pr.number, ci_config=ci_config,
            first=self.cfg.forge_poll_interval, timeout=self.cfg.forge_check_timeout,
            grace=self.cfg.forge_checks_grace)

    async def _wait_for_forge_merge(self, pr: PullRequest) -> PullRequest | None:
        return await wait_for_forge_merge(
            lambda: forge_read(self.acts.get, pr.number), self.clock, self.sleep,
            first=self.cfg.forge_poll_interval, timeout=self.cfg.forge_check_timeout)
