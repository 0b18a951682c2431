"""Simulate the merge-queue planner on the benchmark's scenarios, in units of one check run (T).

No git, no processes: a prefix fails if it holds a bad entry or both halves of a semantic pair,
or at random with the flake rate; a failing check names the bad entries it holds and the
calling half of a complete pair (the suspects of ``[merge] blame``), unless ``--no-blame``.
Used to tune the planner; bench/mqbench.py measures the real queue.
    python bench/mqsim.py [--parallel K] [--seeds N] [--bound] [--no-blame]

``--bound`` prints the fewest rounds any planner of plain prefix checks needs on average for S2
(50 entries, exactly 5 bad at random places), even one told that there are exactly 5: a dynamic
programme over (entries left, bad ones left, size of the shortest failing prefix) that tries
every pair of prefix sizes each round (two slots; speculative candidates are not modelled).
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
from math import comb

from wf.merge_queue.planner import Estimate, Probe, plan_round


def simulate(kinds, parallel, flake=0.0, seed=0, max_batch=100, arrivals=None, blame=True):
    """Kinds: "good", "bad", or ("sem", pair, role) for a semantic pair (role "call" is the
    one whose test fails when both are in). With ``blame``, a failing check names the bad
    entries it holds and the "call" half of a complete pair, as the benchmark's check does."""
    rng = random.Random(seed)
    n = len(kinds)
    arrive = arrivals or [0.0] * n
    landed, evicted, pending = [], [], []
    cache: dict[tuple, bool] = {}
    est, flaky_seen = Estimate(), False
    t, runs, land_time = 0.0, 0, {}
    nxt = 0
    pairs = {}
    for i, k in enumerate(kinds):
        if isinstance(k, tuple):
            pairs.setdefault(k[1], []).append(i)

    def culprits(ids):
        s = set(ids)
        named = {i for i in ids if kinds[i] == "bad"}
        for grp in pairs.values():
            if len(grp) == 2 and all(j in s for j in grp):
                named |= {j for j in grp if len(kinds[j]) < 3 or kinds[j][2] == "call"}
        return named

    suspected: set[int] = set()

    while nxt < n or pending:
        while nxt < n and arrive[nxt] <= t:
            pending.append(nxt)
            nxt += 1
        if not pending:
            t = arrive[nxt]
            continue
        known = {}
        for s in range(1, len(pending) + 1):
            key = tuple(landed + pending[:s])
            if key in cache:
                known[s] = cache[key]
        plan = plan_round(len(pending), known, est, parallel=parallel, max_batch=max_batch,
                          suspects=frozenset(j for j, i in enumerate(pending) if i in suspected))
        if plan.land:
            for i in pending[:plan.land]:
                land_time[i] = t
            landed += pending[:plan.land]
            est = est.seen(plan.land)
            pending = pending[plan.land:]
            continue
        def ids_of(probe):
            if probe.without is None:
                return pending[:probe.size]
            rest = pending[:probe.without] + pending[probe.without + 1:]
            return rest[:probe.size]

        def check(probes):
            nonlocal runs
            results = {}
            for probe in probes:
                ids = ids_of(probe)
                named = culprits(landed + ids)
                ok = not (named or rng.random() < flake)
                if blame:
                    suspected.update(named)
                cache[tuple(landed + ids)] = ok
                results[probe] = ok
                runs += 1
            return results

        if plan.culprit is not None:
            c = pending[plan.culprit]
            # re-test a lone culprit once before rejecting it (once flakes have been seen, or
            # when its failure named no file while the check's failures do), and meanwhile
            if flaky_seen or (c not in suspected and suspected):
                t += 1      # the queue as it will be without it
                again = Probe(plan.culprit + 1)
                if check((again, *plan.probes))[again]:
                    continue
            evicted.append(c)
            est = est.seen(1, 1)
            pending.pop(plan.culprit)
            continue
        results = check(plan.probes)
        # a smaller red with a larger green at once means a flake somewhere
        reds = [p.size for p, ok in results.items() if not ok and p.without is None]
        greens = [p.size for p, ok in results.items() if ok and p.without is None]
        if reds and greens and min(reds) < max(greens):
            flaky_seen = True
        t += 1
    bad = {i for i, k in enumerate(kinds) if k == "bad"}
    false_rejects = len([i for i in evicted if i not in bad and not isinstance(kinds[i], tuple)])
    lat = [land_time[i] - arrive[i] for i in land_time]
    return {"T": t, "runs": runs, "false": false_rejects,
            "p95": sorted(lat)[int(0.95 * (len(lat) - 1))] if lat else 0}


