"""The delivery thread against a real receiver on 127.0.0.1 and a real SQLite log, with an
injected clock: retries on schedule, Retry-After, dead letters and replay, 410 and continuous
failure disabling, timeouts and dropped connections, redirects, order, the file sink, and the
secret kept out of everything recorded."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hookserver import Receiver, verify
from runwf import wait_until

from wf.hooks.config import HookConfig
from wf.hooks.runner import HookRunner, build_targets
from wf.hooks.state import fold
from wf.model import NewEvent
from wf.store import SqliteEventStore

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


class FakeClock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def log(tmp_path):
    store = SqliteEventStore(tmp_path / "wf.db")
    yield store
    store.close()


def start(tmp_path: Path, log, *hooks: HookConfig, clock=None) -> HookRunner:
    targets, _ = build_targets(hooks, {"SECRET": SECRET}, tmp_path, tmp_path)
    runner = HookRunner(SqliteEventStore(log.path), targets, clock=clock or FakeClock())
    runner.start()
    return runner


def hook(receiver: Receiver, name: str = "h", **kw) -> HookConfig:
    return HookConfig(**{"name": name, "url": receiver.url(f"/{name}"), "events": ["task.*"],
                         "secret_env": "SECRET", **kw})


def emit(log, *types: str, task: str = "t") -> list[int]:
    return [e.seq for e in log.append([NewEvent(f"test:{task}", t, {"n": 1}) for t in types])]


def states(log):
    return fold(log.read(stream="hooks"))


def test_every_event_is_delivered_signed_once_in_order(tmp_path, log, receiver):
    runner = start(tmp_path, log, hook(receiver, max_in_flight=1))
    try:
        seqs = emit(log, "task.requeued", "task.failed", "queue.landed", "task.succeeded")
        runner.wake()
        got = wait_until(lambda: len(receiver.accepted("/h")) == 3 and receiver.accepted("/h"))
        assert [r["json"]["seq"] for r in got] == [seqs[0], seqs[1], seqs[3]]
        assert all(verify(KEY, r["headers"], r["body"]) for r in got)
        assert len({r["headers"]["webhook-id"] for r in got}) == 3
        wait_until(lambda: states(log)["h"].delivered_total == 3, what="recorded")
    finally:
        runner.stop()
    assert states(log)["h"].upto >= seqs[-1]


def test_failures_retry_on_the_schedule_with_the_same_id(tmp_path, log, receiver):
    clock = FakeClock()
    receiver.then("/h", "500", "drop")
    runner = start(tmp_path, log, hook(receiver, schedule=["5s", "5m"]), clock=clock)
    try:
        [seq] = emit(log, "task.failed")
        runner.wake()
        wait_until(lambda: states(log)["h"].waiting.get(seq), what="first failure recorded")
        d = states(log)["h"].waiting[seq]
        assert (d.attempts, d.status, d.next_at) == (1, 500, clock.t + 5)
        clock.t += 4.9
        runner.wake()
        assert len(receiver.requests("/h")) == 1  # not due yet
        clock.t += 0.1
        runner.wake()
        wait_until(lambda: states(log)["h"].waiting[seq].attempts == 2, what="second try")
        d = states(log)["h"].waiting[seq]
        assert d.status is None and "closed" in d.error and d.next_at == clock.t + 300
        clock.t += 300
        runner.wake()
        wait_until(lambda: states(log)["h"].delivered_total == 1, what="delivered")
    finally:
        runner.stop()
    ids = {r["headers"]["webhook-id"] for r in receiver.requests("/h")}
    assert len(receiver.requests("/h")) == 3 and len(ids) == 1
    assert states(log)["h"].waiting == {}


def test_retry_after_dead_letter_and_replay(tmp_path, log, receiver):
    from wf.hooks.manage import _find  # the id lookup `wf hooks replay ID` uses

    clock = FakeClock()
    receiver.then("/h", "429:120", "503:1")
    receiver.answer("/h", "500")
    runner = start(tmp_path, log, hook(receiver, schedule=["1s", "2s"]), clock=clock)
    try:
        [seq] = emit(log, "task.blocked")
        runner.wake()
        wait_until(lambda: states(log)["h"].waiting.get(seq), what="429 recorded")
        assert states(log)["h"].waiting[seq].next_at == clock.t + 120  # Retry-After
        clock.t += 120
        runner.wake()
        wait_until(lambda: states(log)["h"].waiting[seq].attempts == 2, what="503 recorded")
        assert states(log)["h"].waiting[seq].next_at == clock.t + 2  # 1 s < the schedule's 2
        clock.t += 2
        runner.wake()
        wait_until(lambda: states(log)["h"].dead(), what="dead letter")
        dead = states(log)["h"].dead()[0]
        assert (dead.seq, dead.attempts, dead.status) == (seq, 3, 500)
        receiver.answer("/h", "200")
        name, found = _find(states(log), dead.id)
        log.append([NewEvent("hooks", "hook.replayed", {"endpoint": name, "seqs": [found]})])
        runner.wake()
        wait_until(lambda: states(log)["h"].delivered_total == 1, what="replayed")
    finally:
        runner.stop()
    assert {r["headers"]["webhook-id"] for r in receiver.requests("/h")} == {dead.id}
    assert states(log)["h"].dead() == []


def test_410_disables_and_the_others_hear_of_it(tmp_path, log, receiver):
    receiver.answer("/gone", "410")
    gone = hook(receiver, "gone", events=["task.*", "attention"])
    watcher = hook(receiver, "watcher", events=["attention"])
    runner = start(tmp_path, log, gone, watcher)
    try:
        emit(log, "task.requeued")
        runner.wake()
        wait_until(lambda: states(log)["gone"].disabled, what="disabled")
        wait_until(lambda: receiver.accepted("/watcher"), what="attention to the other")
        emit(log, "task.succeeded")
        runner.wake()
        wait_until(lambda: runner.cursor >= log.last_seq())
    finally:
        runner.stop()
    [note] = receiver.accepted("/watcher")
    assert note["json"]["type"] == "hook.endpoint_disabled"
    assert note["json"]["data"]["endpoint"] == "gone"
    assert len(receiver.requests("/gone")) == 1  # nothing more while disabled, not its own


def test_failing_continuously_disables(tmp_path, log, receiver):
    clock = FakeClock()
    receiver.answer("/h", "500")
    runner = start(tmp_path, log, hook(receiver, schedule=["1m"] * 5, disable_after="3m"),
                   clock=clock)
    try:
        emit(log, "task.failed")
        runner.wake()
        for k in range(1, 5):
            wait_until(lambda k=k: states(log)["h"].failed_attempts >= k, what=f"attempt {k}")
            if states(log)["h"].disabled:
                break
            clock.t += 60
            runner.wake()
        assert states(log)["h"].failed_attempts == 4  # at 0, 60, 120 and 180 s
        assert states(log)["h"].disabled.startswith("failing continuously for 180")
    finally:
        runner.stop()


def test_a_hang_times_out_and_a_redirect_is_not_followed(tmp_path, log, receiver):
    receiver.then("/h", "hang")
    receiver.then("/r", "301")
    runner = start(tmp_path, log, hook(receiver, timeout="300ms", max_in_flight=1),
                   hook(receiver, "r"))
    try:
        [seq] = emit(log, "task.failed")
        runner.wake()
        wait_until(lambda: seq in states(log)["h"].waiting and seq in states(log)["r"].waiting)
    finally:
        runner.stop()
    assert states(log)["h"].waiting[seq].error == "timed out"
    assert states(log)["r"].waiting[seq].status == 301
    assert "not followed" in states(log)["r"].waiting[seq].error
    assert [r["path"] for r in receiver.requests()].count("/r") == 1


def test_the_json_lines_sink_and_no_secret_anywhere(tmp_path, log, receiver):
    out = tmp_path / "out" / "events.jsonl"
    sink = HookConfig(name="file", sink="jsonl", events=["*"], options={"path": str(out)})
    runner = start(tmp_path, log, sink, hook(receiver, url=receiver.url("/h?token=tok3n")))
    try:
        seqs = emit(log, "task.requeued", "task.failed")
        runner.wake()
        wait_until(lambda: states(log).get("file") and states(log)["file"].delivered_total == 2)
    finally:
        runner.stop()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["seq"] for x in lines] == seqs and all(x["id"].startswith("msg_") for x in lines)
    recorded = json.dumps([e.data for e in log.read()])
    assert SECRET not in recorded and KEY.decode() not in recorded
    assert "tok3n" not in recorded and "?***" in recorded  # the target as shown: redacted
