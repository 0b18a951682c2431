"""Harnesses for the engine contract suite (``test_engine.py``): one class per engine kind.

A harness builds its engine for a real repository, runs it with a bound on time, and does the
one thing the ``Engine`` protocol has no method for: killing the engine in the middle of an
attempt. Everything else the tests do goes through the protocol (submit, signal, run, events),
so a second engine joins the suite with one class and one entry in ``ENGINES``.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from runwf import wait_until

from wf.api import Repo, open_repo
from wf.engine import build_engine
from wf.engine.base import Engine, Observer, RunOutcome
from wf.errors import WfError
from wf.model import Event, SignalKind, task_stream
from wf.spec import TaskSpec
from wf.task_input import plan_tasks_file

RUN_BOUND = 30.0  # seconds an engine.run may take before the test fails instead of hanging

# The data fields that say what happened, not when or where (no seq, ts, pid, path, commit).
DOMAIN_FIELDS = ("n", "state", "failure_kind", "kind", "dependency", "reason", "delay")
TERMINAL_EVENTS = frozenset({"task.succeeded", "task.failed", "task.cancelled", "task.blocked"})


class ShiftedClock:
    """The engine's clock: the wall clock plus an offset the test moves forward, so a timer
    an hour away fires as soon as the test says that hour has passed."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Watcher:
    """An observer that keeps every committed event and runs the actions registered with
    ``when`` once, on a thread of their own, for the first matching event (an observer must
    not block the engine). An action's exception is kept and re-raised by ``check``."""

    def __init__(self) -> None:
        self.seen: list[Event] = []
        self.errors: list[BaseException] = []
        self._actions: list[tuple[str, str | None, Callable[[Event], Any]]] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def when(self, type_: str, task_id: str | None, action: Callable[[Event], Any]) -> None:
        with self._lock:
            self._actions.append((type_, task_id, action))

    def __call__(self, events: list[Event]) -> None:
        with self._lock:
            self.seen += events
            for event in events:
                for rule in list(self._actions):
                    type_, task_id, action = rule
                    if event.type == type_ and task_id in (None, event.task_id):
                        self._actions.remove(rule)
                        thread = threading.Thread(target=self._act, args=(action, event),
                                                  daemon=True)
                        self._threads.append(thread)
                        thread.start()

    def _act(self, action: Callable[[Event], Any], event: Event) -> None:
        try:
            action(event)
        except BaseException as exc:  # noqa: BLE001  (re-raised in the test by check())
            self.errors.append(exc)

    def check(self) -> None:
        for thread in self._threads:
            thread.join(RUN_BOUND)
        if self.errors:
            raise self.errors[0]


