"""What an engine is: the ``Engine`` protocol, the outcome of a run, the clock it is given.

Two interpreters of the same decisions implement it: the local engine (anyio over the SQLite
log, ``local.py``) and, for teams on many machines, a Temporal one. The CLI and the dashboard
see an engine only through this protocol and the events it lets them observe
(``tests/contract/test_engine.py`` runs one suite against every engine).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from wf.model import Event, SignalKind
    from wf.spec import TaskSpec

Observer = Callable[[list["Event"]], None]


class Clock(Protocol):
    """Where an engine reads the time its decisions take as ``now``."""

    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


@dataclass
class RunOutcome:
    """How a run ended. ``exit_code`` 0 when every task in scope reached its goal (done, or
    merged when the queue lands every success), 1 otherwise or when the merge queue stopped
    (``queue_stopped`` says why) with entries waiting. ``tasks``: the scope's rows (the
    submitted tasks, or for a resume the tasks it touched); ``queue``: the entries it moved;
    ``idle``: nothing was left to do."""

    exit_code: int
    tasks: list[dict[str, Any]] = field(default_factory=list)
    queue_stopped: str | None = None
    idle: bool = False
    queue: list[dict[str, Any]] = field(default_factory=list)


class Engine(Protocol):
    """Drives tasks and the merge queue to their end, recording every step in the event log."""

    def submit(self, specs: Sequence[TaskSpec]) -> list[Event]:
        """Record ``task.submitted`` for the specs the log does not hold yet (the same spec
        again is left alone; a changed one is a ConfigError). Does not run them."""

    def signal(self, kind: SignalKind, task_id: str, **data: Any) -> Event:
        """Record a command from a person (cancel, retry, enqueue, approve, ...), refused at
        once (Refused) when it cannot apply; a running engine acts on it."""

    def run(self, specs: Sequence[TaskSpec] | None = None, *, command: str = "wf run",
            observers: Sequence[Observer] = ()) -> RunOutcome:
        """Submit ``specs`` (None: resume only) and drive every unfinished task, and the merge
        queue, until they settle. Each committed batch of events is passed to ``observers``
        as it is committed. Ctrl-C raises Interrupted, leaving agents running."""

    def events(self, since: int = 0, *, stream: str | None = None,
               limit: int | None = None) -> list[Event]:
        """The log's events after ``since``, ascending."""
