"""The Temporal engine end to end: real repositories, real script agents, the real dev server.

What the contract suite (tests/contract/test_engine.py) does not cover: no secret of the
client's or the worker's environment reaches Temporal; the workflows replay their saved
histories under the sandbox, and the sandbox does refuse a nondeterministic workflow; a
dev server killed with kill -9 and restarted on its state file loses nothing; a worker
stopped with Ctrl-C lets go of its agent at once and the next worker adopts it. (Cancelling
a running agent, its process group gone, is the contract suite's ``test_cancel_stops_a_
running_agent``.)

Saved histories, ``tests/fixtures/temporal/histories/<tag>.<scenario>.<workflow>.json``,
are recorded by running six scenarios (success, a transient failure retried, a cancel, a
dependent blocked, the merge queue landing two and evicting one, and that again with the
repository workflow continuing as new every few events) on a dev server of their own. Tag v1
is the workflows before continue-as-new (``workflow.patched("continue-as-new")``), v2 after,
v3 with the take queue (``take-queue``), v4 adds the budget scenario (recorded alone,
``--only budget``: the other scenarios' workflows took no other step)::

    PYTHONPATH=src python tests/fixtures/temporal/record.py [--tag TAG] [--only SCENARIO ...]

Regenerate them only after a deliberate change to ``wf/temporal/workflows.py`` that keeps
running workflows working (the change is behind ``workflow.patched()``): first check the old
files still replay (this module), then record new ones under a new tag and commit both, so
the histories of every released workflow version keep replaying. A replay that fails after
an unguarded change is the point of the test (TMPRL1100: users' running workflows would
break), never a reason to re-record.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest
from fakeforge import TOKEN

sys.path.insert(0, str(Path(__file__).parents[1] / "contract"))
from engines import EngineHarness, InProcessWorker, TemporalHarness, Watcher  # noqa: E402
from runwf import agent_cmd, journal_pids, pid_alive, wait_until  # noqa: E402
from test_engine import config, is_ancestor, task  # noqa: E402

temporalio = pytest.importorskip("temporalio")
from google.protobuf.json_format import MessageToDict  # noqa: E402
from temporalio.client import Client, WorkflowHistory  # noqa: E402
from temporalio.worker import Replayer, Worker  # noqa: E402

from wf.engine import build_engine  # noqa: E402
from wf.model import task_stream  # noqa: E402
from wf.temporal.devserver import free_port, start_dev_server  # noqa: E402
from wf.temporal.worker import workflow_runner  # noqa: E402
from wf.temporal.workflows import QueueWorkflow, RepoWorkflow, TaskWorkflow  # noqa: E402

FIXTURES = Path(__file__).parents[1] / "fixtures" / "temporal"
SCENARIOS = ("success", "retry", "cancel", "blocked", "queue", "continued", "budget", "stop",
             "blame")


class Harness(TemporalHarness):
    """The contract suite's Temporal harness on any server (``address``), with the client's
    and the worker's environment ``environ`` (default: this process's)."""

    def __init__(self, root: Path, tmp: Path, address: str,
                 environ: dict[str, str] | None = None) -> None:
        self.address, self.environ = address, environ
        self.queue = f"it{uuid.uuid4().hex[:12]}"
        self.worker: InProcessWorker | None = None
        EngineHarness.__init__(self, root, tmp, None)  # type: ignore[arg-type]

    def build(self, repo: Any) -> Any:
        import random

        return build_engine(repo, clock=self.clock, rng=random.Random(0), environ=self.environ)

    continue_after: int | None = None  # the repository workflow's, when set

    def engine_section(self) -> str:
        more = f"continue_after = {self.continue_after}\n" if self.continue_after else ""
        return super().engine_section() + more

    def run(self, specs: Any, *, observers: Any = ()) -> Any:
        if self.worker is None:
            self.worker = InProcessWorker(self.repo, self.environ)
        return EngineHarness.run(self, specs, observers=observers)

    @property
    def prefix(self) -> str:
        """What every workflow id of this harness's repository starts with."""
        return self.engine.names.base  # type: ignore[attr-defined]


async def _executions(address: str, prefix: str) -> list[tuple[str, str]]:
    client = await Client.connect(address)
    found = [(w.start_time, w.id, w.run_id) async for w in
             client.list_workflows(f'WorkflowId STARTS_WITH "{prefix}"')]
    return [(wid, run) for _, wid, run in sorted(found)]


