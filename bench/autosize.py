#!/usr/bin/env python3
"""Adaptive L1 budgets against static splits: three namespaces driven by different workloads share one budget.

    python bench/autosize.py [--traces DIR] [--entries 6000] [--requests 300000] [--seed 0] [--plot OUT.png]
                             [--json OUT.json]

Three namespaces — `oltp` (the ARC trace), `drift` (recency-skewed) and `zipf` (Zipf(0.99) over 100k keys) —
are read through one CacheManager (get; on a miss, set), their requests interleaved at random in equal
numbers, `--requests` per namespace and phase, three phases: in the second `zipf` loops over 5,000 keys (a
working set no share smaller than it can hold), in the third it is Zipf again. L1 only (namespaces not
persisted), values of 64 bytes, one global budget of `--entries` values' worth of bytes, policy tinylfu
(the manager's default). `--seed` mixes the same requests in another order.

- adaptive: `CacheConfig(l1_max_bytes=B, l1_allocation="adaptive")`, every namespace starting from an equal
  share;
- static splits: every split of B in 5 % steps (each namespace >= 5 %), replayed per namespace with the same
  HashCache (a namespace's hits under a static split do not depend on the others): the best split of each
  phase, and the equal split.

Printed: the overall L1 hit ratio per phase for adaptive, the best static split (found separately for each
phase, so it knows the future) and the equal split; the hit ratio of every 100k requests; the shares over
time (`--plot` draws them; matplotlib, the `[plot]` extra). Checked, in each phase (from 200k requests after
a change, while it re-converges): adaptive >= best static - 1 point, and >= equal split + 3 points where the
best split leaves that room (where it is less, the bar is the best split's lead over the equal one - 1, the
first check again).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import hit_ratio  # noqa: E402
from _report import Printer, machine_info  # noqa: E402

import tiercache  # noqa: E402
from tiercache import CacheManager, HashCache, NamespaceConfig, deep_sizer  # noqa: E402
from tiercache.config import CacheConfig  # noqa: E402

NAMESPACES = ("oltp", "drift", "zipf")
VALUE = b"x" * 64
STEP = 0.05  # static splits in 5 % steps
WINDOW = 100_000
RECONVERGE = 200_000
LOOP_KEYS = 5_000
PHASES = 3


def workloads(traces_dir: str, n: int) -> List[Dict[str, np.ndarray]]:
    """Each namespace's keys in each phase: `zipf` turns into a loop in phase 2 and back in phase 3."""
    oltp = hit_ratio.read_trace(traces_dir, "oltp")
    drift = hit_ratio.read_trace(traces_dir, "drift")
    zipf = hit_ratio.zipf_keys(100_000, 2 * n)
    loop = np.arange(n, dtype=np.int64) % LOOP_KEYS + 10**9
    thirds = (zipf[:n], loop, zipf[n:])
    return [{"oltp": oltp[p * n:(p + 1) * n], "drift": drift[p * n:(p + 1) * n], "zipf": thirds[p]}
            for p in range(PHASES)]


def interleave(phase: Dict[str, np.ndarray], seed: int) -> List[Tuple[str, int]]:
    """The namespaces' requests mixed at random, each namespace's in its own order."""
    order = [ns for ns in NAMESPACES for _ in range(len(phase[ns]))]
    random.Random(seed).shuffle(order)
    its = {ns: iter(phase[ns].tolist()) for ns in NAMESPACES}
    return [(ns, next(its[ns])) for ns in order]


def replay_static(keys: Sequence[int], budget: int) -> np.ndarray:
    """1 per hit, 0 per miss, of one namespace's keys through the manager's L1 (tinylfu, deep_sizer) at a
    fixed budget."""
    cache = HashCache(max_bytes=max(1, budget), policy="tinylfu", sizer=deep_sizer)
    get, put = cache.get, cache.set
    hits = np.zeros(len(keys), dtype=np.int8)
    for i, k in enumerate(keys):
        if get(k) is None:
            put(k, VALUE)
        else:
            hits[i] = 1
    return hits


