"""Promotion strategies on a two-tier Zipf replay: L1 hit ratio and promotions, per strategy.

    python bench/promotion_eval.py [--quick] [--keys 100000] [--requests 1000000]

A CacheManager with every key in L2 and an L1 of 1 % of the keys replays a bounded Zipf(0.99) trace
(bench/hit_ratio.py's generator, fixed seed) with get(); each namespace uses one promotion strategy
(priority medium, so the gate applies). L2 is an in-process dict store here (bench/_dict_l2 below): the
figure is what L1 keeps, and a real L2 would only add time. Reported per strategy: L1 hit ratio, L2 reads,
promotions and the promotion stats (skipped by the strategy, rejected by the gate, precision).

Limit checked: conditional and predictive with the gate reach an L1 hit ratio >= immediate's + 3 points,
while promoting fewer entries. Hit ratios are exact counts: repeatable run to run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, List, Mapping, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hit_ratio import zipf_keys  # noqa: E402

import tiercache  # noqa: E402
from tiercache import CacheManager, NamespaceConfig  # noqa: E402


class DictL2:
    """The L2 protocol over a dict (this process only): enough for a hit-ratio replay."""

    kind = "dict"

    def __init__(self) -> None:
        self.data: Dict[str, bytes] = {}
        self.reads = 0

    def get(self, key: str) -> Optional[bytes]:
        self.reads += 1
        return self.data.get(key)

    def get_many(self, keys: List[str]) -> List[Optional[bytes]]:
        self.reads += len(keys)
        return [self.data.get(k) for k in keys]

    def set(self, key: str, data: bytes, ttl: Optional[float] = None) -> None:
        self.data[key] = data

    def set_many(self, items: Mapping[str, bytes], ttl: Optional[float] = None) -> None:
        self.data.update(items)

    def delete(self, key: str) -> bool:
        return self.data.pop(key, None) is not None

    def clear_namespace(self, prefix: str) -> int:
        gone = [k for k in self.data if k.startswith(prefix)]
        for k in gone:
            del self.data[k]
        return len(gone)

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass


def replay(strategy: str, keys: int, trace: List[int]) -> Dict[str, Any]:
    l2 = DictL2()
    capacity = keys // 100
    ns = NamespaceConfig(l1_ttl=None, l2_ttl=None, l1_max_entries=capacity, l1_max_bytes=1 << 30,
                         priority="medium", promotion=strategy)
    with CacheManager(l2, env="test", config={strategy: ns}, invalidation=False, enable_metrics=False) as m:
        m.set_many(strategy, {k: k for k in range(keys)})
        m.l1(strategy).clear()  # L1 starts empty: everything it holds was earned by promotion
        l1 = m.l1(strategy)
        before = dict(l1.stats())
        get = m.get
        t0 = time.perf_counter()
        for k in trace:
            get(strategy, k)
        seconds = time.perf_counter() - t0
        after = l1.stats()
        hits = after["hits"] - before["hits"]
        promo = m.promotion_stats().get(strategy, {})
        return {"strategy": strategy, "hit_ratio": hits / len(trace), "l2_reads": l2.reads,
                "promoted": promo.get("promoted", 0), "skipped": promo.get("skipped_by_strategy", 0),
                "rejected": promo.get("rejected_by_gate", 0), "precision": promo.get("precision"),
                "l1_policy": l1.policy, "seconds": seconds}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200k requests")
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=1_000_000)
    args = ap.parse_args()
    n = 200_000 if args.quick else args.requests
    trace = zipf_keys(args.keys, n, seed=20240601).tolist()
    rows = [replay(s, args.keys, trace) for s in ("immediate", "conditional", "lazy", "predictive")]
    print(f"command:  python bench/promotion_eval.py {' '.join(sys.argv[1:])}  (tiercache {tiercache.IMPLEMENTATION})")
    print(f"workload: Zipf(0.99) over {args.keys:,} keys, {n:,} gets, L1 = {args.keys // 100:,} entries (1 %), "
          "every key in L2")
    print(f"{'strategy':<12}{'L1 policy':>10}{'L1 hit %':>10}{'promoted':>10}{'skipped':>10}{'rejected':>10}"
          f"{'precision':>10}{'s':>7}")
    for r in rows:
        prec = "-" if r["precision"] is None else f"{r['precision']:.3f}"
        print(f"{r['strategy']:<12}{r['l1_policy']:>10}{100 * r['hit_ratio']:>10.2f}{r['promoted']:>10,}"
              f"{r['skipped']:>10,}{r['rejected']:>10,}{prec:>10}{r['seconds']:>7.1f}")
    base = rows[0]
    ok = True
    for r in rows[1:]:
        if r["strategy"] not in ("conditional", "predictive"):
            continue
        gain = 100 * (r["hit_ratio"] - base["hit_ratio"])
        fewer = r["promoted"] < base["promoted"]
        status = "PASS" if gain >= 3.0 and fewer else "FAIL"
        ok &= status == "PASS"
        print(f"{status}  {r['strategy']}: {gain:+.2f} points over immediate (target >= +3), "
              f"{r['promoted']:,} promotions vs {base['promoted']:,} (target fewer)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
