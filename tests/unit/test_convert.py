"""wf's data converter writes the bytes the SDK's writes and reads them back the same."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

pytest.importorskip("temporalio")

from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.converter import DefaultPayloadConverter

from wf.temporal.convert import PayloadConverter
from wf.temporal.shapes import (
    AttemptInput,
    AttemptResult,
    EventsPage,
    LiveUsage,
    MergeSettings,
    QueueStart,
    Settings,
    WireEvent,
)

SDK, OURS = DefaultPayloadConverter(), PayloadConverter()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=8)
events = st.builds(WireEvent, st.text(max_size=12), st.text(max_size=12),
                   st.dictionaries(st.text(max_size=6), json_values, max_size=4),
                   st.floats(0, 2e9), st.text(max_size=20), st.integers(0, 10**6))


def settings_value() -> Settings:
    merge = MergeSettings("main", check=[["make", "test"]], check_timeout=None,
                          policy={"x": [1, 2]})
    return Settings(max_parallel=3, agent_limits={"a": None, "b": 2}, port_range=(1, 2),
                    merge=merge, budget={"max_tokens": 5}, adaptive={"a": True, "b": None})


def samples(evs: list[WireEvent]) -> list[tuple[Any, type]]:
    return [
        (AttemptResult(evs, "h1", "origin/wf/a", {"state": "done", "kind": None}),
         AttemptResult),
        (AttemptResult(evs, None), AttemptResult),
        (EventsPage(evs, 7, ["w1"], True, "red", first=3, earlier="run"), EventsPage),
        (AttemptInput({"id": "a", "spec": {"x": [1]}}, {"n": 1}, 1, False, [20001],
                      settings_value(), "q", None, pushed={"a": "origin/wf/a"}), AttemptInput),
        (QueueStart("q", settings_value(), b"\x00\x01carry"), QueueStart),
        (LiveUsage("a", 2, 10, None, [[1.0, None], [2.0, 3.5]]), LiveUsage),
        (evs, list[WireEvent]),
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(events, max_size=5))
def test_the_same_bytes_as_the_sdks_and_the_same_values_back(evs: list[WireEvent]) -> None:
    for value, hint in samples(evs):
        [ours] = OURS.to_payloads([value])
        [sdk] = SDK.to_payloads([value])
        assert ours.data == sdk.data and ours.metadata == sdk.metadata
        assert OURS.from_payloads([sdk], [hint]) == SDK.from_payloads([sdk], [hint]) == [value]


def test_a_wrong_shape_fails_as_the_sdk_says_it_does() -> None:
    [payload] = SDK.to_payloads([{"stream": "s", "type": "t", "data": {}, "ts": "late",
                                  "key": "k"}])
    with pytest.raises(Exception, match="ts"):
        OURS.from_payloads([payload], [WireEvent])
    [missing] = SDK.to_payloads([{"stream": "s"}])
    with pytest.raises(TypeError):
        OURS.from_payloads([missing], [WireEvent])


def test_init_false_fields_and_unknown_keys_read_as_the_sdks() -> None:
    @dataclasses.dataclass
    class Later:
        a: int
        b: list[int] = dataclasses.field(init=False, default_factory=list)

    value = Later(1)
    value.b = [2]
    [payload] = SDK.to_payloads([{"a": 1, "b": [2], "unknown": True}])
    [back] = OURS.from_payloads([payload], [Later])
    assert back == value and back.b == [2]


def test_a_class_the_converter_has_seen_is_not_kept_alive_by_it() -> None:
    # The sandbox imports workflow modules afresh for every run: a dataclass of such a module
    # is a new class each time, and a table that held them would keep every run's module.
    import gc
    import weakref

    def make() -> type:
        @dataclasses.dataclass
        class Once:
            a: int

        return Once

    cls = make()
    [payload] = OURS.to_payloads([cls(1)])
    assert OURS.from_payloads([payload], [cls]) == [cls(1)]
    gone = weakref.ref(cls)
    del cls
    gc.collect()
    assert gone() is None
