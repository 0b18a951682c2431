"""The two waits of a landing through the forge (``land = "pr"``), for both engines.

Waiting for the forge's checks on the candidate, and for the forge's own auto-merge, are the
same loops whichever engine lands: look, judge (``forge_decide``), record a change, sleep a
growing interval up to a deadline. Each interpreter passes how it looks at the forge, records,
tells the time and sleeps: the local engine's ``PrLanding`` threads and ``anyio.sleep``, the
Temporal workflow's ``ForgeLanding`` activities and durable timers. Nothing here does I/O of
its own, so the workflow may run it in its sandbox.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from wf.merge_queue import forge_decide as fd
from wf.model import NewEvent
from wf.providers.base import ForgeChecks, PullRequest

Now = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


async def wait_for_checks(read: Callable[[], Awaitable[ForgeChecks]],
                          record: Callable[[NewEvent], Awaitable[None]], now: Now, sleep: Sleep,
                          *, stream: str, number: int, ci_config: str | None, first: float,
                          timeout: float | None, grace: float) -> ForgeChecks:
    """Poll the forge's checks until they pass or fail; record each change of verdict. The
    interval grows by half while nothing changes (up to a minute). ``ci_config`` is the file of
    the candidate that configures the forge's CI, if any; ``grace`` is
    ``forge_checks_grace``."""
    grace = fd.checks_grace(grace, timeout)
    interval, start = first, now()
    deadline = fd.deadline_of(start, timeout)
    last: ForgeChecks | None = None
    while True:
        checks = fd.judge_checks(await read(), ci_config=ci_config, waited=now() - start,
                                 grace=grace)
        changed = checks != last
        if changed:
            await record(fd.pr_checks(stream, number, checks))
            last = checks
        interval = fd.next_interval(interval, changed=changed, first=first)
        verdict = fd.checks_verdict(checks, now=now(), deadline=deadline, timeout=timeout)
        if verdict is not None:
            return verdict
        await sleep(fd.sleep_for(interval, now=now(), deadline=deadline))


async def wait_for_forge_merge(get: Callable[[], Awaitable[PullRequest]], now: Now,
                               sleep: Sleep, *, first: float, timeout: float | None
                               ) -> PullRequest | None:
    """The PR/MR once the forge merged it; None if it was closed or the wait timed out."""
    interval = first
    deadline = fd.deadline_of(now(), timeout)
    while fd.in_time(now(), deadline):
        pr = await get()
        state = fd.auto_merge_state(pr)
        if state == "merged":
            return pr
        if state == "closed":
            return None
        await sleep(interval)
        interval = fd.next_interval(interval, changed=False, first=first)
    return None