def executions(address: str, prefix: str, count: int) -> list[tuple[str, str]]:
    """(workflow id, run id) of every run of the workflows whose ids start with ``prefix``,
    oldest first, once visibility lists ``count`` of them."""
    def listed() -> list[tuple[str, str]] | None:
        found = asyncio.run(_executions(address, prefix))
        return found if len(found) >= count else None

    return wait_until(listed, what=f"{count} workflow runs listed")


async def _dump(address: str, runs: list[tuple[str, str]]) -> list[tuple[str, Any, Any]]:
    client = await Client.connect(address)
    out = []
    for wid, run in runs:
        handle = client.get_workflow_handle(wid, run_id=run)
        history = await handle.fetch_history()
        desc = await handle.describe()
        described = {"raw": MessageToDict(desc.raw_description), "memo": await desc.memo(),
                     "search": str(desc.typed_search_attributes)}
        out.append((wid, json.loads(history.to_json()), described))
    return out


def dump(address: str, runs: list[tuple[str, str]]) -> list[tuple[str, Any, Any]]:
    """(workflow id, its history as JSON, what describe() says) for each run."""
    return asyncio.run(_dump(address, runs))


def readable(obj: Any) -> str:
    """Every string in a JSON value, and each one's base64 decoding where it is base64:
    payloads (inputs, results, signals, heartbeat details, memo) are base64 in history JSON."""
    parts: list[str] = []

    def walk(o: Any) -> None:
        if isinstance(o, dict):
            for k, v in o.items():
                walk(k)
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
        elif isinstance(o, str):
            parts.append(o)
            try:
                raw = base64.b64decode(o, validate=True)
            except (binascii.Error, ValueError):
                return
            parts.append(raw.decode("utf-8", "replace"))
            with contextlib.suppress(zlib.error):  # the repository workflow's carry
                parts.append(zlib.decompress(raw).decode("utf-8", "replace"))
        else:
            parts.append(str(o))

    walk(obj)
    return "\n".join(parts)


# -- 1. no secret reaches Temporal ------------------------------------------------------------
SECRETS = {"GH_TOKEN": "ghp_FAKEtoken1234567890abcdefABCDEF12",
           "GITLAB_TOKEN": "glpat-FAKEtoken-0987654321xyz",
           "ANTHROPIC_API_KEY": "sk-ant-FAKE-api03-abcdefghijklmnopqrstuv",
           "OPENAI_API_KEY": "sk-proj-FAKEopenai-1234567890abcdef",
           "TEMPORAL_API_KEY": "tmprl-FAKE-apikey-5555555555"}
ALLOWED_NAME, ALLOWED_VALUE = "PROBE_ALLOWED", "allowed-value-3b9f1c77"
# The agent says which variables it got (names only) and the allowed one's value, in its log.
PROBE = ("import os; print('allowed=' + os.environ.get('PROBE_ALLOWED', '-')); "
         "print('names=' + ','.join(sorted(os.environ))); os.makedirs('notes', exist_ok=True); "
         "open('notes/a.txt', 'w').write('probe')")


def test_no_secret_of_the_environment_reaches_temporal(
        repo: Path, tmp_path: Path, temporal_server: str) -> None:
    environ = {**os.environ, **SECRETS, ALLOWED_NAME: ALLOWED_VALUE}
    h = Harness(repo, tmp_path, temporal_server, environ)
    h.continue_after = 10  # the carry of a run continued as new is scanned too
    try:
        specs = h.plan(config({"probe": json.dumps([sys.executable, "-c", PROBE])})
                       + f'pass_env = ["{ALLOWED_NAME}"]\n' + task("a", "probe"))
        out = h.run(specs)
    finally:
        h.close()
    assert out.exit_code == 0, out.tasks
    [spawned] = [e for e in h.engine.events(stream=task_stream("a"))
                 if e.type == "attempt.spawned"]
    log = Path(spawned.data["log_path"]).read_text()
    assert f"allowed={ALLOWED_VALUE}" in log  # pass_env works: the agent got the value
    [names] = [line[6:].split(",") for line in log.splitlines() if line.startswith("names=")]
    assert not set(SECRETS) & set(names)  # and nothing else of the worker's environment

    runs = len(chain(h.address, f"{h.prefix}.repo"))
    assert runs >= 2
    dumped = dump(h.address, executions(h.address, h.prefix, runs + 1))
    assert {wid for wid, _, _ in dumped} == {f"{h.prefix}.repo", f"{h.prefix}.task.a"}
    text = readable([[history, described] for _, history, described in dumped])
    # The search sees into payloads: the activity's input names the pass_env variable, the
    # carry (compressed) the task's spec.
    assert ALLOWED_NAME in text and "work on a" in text
    assert '"seq_base"' in text
    leaked = [name for name, value in {**SECRETS, ALLOWED_NAME: ALLOWED_VALUE}.items()
              if value in text]
    assert leaked == [], f"in Temporal's histories, memo or search attributes: {leaked}"
    mirrored = b"".join(p.read_bytes() for p in (repo / ".git" / "wf").glob("wf.db*"))
    assert not [n for n, v in SECRETS.items() if v.encode() in mirrored]