def optimal_rounds(n, k):
    """Expected rounds of the best plain-prefix plan with two slots for ``n`` entries of which
    exactly ``k`` are bad, at uniformly random places (known to the planner)."""

    @functools.lru_cache(None)
    def rounds(n, k, red):  # red: the shortest prefix known to fail, 0 if none
        if n == 0:
            return 0.0
        if k == 0:
            return 1.0  # one check of everything, then land
        if red == 1:
            return rounds(n - 1, k - 1, 0)  # the culprit is evicted without a check
        tail = [comb(n - j, k) / comb(n, k) for j in range(n + 1)]  # P(first bad >= j)
        beyond = tail[red] if red else 0.0
        norm = 1.0 - beyond

        def then(prob, left, red_after):
            return prob / norm * rounds(left, k, red_after) if prob > 1e-15 else 0.0

        best = float("inf")
        for a in range(1, (red or n + 1)):
            fails_a = then(1 - tail[a], n, a)
            best = min(best, 1 + fails_a + then(tail[a] - beyond, n - a, red and red - a))
            for b in range(a + 1, (red or n + 1)):
                best = min(best, 1 + fails_a + then(tail[a] - tail[b], n - a, b - a)
                           + then(tail[b] - beyond, n - b, red and red - b))
        return best

    return rounds(n, k, 0)


def scenario(name, rng):
    if name == "S1":
        return ["good"] * 50, 0.0
    if name in ("S2", "S3"):
        kinds = ["good"] * 45 + ["bad"] * 5
        rng.shuffle(kinds)
        return kinds, 0.05 if name == "S3" else 0.0
    if name == "S4":
        kinds = ["good"] * 30 + ["bad"] * 4
        for p in range(2):
            kinds += [("sem", f"s{p}", "rename"), ("sem", f"s{p}", "call")]
        kinds += ["good"] * 6  # textual pairs: one of each is evicted at admission
        rng.shuffle(kinds)
        return kinds, 0.02
    raise ValueError(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--bound", action="store_true", help="print S2's plain-prefix optimum")
    ap.add_argument("--no-blame", action="store_true",
                    help="failing checks name no entry (prefix narrowing only)")
    a = ap.parse_args()
    if a.bound:
        print(f"S2 bound: {optimal_rounds(50, 5):.2f} rounds on average for any plan of plain "
              "prefix checks with 2 slots, told there are exactly 5 bad entries")
        return
    for name in ("S1", "S2", "S3", "S4"):
        res = []
        for seed in range(a.seeds):
            kinds, flake = scenario(name, random.Random(seed))
            res.append(simulate(kinds, a.parallel, flake, seed, blame=not a.no_blame))
        print(f"{name}: T mean {statistics.mean(r['T'] for r in res):5.1f} max {max(r['T'] for r in res):4.0f}"
              f"  runs mean {statistics.mean(r['runs'] for r in res):5.1f} max {max(r['runs'] for r in res):4.0f}"
              f"  false rejects {statistics.mean(r['false'] for r in res):.2f}")
    res = []
    for seed in range(a.seeds):
        rng = random.Random(seed)
        kinds = ["bad" if rng.random() < 0.05 else "good" for _ in range(200)]
        res.append(simulate(kinds, a.parallel, 0.0, seed, arrivals=[i / 3 for i in range(200)],
                            blame=not a.no_blame))
    print(f"S6: p95 time-to-land {statistics.mean(r['p95'] for r in res):.1f} T, "
          f"T {statistics.mean(r['T'] for r in res):.1f}")


if __name__ == "__main__":
    main()
