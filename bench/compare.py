#!/usr/bin/env python3
"""Side-by-side comparison of tiercache.HashCache with the caches a Python service would pick instead.

    python bench/compare.py [--quick] [--repeat N] [--json OUT.json] [--only NAME,...]

Every library runs in this one process and run. Within a workload the libraries are interleaved: each
repetition times every library once, starting one further along the list each time, and a figure is the
median over repetitions. Each timed loop binds the method to a local (`g = cache.get; for k in keys: g(k)`)
and the cost of the same loop with an empty body, timed in the same repetitions, is subtracted: ns/op is
net of loop overhead. The garbage collector is off while a loop runs (as in `timeit`).

Bytes per entry are measured separately, one fresh subprocess per library (RSS delta from
/proc/self/statm around building a full cache; key and value objects exist before the first reading).

Workloads and the issue's targets: see bench/README.md.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import functools
import gc
import importlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Measure the working tree (where `setup.py build_ext --inplace` puts the extension), not an installed copy.
if os.path.isdir(os.path.join(ROOT, "tiercache")):
    sys.path.insert(0, ROOT)

BASELINE = "cachebox.LRUCache"  # every ns/op is also shown as a ratio to this
COMPILED = "tiercache.HashCache"
PURE = "tiercache._core_py.HashCache"
MAX_BYTES = 2**40  # byte accounting on, never the binding limit
TTL = 365 * 24 * 3600.0  # "large" ttl for TTL-style caches: nothing expires during a run
SEED = 20240601
ZIPF_S = 0.99


# --------------------------------------------------------------------------- sizes

@dataclass(frozen=True)
class Sizes:
    hit_keys: int  # distinct keys for get-hit / get-miss
    hit_passes: int  # shuffled passes over them per timed loop
    set_capacity: int
    set_inserts: int  # distinct keys inserted into a full cache
    zipf_keyspace: int
    zipf_ops: int  # timed accesses
    zipf_warmup: int  # untimed accesses first, so the timed part sees a warm cache
    mem_entries: int


FULL = Sizes(100_000, 3, 100_000, 1_000_000, 1_000_000, 1_000_000, 250_000, 1_000_000)
QUICK = Sizes(20_000, 3, 10_000, 100_000, 100_000, 100_000, 25_000, 100_000)


# --------------------------------------------------------------------------- libraries

@dataclass
class Lib:
    """One cache under test: how to build one of a given capacity and how to call it."""

    name: str
    make: Callable[[int], Any]
    kind: str = "cache"  # "cache" (get + set), "dict" (get + item set, no eviction), "function" (lru_cache)
    set_style: str = "item"  # "method": cache.set(k, v); "item": cache[k] = v
    lru: bool = True  # evicts in exact LRU order (Zipf hit ratio should match the simulator)
    note: str = ""

    def supports(self, workload: str) -> bool:
        if self.kind == "dict":
            return workload in ("get_hit_int", "get_hit_str", "get_miss", "memory")
        if self.kind == "function":  # a miss through a cached function inserts, so no plain get-miss/set
            return workload in ("get_hit_int", "get_hit_str", "zipf", "memory")
        return True


def _import(module: str) -> Any:
    return importlib.import_module(module)


def build_libs(only: Optional[Sequence[str]] = None) -> Tuple[List[Lib], List[str]]:
    """The libraries to compare, and a note for each one that is not installed / not built."""
    libs: List[Lib] = []
    skipped: List[str] = []

    def add(name: str, factory: Callable[[], Lib], missing: str) -> None:
        if only and not any(o.lower() in name.lower() for o in only):
            return
        try:
            libs.append(factory())
        except ImportError as exc:
            skipped.append(f"{name}: skipped, {missing} ({exc})")

    def hashcache(module: str, name: str, ttl: bool) -> Callable[[], Lib]:
        def factory() -> Lib:
            cls = _import(module).HashCache
            kw = {"default_ttl": TTL} if ttl else {}
            note = "max_bytes=2**40 (byte accounting on)" + (f", default_ttl={TTL:.0f}" if ttl else ", no ttl")
            return Lib(name, lambda cap: cls(max_bytes=MAX_BYTES, max_entries=cap, **kw), set_style="method",
                       note=note)
        return factory

    add(COMPILED, hashcache("tiercache._core_c", COMPILED, False),
        "compiled core not built (python setup.py build_ext --inplace)")
    add(COMPILED + " +ttl", hashcache("tiercache._core_c", COMPILED + " +ttl", True),
        "compiled core not built")
    add(PURE, hashcache("tiercache._core_py", PURE, False), "tiercache not importable")
    add(PURE + " +ttl", hashcache("tiercache._core_py", PURE + " +ttl", True), "tiercache not importable")
    add("dict", lambda: Lib("dict", lambda cap: {}, kind="dict", note="unbounded; reference floor"), "")
    add("functools.lru_cache",
        lambda: Lib("functools.lru_cache", make_function_cache,
                    kind="function", note="via a cached function; a miss calls it"), "")
    add("cachetools.LRUCache",
        lambda: Lib("cachetools.LRUCache", _import("cachetools").LRUCache), "pip install cachetools")
    add("cachetools.TTLCache",
        lambda: Lib("cachetools.TTLCache", functools.partial(_import("cachetools").TTLCache, ttl=TTL),
                    note=f"ttl={TTL:.0f}"), "pip install cachetools")
    add("lru.LRU", lambda: Lib("lru.LRU", _import("lru").LRU, note="lru-dict"), "pip install lru-dict")
    add("cachebox.LRUCache", lambda: Lib("cachebox.LRUCache", _import("cachebox").LRUCache),
        "pip install cachebox")
    add("cachebox.TTLCache",
        lambda: Lib("cachebox.TTLCache", lambda cap: _import("cachebox").TTLCache(cap, TTL), lru=False,
                    note=f"global_ttl={TTL:.0f}; evicts in insertion (FIFO) order"),
        "pip install cachebox")
    return libs, skipped


def _identity(key: Any) -> Any:
    return key


def fill(lib: Lib, cache: Any, keys: Sequence[Any], values: Optional[Sequence[Any]] = None) -> None:
    """Insert keys, not timed; the value is the key itself unless `values` is given."""
    values = keys if values is None else values
    if lib.kind == "function":  # a cached identity function: calling it stores key -> key
        for k in keys:
            cache(k)
    elif lib.set_style == "method":
        s = cache.set
        for k, v in zip(keys, values):
            s(k, v)
    else:
        for k, v in zip(keys, values):
            cache[k] = v


def getter(lib: Lib, cache: Any) -> Callable[[Any], Any]:
    return cache if lib.kind == "function" else cache.get


# --------------------------------------------------------------------------- timed loops
# Each returns elapsed ns. They are separate small functions so every name in the loop is a fast local.

def loop_empty(keys: Sequence[Any]) -> int:
    t0 = perf_counter_ns()
    for k in keys:
        pass
    return perf_counter_ns() - t0


def loop_get(g: Callable[[Any], Any], keys: Sequence[Any]) -> int:
    t0 = perf_counter_ns()
    for k in keys:
        g(k)
    return perf_counter_ns() - t0


def loop_set_method(s: Callable[[Any, Any], Any], keys: Sequence[Any]) -> int:
    t0 = perf_counter_ns()
    for k in keys:
        s(k, k)
    return perf_counter_ns() - t0


def loop_set_item(c: Any, keys: Sequence[Any]) -> int:
    t0 = perf_counter_ns()
    for k in keys:
        c[k] = k
    return perf_counter_ns() - t0


def loop_readthrough_method(g: Callable[[Any], Any], s: Callable[[Any, Any], Any], keys: Sequence[Any]) -> Tuple[int, int]:
    misses = 0
    t0 = perf_counter_ns()
    for k in keys:
        if g(k) is None:
            s(k, k)
            misses += 1
    return perf_counter_ns() - t0, misses


def loop_readthrough_item(g: Callable[[Any], Any], c: Any, keys: Sequence[Any]) -> Tuple[int, int]:
    misses = 0
    t0 = perf_counter_ns()
    for k in keys:
        if g(k) is None:
            c[k] = k
            misses += 1
    return perf_counter_ns() - t0, misses


def loop_readthrough_function(f: Callable[[Any], Any], keys: Sequence[Any]) -> Tuple[int, int]:
    before = f.cache_info().misses  # type: ignore[attr-defined]
    t0 = perf_counter_ns()
    for k in keys:
        f(k)
    return perf_counter_ns() - t0, f.cache_info().misses - before  # type: ignore[attr-defined]


def readthrough(lib: Lib, cache: Any, keys: Sequence[Any]) -> Tuple[int, int]:
    if lib.kind == "function":
        return loop_readthrough_function(cache, keys)
    if lib.set_style == "method":
        return loop_readthrough_method(cache.get, cache.set, keys)
    return loop_readthrough_item(cache.get, cache, keys)


def make_function_cache(capacity: int) -> Callable[[Any], Any]:
    return functools.lru_cache(maxsize=capacity)(_identity)


# --------------------------------------------------------------------------- workloads

@dataclass
class Result:
    samples: List[int] = field(default_factory=list)  # elapsed ns per repetition
    misses: Optional[int] = None


@dataclass
class Workload:
    key: str
    title: str
    ops: int
    overhead: List[int]
    results: Dict[str, Result]
    exact_lru_hit_ratio: Optional[float] = None

    @property
    def overhead_ns(self) -> float:
        return statistics.median(self.overhead) / self.ops

    def ns_op(self, name: str) -> Optional[float]:
        r = self.results.get(name)
        if r is None or not r.samples:
            return None
        return max(statistics.median(r.samples) / self.ops - self.overhead_ns, 0.0)

    def hit_ratio(self, name: str) -> Optional[float]:
        r = self.results.get(name)
        if r is None or r.misses is None:
            return None
        return 1.0 - r.misses / self.ops


def rotated(libs: List[Lib], rep: int) -> List[Lib]:
    i = rep % len(libs) if libs else 0
    return libs[i:] + libs[:i]


def timed(fn: Callable[[], Any]) -> Any:
    gc.disable()
    try:
        return fn()
    finally:
        gc.enable()


def run_get(key: str, title: str, libs: List[Lib], stored: List[Any], lookups: List[Any], repeat: int,
            progress: Callable[[str], None]) -> Workload:
    """Look up `lookups` in caches holding exactly `stored` (capacity = len(stored))."""
    libs = [lib for lib in libs if lib.supports("get_miss" if key == "get_miss" else key)]
    caches: Dict[str, Callable[[Any], Any]] = {}
    for lib in libs:
        cache = lib.make(len(stored))
        fill(lib, cache, stored)
        g = getter(lib, cache)
        probe = lookups[:1000]
        found = sum(g(k) is not None for k in probe)
        want = len(probe) if key != "get_miss" else 0
        if found != want:
            raise RuntimeError(f"{lib.name}: {found}/{len(probe)} of the probe keys found, expected {want}")
        caches[lib.name] = g
    wl = Workload(key, title, len(lookups), [], {lib.name: Result() for lib in libs})
    for rep in range(repeat):
        progress(f"{key} {rep + 1}/{repeat}")
        wl.overhead.append(timed(lambda: loop_empty(lookups)))
        for lib in rotated(libs, rep):
            g = caches[lib.name]
            wl.results[lib.name].samples.append(timed(lambda: loop_get(g, lookups)))
    caches.clear()
    gc.collect()
    return wl


def run_set(libs: List[Lib], capacity: int, prefill: List[Any], inserts: List[Any], repeat: int,
            progress: Callable[[str], None]) -> Workload:
    """Insert `inserts` (all new keys) into a cache already full with `prefill`: every insert evicts."""
    libs = [lib for lib in libs if lib.supports("set")]
    wl = Workload("set_evict", f"set with eviction (capacity {capacity:,}, {len(inserts):,} distinct inserts "
                  "into a full cache)", len(inserts), [], {lib.name: Result() for lib in libs})
    for rep in range(repeat):
        progress(f"set_evict {rep + 1}/{repeat}")
        wl.overhead.append(timed(lambda: loop_empty(inserts)))
        for lib in rotated(libs, rep):
            cache = lib.make(capacity)
            fill(lib, cache, prefill)
            if lib.set_style == "method":
                s = cache.set
                ns = timed(lambda: loop_set_method(s, inserts))
                del s
            else:
                ns = timed(lambda: loop_set_item(cache, inserts))
            if len(cache) != capacity:
                raise RuntimeError(f"{lib.name}: holds {len(cache)} entries after the run, expected {capacity}")
            wl.results[lib.name].samples.append(ns)
            del cache
            gc.collect()
    return wl


def zipf_trace(keyspace: int, n: int, seed: int) -> List[int]:
    """`n` keys drawn from a Zipf(s=0.99) law bounded to `keyspace` keys (inverse CDF).

    numpy's own zipf sampler is unbounded and needs s > 1, so draw ranks 1..keyspace with P(rank r) ∝ r^-s
    and map ranks to a random permutation of the key ids, so popular keys do not sit in adjacent slots.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, keyspace + 1, dtype=np.float64) ** ZIPF_S
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    ranks = np.searchsorted(cdf, rng.random(n), side="right")
    np.minimum(ranks, keyspace - 1, out=ranks)
    ids = rng.permutation(keyspace)
    return ids[ranks].tolist()


