#!/usr/bin/env python3
"""What a hit costs under "tinylfu" against "lru", by cache size (tiercache.HashCache).

    python bench/policy_cost.py [--sizes 1000,10000,100000,1000000] [--rounds 7] [--old CHECKOUT]

Per size: a full cache of int keys per policy (and per build with `--old`, an earlier checkout with its
extension built in place), then rounds of 2M gets in a random order over all of them, every cache timed
once per round in turn (interleaved: the machine's drift hits all alike). Printed: median ns/get and
tinylfu / lru of the same build. The cost tinylfu adds is its frequency sketch: one more cache line per
hit, which a large cache's sketch does not keep in the processor's caches.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from _ab import load_old  # noqa: E402

import tiercache  # noqa: E402

GETS = 2_000_000


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--old", metavar="CHECKOUT", help="an earlier checkout, built in place, timed alongside")
    args = ap.parse_args(argv)
    builds: Dict[str, Any] = {"new": tiercache}
    if args.old:
        builds["old"] = load_old(args.old)
    print(f"tiercache {tiercache.__version__} ({tiercache.IMPLEMENTATION}); {args.rounds} interleaved rounds "
          f"of {GETS:,} gets; median ns/get")
    for n in (int(s) for s in args.sizes.split(",")):
        keys = list(range(n))
        random.Random(1).shuffle(keys)
        caches: Dict[Tuple[str, str], Any] = {}
        for build, module in builds.items():
            for policy in ("lru", "tinylfu"):
                cache = module.HashCache(max_entries=n, policy=policy)
                for k in keys:
                    cache.set(k, k)
                caches[build, policy] = cache
        probe = keys * max(1, GETS // n)
        random.Random(2).shuffle(probe)
        times: Dict[Tuple[str, str], List[float]] = {c: [] for c in caches}
        gc.disable()
        try:
            for r in range(args.rounds):
                order = list(caches)
                random.Random(r).shuffle(order)
                for c in order:
                    get = caches[c].get
                    t0 = time.perf_counter()
                    for k in probe:
                        get(k)
                    times[c].append((time.perf_counter() - t0) / len(probe) * 1e9)
        finally:
            gc.enable()
        med = {c: statistics.median(v) for c, v in times.items()}
        parts = [f"{build}: lru {med[build, 'lru']:.1f}, tinylfu {med[build, 'tinylfu']:.1f}, "
                 f"ratio {med[build, 'tinylfu'] / med[build, 'lru']:.2f}" for build in builds]
        print(f"{n:>9,} keys  " + "; ".join(parts))
        del caches
    return 0


if __name__ == "__main__":
    sys.exit(main())
