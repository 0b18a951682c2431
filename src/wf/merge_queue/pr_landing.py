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
   long "none yet" waits before it means "none" (:func:`judge_checks`);
4. makes sure the remote target is still the commit the candidate was built on, then merges
   with the candidate as the expected head SHA, so the forge cannot merge anything untested.
   A head that moved (409) is retested; a PR/MR the forge will not merge (405) is evicted.

A PR/MR merges one branch, so one entry lands per round; the next round finds the following
entries' prefixes in the tested-tree cache. Crash safety: a newest PR/MR already merged with the
candidate as its head is recorded as landed instead of being pushed and merged again.

Every blocking call (git, HTTP) runs in a worker thread; the waits are ``anyio.sleep``, so
stopping the engine cancels a landing that waits for checks. The forge's reads run in daemon
threads abandoned on cancel (:func:`forge_read`; a read is safe to drop half-way), so Ctrl-C
never waits for an HTTP answer; the merge call is not abandoned.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio

from wf import gitx
from wf.daemon_thread import in_daemon_thread
from wf.errors import GitError
from wf.merge_queue.landing import LandOutcome
from wf.model import NewEvent, task_stream
from wf.providers.base import Forge, ForgeChecks, PullRequest
from wf.providers.ci_config import ci_config_of
from wf.providers.pulls import PullRequestRequest, describe, open_or_update
from wf.worktrees import fetch

Record = Callable[..., Awaitable[None]]
MAX_POLL_INTERVAL = 60.0


async def forge_read(read: Callable[..., Any], *args: Any) -> Any:
    """A forge READ that a cancelled caller stops waiting for at once (a read is safe to drop
    half-way; the merge call never goes through here)."""
    return await in_daemon_thread(lambda: read(*args), name="wf-forge-read")