# -- 2. saved histories replay, 3. under the sandbox ------------------------------------------
HISTORIES = sorted((FIXTURES / "histories").glob("*.json"))


def test_the_saved_histories_cover_every_scenario_and_every_workflow() -> None:
    # <tag>.<scenario>.<repo|task-ID|merge-TARGET>[.<run>].json
    names = {(p.name.split(".")[1], p.name.split(".")[2].split("-")[0]) for p in HISTORIES}
    assert {s for s, _ in names} == set(SCENARIOS)
    assert {w for _, w in names} == {"repo", "task", "merge"}


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
def test_a_saved_history_replays_under_the_sandbox(path: Path) -> None:
    replayer = Replayer(workflows=[RepoWorkflow, TaskWorkflow, QueueWorkflow],
                        workflow_runner=workflow_runner())
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    asyncio.run(replayer.replay_workflow(history))  # raises on nondeterminism or a violation


def _load(name: str) -> Any:
    """tests/fixtures/temporal/impure.py as module ``name`` (the sandbox imports a workflow's
    module again by its name: ``impure`` must be on the path)."""
    if str(FIXTURES) not in sys.path:
        sys.path.append(str(FIXTURES))
    spec = importlib.util.spec_from_file_location(name, FIXTURES / "impure.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def _outcome(client: Client, workflow: Any, queue: str) -> str:
    """"completed" or the message of the first failed workflow task of a run of
    ``workflow``."""
    handle = await client.start_workflow(workflow.run, id=f"{queue}.{uuid.uuid4().hex[:8]}",
                                         task_queue=queue)
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            async for event in handle.fetch_history_events():
                if event.HasField("workflow_execution_completed_event_attributes"):
                    return "completed"
                if event.HasField("workflow_task_failed_event_attributes"):
                    return event.workflow_task_failed_event_attributes.failure.message
            await asyncio.sleep(0.05)
        return "neither completed nor failed in 20 s"
    finally:
        if (await handle.describe()).status.name == "RUNNING":
            await handle.terminate("test over")


@pytest.mark.parametrize("module_name", ["impure"])
def test_the_sandbox_refuses_a_workflow_that_reads_the_wall_clock(
        temporal_server: str, module_name: str) -> None:
    # A module the runner does not pass through, as the engine's own workflow modules are
    # not (test_the_engines_workflow_code_is_not_passed_through_the_sandbox).
    module = _load(module_name)
    queue = f"sandbox{uuid.uuid4().hex[:12]}"

    async def main() -> tuple[str, str]:
        client = await Client.connect(temporal_server)
        async with Worker(client, task_queue=queue, workflow_runner=workflow_runner(),
                          workflows=[module.ReadsTheWallClock, module.ReadsTheWorkflowClock]):
            return (await _outcome(client, module.ReadsTheWorkflowClock, queue),
                    await _outcome(client, module.ReadsTheWallClock, queue))

    try:
        pure, impure = asyncio.run(main())
    finally:
        sys.modules.pop(module_name, None)
    assert pure == "completed"  # the control: the same worker runs a deterministic workflow
    assert "Cannot access datetime.datetime.now" in impure, impure


def test_the_engines_workflow_code_is_not_passed_through_the_sandbox() -> None:
    passed = workflow_runner().restrictions.passthrough_modules
    for module in ("wf.temporal.workflows", "wf.temporal.task_workflow",
                   "wf.temporal.host_read", "wf.temporal.queue_flow", "wf.temporal.queue_workflow",
                   "wf.temporal.forge_flow"):
        assert not any(module == p or module.startswith(p + ".") for p in passed), module
    assert {"wf.engine", "wf.merge_queue", "wf.temporal.shapes"} <= passed  # the pure parts


# -- 4. the dev server killed and restarted ---------------------------------------------------
def test_a_dev_server_killed_mid_attempt_and_restarted_on_its_state_loses_nothing(
        repo: Path, tmp_path: Path) -> None:
    db, port = tmp_path / "server" / "temporal.db", free_port()
    servers = [start_dev_server(db, port=port)]
    journal, gate = tmp_path / "journal", tmp_path / "gate"
    h = Harness(repo, tmp_path, servers[0].address)
    timings: dict[str, float] = {}

    def outage(_: Any) -> None:
        wait_until(lambda: journal_pids(journal, "a"), what="the agent's start")
        servers[0].process.kill()  # kill -9, its state file as it is
        servers[0].process.wait()
        started = time.monotonic()
        servers.append(start_dev_server(db, port=port))
        timings["restart"] = time.monotonic() - started
        gate.touch()

    watch = Watcher()
    watch.when("attempt.spawned", "a", outage)
    try:
        specs = h.plan(config({"g": agent_cmd("gated", str(gate), journal)}) + task("a", "g"))
        started = time.monotonic()
        out = h.run(specs, observers=[watch])
        timings["run"] = time.monotonic() - started
    finally:
        gate.touch()
        h.close()
        for server in servers:
            server.stop()
    print(f"timings: {timings}")
    assert len(servers) == 2  # the outage did happen mid-attempt
    assert out.exit_code == 0, out.tasks
    assert h.types("a")[-1] == "task.succeeded"
    assert len(journal_pids(journal, "a")) == 1  # the agent ran once
    assert _git(repo, "rev-list", "--count", "main..wf/a") == "1"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                          check=True).stdout.strip()


