"""A/B of two builds of the compiled core in one process: the working tree's against an earlier build.

    git worktree add /tmp/old <rev> && (cd /tmp/old && python setup.py build_ext --inplace)
    python bench/ab_core.py /tmp/old [--rounds 40]

Both builds' HashCache hold the same 100k keys; a round times one random pass of 20k operations on each
(and on cachebox.LRUCache when installed), in a random order, and records the paired ratio new/old. The
medians and quartiles of those ratios over all rounds are printed for get-hit (int and str keys, `lru` and
`tinylfu`), get-miss and set with eviction. Pairing within a round cancels most of this shared machine's
load swings, which move both builds alike; loop overhead is included, so ratios are pulled towards 1.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import random
import sys
import time
from typing import Any, Callable, Dict, List, Sequence

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _ab import load_old, quartiles  # noqa: E402

N = 100_000
PASS = 20_000


def timed(fn: Callable[[Any], Any], keys: Sequence[Any]) -> float:
    t0 = time.perf_counter_ns()
    for k in keys:
        fn(k)
    return (time.perf_counter_ns() - t0) / len(keys)


def main(argv: Any = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", help="an earlier checkout with its extension built in place")
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args(argv)
    import tiercache._core_c as new

    old = importlib.import_module(load_old(args.old).__name__ + "._core_c")
    rnd = random.Random(1)
    int_keys: List[Any] = list(range(N))
    str_keys: List[Any] = [f"user:{i}:profile" for i in range(N)]
    absent = list(range(N, 2 * N))
    gc.disable()
    print(f"new: {new.__file__}\nold: {args.old}\n{args.rounds} rounds of {PASS:,} operations; "
          "new/old median [quartiles]")
    for label, policy, keys, probe in (("get-hit int", "lru", int_keys, int_keys),
                                       ("get-hit str", "lru", str_keys, str_keys),
                                       ("get-hit int tinylfu", "tinylfu", int_keys, int_keys),
                                       ("get-miss int", "lru", int_keys, absent)):
        caches: Dict[str, Any] = {}
        for name, module in (("old", old), ("new", new)):
            cache = module.HashCache(max_bytes=2**40, max_entries=N, policy=policy)
            for k in keys:
                cache.set(k, k)
            caches[name] = cache.get
        ratios = []
        for _ in range(args.rounds):
            sample = rnd.sample(probe, PASS)
            order = ["old", "new"]
            rnd.shuffle(order)
            t = {name: timed(caches[name], sample) for name in order}
            ratios.append(t["new"] / t["old"])
        print(f"  {label:<24} {quartiles(ratios)}")
    # set with eviction: both caches full of other keys, then the same new keys inserted into each; once in
    # the keys' allocation order, once shuffled (as compare.py does: each set then also misses on its key)
    inserts = list(range(10**9, 10**9 + args.rounds * PASS))
    shuffled = list(inserts)
    rnd.shuffle(shuffled)
    for label, keys in (("set with eviction", inserts), ("set with eviction, shuf", shuffled)):
        sets: Dict[str, Any] = {}
        for name, module in (("old", old), ("new", new)):
            cache = module.HashCache(max_bytes=2**40, max_entries=N)
            for k in int_keys:
                cache.set(k, k)
            sets[name] = cache.set
        ratios = []
        for r in range(args.rounds):
            part = keys[r * PASS:(r + 1) * PASS]
            order = ["old", "new"]
            rnd.shuffle(order)
            t = {}
            for name in order:
                s = sets[name]
                t0 = time.perf_counter_ns()
                for k in part:
                    s(k, k)
                t[name] = (time.perf_counter_ns() - t0) / len(part)
            ratios.append(t["new"] / t["old"])
        print(f"  {label:<24} {quartiles(ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
