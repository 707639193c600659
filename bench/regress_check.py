"""Does `tiercache regress` hold? Real measurements, two questions, 20 comparisons each:

    python bench/regress_check.py [--comparisons 20] [--rounds 9] [--seconds 0.1]

1. identical code: a baseline and a new measurement of the same workloads, judged (tiercache.regress.judge,
   the 10 % default threshold): how many comparisons call a regression (should be 0 of 20);
2. an injected 15 % slowdown of one workload (it spins for 17.6 % of its own time after each run, so its
   ops/s fall to 0.85×): how many comparisons catch it (should be 20 of 20), and how many flag the others.

Workloads: HashCache.get on a hit and on a miss, measured in interleaved rounds against the anchor (a
measurement whose two anchors disagree is repeated), as `tiercache regress` does. The last line also
counts the repeated measurements.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tiercache import IMPLEMENTATION, HashCache  # noqa: E402
from tiercache.regress import judge, measure  # noqa: E402


def workloads() -> dict:
    keys = list(range(20_000))
    cache = HashCache(max_bytes=1 << 40)
    for k in keys:
        cache.set(k, k)
    misses = list(range(20_000, 40_000))

    def hit() -> int:
        get = cache.get
        for k in keys:
            get(k)
        return len(keys)

    def miss() -> int:
        get = cache.get
        for k in misses:
            get(k)
        return len(misses)

    return {"HashCache.get hit": hit, "HashCache.get miss": miss}


def slowed(fn, factor: float = 0.15):
    """`fn`, then a spin for factor / (1 - factor) of its time: ops/s × (1 - factor)."""
    extra = factor / (1.0 - factor)

    def run() -> int:
        t0 = time.perf_counter()
        n = fn()
        end = time.perf_counter() + (time.perf_counter() - t0) * extra
        while time.perf_counter() < end:
            pass
        return n

    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--comparisons", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=0.1)
    a = ap.parse_args()
    base_loads = workloads()
    target = "HashCache.get hit"
    false_alarms = caught = collateral = remeasured = 0
    for i in range(a.comparisons):
        before = measure(base_loads, a.rounds, a.seconds, seed=2 * i)
        same = measure(base_loads, a.rounds, a.seconds, seed=2 * i + 1)
        false_alarms += any(judge(before[n]["relative"], same[n]["relative"])["regression"] for n in base_loads)
        injected = dict(base_loads, **{target: slowed(base_loads[target])})
        after = measure(injected, a.rounds, a.seconds, seed=2 * i + 1)
        verdicts = {n: judge(before[n]["relative"], after[n]["relative"]) for n in base_loads}
        remeasured += sum(m[n]["remeasured"] for m in (before, same, after) for n in base_loads)
        caught += verdicts[target]["regression"]
        collateral += any(v["regression"] for n, v in verdicts.items() if n != target)
        print(f"{i + 1:2d}: identical {'FLAGGED' if false_alarms else 'ok'} so far; injected change "
              f"{verdicts[target]['change']:+.1%} p={verdicts[target]['p']:.4f} "
              f"{'caught' if verdicts[target]['regression'] else 'MISSED'}", flush=True)
    print(f"{IMPLEMENTATION}: identical code flagged in {false_alarms} of {a.comparisons} comparisons; "
          f"a 15% slowdown of {target!r} caught in {caught} of {a.comparisons}; other workloads flagged in "
          f"{collateral} of {a.comparisons}; {remeasured} disturbed measurements repeated")


if __name__ == "__main__":
    main()