class EngineHarness:
    """What every engine's harness does the same way; subclasses say how to build the engine
    and how to kill it mid-attempt."""

    kind: str = ""
    # How long a crossed budget may take to stop the agent, in ticks of the budget scenario's
    # agent (0.1 s): the 1 s. Measured idle: local 0, Temporal 0.1, continuing 0.3.
    PAUSE_WITHIN = 10

    def __init__(self, root: Path, tmp: Path, request: pytest.FixtureRequest) -> None:
        self.root = root
        self.tasks_path = tmp / "tasks.toml"  # outside the repo: the main worktree stays clean
        self.clock = ShiftedClock()
        self.repo: Repo = open_repo(root)
        self.engine: Engine = self.build(self.repo)

    def build(self, repo: Repo) -> Engine:
        raise NotImplementedError

    def kill_mid_attempt(self) -> None:
        """Run the tasks file until the first agent has spawned, then kill the engine with no
        chance to clean up, leaving that agent running."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the engine holds outside the repository (nothing, locally)."""

    # -- what the tests call ----------------------------------------------------------------
    def plan(self, text: str) -> list[TaskSpec]:
        """Write ``text`` as the tasks file (config sections and ``[[task]]`` tables) with
        ``[engine] kind`` set to this harness's kind; rebuild the engine with the run's config
        and return the specs, as ``wf run FILE`` does."""
        self.tasks_path.write_text(self.engine_section() + text)
        self.repo, specs = plan_tasks_file(open_repo(self.root), self.tasks_path)
        self.engine = self.build(self.repo)
        self.specs = specs
        return specs

    def engine_section(self) -> str:
        return f'[engine]\nkind = "{self.kind}"\n'

    def run(self, specs: Sequence[TaskSpec] | None, *,
            observers: Sequence[Observer] = ()) -> RunOutcome:
        """``engine.run`` bounded by RUN_BOUND: past it, every unfinished task is cancelled
        so the engine can end, and the test fails instead of hanging. What a ``Watcher``'s
        actions raised is raised here too."""
        result: dict[str, Any] = {}

        def target() -> None:
            try:
                result["outcome"] = self.engine.run(specs, command="contract test",
                                                    observers=observers)
            except BaseException as exc:  # noqa: BLE001  (re-raised in the test's thread)
                result["error"] = exc

        thread = threading.Thread(target=target, name="engine-run", daemon=True)
        thread.start()
        thread.join(RUN_BOUND)
        if thread.is_alive():
            self._cancel_unfinished()
            thread.join(RUN_BOUND)
            raise AssertionError(f"engine.run did not return within {RUN_BOUND}s")
        for observer in observers:
            if isinstance(observer, Watcher):
                observer.check()
        if "error" in result:
            raise result["error"]
        return result["outcome"]

    def _cancel_unfinished(self) -> None:
        last: dict[str, str] = {}  # each task's latest submission, requeue or end
        for e in self.engine.events():
            if e.task_id and e.type in {*TERMINAL_EVENTS, "task.submitted", "task.requeued"}:
                last[e.task_id] = e.type
        for tid, type_ in sorted(last.items()):
            if type_ not in TERMINAL_EVENTS:
                with contextlib.suppress(WfError):  # best effort: the test fails either way
                    self.engine.signal(SignalKind.CANCEL, tid)

    def domain(self, task_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The task stream's events in order as (type, the DOMAIN_FIELDS it has); the agent's
        own ``agent.*`` output is left out."""
        return [(e.type, {k: e.data[k] for k in DOMAIN_FIELDS if k in e.data})
                for e in self.engine.events(stream=task_stream(task_id))
                if not e.type.startswith("agent.")]

    def types(self, task_id: str) -> list[str]:
        return [t for t, _ in self.domain(task_id)]



class LocalHarness(EngineHarness):
    """The local engine in this process; killed mid-attempt as ``wf run`` in a subprocess
    that SIGKILLs itself once the first ``attempt.spawned`` is committed."""

    kind = "local"

    def build(self, repo: Repo) -> Engine:
        return build_engine(repo, clock=self.clock, rng=random.Random(0))

    def kill_mid_attempt(self) -> None:
        proc = subprocess.run([sys.executable, "-m", "wf", "run", str(self.tasks_path)],
                              check=False, cwd=self.root, capture_output=True, text=True,
                              timeout=RUN_BOUND,
                              env={**os.environ, "WF_CRASH_AFTER": "attempt.spawned"})
        assert proc.returncode == -signal.SIGKILL, proc.stderr


class TemporalHarness(EngineHarness):
    """The Temporal engine on the dev server of the ``temporal_server`` fixture, with its own
    task queue prefix (tests in parallel share the server) and a ``wf worker`` of its own:
    in this process for a run; for the kill, a ``wf worker`` subprocess SIGKILLed once the
    first ``attempt.spawned`` is mirrored, after which the in-process worker's retry of the
    attempt's activity must adopt the agent."""

    kind = "temporal"
    HEARTBEAT = "2s"  # how soon a killed worker's attempt is retried (and adopted)

    def __init__(self, root: Path, tmp: Path, request: pytest.FixtureRequest) -> None:
        pytest.importorskip("temporalio")
        self.address: str = request.getfixturevalue("temporal_server")
        self.queue = f"ct{uuid.uuid4().hex[:12]}"
        self.worker: InProcessWorker | None = None
        super().__init__(root, tmp, request)

    def engine_section(self) -> str:
        return (f'[engine]\nkind = "temporal"\naddress = "{self.address}"\n'
                f'task_queue = "{self.queue}"\nheartbeat_timeout = "{self.HEARTBEAT}"\n')

    def build(self, repo: Repo) -> Engine:
        return build_engine(repo, clock=self.clock, rng=random.Random(0))

    def run(self, specs: Sequence[TaskSpec] | None, *,
            observers: Sequence[Observer] = ()) -> RunOutcome:
        if self.worker is None:
            self.worker = InProcessWorker(self.repo)
        return super().run(specs, observers=observers)

    def kill_mid_attempt(self) -> None:
        env = {**os.environ, "WF_ENGINE": "temporal", "WF_TEMPORAL_ADDRESS": self.address,
               "WF_TEMPORAL_TASK_QUEUE": self.queue}
        proc = subprocess.Popen([sys.executable, "-m", "wf", "worker", "--json"], cwd=self.root,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            assert proc.stdout is not None
            ready = proc.stdout.readline()
            assert '"ready"' in ready, ready + proc.stderr.read() if proc.stderr else ready
            self.engine.submit(self.specs)
            wait_until(lambda: any(e.type == "attempt.spawned" for e in self.engine.events()),
                       what="the first agent's spawn", timeout=RUN_BOUND)
        finally:
            proc.kill()
            proc.communicate(timeout=RUN_BOUND)  # and close its pipes
        assert proc.returncode == -signal.SIGKILL

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()


class ContinuingHarness(TemporalHarness):
    """The Temporal engine with a repository workflow that continues as new every few
    events (``continue_after`` at its floor): every scenario crosses runs of the chain, with
    attempts, retry timers, cancels and the merge queue in flight."""

    kind = "temporal"
    CONTINUE_AFTER = 10
    # A crossing here may wait for the repository workflow's next run to start (it continued
    # as new four times in that scenario): 1.3 s once in a full CI run on 2 cores. The plain
    # Temporal harness holds the 1 s; this one shows the pause survives the runs.
    PAUSE_WITHIN = 20

    def engine_section(self) -> str:
        return super().engine_section() + f"continue_after = {self.CONTINUE_AFTER}\n"


class InProcessWorker:
    """``wf worker`` for the repository in a thread of this process, until ``stop``; its
    environment is ``environ`` (default: this process's)."""

    def __init__(self, repo: Repo, environ: dict[str, str] | None = None) -> None:
        import asyncio

        from wf.temporal.worker import serve

        self._loop: Any = None
        self._stop: Any = None
        ready = threading.Event()
        errors: list[BaseException] = []

        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            await serve(repo, dict(os.environ if environ is None else environ), self._stop,
                        slots=4)

        def body() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # noqa: BLE001  (re-raised by stop)
                errors.append(exc)
                ready.set()

        self.errors = errors
        self.thread = threading.Thread(target=body, name="wf-worker", daemon=True)
        self.thread.start()
        ready.wait(RUN_BOUND)

    def stop(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(RUN_BOUND)
        if self.errors:
            raise self.errors[0]


# The one list the suite is parametrised over: a new engine is one more entry here.
ENGINES = [pytest.param(LocalHarness, id=LocalHarness.kind),
           pytest.param(TemporalHarness, id=TemporalHarness.kind),
           pytest.param(ContinuingHarness, id="temporal-continuing")]
