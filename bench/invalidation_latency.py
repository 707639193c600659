"""How long until another process drops its L1 copy after a write: two real processes, Redis and SQLite.

    python bench/invalidation_latency.py [--writes 300] [--redis-url redis://127.0.0.1:6379/0]

The reader (a child process) holds a key in L1; the writer (this process) sets it and notes the time the
set returned; the reader watches its L1 (every 0.1 ms) and notes when the copy is gone. Both clocks are
time.perf_counter (CLOCK_MONOTONIC, one clock for the whole host on Linux). Each key is measured twice:
with the writer otherwise quiet (its invalidation goes out at once), and while a thread of the writer
writes other keys without pause (invalidations share messages, at most one round per LINGER). Prints
p50 / p99 / max per L2 and mode; the target is p99 <= 50 ms (SQLite: <= 100 ms). Without --redis-url a
redis-server is started on a free loopback port.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from tiercache.config import NamespaceConfig  # noqa: E402
from tiercache.manager import CacheManager  # noqa: E402

CONFIG = {"lat": NamespaceConfig(l1_ttl=None, l2_ttl=600.0, promotion="immediate")}

READER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from tiercache.config import NamespaceConfig
from tiercache.manager import CacheManager
m = CacheManager(sys.argv[1], env="test", config={"lat": NamespaceConfig(l1_ttl=None, l2_ttl=600.0,
                                                                           promotion="immediate")})
assert m.listener_connected.wait(10)
l1 = m.l1("lat")
print("ready", flush=True)
for line in sys.stdin:
    key = line.strip()
    assert m.get("lat", key) is not None and key in l1
    print("held", flush=True)
    while key in l1:
        time.sleep(0.0001)
    print(repr(time.perf_counter()), flush=True)
m.close()
"""


def measure(url: str, writes: int) -> Dict[str, List[float]]:
    out: Dict[str, List[float]] = {"quiet": [], "under load": []}
    with CacheManager(url, env="test", config=CONFIG) as m:
        reader = subprocess.Popen([sys.executable, "-c", READER, url, os.path.join(HERE, "..")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert reader.stdin is not None and reader.stdout is not None
        try:
            assert reader.stdout.readline().strip() == "ready"
            m.set_many("lat", {f"{mode}:{i}": "old" for mode in out for i in range(writes)})
            time.sleep(0.5)  # (their own invalidations have passed)
            for mode in out:
                stop = threading.Event()
                load = threading.Thread(target=_load, args=(m, stop), daemon=True)
                if mode == "under load":
                    load.start()
                for i in range(writes):
                    key = f"{mode}:{i}"
                    reader.stdin.write(key + "\n")
                    reader.stdin.flush()
                    assert reader.stdout.readline().strip() == "held"
                    m.set("lat", key, "new")
                    t0 = time.perf_counter()
                    t1 = float(reader.stdout.readline())
                    out[mode].append(t1 - t0)
                    if mode == "quiet":
                        time.sleep(0.02)  # (a quiet writer: past the publisher's LINGER)
                stop.set()
                if load.is_alive():
                    load.join()
        finally:
            reader.stdin.close()
            reader.wait(10)
    return out


def _load(m: CacheManager, stop: threading.Event) -> None:
    i = 0
    while not stop.is_set():
        m.set("lat", f"load:{i % 1000}", i)
        i += 1


def quantile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writes", type=int, default=300)
    ap.add_argument("--redis-url")
    args = ap.parse_args()
    from compare_l2 import LocalRedis

    import tiercache

    print(f"tiercache {tiercache.__version__} ({tiercache.IMPLEMENTATION})")
    server = None if args.redis_url else LocalRedis()
    ok = True
    try:
        with tempfile.TemporaryDirectory() as d:
            for name, url, target in (("redis", args.redis_url or server.url, 0.050),  # type: ignore[union-attr]
                                      ("sqlite", f"sqlite:///{d}/l2.sqlite3", 0.100)):
                for mode, lat in measure(url, args.writes).items():
                    p99 = quantile(lat, 0.99)
                    status = "PASS" if p99 <= target else "FAIL"
                    ok &= status == "PASS"
                    print(f"{name:<7}{mode:<11} n={len(lat)}  p50 {statistics.median(lat) * 1e3:6.2f} ms  "
                          f"p99 {p99 * 1e3:6.2f} ms  max {max(lat) * 1e3:6.2f} ms  (p99 <= {target * 1e3:.0f} ms "
                          f"{status})", flush=True)
    finally:
        if server is not None:
            server.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
