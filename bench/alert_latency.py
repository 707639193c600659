#!/usr/bin/env python3
"""How soon an alert fires when Redis dies, and resolves when it is back.

    python bench/alert_latency.py [--runs 3] [--for 2] [--interval 1]

A CacheManager on a redis-server started on a free loopback port reads 100 keys a second with the rule
`metric = "circuit_open"` (`for` and `interval` as given); the server is killed, then restarted. Printed per
run: seconds from the kill to the "firing" notification and from the restart to "resolved", and the
notifications sent (one of each is expected).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from typing import List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from compare_l2 import LocalRedis  # noqa: E402

from tiercache import CacheManager  # noqa: E402
from tiercache.config import CacheConfig  # noqa: E402


def one_run(server: LocalRedis, hold: float, interval: float) -> Tuple[float, float, List[str]]:
    cfg = CacheConfig.from_dict({"alerts": {"interval": interval, "log": False, "rules": {
        "l2_down": {"metric": "circuit_open", "for": hold, "cooldown": 0}}}}, env="test")
    got: List[Tuple[float, str]] = []
    with CacheManager(server.url, config=cfg) as m:
        assert m.alerts is not None
        m.alerts.add_sink(lambda note: got.append((time.monotonic(), note["state"])))
        stop = threading.Event()

        def traffic() -> None:
            i = 0
            while not stop.is_set():
                m.get("users", f"k{i % 50}")
                i += 1
                stop.wait(0.01)

        worker = threading.Thread(target=traffic, daemon=True)
        worker.start()
        time.sleep(hold + 2 * interval)
        killed = time.monotonic()
        server.kill()
        while not got and time.monotonic() - killed < 60:
            time.sleep(0.05)
        restarted = time.monotonic()
        server.start()
        while len(got) < 2 and time.monotonic() - restarted < 120:
            time.sleep(0.05)
        time.sleep(hold + 2 * interval)  # (anything more would show up now)
        stop.set()
        worker.join(5)
    fired = got[0][0] - killed if got else float("nan")
    resolved = got[1][0] - restarted if len(got) > 1 else float("nan")
    return fired, resolved, [state for _, state in got]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--for", dest="hold", type=float, default=2.0, help="the rule's `for`, seconds")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between evaluations")
    args = parser.parse_args(argv)
    server = LocalRedis()
    fired, resolved = [], []
    try:
        for run in range(args.runs):
            f, r, states = one_run(server, args.hold, args.interval)
            fired.append(f)
            resolved.append(r)
            print(f"run {run}: firing {f:.1f} s after the kill, resolved {r:.1f} s after the restart; sent {states}")
    finally:
        server.stop()
    print(f"median: firing {statistics.median(fired):.1f} s, resolved {statistics.median(resolved):.1f} s "
          f"(for = {args.hold:g} s, interval = {args.interval:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
