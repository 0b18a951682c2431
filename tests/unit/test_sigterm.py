"""SIGTERM stops the engine as Ctrl-C does, wherever in the event loop the signal lands."""

from __future__ import annotations

import logging
import signal

import anyio
import pytest

from wf.cli.running import _stop_on_sigterm


def test_sigterm_landing_in_a_child_task_ends_the_run_without_a_traceback(caplog):
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT has a handler of the test runner's: asyncio would not install its own")

    async def main() -> None:
        async def child() -> None:
            _stop_on_sigterm(signal.SIGTERM, None)  # as if the signal had arrived here
            await anyio.sleep(30)

        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
            await anyio.sleep(30)

    with caplog.at_level(logging.ERROR, logger="asyncio"), pytest.raises(KeyboardInterrupt):
        anyio.run(main)
    assert not [r for r in caplog.records if r.name == "asyncio"]  # no task's traceback