class Static:
    """Each namespace replayed alone at fixed budgets over the whole run; a split's hits over any range of the
    interleaved run are then sums (under a static split a namespace's hits do not depend on the others)."""

    def __init__(self, requests: List[Tuple[str, int]], total: int) -> None:
        self.total = total
        self.levels = int(round(1 / STEP))
        positions: Dict[str, List[int]] = {ns: [] for ns in NAMESPACES}
        self.keys: Dict[str, List[int]] = {ns: [] for ns in NAMESPACES}
        for i, (ns, k) in enumerate(requests):
            positions[ns].append(i)
            self.keys[ns].append(k)
        self.positions = {ns: np.array(p, dtype=np.int64) for ns, p in positions.items()}
        self._cumulative: Dict[Tuple[str, int], np.ndarray] = {}

    def hits(self, ns: str, budget: int, start: int, end: int) -> int:
        """Hits of namespace `ns` at `budget` bytes among the run's requests [start, end)."""
        cum = self._cumulative.get((ns, budget))
        if cum is None:
            cum = self._cumulative[ns, budget] = np.concatenate(
                [[0], np.cumsum(replay_static(self.keys[ns], budget), dtype=np.int64)])
        pos = self.positions[ns]
        a, b = np.searchsorted(pos, start), np.searchsorted(pos, end)
        return int(cum[b] - cum[a])

    def best(self, start: int, end: int) -> Tuple[Tuple[int, ...], int]:
        """The best split in STEP steps (each namespace >= STEP) over [start, end): its levels and hits."""
        table = {ns: [self.hits(ns, int(self.total * lvl * STEP), start, end) if lvl else 0
                      for lvl in range(self.levels + 1)] for ns in NAMESPACES}
        best: Tuple[Tuple[int, ...], int] = ((), -1)
        for a in range(1, self.levels - 1):
            for b in range(1, self.levels - a):
                c = self.levels - a - b
                hits = table[NAMESPACES[0]][a] + table[NAMESPACES[1]][b] + table[NAMESPACES[2]][c]
                if hits > best[1]:
                    best = ((a, b, c), hits)
        return best

    def equal(self, start: int, end: int) -> int:
        return sum(self.hits(ns, self.total // len(NAMESPACES), start, end) for ns in NAMESPACES)


def adaptive_run(requests: List[Tuple[str, int]], total: int) -> Tuple[np.ndarray, List[Dict[str, int]]]:
    """Hit (1) or miss (0) per request through an adaptive manager; the shares every WINDOW / 4 requests."""
    ns_config = NamespaceConfig(l1_ttl=None, persist_to_l2=False, l1_max_bytes=total // 3)
    config = CacheConfig(env="test", namespaces={ns: ns_config for ns in NAMESPACES}, l1_max_bytes=total,
                         l1_allocation="adaptive")
    hits = np.zeros(len(requests), dtype=np.int8)
    shares: List[Dict[str, int]] = []
    with CacheManager(config=config, invalidation=False, enable_metrics=False) as m:
        for ns in NAMESPACES:
            m.l1(ns)  # every namespace joins at the start, with an equal share
        get, put = m.get, m.set
        for i, (ns, k) in enumerate(requests):
            if get(ns, k) is None:
                put(ns, k, VALUE)
            else:
                hits[i] = 1
            if i % (WINDOW // 4) == 0:
                shares.append(m.l1_budgets())
        shares.append(m.l1_budgets())
    return hits, shares


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", metavar="DIR")
    ap.add_argument("--entries", type=int, default=6000, help="the global budget, in 64-byte values")
    ap.add_argument("--requests", type=int, default=300_000, help="requests per namespace and phase")
    ap.add_argument("--seed", type=int, default=0, help="another random mix of the same requests")
    ap.add_argument("--plot", metavar="OUT.png")
    ap.add_argument("--json", metavar="OUT.json")
    args = ap.parse_args(argv)
    traces_dir = args.traces or os.environ.get("TIERCACHE_TRACES") or hit_ratio.DEFAULT_TRACES
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(os.path.abspath(__file__))]
                                   + (sys.argv[1:] if argv is None else argv))
    pr = Printer(width=110)
    info = machine_info(("numpy",))
    pr.line(f"command:   {command}")
    pr.line(f"tiercache: {info['tiercache']} ({tiercache.IMPLEMENTATION})")
    total = args.entries * deep_sizer(VALUE)
    pr.line(f"budget:    {total:,} bytes ({args.entries:,} values of {deep_sizer(VALUE)} bytes as deep_sizer "
            f"weighs them); {args.requests:,} requests per namespace and phase")
    try:
        phases = workloads(traces_dir, args.requests)
    except OSError as exc:
        pr.line(f"traces not found: {exc}")
        return 1
    starts: List[int] = []
    requests: List[Tuple[str, int]] = []
    for p, phase in enumerate(phases):
        starts.append(len(requests))
        requests += interleave(phase, 10 * args.seed + p + 1)
    bounds = list(zip(starts, starts[1:] + [len(requests)]))

    hits, shares = adaptive_run(requests, total)
    static = Static(requests, total)
    results: Dict[str, Any] = {"phases": []}
    rows = []
    ok_all = True
    for p, (start, end) in enumerate(bounds):
        if p:
            start += RECONVERGE
        split, best = static.best(start, end)
        equal = static.equal(start, end)
        adaptive = int(hits[start:end].sum())
        count = end - start
        r = {"range": [start, end], "adaptive": adaptive / count, "best_static": best / count,
             "best_split": [x * STEP for x in split], "equal": equal / count}
        r["ok_best"] = r["adaptive"] >= r["best_static"] - 0.01
        # +3 over the equal split where some split is 3 better; where none is, at least the equal split
        r["room"] = r["best_static"] - r["equal"]
        r["ok_equal"] = r["adaptive"] >= r["equal"] + min(0.03, r["room"] - 0.01)
        ok_all = ok_all and r["ok_best"] and r["ok_equal"]
        results["phases"].append(r)
        rows.append([f"phase {p + 1}" + (" after 200k" if p else ""), f"{start:,}–{end:,}",
                     f"{100 * r['adaptive']:.2f}",
                     f"{100 * r['best_static']:.2f} ({'/'.join(f'{x * STEP:.0%}' for x in split)})",
                     f"{100 * r['equal']:.2f}"])
    pr.table("Overall L1 hit ratio (%)",
             ["phase", "requests", "adaptive", "best static split (oltp/drift/zipf)", "equal split"], rows,
             "phases 2 and 3 are measured from 200k requests after zipf's change; each static split is replayed "
             "over the whole run and counted over the same requests (the best one is chosen knowing them).")
    windows = []
    for w in range(0, len(requests), WINDOW):
        at = shares[min(len(shares) - 1, (w + WINDOW) * 4 // WINDOW)]
        windows.append([f"{w:,}–{min(w + WINDOW, len(requests)):,}", f"{100 * hits[w:w + WINDOW].mean():.2f}"]
                       + [f"{at.get(ns, 0) / total:.0%}" for ns in NAMESPACES])
    pr.table("Adaptive, per 100k requests", ["requests", "hit %"] + [f"{ns} share at end" for ns in NAMESPACES],
             windows, f"zipf loops over {LOOP_KEYS:,} keys from {starts[1]:,} and is Zipf again from {starts[2]:,}")
    for p, r in enumerate(results["phases"]):
        pr.line(f"{'PASS' if r['ok_best'] else 'FAIL'}  phase {p + 1}: adaptive {100 * r['adaptive']:.2f} % "
                f">= best static {100 * r['best_static']:.2f} % - 1")
        bar = min(3.0, 100 * r["room"] - 1)
        pr.line(f"{'PASS' if r['ok_equal'] else 'FAIL'}  phase {p + 1}: adaptive {100 * r['adaptive']:.2f} % "
                f">= equal split {100 * r['equal']:.2f} % {'+' if bar >= 0 else '-'} {abs(bar):.2f} (the best split is "
                f"{100 * r['room']:+.2f} from it; the bar is 3 where that leaves room, else that - 1)")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(9, 4))
        xs = [i * WINDOW // 4 for i in range(len(shares))]
        for ns in NAMESPACES:
            ax.plot(xs, [s.get(ns, 0) / total for s in shares], label=ns)
        for start in starts[1:]:
            ax.axvline(start, color="grey", linestyle=":")
        ax.set_xlabel("requests")
        ax.set_ylabel("share of the L1 budget")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot)
        pr.line(f"wrote {args.plot}")
    if args.json:
        results.update({"command": command, "machine": info, "budget_bytes": total,
                        "windows": [float(hits[w:w + WINDOW].mean()) for w in range(0, len(requests), WINDOW)],
                        "shares": shares})
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