# -- 6. Ctrl-C of a worker --------------------------------------------------------------------
def test_ctrl_c_stops_a_worker_at_once_and_the_next_worker_adopts_its_agent(
        repo: Path, tmp_path: Path, temporal_server: str) -> None:
    journal, gate = tmp_path / "journal", tmp_path / "gate"
    h = Harness(repo, tmp_path, temporal_server)
    specs = h.plan(config({"g": agent_cmd("gated", str(gate), journal)}) + task("a", "g"))
    env = {**os.environ, "WF_ENGINE": "temporal", "WF_TEMPORAL_ADDRESS": h.address,
           "WF_TEMPORAL_TASK_QUEUE": h.queue}
    proc = subprocess.Popen([sys.executable, "-m", "wf", "worker", "--json"], cwd=repo,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert '"ready"' in proc.stdout.readline()
        h.engine.submit(specs)
        [agent] = wait_until(lambda: journal_pids(journal, "a"), what="the agent's start")
        wait_until(lambda: any(e.type == "attempt.spawned" for e in h.engine.events()),
                   what="attempt.spawned mirrored")
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        stopped = time.monotonic() - started
        _, err = proc.communicate(timeout=10)
        print(f"timings: worker stopped {stopped:.3f} s after SIGINT")
        assert proc.returncode == 0, err
        assert stopped < 1.5
        assert pid_alive(agent)  # the agent runs on

        watch = Watcher()
        watch.when("attempt.adopted", "a", lambda _: gate.touch())
        started = time.monotonic()
        out = h.run(None, observers=[watch])
        print(f"timings: adopted and done {time.monotonic() - started:.3f} s later")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        gate.touch()
        h.close()
    assert out.exit_code == 0, out.tasks
    assert "attempt.adopted" in h.types("a") and h.types("a")[-1] == "task.succeeded"
    assert journal_pids(journal, "a") == [agent]


# -- a retry's timer ---------------------------------------------------------------------------
def test_a_retry_timer_firing_in_the_repository_workflow_starts_the_next_attempt(
        repo: Path, tmp_path: Path, temporal_server: str) -> None:
    # The contract suite's retry is woken by the engine's clock moving (a signal); here the
    # repository workflow's own durable timer (50 ms) fires with nothing else to wake it.
    h = Harness(repo, tmp_path, temporal_server)
    try:
        specs = h.plan(config({"flaky": agent_cmd("flaky", "2")}, attempts=3)
                       + task("a", "flaky"))
        out = h.run(specs)
    finally:
        h.close()
    assert out.exit_code == 0, out.tasks
    assert [t for t in h.types("a") if t.startswith("task.")] == [
        "task.submitted", "task.worktree_requested", "task.worktree_ready",
        "task.retry_scheduled", "task.succeeded"]


def test_the_mirror_asks_no_worker_for_the_live_events_of_an_ended_attempt(
        repo: Path, tmp_path: Path, temporal_server: str) -> None:
    # The server itself says a task workflow has ended (NOT_OPEN): no worker replays the
    # ended run to answer. With every worker stopped, the query still ends at once; asked
    # without that condition it would wait for a worker until its own timeout (60 s here).
    from datetime import timedelta

    from wf.repository import open_store
    from wf.temporal.engine import Mirror

    h = Harness(repo, tmp_path, temporal_server)
    try:
        out = h.run(h.plan(config({"ok": agent_cmd("commit")}) + task("a", "ok")))
    finally:
        h.close()  # no worker from here on
    assert out.exit_code == 0, out.tasks

    async def live() -> list[Any]:
        client = await Client.connect(temporal_server)
        store = open_store(h.repo)
        try:
            mirror = Mirror(store, client.get_workflow_handle(f"{h.prefix}.repo"), client,
                            timeout=timedelta(seconds=60))
            return await asyncio.wait_for(mirror._live(f"{h.prefix}.task.a"), 20)
        finally:
            store.close()

    assert asyncio.run(live()) == []


def test_the_repository_workflow_keeps_the_times_a_tasks_events_happened(
        repo: Path, tmp_path: Path, temporal_server: str) -> None:
    # A task's events reach the repository workflow with its attempt's result; it records
    # them at the times they happened, not when the attempt ended (as the local engine
    # has them). The agent waits for a gate that opens after it started.
    journal, gate = tmp_path / "journal", tmp_path / "gate"
    h = Harness(repo, tmp_path, temporal_server)
    opened: list[float] = []

    def open_gate(_: Any) -> None:
        opened.append(time.time())
        gate.touch()

    watch = Watcher()
    watch.when("attempt.spawned", "a", open_gate)
    try:
        out = h.run(h.plan(config({"g": agent_cmd("gated", str(gate), journal)})
                           + task("a", "g")), observers=[watch])
        recorded = asyncio.run(_events(temporal_server, f"{h.prefix}.repo", 0))
    finally:
        h.close()
    watch.check()
    assert out.exit_code == 0, out.tasks
    ts = {e["type"]: e["ts"] for e in recorded if e["stream"] == "task:a"}
    assert ts["task.worktree_ready"] <= ts["attempt.spawned"] < opened[0] < ts["attempt.finished"]


# -- a stopped merge queue ------------------------------------------------------------------
def test_a_stopped_merge_queue_starts_again_with_the_next_run(
        repo: Path, tmp_path: Path, temporal_server: str) -> None:
    # The check fails as infrastructure (exit 75) until the marker exists: tried again after
    # 1, 2 and 4 s, then the queue stops (as on the local engine) and the run ends saying why.
    # The next run starts the queue again, and it lands.
    marker = tmp_path / "ci-is-back"
    check = json.dumps(["sh", "-c", f"test -e {marker} || exit 75"])
    h = Harness(repo, tmp_path, temporal_server)
    specs = h.plan(config({"ok": agent_cmd("commit")},
                          extra=f"\n[merge]\nauto = true\ncheck = {check}\n")
                   + task("a", "ok"))
    try:
        first = h.run(specs)
        assert first.exit_code == 1
        assert "exit 75" in (first.queue_stopped or ""), first.queue_stopped
        marker.touch()
        again = h.run(None)
    finally:
        h.close()
    assert again.exit_code == 0, (again.tasks, again.queue_stopped)
    assert h.types("a").count("queue.landed") == 1
    [landed] = [e for e in h.engine.events(stream=task_stream("a")) if e.type == "queue.landed"]
    main = subprocess.run(["git", "rev-parse", "main"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert main == landed.data["commit"]


def test_the_merge_queue_is_a_workflow_of_its_own_per_target(
        repo: Path, tmp_path: Path, temporal_server: str) -> None:
    # The queue of "main" lands a and b in a workflow of its own, which continues as new on
    # its own (every 10 events here); the next run's [merge] names another target: the
    # queue of "main" ends after its round and the queue of "dev" lands c there.
    _git(repo, "branch", "dev")
    h = Harness(repo, tmp_path, temporal_server)
    h.continue_after = 10
    merging = config({"ok": agent_cmd("commit")}, extra="\n[merge]\nauto = true\n")
    try:
        first = h.run(h.plan(merging + task("a", "ok") + task("b", "ok")))
        assert first.exit_code == 0, first.tasks
        second = h.run(h.plan(merging.replace("auto = true", 'auto = true\ntarget = "dev"')
                              + task("c", "ok")))
        assert second.exit_code == 0, second.tasks
    finally:
        h.close()
    landed = {e.task_id: e for e in h.engine.events() if e.type == "queue.landed"}
    assert sorted(landed) == ["a", "b", "c"]
    assert {e.data["target"] for t, e in landed.items()} == {"main", "dev"}
    assert landed["c"].data["target"] == "dev" and landed["a"].data["target"] == "main"
    main, dev = _git(repo, "rev-parse", "main"), _git(repo, "rev-parse", "dev")
    assert landed["c"].data["commit"] == dev
    assert subprocess.run(["git", "merge-base", "--is-ancestor", dev, main], cwd=repo,
                          check=False).returncode != 0  # c is on dev only
    # Recorded by the queue's workflow (its keys), in the repository workflow's one log.
    assert all((e.idempotency_key or "").startswith("mq:") for e in landed.values())
    runs = chain(h.address, f"{h.prefix}.merge.main")
    assert len(runs) >= 2  # continued as new on its own
    assert asyncio.run(_status(h.address, f"{h.prefix}.merge.main")) == "COMPLETED"
    assert asyncio.run(_status(h.address, f"{h.prefix}.merge.dev")) == "RUNNING"


def test_a_merge_queue_workflow_terminated_by_hand_is_started_again_by_the_next_run(
        repo: Path, tmp_path: Path, temporal_server: str) -> None:
    h = Harness(repo, tmp_path, temporal_server)
    merging = config({"ok": agent_cmd("commit")}, extra="\n[merge]\nauto = true\n")
    try:
        first = h.plan(merging + task("a", "ok"))
        wid = f"{h.prefix}.merge.main"
        assert h.run(first).exit_code == 0
        asyncio.run(_terminate(h.address, wid))
        assert asyncio.run(_status(h.address, wid)) == "TERMINATED"
        again = h.run(h.plan(merging + task("b", "ok")))
    finally:
        h.close()
    assert again.exit_code == 0, again.tasks
    assert h.types("b")[-1] == "queue.landed"
    assert is_ancestor(repo, _git(repo, "rev-parse", "wf/b"), "main")
    assert asyncio.run(_status(h.address, wid)) == "RUNNING"


async def _terminate(address: str, workflow_id: str) -> None:
    client = await Client.connect(address)
    await client.get_workflow_handle(workflow_id).terminate("by hand, in a test")


def test_a_chain_whose_queue_ran_inside_it_hands_the_queue_over_to_its_own_workflow(
        repo: Path, tmp_path: Path, temporal_server: str) -> None:
    # A run of a repository workflow continued from a run of older code carries its merge
    # queue's own state (the queue ran inside it, before the merge-workflow patch): the run
    # hands the queue over to a merge-queue workflow at its start, which lands the entry
    # waiting in it, and the one log records that.
    from dataclasses import asdict

    from wf.store.projections import full_row
    from wf.temporal import carry
    from wf.temporal.shapes import MergeSettings, Settings

    _git(repo, "switch", "-q", "-c", "wf/x")
    (repo / "x.txt").write_text("x\n")
    _git(repo, "add", "x.txt")
    _git(repo, "commit", "-q", "-m", "x")
    _git(repo, "switch", "-q", "main")
    head = _git(repo, "rev-parse", "wf/x")
    h = Harness(repo, tmp_path, temporal_server)
    h.plan(config({"ok": agent_cmd("commit")}, extra="\n[merge]\n") + task("unused", "ok"))
    h.worker = InProcessWorker(h.repo)
    names = h.engine.names  # type: ignore[attr-defined]
    merge = MergeSettings("main")
    old_queue = {"settings": asdict(merge), "host": None, "paused": None, "refused": None,
                 "infra_streak": 0, "flaky_seen": False, "base": None}  # QueueFlow.state()
    entry = full_row("queue", {"task_id": "x", "position": 1, "branch": "wf/x",
                               "state": "pending", "approved": 0, "entered_ts": 1.0})
    state = carry.Carry(seq_base=1, tasks=[], attempts=[], queue=[entry], tested_trees=[],
                        versions={"task:x": 1}, submitted=[], hosts={}, pushed={},
                        running={}, settings=asdict(Settings(merge=merge, remote=None)),
                        offset=0.0, merge=old_queue, runs=2)

    async def start() -> None:
        client = await Client.connect(temporal_server)
        await client.start_workflow("wf.repo", args=[names.shared_queue, carry.pack(state)],
                                    id=names.repo_workflow, task_queue=names.shared_queue)

    try:
        asyncio.run(start())
        wait_until(lambda: is_ancestor(repo, head, "main"), what="x landed on main")

        def landings() -> list[dict[str, Any]] | None:
            return [w for w in asyncio.run(_events(temporal_server, names.repo_workflow,
                                                   state.seq_base))
                    if w["type"] == "queue.landed"] or None

        [landed] = wait_until(landings, what="queue.landed in the repository workflow's log")
    finally:
        h.close()
    assert landed["stream"] == "task:x" and landed["key"].startswith("mq:")
    assert asyncio.run(_status(temporal_server, names.merge_workflow("main"))) == "RUNNING"


async def _events(address: str, workflow_id: str, since: int) -> list[dict[str, Any]]:
    from dataclasses import asdict

    from wf.temporal.shapes import EventsPage

    client = await Client.connect(address)
    page = await client.get_workflow_handle(workflow_id).query("events", since,
                                                               result_type=EventsPage)
    return [asdict(w) if not isinstance(w, dict) else w for w in page.events]


async def _status(address: str, workflow_id: str) -> str:
    client = await Client.connect(address)
    return (await client.get_workflow_handle(workflow_id).describe()).status.name


# -- continuing as new -------------------------------------------------------------------------
async def _chain(address: str, workflow_id: str) -> list[str]:
    """The run ids of a workflow's chain, latest first (each run's start names the one it
    continued from)."""
    client = await Client.connect(address)
    runs: list[str] = []
    run_id: str | None = None
    while True:
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        async for event in handle.fetch_history_events():
            started = event.workflow_execution_started_event_attributes
            runs.append((await handle.describe()).run_id)
            run_id = started.continued_execution_run_id or None
            break
        if run_id is None:
            return runs


def chain(address: str, workflow_id: str) -> list[str]:
    return asyncio.run(_chain(address, workflow_id))


def test_an_attempt_spans_runs_of_the_repository_workflow_and_a_new_mirror_reads_them_all(
        repo: Path, tmp_path: Path, temporal_server: str) -> None:
    # The repository workflow continues as new every few events. Task "long" starts in the
    # first run and waits at a gate while three others run and end: its attempt outlives the
    # runs that started it, and its end reaches the run that lives then (the attempt_done
    # signal). A mirror starting from nothing reads every run of the chain (queries of the
    # closed runs) and gets exactly the events the client's log has.
    gate = tmp_path / "gate"
    h = Harness(repo, tmp_path, temporal_server)
    h.continue_after = 10
    specs = h.plan(config({"gated": agent_cmd("gated", str(gate)), "ok": agent_cmd("commit")})
                   + task("long", "gated") + task("b", "ok") + task("c", "ok")
                   + task("d", "ok"))
    workflow_id = h.engine.names.repo_workflow  # type: ignore[attr-defined]
    spanned: list[int] = []
    watch = Watcher()

    def open_gate(_: Any) -> None:
        done = {e.task_id for e in h.engine.events() if e.type == "task.succeeded"}
        if {"b", "c", "d"} <= done and not spanned:
            spanned.append(len(chain(temporal_server, workflow_id)))
            gate.touch()

    for tid in "bcd":
        watch.when("task.succeeded", tid, open_gate)
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    try:
        out = h.run(specs, observers=[watch])
        got = mirror_anew(temporal_server, workflow_id, fresh_dir)  # the worker answers
    finally:
        h.close()
    assert out.exit_code == 0, out.tasks
    # "long" started in the first run and ran while the chain grew.
    assert spanned and spanned[0] >= 2, spanned
    assert h.types("long").count("task.succeeded") == 1
    assert len(chain(temporal_server, workflow_id)) >= spanned[0]
    want = [(e.type, e.idempotency_key) for e in h.engine.events()]
    assert sorted(got) == sorted(want)
    assert len(set(got)) == len(got)


def mirror_anew(address: str, workflow_id: str, folder: Path) -> list[tuple[str, str | None]]:
    """(type, key) of every event a mirror into an empty log in ``folder`` writes."""
    from wf.store.sqlite import open_store
    from wf.temporal.engine import Mirror

    fresh = open_store(folder / "events.db")

    async def pull() -> None:
        client = await Client.connect(address)
        await Mirror(fresh, client.get_workflow_handle(workflow_id), client).sync()

    try:
        asyncio.run(pull())
        return [(e.type, e.idempotency_key) for e in fresh.read()]
    finally:
        fresh.close()


# -- the merge queue landing through the forge -------------------------------------------------
def test_the_merge_queue_lands_through_prs_on_the_forge_with_the_workers_token(
        repo: Path, origin: Path, tmp_path: Path, temporal_server: str, forge: Any) -> None:
    # land = "pr" against the fake GitHub: each entry is tested locally, pushed, its PR opened,
    # the forge's checks waited for (pending, then success), and merged with the tested
    # commit as the expected head. The token is only in the worker's environment.
    project = forge.add_github("octo/demo", origin)
    project.ci = ["pending", "success"]
    subprocess.run(["git", "remote", "set-url", "origin", forge.git_url(origin)], cwd=repo,
                   check=True)
    environ = {**os.environ, "GH_TOKEN": TOKEN}
    before = subprocess.run(["git", "rev-parse", "main"], cwd=origin, text=True,
                            capture_output=True, check=True).stdout.strip()
    h = Harness(repo, tmp_path, temporal_server, environ)
    extra = ('\n[merge]\nauto = true\nland = "pr"\nforge_poll_interval = "50ms"\n'
             'forge_checks_grace = "200ms"\n[provider]\nkind = "github"\n'
             f'api_url = "{forge.github_api}"\nrepo = "octo/demo"\n')
    specs = h.plan(config({"ok": agent_cmd("commit")}, extra=extra)
                   + task("a", "ok") + task("b", "ok"))
    try:
        out = h.run(specs)
    finally:
        h.close()
    assert out.exit_code == 0, (out.tasks, out.queue_stopped)
    after = subprocess.run(["git", "ls-tree", "--name-only", "main", "notes/"], cwd=origin,
                           text=True, capture_output=True, check=True).stdout.split()
    assert sorted(after) == ["notes/a.txt", "notes/b.txt"]
    assert sorted(p.head for p in project.pulls.values()) == ["wf/a", "wf/b"]
    assert all(p.state == "merged" for p in project.pulls.values())
    merges = forge.calls("PUT", r"/merge$")
    assert len(merges) == 2 and {m[3]["sha"] for m in merges} <= set(project.ci_polls)
    for tid in ("a", "b"):
        types = h.types(tid)
        assert types.count("pr.opened") == 1 and types.count("queue.landed") == 1, types
    assert before != subprocess.run(["git", "rev-parse", "main"], cwd=origin, text=True,
                                    capture_output=True, check=True).stdout.strip()


# -- hooks on the Temporal engine ---------------------------------------------------------------
def test_hooks_are_delivered_by_wf_run_from_the_mirrored_log_with_the_workflows_keys(
        repo: Path, tmp_path: Path, temporal_server: str) -> None:
    # `wf run` on Temporal delivers [[hooks]] from the clone's mirrored log. The webhook-id
    # comes from the workflow's idempotency key, the same in every clone, so a receiver
    # told by two clones drops the repeat.
    from hookserver import Receiver, verify

    from wf.hooks.signing import message_id

    receiver = Receiver()
    key = b"s" * 24
    h = Harness(repo, tmp_path, temporal_server)
    specs = h.plan(config({"ok": agent_cmd("commit")})
                   + f'[[hooks]]\nname = "all"\nurl = "{receiver.url("/all")}"\n'
                     'events = ["task.*"]\nsecret_env = "HOOK_SECRET"\n' + task("a", "ok"))
    h.worker = InProcessWorker(h.repo)
    env = {**os.environ, "HOOK_SECRET": "whsec_" + base64.b64encode(key).decode()}
    try:
        proc = subprocess.run([sys.executable, "-m", "wf", "run", str(h.tasks_path)],
                              cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    finally:
        h.close()
        receiver.close()
    assert proc.returncode == 0, proc.stderr
    assert specs
    got = {r["json"]["type"]: r for r in receiver.accepted("/all")}
    assert {"task.submitted", "task.worktree_ready", "task.succeeded"} <= set(got)
    assert all(verify(key, r["headers"], r["body"]) for r in got.values())
    [done] = [e for e in h.engine.events(stream=task_stream("a")) if e.type == "task.succeeded"]
    assert done.idempotency_key and done.idempotency_key.startswith("tw:")
    assert got["task.succeeded"]["headers"]["webhook-id"] == message_id(
        "all", done.seq, done.idempotency_key)
