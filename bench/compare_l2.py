"""CacheManager against the raw clients it wraps, in one process and run, against a local redis-server.

    python bench/compare_l2.py [--quick] [--redis-url redis://127.0.0.1:6379/0] [--json OUT.json]

Without --redis-url it starts its own `redis-server` on a free loopback port (and stops it). Workloads,
each interleaved with its anchor segment by segment, medians over all segments:

  L2 hit:   manager.get where L1 cannot hold the key (l1_max_entries=1, keys cycling), so every call
            is an L2 GET + decode + copy into L1      vs  redis-py GET + msgpack decode of the same bytes
  get_many: manager.get_many of 100 keys, L1 empty    vs  redis-py MGET of the 100 keys (the
            anchor), and vs MGET + decoding the 100 values (what the manager returns); beside them, not
            targets, MGET + bare msgpack.unpackb of each value (the hand-written way, no tiercache code)
            vs MGET, and get_many vs it; and get_many of 100 values of 100 B bytes (the reference
            payload) vs MGET of them
  L1 hit:   manager.get on a key held in L1           vs  HashCache.get of the same key
  metrics:  manager.get L1 hit minus the same with enable_metrics=False (the sampled latency timing),
            as a fraction of HashCache.get
  writes:   with cross-process invalidation on (and another manager listening): manager.set vs redis-py
            SET of msgpack.packb(value) with the same expiry; manager.delete vs redis-py DEL;
            manager.set_many of 100 vs a pipeline of 100 SETs + packb; manager.incr vs INCRBY, and
            manager.add vs SET NX (after a DEL of the key, in both)

Limits checked: L2 hit <= 1.10x, get_many <= 1.2x, L1 hit <= 2.0x, metrics <= 0.10x, writes <= 1.15x. Ratios, not absolute times, are the
figures to quote: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import msgpack  # noqa: E402
import redis  # noqa: E402

import tiercache  # noqa: E402
from tiercache import HashCache  # noqa: E402
from tiercache.config import NamespaceConfig  # noqa: E402
from tiercache.manager import CacheManager  # noqa: E402

VALUE = {"id": 12345, "name": "market data", "prices": [101.5, 101.75, 102.0], "ok": True, "note": "x" * 40}
BLOB = bytes(range(100))  # the reference payload: 100 B


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRedis:
    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            sys.exit("redis-server not found: install it (apt-get install redis-server) or pass --redis-url")
        self.exe, self.port = exe, free_port()
        self.dir = tempfile.mkdtemp(prefix="tiercache-bench-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        """Start the server (again, after kill(): on the same port) and wait until it answers."""
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        client.close()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def timed(fn: Callable[[], int]) -> float:
    """ns per operation of one run of fn (which returns its operation count)."""
    start = time.perf_counter_ns()
    ops = fn()
    return (time.perf_counter_ns() - start) / ops


def interleave(pairs: Dict[str, Callable[[], int]], rounds: int) -> Dict[str, List[float]]:
    samples: Dict[str, List[float]] = {name: [] for name in pairs}
    names = list(pairs)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            samples[name].append(timed(pairs[name]))
    return samples


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--redis-url")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    rounds = 7 if args.quick else 25
    n_keys = 200 if args.quick else 1000

    server = None if args.redis_url else LocalRedis()
    url = args.redis_url or server.url  # type: ignore[union-attr]
    results: Dict[str, Any] = {}
    try:
        raw = redis.Redis.from_url(url)
        # promotion="immediate": the two-tier path as measured here (every L2 hit copied into L1, plain
        # LRU L1); the gated strategies of tiercache.manager.promotion add their own per-hit work on top
        cfg = {"thin": NamespaceConfig(l1_max_entries=1, l1_ttl=None, promotion="immediate"),
               "blob": NamespaceConfig(l1_ttl=None, promotion="immediate"),
               "bench": NamespaceConfig(l1_ttl=None, promotion="immediate")}
        with CacheManager(url, env="test", config=cfg, invalidation=False) as m, \
                CacheManager(url, env="test", config=cfg, invalidation=False, enable_metrics=False) as m_off:
            keys = [f"item:{i}" for i in range(n_keys)]
            m.set_many("thin", {k: VALUE for k in keys})
            raw_keys = [m._l2_key("thin", k) for k in keys]
            codec = m._codec(m.namespace_config("thin"))
            payload = raw.get(raw_keys[0])
            assert codec.loads(payload) == VALUE
            data_len = len(payload)

            def manager_l2_hit() -> int:
                get = m.get
                for k in keys:
                    get("thin", k)
                return len(keys)

            def raw_get() -> int:
                get, loads = raw.get, codec.loads
                for k in raw_keys:
                    loads(get(k))
                return len(raw_keys)

            batches = [keys[i:i + 100] for i in range(0, len(keys), 100)]
            raw_batches = [raw_keys[i:i + 100] for i in range(0, len(raw_keys), 100)]
            l1_thin = m.l1("thin")

            def manager_get_many() -> int:
                for batch in batches:
                    l1_thin.clear()
                    m.get_many("thin", batch)
                return len(batches)

            def raw_mget() -> int:
                loads = codec.loads
                for batch in raw_batches:
                    l1_thin.clear()  # the same small extra work on both sides
                    [loads(d) for d in raw.mget(batch)]
                return len(raw_batches)

            def raw_mget_only() -> int:
                for batch in raw_batches:
                    l1_thin.clear()
                    raw.mget(batch)
                return len(raw_batches)

            # What decoding costs written by hand: MGET, then msgpack.unpackb of each payload with no
            # tiercache code at all (no header check, no options, no L1)
            unpackb = msgpack.unpackb

            def raw_mget_unpackb() -> int:
                for batch in raw_batches:
                    l1_thin.clear()
                    [unpackb(d[2:]) for d in raw.mget(batch)]
                return len(raw_batches)

            # The same get_many over 100-byte bytes values (the reference payload size), which
            # cost next to nothing to decode: what the manager itself adds to an MGET
            m.set_many("blob", {k: BLOB for k in keys})
            blob_batches = batches
            blob_raw_batches = [[m._l2_key("blob", k) for k in b] for b in batches]
            l1_blob = m.l1("blob")

            def manager_get_many_blob() -> int:
                for batch in blob_batches:
                    l1_blob.clear()
                    m.get_many("blob", batch)
                return len(blob_batches)

            def raw_mget_blob() -> int:
                for batch in blob_raw_batches:
                    l1_blob.clear()
                    raw.mget(batch)
                return len(blob_raw_batches)

            hot_keys = [f"hot:{i}" for i in range(1000)]
            m.set_many("bench", {k: i for i, k in enumerate(hot_keys)})
            l1 = m.l1("bench")
            plain = HashCache(max_bytes=1 << 30)
            for i, k in enumerate(hot_keys):
                plain.set(k, i)

            def manager_l1_hit() -> int:
                get = m.get
                for k in hot_keys:
                    get("bench", k)
                return len(hot_keys)

            m_off.set_many("bench", {k: i for i, k in enumerate(hot_keys)})

            def manager_l1_hit_off() -> int:
                get = m_off.get
                for k in hot_keys:
                    get("bench", k)
                return len(hot_keys)

            def hashcache_get() -> int:
                get = plain.get
                for k in hot_keys:
                    get(k)
                return len(hot_keys)

            def empty_loop() -> int:
                for k in hot_keys:
                    pass
                return len(hot_keys)

            assert l1.get("hot:1") == 1
            s1 = interleave({"manager L2 hit": manager_l2_hit, "redis-py GET + decode": raw_get}, rounds)
            s2 = interleave({"manager get_many(100)": manager_get_many, "redis-py MGET(100) + decode": raw_mget,
                             "redis-py MGET(100)": raw_mget_only, "redis-py MGET(100) + unpackb": raw_mget_unpackb,
                             "manager get_many(100), 100 B bytes": manager_get_many_blob,
                             "redis-py MGET(100), 100 B bytes": raw_mget_blob}, rounds)
            s3 = interleave({"manager L1 hit": manager_l1_hit, "manager L1 hit, metrics off": manager_l1_hit_off,
                             "HashCache.get": hashcache_get, "empty loop": empty_loop}, rounds * 4)
            s4 = writes(url, raw, keys, rounds)
    finally:
        if server is not None:
            server.stop()

    med = {name: statistics.median(v) for s in (s1, s2, s3, s4) for name, v in s.items()}
    loop = med["empty loop"]
    rows = [
        ("L2 hit (GET + decode)", med["manager L2 hit"], med["redis-py GET + decode"], 1.10, "ns/op"),
        ("get_many(100) vs MGET", med["manager get_many(100)"], med["redis-py MGET(100)"], 1.2, "ns/call"),
        ("get_many(100) vs MGET+dec", med["manager get_many(100)"], med["redis-py MGET(100) + decode"], 1.2,
         "ns/call"),
        # not targets: what decoding adds when written by hand (MGET + bare msgpack.unpackb, no tiercache
        # code) against bare MGET, and get_many against that hand-written way
        ("MGET+unpackb vs MGET", med["redis-py MGET(100) + unpackb"], med["redis-py MGET(100)"], None,
         "ns/call"),
        ("get_many(100) vs MGET+unpackb", med["manager get_many(100)"], med["redis-py MGET(100) + unpackb"], None,
         "ns/call"),
        ("get_many(100) 100 B vs MGET", med["manager get_many(100), 100 B bytes"],
         med["redis-py MGET(100), 100 B bytes"], 1.2, "ns/call"),
        ("L1 hit (net of loop)", med["manager L1 hit"] - loop, med["HashCache.get"] - loop, 2.0, "ns/op"),
        # what metrics add to an L1 hit (sampled timing), as a fraction of a HashCache.get
        ("metrics cost on L1 hit", med["manager L1 hit"] - med["manager L1 hit, metrics off"],
         med["HashCache.get"] - loop, 0.10, "ns/op"),
        ("set, invalidation on", med["manager set"], med["redis-py SET + packb"], 1.15, "ns/op"),
        ("delete, invalidation on", med["manager delete"], med["redis-py DEL"], 1.15, "ns/op"),
        ("set_many(100), invalidation on", med["manager set_many(100)"], med["redis-py 100 SETs + packb"], 1.15,
         "ns/call"),
        # not targets: a script (read, check, add, write back keeping the expiry) against the bare command
        ("incr vs INCRBY", med["manager incr"], med["redis-py INCRBY"], None, "ns/op"),
        ("DEL + add vs DEL + SET NX", med["DEL + manager add"], med["DEL + redis-py SET NX + packb"], None,
         "ns/op"),
    ]
    print(f"command:  python {' '.join(sys.argv)}")
    print(f"machine:  {platform.processor() or platform.machine()}, nproc {os.cpu_count()}, "
          f"Python {platform.python_version()}, tiercache {tiercache.IMPLEMENTATION}, "
          f"redis-py {redis.__version__}, hiredis {'yes' if _has_hiredis() else 'no'}, value {data_len} B msgpack")
    print(f"rounds:   {rounds} interleaved rounds per pair (x4 for the L1 pair); medians")
    print(f"{'workload':<30}{'tiercache':>14}{'anchor':>14}{'ratio':>8}  target")
    ok = True
    for name, ours, anchor, target, unit in rows:
        ratio = ours / anchor
        if target is None:
            print(f"{name:<30}{ours:>11.0f} {unit[:2]}{anchor:>11.0f} {unit[:2]}{ratio:>7.2f}x  (no target)")
            results[name] = {"tiercache": ours, "anchor": anchor, "ratio": ratio}
            continue
        status = "PASS" if ratio <= target else "FAIL"
        ok &= status == "PASS"
        print(f"{name:<30}{ours:>11.0f} {unit[:2]}{anchor:>11.0f} {unit[:2]}{ratio:>7.2f}x  <= {target}x {status}")
        results[name] = {"tiercache": ours, "anchor": anchor, "ratio": ratio, "target": target, "status": status}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "medians": med, "samples": {**s1, **s2, **s3, **s4}}, f, indent=2)
    return 0 if ok else 1


LISTENER = """
import sys
sys.path.insert(0, sys.argv[2])
from tiercache.manager import CacheManager
with CacheManager(sys.argv[1], env="test") as m:
    assert m.listener_connected.wait(10)
    print("ready", flush=True)
    sys.stdin.read()  # until the benchmark closes it
