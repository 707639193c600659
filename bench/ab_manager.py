"""A/B of the manager's data paths, the working tree's against an earlier checkout, in one process.

    git worktree add /tmp/old <rev> && (cd /tmp/old && python setup.py build_ext --inplace)
    python bench/ab_manager.py /tmp/old [--rounds 15]

The earlier checkout's package is loaded under another name beside the working tree's `tiercache`. Both
managers run over one redis-server started here on a free loopback port (Redis paths) and hold the same
values; a round times each path on both, in a random order, and records the ratio new/old. Medians and
quartiles over the rounds are printed, with the L1-hit cost of `manager.get` beside `HashCache.get` of the
same value and beside the namespace's own L1 `.get` (the dispatch alone), timed in the same round (new build).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _ab import load_old, quartiles  # noqa: E402

VALUE = {"id": 12345, "name": "user-12345", "email": "u12345@example.com", "score": 0.97, "tags": ["a", "b", "c"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def per_op(fn: Callable[[], int]) -> float:
    t0 = time.perf_counter_ns()
    n = fn()
    return (time.perf_counter_ns() - t0) / n


def paths(pkg: Any, url: str) -> Dict[str, Callable[[], int]]:
    """The timed paths of one build: each returns the number of operations it made."""
    cfg = {"hot": pkg.NamespaceConfig(promotion="immediate", l1_max_entries=100_000),
           "thin": pkg.NamespaceConfig(promotion="immediate", l1_max_entries=1)}
    m = pkg.CacheManager(url, env="test", config=cfg, invalidation=False)
    keys = [f"user:{i}" for i in range(2000)]
    m.set_many("hot", {k: VALUE for k in keys})
    m.set_many("thin", {k: VALUE for k in keys})
    l1 = pkg.HashCache(max_bytes=1 << 30)
    for k in keys:
        l1.set(k, VALUE)
    ns_l1 = m.l1("hot") if hasattr(m, "l1") else m._l1_for("hot")  # (the earlier build's private name)
    get, l1get, ns_get = m.get, l1.get, ns_l1.get
    for k in keys:
        get("hot", k)

    def l1_hit() -> int:
        for _ in range(10):
            for k in keys:
                get("hot", k)
        return 10 * len(keys)

    def hashcache_hit() -> int:
        for _ in range(10):
            for k in keys:
                l1get(k)
        return 10 * len(keys)

    def namespace_l1_hit() -> int:
        for _ in range(10):
            for k in keys:
                ns_get(k)
        return 10 * len(keys)

    def l2_hit() -> int:
        for k in keys[:300]:
            get("thin", k)
        return 300

    def get_many() -> int:
        for i in range(0, 1000, 100):
            m.l1("thin").clear() if hasattr(m, "l1") else m._l1_for("thin").clear()
            m.get_many("thin", keys[i:i + 100])
        return 10

    def set_() -> int:
        for k in keys[:300]:
            m.set("thin", k, VALUE)
        return 300

    return {"HashCache.get hit": hashcache_hit, "namespace L1 .get hit": namespace_l1_hit,
            "manager.get L1 hit": l1_hit, "manager.get L2 hit": l2_hit,
            "get_many(100) from L2": get_many, "set": set_}


def main(argv: Any = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", help="an earlier checkout with its extension built in place")
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
    import tiercache as new

    old = load_old(args.old)
    if new.IMPLEMENTATION != "compiled" or old.IMPLEMENTATION != "compiled":
        sys.exit(f"both builds must be compiled (new: {new.IMPLEMENTATION}, old: {old.IMPLEMENTATION})")
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        url = f"redis://127.0.0.1:{port}/"  # (a database of its own for each build)
        builds = {"old": paths(old, url + "1"), "new": paths(new, url + "2")}
        rnd = random.Random(1)
        ratios: Dict[str, List[float]] = {name: [] for name in builds["new"]}
        l1_over_hashcache: List[float] = []
        l1_over_namespace: List[float] = []
        gc.disable()
        for _ in range(args.rounds):
            for name in ratios:
                order = ["old", "new"]
                rnd.shuffle(order)
                t = {b: per_op(builds[b][name]) for b in order}
                ratios[name].append(t["new"] / t["old"])
            t = {name: per_op(builds["new"][name]) for name in
                 ("manager.get L1 hit", "HashCache.get hit", "namespace L1 .get hit")}
            l1_over_hashcache.append(t["manager.get L1 hit"] / t["HashCache.get hit"])
            l1_over_namespace.append(t["manager.get L1 hit"] / t["namespace L1 .get hit"])
        gc.enable()
        print(f"new: {new.__file__}\nold: {old.__file__}\n{args.rounds} rounds; new/old median [quartiles]")
        for name, values in ratios.items():
            print(f"  {name:<24} {quartiles(values)}")
        print(f"  manager.get L1 hit / HashCache.get hit (new): {quartiles(l1_over_hashcache)}")
        print(f"  manager.get L1 hit / the namespace's own L1 .get (new): {quartiles(l1_over_namespace)}")
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
