"""What metrics add to an L1 hit, counted in instructions (callgrind), not seconds.

    python bench/metrics_cost.py [--gets 200000]

Timing a 1-3 ns difference on a shared machine is noise-bound (bench/compare_l2.py times it too, as the
"metrics cost on L1 hit" row), so this runs the same process under `valgrind --tool=callgrind` once per
mode and per size (0 and --gets lookups, PYTHONHASHSEED=0 so every run hashes alike) and reports
instructions per lookup, net of the set-up and of the loop itself:

    HashCache.get                      the anchor
    manager.get, L1 hit, metrics off   CacheManager(enable_metrics=False)
    manager.get, L1 hit, metrics on    the default: counts in compiled code, 1 lookup in 64 timed

Limit checked: metrics on minus metrics off <= 10 % of HashCache.get. Needs valgrind.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

MODES = ("loop", "hashcache", "off", "on")


def workload(mode: str, n: int) -> None:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from tiercache import CacheManager, HashCache

    d = tempfile.mkdtemp()
    keys = [f"hot:{i}" for i in range(1000)]
    cfg = {"bench": {"l1_ttl": None, "l1_max_entries": 10_000, "l1_max_bytes": 1 << 26}}
    m = CacheManager(f"sqlite:///{d}/l2.db", env="test", config=cfg, invalidation=False,
                     enable_metrics=mode != "off", metrics_interval=None)
    m.set_many("bench", {k: i for i, k in enumerate(keys)})
    plain = HashCache(max_bytes=1 << 30)
    for i, k in enumerate(keys):
        plain.set(k, i)
    rounds = n // len(keys)
    if mode == "hashcache":
        g = plain.get
        for _ in range(rounds):
            for k in keys:
                g(k)
    elif mode == "loop":
        for _ in range(rounds):
            for k in keys:
                pass
    else:
        mg = m.get
        for _ in range(rounds):
            for k in keys:
                mg("bench", k)
    m.close()
    shutil.rmtree(d, ignore_errors=True)


def instructions(mode: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, os.path.abspath(__file__),
             "--run", mode, str(n)], env=env, capture_output=True, text=True)
        found = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode or not found:
            sys.exit(f"callgrind run failed for {mode}:\n{proc.stderr[-2000:]}")
        return int(found.group(1))


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--run":
        workload(sys.argv[2], int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gets", type=int, default=200_000)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found (apt-get install valgrind)")
    per: dict = {}
    for mode in MODES:
        per[mode] = (instructions(mode, args.gets) - instructions(mode, 0)) / args.gets
    loop = per["loop"]
    net = {mode: per[mode] - loop for mode in MODES if mode != "loop"}
    import tiercache

    print(f"command:  python bench/metrics_cost.py --gets {args.gets}   (tiercache {tiercache.IMPLEMENTATION})")
    print(f"{'lookup':<38}{'instructions/lookup':>20}")
    for mode, name in (("hashcache", "HashCache.get"), ("off", "manager.get L1 hit, metrics off"),
                       ("on", "manager.get L1 hit, metrics on")):
        print(f"{name:<38}{net[mode]:>20.1f}")
    cost = (net["on"] - net["off"]) / net["hashcache"]
    status = "PASS" if cost <= 0.10 else "FAIL"
    print(f"metrics cost: {net['on'] - net['off']:.1f} instructions = {cost:.1%} of HashCache.get "
          f"(target <= 10%) {status}")
    return 0 if status == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