def exact_lru_misses(capacity: int, warmup: Sequence[Any], trace: Sequence[Any]) -> int:
    """Misses of an exact LRU cache of `capacity` over `trace`, after `warmup` (an OrderedDict model)."""
    od: "collections.OrderedDict[Any, None]" = collections.OrderedDict()
    misses = 0
    for part, count in ((warmup, False), (trace, True)):
        for k in part:
            if k in od:
                od.move_to_end(k)
            else:
                misses += count
                od[k] = None
                if len(od) > capacity:
                    od.popitem(last=False)
    return misses


def run_zipf(libs: List[Lib], capacity: int, keyspace: int, warmup: List[int], trace: List[int], repeat: int,
             progress: Callable[[str], None]) -> Workload:
    libs = [lib for lib in libs if lib.supports("zipf")]
    pct = 100.0 * capacity / keyspace
    key = f"zipf_{pct:g}pct"
    wl = Workload(key, f"Zipf({ZIPF_S}) read-through, {keyspace:,} keys, capacity {capacity:,} ({pct:g}%), "
                  f"{len(trace):,} ops after {len(warmup):,} warm-up ops; on miss: set",
                  len(trace), [], {lib.name: Result() for lib in libs})
    wl.exact_lru_hit_ratio = 1.0 - exact_lru_misses(capacity, warmup, trace) / len(trace)
    for rep in range(repeat):
        progress(f"{key} {rep + 1}/{repeat}")
        wl.overhead.append(timed(lambda: loop_empty(trace)))
        for lib in rotated(libs, rep):
            cache = lib.make(capacity)
            timed(lambda: readthrough(lib, cache, warmup))
            ns, misses = timed(lambda: readthrough(lib, cache, trace))
            r = wl.results[lib.name]
            r.samples.append(ns)
            if r.misses is not None and r.misses != misses:
                raise RuntimeError(f"{lib.name}: {misses} misses, {r.misses} in an earlier repetition")
            r.misses = misses
            del cache
            gc.collect()
    return wl


