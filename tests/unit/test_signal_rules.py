"""The one rule for whether a signal applies, which `wf.api.send_signal` and the engine share."""

from __future__ import annotations

import pytest

from wf.engine.signal_rules import judge_signal


def task(state: str) -> dict:
    return {"id": "t", "state": state}


def entry(state: str, branch: str = "wf/t") -> dict:
    return {"task_id": "t", "state": state, "branch": branch}


def judge(kind: str, task_row=None, entry_row=None, *, queue=True, running=False, branch=None):
    return judge_signal(kind, "t", task_row, entry_row, queue_enabled=queue, running=running,
                        branch=branch)


@pytest.mark.parametrize(("kind", "task_row", "entry_row", "running", "applies"), [
    ("cancel", task("queued"), None, False, True),
    ("cancel", task("retrying"), None, False, True),
    ("cancel", task("running"), None, True, True),  # a race: the engine decides
    ("cancel", task("failed"), None, False, False),
    ("cancel", task("done"), None, False, False),
    ("retry", task("failed"), None, False, True),
    ("retry", task("evicted"), None, False, True),
    ("retry", task("running"), None, True, False),
    ("retry", task("done"), None, False, False),
    ("retry", task("merged"), None, False, False),
    ("enqueue", task("done"), None, False, True),
    ("enqueue", task("failed"), None, False, False),
    ("enqueue", task("merged"), entry("landed"), False, False),
    ("requeue", task("evicted"), entry("evicted"), False, True),
    ("requeue", None, entry("evicted", "agent/1"), False, True),  # a plain branch
    ("enqueue", None, None, False, False),
    ("approve", task("done"), entry("waiting_approval"), False, True),
    ("approve", task("merged"), entry("landed"), False, False),
    ("approve", task("done"), entry("pending"), False, False),
    ("reject", task("merged"), entry("landed"), False, False),
    ("reject", task("done"), entry("queued"), False, True),
    ("dequeue", task("merged"), entry("landed"), False, False),
    ("dequeue", task("done"), entry("waiting_approval"), False, True),
])
def test_what_applies(kind, task_row, entry_row, running, applies):
    verdict = judge(kind, task_row, entry_row, running=running)
    assert verdict.applies is applies
    assert bool(verdict.reason) is not applies


def test_a_plain_branch_can_be_queued():
    assert judge("enqueue", branch="agent/7").applies


def test_queue_signals_need_the_merge_queue():
    verdict = judge("approve", task("done"), entry("waiting_approval"), queue=False)
    assert not verdict.applies
    assert verdict.reason == "the merge queue is not enabled ([merge] in wf.toml)"
    assert "[merge]" in (verdict.hint or "")


def test_every_refusal_says_what_to_do():
    assert judge("cancel", task("failed")).hint == "nothing of it runs; `wf retry t` runs it again"
    assert "wf cancel t" in (judge("retry", task("running"), running=True).hint or "")
    assert "wf clean t --forget" in (judge("retry", task("done")).hint or "")