"""


def writes(url: str, raw: Any, keys: List[str], rounds: int) -> Dict[str, List[float]]:
    """The write workloads, with cross-process invalidation on: another process's manager listens."""
    from tiercache import wire

    cfg = {"w": NamespaceConfig(l1_ttl=None, l2_ttl=300.0, promotion="immediate")}
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    listener = subprocess.Popen([sys.executable, "-c", LISTENER, url, here], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        return _writes(url, raw, keys, rounds, cfg, wire.key_prefix("test") + "w:")
    finally:
        assert listener.stdin is not None
        listener.stdin.close()
        listener.wait(10)


def _writes(url: str, raw: Any, keys: List[str], rounds: int, cfg: Any, base: str) -> Dict[str, List[float]]:
    with CacheManager(url, env="test", config=cfg) as m:
        assert m.listener_connected is not None and m.listener_connected.wait(10)
        raw_keys = [base + "raw:" + k for k in keys]
        packb = msgpack.packb
        px = 300_000
        batches = [keys[i:i + 100] for i in range(0, len(keys), 100)]
        raw_batches = [raw_keys[i:i + 100] for i in range(0, len(raw_keys), 100)]

        def manager_set() -> int:
            put = m.set
            for k in keys:
                put("w", k, VALUE)
            return len(keys)

        def raw_set() -> int:
            put = raw.set
            for k in raw_keys:
                put(k, packb(VALUE), px=px)
            return len(raw_keys)

        def manager_delete() -> int:
            delete = m.delete
            for k in keys:
                delete("w", k)
            return len(keys)

        def raw_delete() -> int:
            delete = raw.delete
            for k in raw_keys:
                delete(k)
            return len(raw_keys)

        def manager_set_many() -> int:
            for batch in batches:
                m.set_many("w", {k: VALUE for k in batch})
            return len(batches)

        def raw_set_many() -> int:
            for batch in raw_batches:
                pipe = raw.pipeline(transaction=False)
                for k in batch:
                    pipe.set(k, packb(VALUE), px=px)
                pipe.execute()
            return len(raw_batches)

        for k in keys:
            m.set("w", "n:" + k, 0)
            raw.set(base + "raw:n:" + k, 0, px=px)

        def manager_incr() -> int:
            incr = m.incr
            for k in keys:
                incr("w", "n:" + k)
            return len(keys)

        def raw_incrby() -> int:
            incrby = raw.incrby
            for k in raw_keys:
                incrby(k.replace("raw:", "raw:n:", 1), 1)
            return len(raw_keys)

        def manager_add() -> int:
            add, delete = m.add, m.l2.delete
            for k in keys:
                delete(base + "a:" + k)
                add("w", "a:" + k, VALUE)
            return len(keys)

        def raw_set_nx() -> int:
            put, delete = raw.set, raw.delete
            for k in raw_keys:
                delete(k + ":a")
                put(k + ":a", packb(VALUE), px=px, nx=True)
            return len(raw_keys)

        return interleave({"manager set": manager_set, "redis-py SET + packb": raw_set,
                           "manager delete": manager_delete, "redis-py DEL": raw_delete,
                           "manager set_many(100)": manager_set_many, "redis-py 100 SETs + packb": raw_set_many,
                           "manager incr": manager_incr, "redis-py INCRBY": raw_incrby,
                           "DEL + manager add": manager_add, "DEL + redis-py SET NX + packb": raw_set_nx},
                          rounds)


def _has_hiredis() -> bool:
    try:
        import hiredis  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