class PrLanding:
    """The forge side of the queue for one target branch. The forge is built on first use, so
    a missing token surfaces as the queue's pause reason, not as a crash at start."""

    def __init__(self, root: Path, config: Any, target: str, environ: Mapping[str, str], *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = anyio.sleep) -> None:
        self.root, self.cfg, self.provider = root, config.merge, config.provider
        self.target, self.environ, self.clock, self.sleep = target, environ, clock, sleep
        self.forge: Forge | None = None

    @property
    def remote(self) -> str:
        return self.provider.remote

    @property
    def target_ref(self) -> str:
        return f"refs/remotes/{self.remote}/{self.target}"

    async def connect(self) -> Forge:
        if self.forge is None:
            from wf import providers

            self.forge = await anyio.to_thread.run_sync(
                providers.connect, self.root, self.provider, self.environ)
        return self.forge

    async def fetch(self) -> None:
        """Bring the remote-tracking target up to date, with the forge's credentials."""
        forge = await self.connect()
        await anyio.to_thread.run_sync(lambda: fetch(
            self.root, self.remote, self.target, credentials=forge.push_credentials()))

    async def land(self, entry: Any, task: Mapping[str, Any] | None,
                   queue_row: Mapping[str, Any] | None, base: str, commit: str,
                   record: Record) -> LandOutcome:
        forge = await self.connect()
        stream = task_stream(entry.task_id)
        latest = await forge_read(forge.find_latest, entry.branch, self.target)
        if latest is not None and latest.state == "merged" and await anyio.to_thread.run_sync(
                self._carries, latest.head_sha, entry.head, commit):
            await record(NewEvent(stream, "pr.merged", {"number": latest.number,
                                                        "commit": latest.merge_commit}))
            return LandOutcome("landed", f"{_ref(forge, latest)} was merged already",
                               commit=latest.merge_commit)
        await anyio.to_thread.run_sync(lambda: gitx.push_branch(
            self.root, self.remote, commit, entry.branch, credentials=forge.push_credentials()))
        text = await anyio.to_thread.run_sync(lambda: describe(
            task, entry.branch, diff_stat=gitx.diff(self.root, base, commit, stat=True),
            queue_row=queue_row))
        existing = latest if latest is not None and latest.state in ("open", "draft") else None
        pr, created = await anyio.to_thread.run_sync(
            open_or_update, forge, PullRequestRequest(entry.branch, self.target, text), existing)
        await record(NewEvent(stream, "pr.opened", {
            "number": pr.number, "url": pr.url, "state": pr.state, "created": created,
            "head": commit, "base": self.target, "forge": forge.kind}))
        ci_config = await anyio.to_thread.run_sync(ci_config_of, self.root, forge.kind, commit)
        verdict = await self._wait_for_checks(forge, pr, commit, stream, record,
                                              ci_config=ci_config)
        if verdict.state != "success":
            return LandOutcome("evicted", f"the forge's checks on {_ref(forge, pr)} did not pass: "
                                          f"{verdict.detail}", kind="forge_check")
        await self.fetch()
        now = await anyio.to_thread.run_sync(gitx.rev_parse, self.root, self.target_ref)
        if now != base:
            return LandOutcome("moved", f"{self.remote}/{self.target} moved to "
                                        f"{str(now)[:10]} while the forge's checks ran")
        return await self._merge(forge, pr, commit, stream, record)

    def _carries(self, merged_head: str | None, entry_head: str, commit: str) -> bool:
        """Whether a merged PR/MR head already carried this entry (this candidate, or an earlier
        one built on the entry's head): then wf crashed after the forge merged it."""
        if merged_head is None:
            return False
        try:
            return merged_head == commit or gitx.is_ancestor(self.root, entry_head, merged_head)
        except GitError:  # the old candidate is not in this repository
            return False

    async def _merge(self, forge: Forge, pr: PullRequest, commit: str, stream: str,
                     record: Record) -> LandOutcome:
        outcome = await anyio.to_thread.run_sync(lambda: forge.merge(
            pr, sha=commit, method=self.cfg.merge_method, auto=self.cfg.auto_merge))
        if outcome.status == "auto":
            merged = await self._wait_for_forge_merge(forge, pr)
            if merged is None:
                return LandOutcome("evicted", f"{_ref(forge, pr)} was not merged by the forge: "
                                              "auto-merge timed out or the PR/MR was closed",
                                   kind="not_mergeable")
            outcome_commit = merged.merge_commit
        elif outcome.status == "merged":
            outcome_commit = outcome.commit
        elif outcome.status == "moved":
            return LandOutcome("moved", outcome.detail)
        else:
            return LandOutcome("evicted", outcome.detail, kind="not_mergeable")
        await record(NewEvent(stream, "pr.merged", {"number": pr.number,
                                                    "commit": outcome_commit}))
        return LandOutcome("landed", f"{_ref(forge, pr)} merged", commit=outcome_commit)

    async def _wait_for_checks(self, forge: Forge, pr: PullRequest, commit: str, stream: str,
                               record: Record, *, ci_config: str | None) -> ForgeChecks:
        """Poll the forge's checks on ``commit`` until they pass or fail; record each change
        of verdict. The interval grows by half while nothing changes (up to a minute).
        ``ci_config`` is the file in ``commit`` that configures the forge's CI, if any."""
        head = PullRequest(pr.number, pr.url, pr.state, commit)
        interval = self.cfg.forge_poll_interval
        timeout = self.cfg.forge_check_timeout
        grace = self.cfg.forge_checks_grace if timeout is None else min(
            self.cfg.forge_checks_grace, timeout)
        start = self.clock()
        deadline = None if timeout is None else start + timeout
        last: ForgeChecks | None = None
        while True:
            reading = await forge_read(forge.checks, head)
            checks = judge_checks(reading, ci_config=ci_config, waited=self.clock() - start,
                                  grace=grace)
            if checks != last:
                await record(NewEvent(stream, "pr.checks", {
                    "number": pr.number, "state": checks.state, "detail": checks.detail}))
                interval, last = self.cfg.forge_poll_interval, checks
            else:
                interval = min(interval * 1.5, max(MAX_POLL_INTERVAL,
                                                   self.cfg.forge_poll_interval))
            if checks.state != "pending":
                return checks
            if deadline is not None and self.clock() >= deadline:
                return ForgeChecks("failure", f"still pending after {timeout:g}s: "
                                              f"{checks.detail}")
            await self.sleep(interval if deadline is None
                             else max(0.0, min(interval, deadline - self.clock())))

    async def _wait_for_forge_merge(self, forge: Forge, pr: PullRequest) -> PullRequest | None:
        interval = self.cfg.forge_poll_interval
        deadline = (None if self.cfg.forge_check_timeout is None
                    else self.clock() + self.cfg.forge_check_timeout)
        while deadline is None or self.clock() < deadline:
            now = await forge_read(forge.get, pr.number)
            if now.state == "merged":
                return now
            if now.state == "closed":
                return None
            await self.sleep(interval)
            interval = min(interval * 1.5, max(MAX_POLL_INTERVAL, self.cfg.forge_poll_interval))
        return None


def judge_checks(reading: ForgeChecks, *, ci_config: str | None, waited: float,
                 grace: float) -> ForgeChecks:
    """What one reading of the forge means for landing: pending, passed or failed. Pure.

    A failure, a pending run and a pass are what they say. ``none`` (the forge reports nothing
    on the head) is never a pass by itself: with CI configured in the head (``ci_config``) the
    checks have not appeared yet, so wait (``forge_check_timeout`` bounds it); without, wait
    ``grace`` seconds for a check from elsewhere (an app, a webhook) and then land with none.
    """
    if reading.state != "none":
        return reading
    if ci_config is not None:
        return ForgeChecks("pending", f"{reading.detail} yet; {ci_config} configures CI")
    if waited < grace:
        return ForgeChecks("pending", f"{reading.detail} yet; no CI configured, waiting "
                                      f"{grace:g}s for checks to appear")
    return ForgeChecks("success", f"{reading.detail}; no CI configured")


def _ref(forge: Forge, pr: PullRequest) -> str:
    return f"!{pr.number}" if forge.kind == "gitlab" else f"#{pr.number}"
