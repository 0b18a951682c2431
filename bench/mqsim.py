"""Simulate the merge-queue planner on the benchmark's scenarios, in units of one check run (T).

No git, no processes: a prefix fails if it holds a bad entry or both halves of a semantic pair,
or at random with the flake rate. Used to tune the planner; bench/mqbench.py measures the real
queue.    python bench/mqsim.py [--parallel K] [--seeds N]
"""

from __future__ import annotations

import argparse
import random
import statistics

from wf.merge_queue.planner import Estimate, Probe, plan_round


def simulate(kinds, parallel, flake=0.0, seed=0, max_batch=100, arrivals=None):
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

    def fails(ids):
        if any(kinds[i] == "bad" for i in ids):
            return True
        s = set(ids)
        return any(all(j in s for j in grp) for grp in pairs.values() if len(grp) == 2)

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
        plan = plan_round(len(pending), known, est, parallel=parallel, max_batch=max_batch)
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
                ok = not (fails(landed + ids) or rng.random() < flake)
                cache[tuple(landed + ids)] = ok
                results[probe] = ok
                runs += 1
            return results

        if plan.culprit is not None:
            c = pending[plan.culprit]
            if flaky_seen:  # re-test a lone culprit once before rejecting it, and meanwhile
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
            kinds += [("sem", f"s{p}"), ("sem", f"s{p}")]
        kinds += ["good"] * 6  # textual pairs: one of each is evicted at admission
        rng.shuffle(kinds)
        return kinds, 0.02
    raise ValueError(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=5)
    a = ap.parse_args()
    for name in ("S1", "S2", "S3", "S4"):
        res = []
        for seed in range(a.seeds):
            kinds, flake = scenario(name, random.Random(seed))
            res.append(simulate(kinds, a.parallel, flake, seed))
        print(f"{name}: T mean {statistics.mean(r['T'] for r in res):5.1f} max {max(r['T'] for r in res):4.0f}"
              f"  runs mean {statistics.mean(r['runs'] for r in res):5.1f} max {max(r['runs'] for r in res):4.0f}"
              f"  false rejects {statistics.mean(r['false'] for r in res):.2f}")
    res = []
    for seed in range(a.seeds):
        rng = random.Random(seed)
        kinds = ["bad" if rng.random() < 0.05 else "good" for _ in range(200)]
        res.append(simulate(kinds, a.parallel, 0.0, seed, arrivals=[i / 3 for i in range(200)]))
    print(f"S6: p95 time-to-land {statistics.mean(r['p95'] for r in res):.1f} T, "
          f"T {statistics.mean(r['T'] for r in res):.1f}")


if __name__ == "__main__":
    main()
