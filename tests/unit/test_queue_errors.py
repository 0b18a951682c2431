"""A landing runs as a task of the round's task group: its WfError must reach the queue's own
handling (retry, then pause) as itself, not as an exception group that ends the engine."""

from __future__ import annotations

from wf.errors import GitError, StoreError, sole_wf_error


def test_a_group_of_wf_errors_gives_its_first():
    first = GitError("git update-ref failed: locked")
    group = BaseExceptionGroup("round", [ExceptionGroup("landing", [first]), StoreError("x")])
    assert sole_wf_error(group) is first


def test_a_group_holding_anything_else_stays_a_group():
    group = BaseExceptionGroup("round", [GitError("git failed"), ValueError("a bug")])
    assert sole_wf_error(group) is None
    assert sole_wf_error(BaseExceptionGroup("round", [KeyboardInterrupt()])) is None