# --------------------------------------------------------------------------- memory (subprocess per library)

def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(name: str, n: int) -> None:
    """Runs in a fresh interpreter: print the RSS growth per entry of a cache holding n int->int entries."""
    libs, _ = build_libs([name])
    lib = next(lib for lib in libs if lib.name == name)
    keys = list(range(n))
    values = [k + n for k in keys]  # distinct int objects (above the small-int cache), created up front
    lookup = dict(zip(keys, values)) if lib.kind == "function" else None
    gc.collect()
    gc.disable()
    before = rss_bytes()
    if lib.kind == "function":
        f = functools.lru_cache(maxsize=n)(lookup.__getitem__)  # type: ignore[union-attr]
        for k in keys:
            f(k)
        held = f.cache_info().currsize
        cache: Any = f
    else:
        cache = lib.make(n)
        fill(lib, cache, keys, values)
        held = len(cache)
    after = rss_bytes()
    if held != n:
        raise SystemExit(f"{name}: holds {held} entries, expected {n}")
    print(json.dumps({"name": name, "entries": n, "rss_delta": after - before,
                      "bytes_per_entry": (after - before) / n}))
    del cache


def run_memory(libs: List[Lib], n: int, progress: Callable[[str], None]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for lib in libs:
        if lib.name.endswith("+ttl"):
            continue  # same layout as the row without ttl
        progress(f"memory {lib.name}")
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--memory-child", lib.name, "--entries", str(n)],
            capture_output=True, text=True)
        if proc.returncode != 0:
            out[lib.name] = {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
            continue
        out[lib.name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# --------------------------------------------------------------------------- reporting

def machine_info() -> Dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count()
    versions = {}
    for dist in ("cachebox", "cachetools", "lru-dict", "numpy"):
        try:
            from importlib.metadata import version

            versions[dist] = version(dist)
        except Exception:
            versions[dist] = "not installed"
    try:
        import tiercache

        tc = f"{tiercache.__version__} from {os.path.dirname(tiercache.__file__)}, " \
             f"tiercache.IMPLEMENTATION={tiercache.IMPLEMENTATION!r}"
    except Exception as exc:  # report, do not hide, a broken package
        tc = f"not importable: {exc!r}"
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "cpu": cpu,
        "nproc": nproc,
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "tiercache": tc,
        "versions": versions,
    }


class Printer:
    """rich when installed, plain text otherwise."""

    def __init__(self) -> None:
        try:
            from rich.console import Console

            self.console: Any = Console(width=None if sys.stdout.isatty() else 100)
        except ImportError:
            self.console = None

    def line(self, text: str = "") -> None:
        if self.console is not None:
            self.console.print(text, markup=False, highlight=False)
        else:
            print(text)

    def table(self, title: str, header: List[str], rows: List[List[str]], caption: str = "") -> None:
        if self.console is not None:
            from rich.table import Table

            t = Table(title=title, title_justify="left", caption=caption or None, caption_justify="left")
            for i, h in enumerate(header):
                t.add_column(h, justify="left" if i == 0 else "right")
            for row in rows:
                t.add_row(*row)
            self.console.print(t)
            return
        widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
        print(title)
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        print("  ".join("-" * w for w in widths))
        for row in rows:
            print("  ".join((c.ljust(w) if i == 0 else c.rjust(w))
                            for i, (c, w) in enumerate(zip(row, widths))))
        if caption:
            print(caption)
        print()


def fmt_ratio(x: Optional[float], base: Optional[float]) -> str:
    if x is None or not base:
        return "-"
    return f"{x / base:.2f}x"


def report(pr: Printer, workloads: List[Workload], memory: Dict[str, Any]) -> None:
    for wl in workloads:
        base = wl.ns_op(BASELINE)
        zipf = wl.exact_lru_hit_ratio is not None
        header = ["library", "ns/op", f"x {BASELINE}"] + (["hit ratio"] if zipf else [])
        rows = []
        for name in wl.results:
            ns = wl.ns_op(name)
            row = [name, f"{ns:.1f}" if ns is not None else "-", fmt_ratio(ns, base)]
            if zipf:
                hr = wl.hit_ratio(name)
                row.append(f"{hr:.4f}" if hr is not None else "-")
            rows.append(row)
        caption = (f"median of {len(wl.overhead)} repetitions; {wl.ops:,} ops per loop; "
                   f"net of loop overhead {wl.overhead_ns:.1f} ns/op")
        if zipf:
            caption += f"; exact LRU hit ratio {wl.exact_lru_hit_ratio:.4f}"
        pr.table(wl.title, header, rows, caption)
    if memory:
        base = memory.get(BASELINE, {}).get("bytes_per_entry")
        rows = []
        for name, m in memory.items():
            if "error" in m:
                rows.append([name, "error: " + " ".join(m["error"]), "-"])
                continue
            rows.append([name, f"{m['bytes_per_entry']:.1f}", fmt_ratio(m["bytes_per_entry"], base)])
        n = next((m["entries"] for m in memory.values() if "entries" in m), 0)
        pr.table(f"memory: cache overhead per entry, {n:,} int->int entries",
                 ["library", "bytes/entry", f"x {BASELINE}"], rows,
                 "RSS delta (/proc/self/statm) around building the cache, one fresh process per library; "
                 "key and value objects created before the first reading, so not counted")


def targets(workloads: List[Workload], memory: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The issue's targets as pass/fail lines."""
    by = {wl.key: wl for wl in workloads}
    out: List[Dict[str, Any]] = []

    def ratio_check(label: str, wkey: str, name: str, ref: str, limit: float) -> None:
        wl = by.get(wkey)
        a = wl.ns_op(name) if wl else None
        b = wl.ns_op(ref) if wl else None
        if a is None or not b:
            missing = name if a is None else ref
            out.append({"target": label, "status": "SKIP", "detail": f"{missing} not measured"})
            return
        r = a / b
        out.append({"target": label, "status": "PASS" if r <= limit else "FAIL", "value": r,
                    "detail": f"{r:.2f}x {ref} ({a:.1f} vs {b:.1f} ns/op; target <= {limit:g}x)"})

    ratio_check("get-hit int <= 0.9x cachebox.LRUCache", "get_hit_int", COMPILED, BASELINE, 0.9)
    ratio_check("get-hit str <= 0.9x cachebox.LRUCache", "get_hit_str", COMPILED, BASELINE, 0.9)
    ratio_check("get-miss <= 1.1x dict.get", "get_miss", COMPILED, "dict", 1.1)
    ratio_check("set with eviction <= 1.0x cachebox.LRUCache", "set_evict", COMPILED, BASELINE, 1.0)
    for wl in workloads:
        if wl.exact_lru_hit_ratio is None:
            continue
        tag = wl.key.replace("zipf_", "Zipf ").replace("pct", "%")
        ratio_check(f"{tag} read-through <= 0.9x cachebox.LRUCache", wl.key, COMPILED, BASELINE, 0.9)
        hr = wl.hit_ratio(COMPILED)
        if hr is None:
            out.append({"target": f"{tag} hit ratio == exact LRU", "status": "SKIP",
                        "detail": f"{COMPILED} not measured"})
        else:
            ok = wl.results[COMPILED].misses == round((1 - wl.exact_lru_hit_ratio) * wl.ops)
            out.append({"target": f"{tag} hit ratio == exact LRU", "status": "PASS" if ok else "FAIL",
                        "value": hr, "detail": f"{hr:.4f} vs exact LRU {wl.exact_lru_hit_ratio:.4f}"})
    m = memory.get(COMPILED, {})
    if "bytes_per_entry" in m:
        b = m["bytes_per_entry"]
        out.append({"target": "<= 70 bytes overhead per entry", "status": "PASS" if b <= 70 else "FAIL",
                    "value": b, "detail": f"{b:.1f} B/entry"})
    else:
        out.append({"target": "<= 70 bytes overhead per entry", "status": "SKIP",
                    "detail": f"{COMPILED} not measured"})
    for name, tag in ((PURE, "pure twin"), (PURE + " +ttl", "pure twin +ttl")):
        for wkey in ("get_hit_int", "get_hit_str", "set_evict"):
            ratio_check(f"{tag} {wkey.replace('_', '-')} <= 1.0x cachetools.TTLCache", wkey, name,
                        "cachetools.TTLCache", 1.0)
    return out


# --------------------------------------------------------------------------- main

def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes and 3 repetitions (~20 s)")
    ap.add_argument("--repeat", type=int, default=None, help="repetitions per workload (default 5, quick 3)")
    ap.add_argument("--json", metavar="OUT.json", help="also write every sample and figure to this file")
    ap.add_argument("--only", metavar="NAME,...", help="only libraries whose name contains one of these")
    ap.add_argument("--no-memory", action="store_true", help="skip the bytes-per-entry subprocesses")
    ap.add_argument("--memory-child", metavar="NAME", help=argparse.SUPPRESS)
    ap.add_argument("--entries", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.memory_child:
        memory_child(args.memory_child, args.entries)
        return 0

    sizes = QUICK if args.quick else FULL
    repeat = args.repeat or (3 if args.quick else 5)
    if repeat < 1:
        ap.error("--repeat must be >= 1")
    only = [s.strip() for s in args.only.split(",")] if args.only else None
    if only and not any(o.lower() in BASELINE.lower() for o in only):
        only.append(BASELINE)  # ratios need the baseline
    libs, skipped = build_libs(only)
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__)] + sys.argv[1:])

    pr = Printer()
    info = machine_info()
    pr.line(f"command: {command}")
    pr.line(f"python:  {info['python']}")
    pr.line(f"cpu:     {info['cpu']}, nproc {info['nproc']}; {info['platform']}; {info['date']}")
    pr.line(f"tiercache {info['tiercache']}")
    pr.line("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    pr.line("libraries:")
    for lib in libs:
        pr.line(f"  {lib.name}" + (f": {lib.note}" if lib.note else ""))
    for note in skipped:
        pr.line(f"  {note}")
    pr.line(f"timing: median of {repeat} repetitions, libraries interleaved round-robin; ns/op is net of the "
            "empty-loop overhead measured in the same run; gc off inside timed loops")
    pr.line()

    t_start = time.monotonic()

    def progress(msg: str) -> None:
        sys.stderr.write(f"\r  [{time.monotonic() - t_start:6.1f}s] {msg:<60}")
        sys.stderr.flush()

    import random

    rnd = random.Random(SEED)
    n = sizes.hit_keys
    int_keys = list(range(n))
    str_keys = [f"user:{i}:profile" for i in range(n)]
    miss_keys = list(range(n, 2 * n))

    def passes(keys: List[Any]) -> List[Any]:
        out: List[Any] = []
        for _ in range(sizes.hit_passes):
            p = list(keys)
            rnd.shuffle(p)
            out.extend(p)
        return out

    workloads: List[Workload] = []
    workloads.append(run_get("get_hit_int", f"get-hit, {n:,} int keys, random order", libs, int_keys,
                             passes(int_keys), repeat, progress))
    workloads.append(run_get("get_hit_str", f"get-hit, {n:,} str keys, random order", libs, str_keys,
                             passes(str_keys), repeat, progress))
    workloads.append(run_get("get_miss", f"get-miss, {n:,} absent int keys, cache holding {n:,}", libs,
                             int_keys, passes(miss_keys), repeat, progress))
    del str_keys, miss_keys
    cap = sizes.set_capacity
    prefill = list(range(10**9, 10**9 + cap))
    inserts = list(range(sizes.set_inserts))
    rnd.shuffle(inserts)
    workloads.append(run_set(libs, cap, prefill, inserts, repeat, progress))
    del prefill, inserts
    try:
        full = zipf_trace(sizes.zipf_keyspace, sizes.zipf_warmup + sizes.zipf_ops, SEED)
    except ImportError:
        pr.line("note: Zipf workloads skipped, numpy not installed (pip install numpy)")
    else:
        warm, trace = full[: sizes.zipf_warmup], full[sizes.zipf_warmup:]
        for frac in (0.01, 0.10):
            workloads.append(run_zipf(libs, int(sizes.zipf_keyspace * frac), sizes.zipf_keyspace, warm, trace,
                                      repeat, progress))
        del full, warm, trace
    memory = {} if args.no_memory else run_memory(libs, sizes.mem_entries, progress)
    elapsed = time.monotonic() - t_start
    sys.stderr.write("\r" + " " * 80 + "\r")

    report(pr, workloads, memory)
    checks = targets(workloads, memory)
    pr.line(f"Targets (issue 2; {COMPILED} is the compiled core, the pure twin is {PURE}):")
    for c in checks:
        pr.line(f"  {c['status']:<4}  {c['target']}: {c['detail']}")
    pr.line()
    pr.line(f"total time {elapsed:.0f} s")

    if args.json:
        doc = {
            "command": command,
            "machine": info,
            "repeat": repeat,
            "sizes": sizes.__dict__,
            "seed": SEED,
            "skipped": skipped,
            "workloads": {
                wl.key: {
                    "title": wl.title,
                    "ops": wl.ops,
                    "loop_overhead_ns_op": wl.overhead_ns,
                    "overhead_samples_ns": wl.overhead,
                    "exact_lru_hit_ratio": wl.exact_lru_hit_ratio,
                    "results": {
                        name: {
                            "ns_op": wl.ns_op(name),
                            "ratio_to_baseline": (wl.ns_op(name) / wl.ns_op(BASELINE))
                            if wl.ns_op(name) is not None and wl.ns_op(BASELINE) else None,
                            "hit_ratio": wl.hit_ratio(name),
                            "samples_ns": r.samples,
                        }
                        for name, r in wl.results.items()
                    },
                }
                for wl in workloads
            },
            "memory": memory,
            "targets": checks,
            "elapsed_s": elapsed,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        pr.line(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
