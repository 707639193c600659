"""The client-side work of the two-tier paths, counted in instructions (callgrind), not seconds.

    python bench/l2_cost.py [--gets 20000] [--redis-url redis://127.0.0.1:6379/0]

A loopback round trip on a shared machine takes 40-150 us from run to run, and how much a fixed client
overhead weighs in bench/compare_l2.py's ratios swings with it; what the client itself executes does not.
This runs each mode under `valgrind --tool=callgrind` twice (0 and --gets operations, PYTHONHASHSEED=0)
against one redis-server (its own, on a free loopback port, unless --redis-url) and prints instructions
per operation, net of set-up:

    raw GET + decode       redis-py's default client: GET, expiry header, msgpack decode (the anchor)
    RedisL2.get + decode   the same through tiercache's backend (GET packed by tiercache, BlockingConnectionPool)
    manager.get L2 hit     CacheManager.get where L1 holds one entry, so every get reads L2 and promotes
    raw MGET (100)         per batch of 100 keys
    RedisL2.get_many(100)  the same MGET through tiercache's backend (packed by tiercache), no decoding
    raw MGET + decode      per batch of 100 keys
    raw MGET + unpackb     the same with bare msgpack.unpackb (no header, no options): decoding written by hand
    manager.get_many(100)  per batch of 100 keys, L1 emptied before each
    raw MGET (100), bytes  per batch of 100 keys holding 100-byte bytes values (the reference size)
    get_many(100), bytes   the same through manager.get_many: what the manager adds beside decoding

Needs valgrind and the redis-server binary.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

MODES = ("raw_get", "l2_get", "manager_get", "raw_mget", "l2_mget", "raw_mget_decode", "raw_mget_unpackb",
         "manager_get_many", "raw_mget_blob", "manager_get_many_blob")
VALUE = {"id": 12345, "name": "market data", "prices": [101.5, 101.75, 102.0], "ok": True, "note": "x" * 40}


def workload(mode: str, n: int, url: str) -> None:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import msgpack
    import redis

    from tiercache.config import NamespaceConfig
    from tiercache.manager import CacheManager
    from tiercache.wire import open_sealed

    def _unseal(data: bytes) -> tuple:
        start, _ = open_sealed(data, 0.0)
        return (data[start:],)

    raw = redis.Redis.from_url(url)
    cfg = {"thin": NamespaceConfig(l1_max_entries=1, l1_ttl=None, promotion="immediate"),
           "blob": NamespaceConfig(l1_ttl=None, promotion="immediate")}
    m = CacheManager(url, env="test", config=cfg, invalidation=False)
    keys = [f"item:{i}" for i in range(1000)]
    m.set_many("thin", {k: VALUE for k in keys})
    m.set_many("blob", {k: bytes(range(100)) for k in keys})
    l1_blob = m.l1("blob")
    l2_keys = [m._l2_key("thin", k) for k in keys]
    loads = m._codec(m.namespace_config("thin")).loads
    l1 = m.l1("thin")
    for k in keys[:50]:  # connections opened, first-call caches filled, before the counted part
        raw.get(l2_keys[0])
        m.get("thin", k)
    rounds = n // len(keys)
    batches = [keys[i:i + 100] for i in range(0, len(keys), 100)]
    l2_batches = [l2_keys[i:i + 100] for i in range(0, len(l2_keys), 100)]
    blob_batches = [[m._l2_key("blob", k) for k in b] for b in batches]
    for b in batches[:3]:
        l1_blob.clear()
        m.get_many("blob", b)
        raw.mget(blob_batches[0])
    for _ in range(rounds):
        if mode == "raw_get":
            for k in l2_keys:
                loads(_unseal(raw.get(k))[0])
        elif mode == "l2_get":
            get = m.l2.get
            for k in l2_keys:
                loads(_unseal(get(k))[0])
        elif mode == "manager_get":
            for k in keys:
                m.get("thin", k)
        elif mode == "raw_mget":
            for b in l2_batches:
                l1.clear()
                raw.mget(b)
        elif mode == "l2_mget":
            for b in l2_batches:
                l1.clear()
                m.l2.get_many(b)
        elif mode == "raw_mget_decode":
            for b in l2_batches:
                l1.clear()
                [loads(_unseal(d)[0]) for d in raw.mget(b)]
        elif mode == "raw_mget_unpackb":  # by hand: bare msgpack.unpackb, no tiercache code (no ext types here)
            for b in l2_batches:
                l1.clear()
                [msgpack.unpackb(d[2:]) for d in raw.mget(b)]
        elif mode == "manager_get_many":
            for b in batches:
                l1.clear()
                m.get_many("thin", b)
        elif mode == "raw_mget_blob":
            for b in blob_batches:
                l1_blob.clear()
                raw.mget(b)
        elif mode == "manager_get_many_blob":
            for b in batches:
                l1_blob.clear()
                m.get_many("blob", b)
    m.close()


def count(mode: str, n: int, url: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, os.path.abspath(__file__),
             "--child", mode, "--gets", str(n), "--redis-url", url],
            capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        found = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or not found:
            sys.exit(f"callgrind run failed for {mode}:\n{proc.stderr[-2000:]}")
        return int(found.group(1))


def main(argv: object = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gets", type=int, default=20_000, help="operations per counted run (a multiple of 1000)")
    ap.add_argument("--redis-url")
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        workload(args.child, args.gets, args.redis_url)
        return 0
    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found (apt-get install valgrind)")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from compare_l2 import LocalRedis

    server = None if args.redis_url else LocalRedis()
    url = args.redis_url or server.url  # type: ignore[union-attr]
    try:
        import tiercache

        print(f"command:  python bench/l2_cost.py --gets {args.gets}   (tiercache {tiercache.IMPLEMENTATION})")
        print(f"{'mode':<30}{'instructions per op':>20}")
        per = {}
        for mode in MODES:
            net = count(mode, args.gets, url) - count(mode, 0, url)
            batch = "mget" in mode or "get_many" in mode
            ops = args.gets // 100 if batch else args.gets
            per[mode] = net / ops
            print(f"{mode + (' (per 100 keys)' if batch else ''):<38}{per[mode]:>12,.0f}")
        print(f"manager.get L2 hit over raw GET + decode: {per['manager_get'] / per['raw_get']:.3f}x "
              f"(RedisL2.get alone {per['l2_get'] / per['raw_get']:.3f}x)")
        print(f"RedisL2.get_many(100) over raw MGET: {per['l2_mget'] / per['raw_mget']:.3f}x")
        print(f"get_many(100) over MGET + decode: {per['manager_get_many'] / per['raw_mget_decode']:.3f}x; "
              f"over bare MGET: {per['manager_get_many'] / per['raw_mget']:.3f}x; over MGET + bare unpackb "
              f"(by hand): {per['manager_get_many'] / per['raw_mget_unpackb']:.3f}x, which is "
              f"{per['raw_mget_unpackb'] / per['raw_mget']:.3f}x bare MGET")
        print(f"get_many(100) of 100-byte bytes values over their bare MGET: "
              f"{per['manager_get_many_blob'] / per['raw_mget_blob']:.3f}x")
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
