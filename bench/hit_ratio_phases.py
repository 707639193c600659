#!/usr/bin/env python3
"""How fast each policy adapts when a workload changes character: hit ratio per window of requests on a
trace that switches between recency and frequency phases, beside exact LRU and theine.

    python bench/hit_ratio_phases.py [--traces DIR] [--size 1000] [--window 100000] [--plot OUT.png]
                                     [--json OUT.json]

The trace: 300k requests of `drift` (recency-skewed: popularity follows a key's age), 300k of `loop` (a loop
over 1,011 keys: only frequency-based admission keeps any of it), then the next 300k of `drift`, from the
shared traces (bench/hit_ratio.py says where they are looked for); each phase's keys are kept apart. Every
policy replays it read-through (get; on a miss, set) at `--size` entries. Printed: the hit ratio (%) of every
`--window` requests, and of each phase; `--plot` draws the windows (matplotlib: the `[plot]` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import Any, Callable, Dict, List, Optional

import numpy as np

import hit_ratio  # bench/hit_ratio.py (this directory is on sys.path)
from _report import Printer, machine_info

PHASE = 300_000
LOOP_OFFSET = 10**12  # loop keys are moved out of drift's key range


def phases(traces_dir: str) -> "tuple[np.ndarray, List[str]]":
    """The switching trace and its phases' names."""
    drift = hit_ratio.read_trace(traces_dir, "drift")
    loop = hit_ratio.read_trace(traces_dir, "loop")
    keys = np.concatenate([drift[:PHASE], loop[:PHASE] + LOOP_OFFSET, drift[PHASE:2 * PHASE]])
    return keys, ["drift", "loop", "drift again"]


def replay(keys: List[Any], get: Callable[[Any], bool], put: Callable[[Any], None]) -> np.ndarray:
    """1 for each request that hit, 0 for each miss (which is then stored)."""
    hits = np.zeros(len(keys), dtype=np.int8)
    for i, k in enumerate(keys):
        if get(k):
            hits[i] = 1
        else:
            put(k)
    return hits


def policies(size: int) -> Dict[str, Callable[[List[Any]], np.ndarray]]:
    """Column name -> replay of the whole trace, giving the hits request by request."""
    from collections import OrderedDict

    def exact_lru(keys: List[Any]) -> np.ndarray:
        data: "OrderedDict[Any, bool]" = OrderedDict()

        def get(k: Any) -> bool:
            if k in data:
                data.move_to_end(k)
                return True
            return False

        def put(k: Any) -> None:
            data[k] = True
            if len(data) > size:
                data.popitem(last=False)

        return replay(keys, get, put)

    def hashcache(policy: str) -> Callable[[List[Any]], np.ndarray]:
        def run(keys: List[Any]) -> np.ndarray:
            cache = hit_ratio.make_hashcache(size, policy)
            miss = object()
            return replay(keys, lambda k: cache.get(k, miss) is not miss, lambda k: cache.set(k, True, None, 1))
        return run

    out: Dict[str, Callable[[List[Any]], np.ndarray]] = {"exact LRU": exact_lru}
    for policy in hit_ratio.hashcache_policies():
        out[f"HashCache {policy}"] = hashcache(policy)
    if hit_ratio.theine_version() is not None:
        def theine(keys: List[Any]) -> np.ndarray:
            from theine import Cache

            cache = Cache(size)
            return replay(keys, lambda k: cache.get(k)[1], lambda k: cache.set(k, True))
        out["theine"] = theine
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", metavar="DIR", help="trace directory (as bench/hit_ratio.py)")
    ap.add_argument("--size", type=int, default=1000, help="cache size in entries (default 1000)")
    ap.add_argument("--window", type=int, default=100_000, help="requests per reported window (default 100k)")
    ap.add_argument("--plot", metavar="OUT.png", help="draw the hit ratio per window (matplotlib)")
    ap.add_argument("--json", metavar="OUT.json", help="also write the figures here")
    args = ap.parse_args(argv)
    if args.size < 1 or args.window < 1:
        ap.error("--size and --window must be positive")
    traces_dir = args.traces or os.environ.get("TIERCACHE_TRACES") or hit_ratio.DEFAULT_TRACES
    try:
        keys, names = phases(traces_dir)
    except OSError as exc:
        print(f"traces not found: {exc}", file=sys.stderr)
        return 2
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(os.path.abspath(__file__))]
                                   + (sys.argv[1:] if argv is None else argv))
    info = machine_info(("numpy",))
    pr = Printer(width=150)
    pr.line(f"command:   {command}")
    pr.line(f"tiercache: {info['tiercache']}")
    pr.line(f"theine:    {hit_ratio.theine_version() or 'not installed (pip install theine)'}")
    pr.line(f"trace:     {' -> '.join(f'{n} ({PHASE:,})' for n in names)}, cache of {args.size:,} entries")

    as_list = keys.tolist()
    hits = {name: run(as_list) for name, run in policies(args.size).items()}
    n = len(as_list)
    starts = list(range(0, n, args.window))
    windows = {name: [100.0 * float(h[s:s + args.window].mean()) for s in starts] for name, h in hits.items()}
    by_phase = {name: [100.0 * float(h[i * PHASE:(i + 1) * PHASE].mean()) for i in range(len(names))]
                for name, h in hits.items()}
    columns = list(hits)
    pr.table(f"Hit ratio (%) per {args.window:,} requests", ["requests"] + columns,
             [[f"{s:,}–{min(s + args.window, n):,}"] + [f"{windows[c][i]:.2f}" for c in columns]
              for i, s in enumerate(starts)],
             "hits / requests of the window, cold misses included; phases switch at "
             + " and ".join(f"{i * PHASE:,}" for i in range(1, len(names))))
    pr.table("Hit ratio (%) per phase", ["phase"] + columns,
             [[p] + [f"{by_phase[c][i]:.2f}" for c in columns] for i, p in enumerate(names)]
             + [["all"] + [f"{100.0 * float(hits[c].mean()):.2f}" for c in columns]],
             "the first window of a phase still holds the previous phase's keys")
    if args.plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print('plotting needs matplotlib: pip install matplotlib (or the "[plot]" extra)', file=sys.stderr)
            return 2
        fig, ax = plt.subplots(figsize=(9, 4))
        mids = [s + args.window / 2 for s in starts]
        for c in columns:
            ax.plot(mids, windows[c], marker="o", label=c)
        for i in range(1, len(names)):
            ax.axvline(i * PHASE, color="grey", linestyle=":")
        ax.set_xlabel("requests")
        ax.set_ylabel(f"hit ratio per {args.window:,} requests (%)")
        ax.set_title(f"{' → '.join(names)}, {args.size:,} entries")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        pr.line(f"wrote {args.plot}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": command, "machine": info, "size": args.size, "window": args.window,
                       "phases": names, "per_window": windows, "per_phase": by_phase}, f, indent=2)
        pr.line(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
