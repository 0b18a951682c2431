"""What the merge queue tests next: a pure function of the queue and what is known.

The queue tests *prefixes*: ``target + Q[:s]`` for a few sizes ``s`` at once, lands the largest
green one, and narrows down a failing one until the first bad entry is alone. Everything the
planner needs is derivable from the log (the pending entries in order, the cached results of
their prefix trees, the counts behind the failure-rate estimate), so after a crash it plans
exactly where it left off.

Sizes are chosen to maximise the expected number of entries landed per round, given the
estimated failure rate ``p`` of one entry: with no failures seen the window grows to the whole
queue; when failures are common it shrinks to short prefixes. Until the queue has seen its
first failure, the last probe of a round with nothing known is the whole queue (up to
``max_batch``): a clean queue then lands in one round, while the other probes are sized as
usual, so a queue with bad entries loses little (in ``bench/mqsim.py``, over 20 seeds: 0.2
rounds in S2, where the first window almost always fails).

A slot the narrowing leaves idle is used *speculatively*: it checks the queue as it will be once
the likeliest suspect is evicted (``Q[:i] + Q[i+1:j]``, a :class:`Probe` with ``without = i``).
Such a candidate is exactly a prefix of the queue after that eviction, so when the suspect is
confirmed its result is already in the tested-tree cache and the next green prefix lands at
once, instead of a round later. The planner never needs speculative results as input.

*Suspects* (``suspects``: entries a failing check's output pointed at, see
:mod:`wf.merge_queue.blame`) shortcut the narrowing: for the first suspect ``b`` that could be
the first bad entry, a round tests ``Q[:b]`` and ``Q[:b+1]``, which lands the entries before it
and convicts it (``Q[:b]`` green, ``Q[:b+1]`` red) at once, instead of splitting a failing
window over several rounds. A suspect is only ever a hint: it is convicted by those two results
like any culprit, and a wrong one costs at most the round that clears it (and lands it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

PRIOR_FAILURE_RATE = 0.05
PRIOR_WEIGHT = 20  # the prior counts as this many entries already seen


@dataclass(frozen=True)
class Estimate:
    """Beta-style running estimate of the chance that one entry breaks the check."""

    failures: int = 0
    entries: int = 0

    @property
    def p(self) -> float:
        return (self.failures + PRIOR_FAILURE_RATE * PRIOR_WEIGHT) / (self.entries + PRIOR_WEIGHT)

    def seen(self, entries: int, failures: int = 0) -> Estimate:
        return Estimate(self.failures + failures, self.entries + entries)


@dataclass(frozen=True)
class Probe:
    """A candidate to check: the target plus the first ``size`` entries of the queue, or, with
    ``without`` set, of the queue as it will be once entry ``without`` (0-based) is evicted."""

    size: int
    without: int | None = None


@dataclass(frozen=True)
class Plan:
    """One round: candidates to check, or a culprit found (the entry at ``culprit``, 0-based,
    fails on top of the green prefix before it; ``probes`` then are speculative ones to run
    beside a re-check of it), or a known-green prefix to land, or nothing to do."""

    probes: tuple[Probe, ...] = ()
    land: int = 0  # a known-green prefix to land before anything else
    culprit: int | None = None


def expected_landed(sizes: tuple[int, ...], p: float) -> float:
    """Entries a round lands on average when testing these prefix sizes (ascending)."""
    total, prev = 0.0, 0
    for s in sizes:
        total += (s - prev) * (1 - p) ** s
        prev = s
    return total


def spread(low: int, high: int, points: int) -> tuple[int, ...]:
    """Up to ``points`` distinct sizes in (low, high], evenly spaced, ending at ``high``."""
    span = high - low
    points = max(1, min(points, span))
    return tuple(sorted({low + round(span * (j + 1) / points) for j in range(points)}))


def choose_window(pending: int, p: float, parallel: int, max_batch: int) -> tuple[int, ...]:
    """Sizes for a round with nothing known: the window and point count that land the most
    entries per round on average, counting the narrowing rounds a failure costs and
    preferring fewer runs when the gain is small."""
    best: tuple[float, tuple[int, ...]] = (-1.0, ())
    limit = min(pending, max_batch)
    for w in range(1, limit + 1):
        for k in range(1, min(parallel, w) + 1):
            sizes = spread(0, w, k)
            gain = expected_landed(sizes, p) / expected_rounds(sizes[0], p, parallel)
            # A run must add at least a tenth of an entry on average to be worth its cost.
            score = gain - 0.1 * (len(sizes) - 1)
            if score > best[0] + 1e-9:
                best = (score, sizes)
    return best[1]


def optimistic_window(pending: int, p: float, parallel: int, max_batch: int
                      ) -> tuple[int, ...]:
    """Sizes for a round before any failure: the usual window for all slots but one, and
    the whole queue in the last."""
    whole = min(pending, max_batch)
    sizes = choose_window(pending, p, parallel - 1, max_batch) if parallel > 1 else (whole,)
    if sizes[-1] >= whole:  # the usual window already holds the whole queue
        return choose_window(pending, p, parallel, max_batch)
    return (*sizes, whole)


def expected_rounds(first: int, p: float, parallel: int) -> float:
    """Rounds a window costs on average: its own, plus, when its shortest prefix fails, the
    narrowing of that prefix (``parallel`` probes split it ``parallel + 1`` ways a round),
    counted at half since the narrowing rounds land entries too."""
    fails = 1 - (1 - p) ** first
    return 1 + fails * 0.5 * math.log(first + 1, parallel + 1)


def plan_round(pending: int, known: Mapping[int, bool], estimate: Estimate, *,
               parallel: int, max_batch: int, suspects: AbstractSet[int] = frozenset()
               ) -> Plan:
    """The next round for ``pending`` entries given ``known`` results of prefix sizes
    (relative to the current target; True = passed every check) and the ``suspects``
    (0-based positions of entries a failing check's output named)."""
    if pending == 0:
        return Plan()
    red = min((s for s, ok in known.items() if not ok and s <= pending), default=None)
    green = max((s for s, ok in known.items() if ok and (red is None or s < red)), default=0)
    if green:
        return Plan(land=green)
    p = estimate.p
    # The first suspect that can still be the first bad entry (everything before a known red).
    lead = min((b for b in suspects if b < min(pending, max_batch) and (red is None or b < red)),
               default=None)
    if lead is not None and red != 1:
        return _convict(lead, red, suspects, pending, p, parallel, max_batch)
    if red is None:
        sizes = (optimistic_window(pending, p, parallel, max_batch)
                 if estimate.failures == 0 and not known else
                 choose_window(pending, p, parallel, max_batch))
        return Plan(probes=tuple(Probe(s) for s in sizes))
    if red == 1:  # a re-check of the culprit, if one is needed, leaves parallel - 1 slots
        return Plan(culprit=0, probes=speculate(0, pending, p, parallel - 1, max_batch,
                                                suspects))
    # The first bad entry is in Q[:red]: split (0, red) evenly with up to `parallel` probes;
    # red itself is known to fail and is never tested again.
    k = min(parallel, red - 1)
    probes = tuple(Probe(s) for s in sorted({max(1, min(red - 1, round(red * j / (k + 1))))
                                             for j in range(1, k + 1)}))
    # Slots left over (the suspects are down to two): bet on the first one being the culprit,
    # the likelier, since the failure is the first bad entry's.
    return Plan(probes=probes + speculate(0, pending, p, parallel - len(probes), max_batch,
                                          suspects))


def _convict(lead: int, red: int | None, suspects: AbstractSet[int], pending: int, p: float,
             parallel: int, max_batch: int) -> Plan:
    """A round for suspect ``lead``: ``Q[:lead]`` (likely green: it lands) and ``Q[:lead+1]``
    (likely red: ``lead`` is then the culprit), skipping what is known; slots left over test
    the queue as it will be without ``lead``."""
    sizes = [s for s in (lead, lead + 1) if s > 0 and s != red][:parallel]
    return Plan(probes=tuple(Probe(s) for s in sizes)
                + speculate(lead, pending, p, parallel - len(sizes), max_batch, suspects))


def speculate(suspect: int, pending: int, p: float, slots: int, max_batch: int,
              suspects: AbstractSet[int] = frozenset()) -> tuple[Probe, ...]:
    """Up to ``slots`` probes of the queue without ``suspect``, sized like a fresh window over
    the entries after it (the ones before it are known green); when another suspect follows,
    one probe that stops just before it (the likeliest green prefix once ``suspect`` is gone),
    or none when it follows at once."""
    rest = min(pending - suspect - 1, max_batch - suspect)
    if slots <= 0 or rest <= 0:
        return ()
    after = min((b for b in suspects if suspect < b < suspect + 1 + rest), default=None)
    if after is not None:  # Q[after] is entry after - 1 of the queue without `suspect`
        return (Probe(after - 1, without=suspect),) if after - 1 > suspect else ()
    return tuple(Probe(suspect + s, without=suspect)
                 for s in choose_window(rest, p, slots, max_batch))
