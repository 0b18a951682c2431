"""Work in a daemon thread of its own, awaited from the event loop.

Two callers need what ``anyio.to_thread.run_sync`` does not give: the merge queue's work done
ahead runs at a lower CPU priority (on Linux a thread has a nice value of its own), and a forge
read must not hold up Ctrl-C: anyio's worker threads are not daemons, so the interpreter joins
one stuck in an HTTP read at exit (measured: 20 s with a forge 20 s slow), even after the wait
was abandoned.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

T = TypeVar("T")


async def in_daemon_thread(work: Callable[[], T], *, name: str, nice: int | None = None,
                           finish_when_cancelled: bool = False) -> T:
    """``work()`` in a daemon thread, its result or its exception. A cancelled caller stops
    waiting at once (the thread is left to finish or to die with the process), unless
    ``finish_when_cancelled``: then it waits for the work to end, as ``to_thread`` would."""
    done = anyio.Event()
    token = anyio.lowlevel.current_token()
    result: list[Any] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            if nice is not None:
                with contextlib.suppress(OSError, AttributeError):
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
            result.append(work())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's task
            failure.append(exc)
        finally:
            with contextlib.suppress(RuntimeError):  # the event loop is gone: nobody waits
                anyio.from_thread.run_sync(done.set, token=token)

    threading.Thread(target=body, name=name, daemon=True).start()
    with anyio.CancelScope(shield=finish_when_cancelled):
        await done.wait()
    if failure:
        raise failure[0]
    return result[0]
