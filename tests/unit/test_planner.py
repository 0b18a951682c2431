"""The merge-queue planner: a pure function of (pending entries, known prefix results, estimate)."""

from __future__ import annotations

import itertools

import pytest

from wf.merge_queue.planner import Estimate, Plan, Probe, plan_round


def plan(pending, known=None, *, parallel=2, max_batch=50, estimate=None, suspects=()):
    return plan_round(pending, known or {}, estimate or Estimate(), parallel=parallel,
                      max_batch=max_batch, suspects=frozenset(suspects))


def test_nothing_pending_is_nothing_to_do():
    assert plan(0) == Plan()


def test_a_fresh_queue_tests_plain_ascending_prefixes_in_parallel():
    probes = plan(4).probes
    assert probes == (Probe(2), Probe(4))


def test_with_no_failures_seen_the_window_grows_to_the_batch_limit():
    assert plan(80, estimate=Estimate(entries=1000)).probes[-1] == Probe(50)
    assert plan(80, estimate=Estimate(entries=1000), max_batch=30).probes[-1] == Probe(30)


def test_before_any_failure_the_last_probe_is_the_whole_queue():
    # a clean queue lands in one round; the other slot is sized as usual
    probes = plan(50).probes
    assert probes[-1] == Probe(50) and len(probes) == 2 and probes[0].size < 20
    assert plan(80, max_batch=30).probes[-1] == Probe(30)
    assert plan(50, parallel=1).probes[-1].size < 50  # with one slot, no bet


def test_after_a_failure_the_window_is_sized_by_the_estimate_alone():
    seen = Estimate(failures=1, entries=10)
    assert plan(50, estimate=seen).probes[-1].size < 50
    assert plan(50, {30: False}).probes[-1].size < 30  # nor while narrowing


def test_common_failures_shrink_the_window():
    often, rare = Estimate(failures=30, entries=100), Estimate(failures=1, entries=100)
    assert plan(50, estimate=often).probes[-1].size < plan(50, estimate=rare).probes[-1].size


def test_a_green_prefix_below_the_first_red_lands_first():
    assert plan(10, {3: True, 6: False, 9: True}) == Plan(land=3)


def test_a_green_prefix_beyond_the_first_red_does_not_land():
    # a red at 3 with a green at 5 means a flake somewhere: narrow down (0, 3) first
    assert plan(10, {3: False, 5: True}).land == 0


def test_narrowing_splits_below_the_red_and_never_retests_it():
    probes = plan(20, {9: False}).probes
    assert probes == (Probe(3), Probe(6))


def test_a_lone_red_first_entry_is_the_culprit_with_the_rest_probed_without_it():
    p = plan(10, {1: False, 4: False})
    assert p.culprit == 0
    assert len(p.probes) == 1  # one slot is kept for a re-check of the culprit
    (probe,) = p.probes
    assert probe.without == 0 and 1 <= probe.size <= 9


def test_two_suspects_leave_a_slot_for_the_queue_without_the_first():
    # Q[:2] fails: entry 0 or entry 1 is the culprit; Q[:1] decides, and the idle slot
    # tests Q[1:...] as if entry 0 (the likelier culprit) were already evicted
    p = plan(4, {2: False, 4: False})
    assert p.probes == (Probe(1), Probe(3, without=0))


def test_a_speculative_probe_becomes_a_prefix_result_after_the_eviction():
    # what the queue sees once entry 0 is evicted and Q[1:4] passed: land it, no new check
    assert plan(3, {3: True}) == Plan(land=3)


def test_one_slot_never_speculates():
    assert plan(4, {2: False}, parallel=1).probes == (Probe(1),)
    assert plan(4, {1: False}, parallel=1) == Plan(culprit=0)


def test_speculation_needs_an_entry_after_the_suspect():
    assert plan(2, {2: False}).probes == (Probe(1), Probe(1, without=0))  # entry 1 alone
    assert plan(1, {1: False}) == Plan(culprit=0)


@pytest.mark.parametrize("pending", [2, 3, 7, 30, 120])
@pytest.mark.parametrize("parallel", [1, 2, 3])
def test_every_probe_fits_the_queue_the_slots_and_the_batch(pending, parallel):
    for known, suspects in itertools.product(
            ({}, {min(pending, 5): False}, {1: False}, {2: False}),
            ((), {0}, {1, 2}, {pending - 1}, {0, pending // 2})):
        p = plan(pending, {s: ok for s, ok in known.items() if s <= pending},
                 parallel=parallel, max_batch=40, suspects=suspects)
        assert len(p.probes) <= parallel
        for probe in p.probes:
            limit = min(pending, 40) - (probe.without is not None)
            assert 1 <= probe.size <= limit
            assert probe.without is None or probe.size > probe.without
            assert probe.without is not None or probe.size not in known


def test_a_suspect_is_convicted_in_one_round_with_the_entries_before_it_landed():
    # Q[:50] failed naming entry 6: Q[:6] should pass (and land), Q[:7] fail (6 is the culprit)
    assert plan(50, {50: False}, suspects={6, 30}).probes == (Probe(6), Probe(7))
    # what those results then mean: land the six, then entry 6 (now first) is the culprit
    assert plan(50, {6: True, 7: False, 50: False}, suspects={6}) == Plan(land=6)
    assert plan(44, {1: False}, suspects={0}).culprit == 0


def test_a_suspect_first_in_line_is_checked_alone_beside_the_queue_without_it():
    # the slot left over tests what would land once it is gone: up to the next suspect
    assert plan(44, suspects={0, 24}).probes == (Probe(1), Probe(23, without=0))
    # with no other suspect, a window over the rest
    (alone, rest) = plan(44, suspects={0}).probes
    assert alone == Probe(1) and rest.without == 0 and rest.size > 1


def test_adjacent_suspects_waste_no_run_on_a_likely_red():
    assert plan(44, suspects={0, 1}).probes == (Probe(1),)


def test_a_suspect_beyond_a_known_red_cannot_be_the_first_bad_entry():
    # Q[:5] fails, so the first bad entry is among the first five; a suspect at 9 is no help
    assert plan(20, {5: False}, suspects={9}).probes == plan(20, {5: False}).probes


def test_a_known_red_right_after_a_suspect_needs_only_the_prefix_before_it():
    p = plan(20, {8: False}, suspects={7})
    assert p.probes[0] == Probe(7) and Probe(8) not in p.probes


def test_a_suspect_beyond_the_batch_limit_is_ignored():
    assert plan(80, max_batch=30, suspects={40}) == plan(80, max_batch=30)


def test_the_plan_is_a_pure_function_of_its_inputs():
    args = (30, {12: False, 4: True})
    assert plan(*args) == plan(*args)
