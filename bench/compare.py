#!/usr/bin/env python3
"""Side-by-side comparison of tiercache.HashCache with the caches a Python service would pick instead.

    python bench/compare.py [--quick] [--repeat N] [--json OUT.json] [--only NAME,...] [--no-memory]

Every library runs in this one process and run, interleaved: each workload is cut into segments of about
100k operations, and a repetition times every segment on every library in turn, round-robin, the starting
library rotating. A figure is the median ns/op over all segments and repetitions. A timed loop binds the
method to a local (`g = cache.get; for k in keys: g(k)`); an empty loop over the same segment, timed just
before, is subtracted, so ns/op is net of loop overhead. The garbage collector is off while a loop runs
(as in `timeit`).

Bytes per entry are measured in one fresh subprocess per library: RSS (/proc/self/statm) before and after
building a full cache, with the key and value objects created before the first reading.

Workloads, libraries and the targets checked at the end: see bench/README.md.
"""

from __future__ import annotations

import argparse
import collections
import functools
import gc
import importlib
import importlib.util
import json
import os
import random
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from time import perf_counter_ns
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from _report import Printer, machine_info  # bench/_report.py (this directory is on sys.path)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Measure the working tree (where `setup.py build_ext --inplace` puts the extension), not an installed copy.
if os.path.isdir(os.path.join(ROOT, "tiercache")):
    sys.path.insert(0, ROOT)

ZIPF_S = 0.99
SEED = 20240601
# The pure-Python caches take most of a full run and sit 5-50x from the others: fewer repetitions suffice.
SLOW_REPEAT = 2


@dataclass(frozen=True)
class Sizes:
    hit_keys: int  # keys held for get-hit / get-miss
    hit_passes: int  # independently shuffled passes over them per repetition, one segment each
    set_capacity: int
    set_inserts: int  # distinct new keys inserted into a full cache
    zipf_keyspace: int
    zipf_warmup: int  # untimed accesses first, so the timed part starts from a warm cache
    zipf_ops: int
    segment: int  # operations per timed loop in the set and Zipf workloads
    mem_entries: int


FULL = Sizes(100_000, 5, 100_000, 1_000_000, 1_000_000, 250_000, 1_000_000, 100_000, 1_000_000)
QUICK = Sizes(20_000, 5, 10_000, 100_000, 100_000, 25_000, 100_000, 10_000, 100_000)


from compare_libs import BASELINE, COMPILED, PURE, Lib, build_libs, entries, fill  # noqa: E402


# --------------------------------------------------------------------------- timed loops
# Each returns elapsed ns. Separate small functions, so that every name in a loop is a fast local.

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


def loop_readthrough_method(g: Callable[[Any], Any], s: Callable[[Any, Any], Any],
                            keys: Sequence[Any]) -> Tuple[int, int]:
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


def loop_readthrough_function(f: Any, keys: Sequence[Any]) -> Tuple[int, int]:
    before = f.cache_info().misses
    t0 = perf_counter_ns()
    for k in keys:
        f(k)
    return perf_counter_ns() - t0, f.cache_info().misses - before


def getter(lib: Lib, cache: Any) -> Callable[[Any], Any]:
    return cache if lib.kind == "function" else cache.get


def readthrough(lib: Lib, cache: Any, keys: Sequence[Any]) -> Tuple[int, int]:
    if lib.kind == "function":
        return loop_readthrough_function(cache, keys)
    if lib.set_style == "method":
        return loop_readthrough_method(cache.get, cache.set, keys)
    return loop_readthrough_item(cache.get, cache, keys)


def gc_off(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) with the garbage collector off, as timeit does."""
    gc.disable()
    try:
        return fn(*args)
    finally:
        gc.enable()


# --------------------------------------------------------------------------- workloads
# Each workload is cut into segments of about SEGMENT operations. A repetition times every segment on every
# library in turn (the starting library rotates), so the libraries share the machine's conditions at a
# fine grain; a figure is the median over all segments and repetitions of ns/op, less the median ns/op of
# an empty loop over the same segment, timed just before it.

@dataclass
class Result:
    samples: List[float] = field(default_factory=list)  # ns/op of each timed segment
    misses: Optional[int] = None  # read-through workloads: misses over the timed trace (same every repetition)


@dataclass
class Workload:
    key: str
    title: str
    ops: int  # operations per repetition
    segment: int  # operations per timed loop
    results: Dict[str, Result]
    overhead: List[float] = field(default_factory=list)  # ns/op of the empty loop over each segment
    repetitions: int = 0
    exact_lru_hit_ratio: Optional[float] = None
    wall_ns: int = 0  # around the timed segments: wall clock, and this process's CPU time, to show
    cpu_ns: int = 0  # how much of the time other processes took the CPU away

    @property
    def overhead_ns(self) -> float:
        return statistics.median(self.overhead)

    def ns_op(self, name: str) -> Optional[float]:
        r = self.results.get(name)
        return None if r is None or not r.samples else statistics.median(r.samples) - self.overhead_ns

    def ratio(self, name: str, ref: str = BASELINE) -> Optional[float]:
        a, b = self.ns_op(name), self.ns_op(ref)
        return None if a is None or b is None or b <= 0 else a / b

    def hit_ratio(self, name: str) -> Optional[float]:
        r = self.results.get(name)
        return None if r is None or r.misses is None else 1.0 - r.misses / self.ops


def segments(keys: List[Any], size: int) -> List[List[Any]]:
    return [keys[i:i + size] for i in range(0, len(keys), size)]


def interleave(wl: Workload, libs: List[Lib], repeat: int, parts: List[List[Any]],
               start: Callable[[Lib], Any], run: Callable[[Lib, Any, List[Any]], Any],
               finish: Callable[[Lib, Any, List[Any]], None], progress: Callable[[str], None]) -> None:
    """Per repetition: state = start(lib) for each library (untimed), then every segment through
    run(lib, state, segment) -> ns or (ns, misses), libraries in rotating order; then finish(lib, state, outs)."""
    for rep in range(repeat):
        active = [lib for lib in libs if not (lib.slow and rep >= SLOW_REPEAT)]
        states = {lib.name: start(lib) for lib in active}
        outs: Dict[str, List[Any]] = {lib.name: [] for lib in active}
        wall0, cpu0 = perf_counter_ns(), time.process_time_ns()
        for i, part in enumerate(parts):
            progress(f"{wl.key}: repetition {rep + 1}/{repeat}, segment {i + 1}/{len(parts)}")
            wl.overhead.append(gc_off(loop_empty, part) / len(part))
            k = (rep * len(parts) + i) % len(active)
            for lib in active[k:] + active[:k]:
                out = gc_off(run, lib, states[lib.name], part)
                ns = out[0] if isinstance(out, tuple) else out
                wl.results[lib.name].samples.append(ns / len(part))
                outs[lib.name].append(out)
        wl.wall_ns += perf_counter_ns() - wall0
        wl.cpu_ns += time.process_time_ns() - cpu0
        for lib in active:
            finish(lib, states.pop(lib.name), outs[lib.name])
        gc.collect()
        wl.repetitions += 1


def _nothing(lib: Lib, state: Any, outs: List[Any]) -> None:
    pass


def run_get(key: str, title: str, libs: List[Lib], stored: List[Any], passes: List[List[Any]], repeat: int,
            progress: Callable[[str], None]) -> Workload:
    """`get` of every key of each pass (one segment each) on caches of capacity len(stored) holding `stored`.

    The caches are built once and kept for all repetitions (a get changes recency, not contents).
    """
    libs = [lib for lib in libs if lib.supports(key)]
    expect_hits = key != "get_miss"
    getters: Dict[str, Callable[[Any], Any]] = {}
    for lib in libs:
        cache = lib.make(len(stored))
        fill(lib, cache, stored)
        g = getter(lib, cache)
        probe = passes[0][:1000]
        found = sum(g(k) is not None for k in probe)
        if found != (len(probe) if expect_hits else 0):
            raise RuntimeError(f"{lib.name}: {found} of {len(probe)} probe keys found in {key}")
        getters[lib.name] = g
    wl = Workload(key, title, sum(map(len, passes)), len(passes[0]), {lib.name: Result() for lib in libs})
    interleave(wl, libs, repeat, passes, lambda lib: getters[lib.name],
               lambda lib, g, part: loop_get(g, part), _nothing, progress)
    getters.clear()
    gc.collect()
    return wl


def run_set(libs: List[Lib], capacity: int, prefill: List[Any], inserts: List[Any], segment: int, repeat: int,
            progress: Callable[[str], None]) -> Workload:
    """Set `inserts` (keys not in the cache) into a fresh cache already full with `prefill`: every set evicts."""
    libs = [lib for lib in libs if lib.supports("set_evict")]
    wl = Workload("set_evict", f"set with eviction: capacity {capacity:,}, {len(inserts):,} distinct new keys "
                  "set into a full cache", len(inserts), segment, {lib.name: Result() for lib in libs})

    def start(lib: Lib) -> Any:
        cache = lib.make(capacity)
        fill(lib, cache, prefill)
        return cache

    def run(lib: Lib, cache: Any, part: List[Any]) -> int:
        return loop_set_method(cache.set, part) if lib.set_style == "method" else loop_set_item(cache, part)

    def finish(lib: Lib, cache: Any, outs: List[Any]) -> None:
        if len(cache) != capacity:
            raise RuntimeError(f"{lib.name}: {len(cache)} entries after set_evict, expected {capacity}")

    interleave(wl, libs, repeat, segments(inserts, segment), start, run, finish, progress)
    return wl


def zipf_trace(keyspace: int, n: int, seed: int) -> List[int]:
    """`n` keys drawn from a Zipf(ZIPF_S) law bounded to `keyspace` keys.

    numpy's zipf sampler is unbounded and needs s > 1, so draw ranks with P(rank r) ∝ r^-s, r = 1..keyspace,
    by inverse CDF, and map them through a random permutation of the key ids so that popular keys are not
    neighbours in hash order.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    cdf = np.cumsum(1.0 / np.arange(1, keyspace + 1, dtype=np.float64) ** ZIPF_S)
    cdf /= cdf[-1]
    ranks = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), keyspace - 1)
    return rng.permutation(keyspace)[ranks].tolist()


def exact_lru_misses(capacity: int, warmup: Sequence[Any], trace: Sequence[Any]) -> int:
    """Misses over `trace` of an exact LRU cache of `capacity` that first saw `warmup` (an OrderedDict model)."""
    od: "collections.OrderedDict[Any, None]" = collections.OrderedDict()
    misses = 0
    for part, counted in ((warmup, 0), (trace, 1)):
        for k in part:
            if k in od:
                od.move_to_end(k)
            else:
                misses += counted
                od[k] = None
                if len(od) > capacity:
                    od.popitem(last=False)
    return misses


def run_zipf(libs: List[Lib], capacity: int, keyspace: int, warmup: List[int], trace: List[int], segment: int,
             repeat: int, progress: Callable[[str], None]) -> Workload:
    """Read-through (get; on a miss, set) over `trace` on a fresh cache that first ran `warmup`, untimed."""
    libs = [lib for lib in libs if lib.supports("zipf")]
    pct = 100.0 * capacity / keyspace
    key = f"zipf_{pct:g}pct"
    title = (f"Zipf({ZIPF_S}) read-through: {keyspace:,} keys, capacity {capacity:,} ({pct:g}%), "
             f"{len(trace):,} ops after {len(warmup):,} untimed warm-up ops")
    wl = Workload(key, title, len(trace), segment, {lib.name: Result() for lib in libs})
    wl.exact_lru_hit_ratio = 1.0 - exact_lru_misses(capacity, warmup, trace) / len(trace)

    def start(lib: Lib) -> Any:
        cache = lib.make(capacity)
        readthrough(lib, cache, warmup)
        return cache

    def finish(lib: Lib, cache: Any, outs: List[Tuple[int, int]]) -> None:
        misses = sum(m for _, m in outs)
        r = wl.results[lib.name]
        if r.misses is not None and r.misses != misses:
            raise RuntimeError(f"{lib.name}: {misses} misses in {key}, {r.misses} in an earlier repetition")
        r.misses = misses

    interleave(wl, libs, repeat, segments(trace, segment), start, readthrough, finish, progress)
    return wl


# --------------------------------------------------------------------------- memory, one subprocess per library

def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(name: str, n: int) -> None:
    """In a fresh interpreter: print, as JSON, the RSS growth from building a cache of n int->int entries."""
    libs, skipped = build_libs([name], exact=True)
    if not libs:
        raise SystemExit(f"{name}: {skipped[0] if skipped else 'unknown library'}")
    lib = libs[0]
    keys = list(range(n))
    values = [k + n for k in keys]  # distinct int objects, all created before the first reading
    make = lib.make
    if lib.kind == "function":  # lru_cache stores what the function returns: make that the prepared values
        lookup = dict(zip(keys, values))
        make = lambda cap: functools.lru_cache(maxsize=cap)(lookup.__getitem__)  # noqa: E731
    gc.collect()
    gc.disable()
    before = rss_bytes()
    cache = make(n)
    fill(lib, cache, keys, values)
    after = rss_bytes()
    if entries(lib, cache) != n:
        raise SystemExit(f"{name}: holds {entries(lib, cache)} entries, expected {n}")
    print(json.dumps({"name": name, "entries": n, "rss_delta": after - before,
                      "bytes_per_entry": (after - before) / n}))


def run_memory(libs: List[Lib], n: int, progress: Callable[[str], None]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for lib in libs:
        if lib.name.endswith(" +ttl") or not lib.supports("memory"):
            continue  # the same layout as the row without ttl, or a row for some workloads only
        progress(f"memory {lib.name}")
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--memory-child", lib.name, "--entries", str(n)],
            capture_output=True, text=True)
        if proc.returncode != 0:
            out[lib.name] = {"error": ((proc.stderr or proc.stdout).strip().splitlines() or ["failed"])[-1]}
        else:
            out[lib.name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# --------------------------------------------------------------------------- reporting

def fmt_ratio(x: Optional[float], base: Optional[float]) -> str:
    return "-" if x is None or not base else f"{x / base:.2f}x"


def report(pr: Printer, workloads: List[Workload], memory: Dict[str, Any]) -> None:
    for wl in workloads:
        zipf = wl.exact_lru_hit_ratio is not None
        rows = []
        for name in wl.results:
            ns, r = wl.ns_op(name), wl.ratio(name)
            row = [name, "-" if ns is None else f"{ns:.1f}", "-" if r is None else f"{r:.2f}x"]
            if zipf:
                hr = wl.hit_ratio(name)
                row.append("-" if hr is None else f"{hr:.4f}")
            rows.append(row)
        reps = wl.repetitions
        caption = (f"median over {reps} repetitions"
                   + (f" ({SLOW_REPEAT} for the pure-Python caches)" if reps > SLOW_REPEAT else "")
                   + f" x {wl.ops // wl.segment} segments of {wl.segment:,} ops; net of loop overhead "
                   f"({wl.overhead_ns:.1f} ns/op); this process was on a CPU "
                   f"{100 * wl.cpu_ns / max(wl.wall_ns, 1):.0f}% of the time")
        if zipf:
            caption += f"; exact LRU hit ratio {wl.exact_lru_hit_ratio:.4f}"
        pr.table(wl.title, ["library", "ns/op", f"x {BASELINE}"] + (["hit ratio"] if zipf else []), rows, caption)
    if memory:
        base = memory.get(BASELINE, {}).get("bytes_per_entry")
        rows = []
        for name, m in memory.items():
            if "error" in m:
                rows.append([name, "error", m["error"]])
            else:
                rows.append([name, f"{m['bytes_per_entry']:.1f}", fmt_ratio(m["bytes_per_entry"], base)])
        n = next((m["entries"] for m in memory.values() if "entries" in m), 0)
        pr.table(f"memory: cache overhead per entry, {n:,} int->int entries",
                 ["library", "bytes/entry", f"x {BASELINE}"], rows,
                 "RSS growth (/proc/self/statm) from building the cache, one fresh process per library; "
                 "key and value objects exist before the first reading, so are not counted")


def check_targets(workloads: List[Workload], memory: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The limits this script checks, as PASS / FAIL / SKIP lines."""
    by_key = {wl.key: wl for wl in workloads}
    out: List[Dict[str, Any]] = []

    def ratio(label: str, wkey: str, name: str, ref: str, limit: float) -> None:
        wl = by_key.get(wkey)
        a = wl.ns_op(name) if wl else None
        b = wl.ns_op(ref) if wl else None
        if a is None or b is None or b <= 0:
            out.append({"target": label, "status": "SKIP",
                        "detail": f"{name if a is None else ref} not measured"})
            return
        out.append({"target": label, "status": "PASS" if a / b <= limit else "FAIL", "value": a / b,
                    "detail": f"{a / b:.2f}x {ref} ({a:.1f} vs {b:.1f} ns/op), target <= {limit:.1f}x"})

    ratio("get-hit int", "get_hit_int", COMPILED, BASELINE, 0.9)
    ratio("get-hit str", "get_hit_str", COMPILED, BASELINE, 0.9)
    ratio("get-miss", "get_miss", COMPILED, "dict", 1.1)
    ratio("set with eviction", "set_evict", COMPILED, BASELINE, 1.0)
    ratio("set with eviction, cache.set()", "set_evict", COMPILED + " .set()", BASELINE, 1.0)
    for wl in workloads:
        if wl.exact_lru_hit_ratio is None:
            continue
        tag = "Zipf " + wl.key[len("zipf_"):].replace("pct", "%")
        ratio(f"{tag} read-through", wl.key, COMPILED, BASELINE, 0.9)
        ratio(f"{tag} read-through, cache.set()", wl.key, COMPILED + " .set()", BASELINE, 0.9)
        hr = wl.hit_ratio(COMPILED)
        if hr is None:
            out.append({"target": f"{tag} hit ratio", "status": "SKIP", "detail": f"{COMPILED} not measured"})
        else:
            exact_misses = round((1.0 - wl.exact_lru_hit_ratio) * wl.ops)
            same = wl.results[COMPILED].misses == exact_misses
            out.append({"target": f"{tag} hit ratio", "status": "PASS" if same else "FAIL", "value": hr,
                        "detail": f"{hr:.4f}, exact LRU {wl.exact_lru_hit_ratio:.4f}, target equal"})
    # W-TinyLFU's bookkeeping (sketch, three lists, admission) on hits and sets, against the "lru" policy
    ratio("tinylfu get-hit int", "get_hit_int", COMPILED + " tinylfu", COMPILED, 1.3)
    ratio("tinylfu get-hit str", "get_hit_str", COMPILED + " tinylfu", COMPILED, 1.3)
    ratio("tinylfu set with eviction", "set_evict", COMPILED + " tinylfu", COMPILED, 1.3)
    m = memory.get(COMPILED, {})
    if "bytes_per_entry" in m:
        b = m["bytes_per_entry"]
        out.append({"target": "memory", "status": "PASS" if b <= 70 else "FAIL", "value": b,
                    "detail": f"{b:.1f} bytes of overhead per entry, target <= 70"})
    else:
        out.append({"target": "memory", "status": "SKIP", "detail": f"{COMPILED} not measured"})
    # The twin without ttl as the limit is stated, and with ttl as the like-for-like case (every
    # cachetools.TTLCache entry has an expiry).
    for name, tag in ((PURE, "pure twin"), (PURE + " +ttl", "pure twin +ttl")):
        for wkey, what in (("get_hit_int", "get-hit int"), ("get_hit_str", "get-hit str"), ("set_evict", "set")):
            ratio(f"{tag} {what}", wkey, name, "cachetools.TTLCache", 1.0)
    return out


# --------------------------------------------------------------------------- main

def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (about 20 s)")
    ap.add_argument("--repeat", type=int, metavar="N",
                    help=f"repetitions per workload (default 3; the pure-Python caches run at most {SLOW_REPEAT})")
    ap.add_argument("--json", metavar="OUT.json", help="also write the figures, samples and machine to this file")
    ap.add_argument("--only", metavar="NAME,...", help="only the libraries whose name contains one of these")
    ap.add_argument("--no-memory", action="store_true", help="skip the bytes-per-entry subprocesses")
    ap.add_argument("--memory-child", metavar="NAME", help=argparse.SUPPRESS)
    ap.add_argument("--entries", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.memory_child:
        memory_child(args.memory_child, args.entries)
        return 0

    sizes = QUICK if args.quick else FULL
    repeat = args.repeat if args.repeat is not None else 3
    if repeat < 1:
        ap.error("--repeat must be at least 1")
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    if only and not any(o.lower() in BASELINE.lower() for o in only):
        only.append(BASELINE)  # every ratio needs it
    libs, skipped = build_libs(only)
    has_numpy = importlib.util.find_spec("numpy") is not None
    if not has_numpy:
        skipped.append("Zipf workloads: skipped, numpy not installed (pip install numpy)")
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(os.path.abspath(__file__))]
                                   + sys.argv[1:])

    pr = Printer()
    info = machine_info(("cachebox", "cachetools", "lru-dict", "numpy", "rich"))
    pr.line(f"command:   {command}")
    pr.line(f"python:    {info['python']}")
    pr.line(f"machine:   {info['cpu']}, nproc {info['nproc']}, {info['platform']}")
    pr.line(f"date:      {info['date']}" + (f", load average {info['loadavg'][0]:.2f} at start"
                                             if info["loadavg"] else ""))
    pr.line(f"tiercache: {info['tiercache']}")
    pr.line("versions:  " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    pr.line("libraries (get is cache.get(k), set is cache[k] = v unless noted):")
    for lib in libs:
        pr.line(f"  {lib.name}" + (f": {lib.note}" if lib.note else ""))
    for note in skipped:
        pr.line(f"  {note}")
    slow_note = f" ({SLOW_REPEAT} for the pure-Python caches)" if repeat > SLOW_REPEAT else ""
    pr.line(f"timing: {repeat} repetitions{slow_note}; each workload is cut into segments, and every segment "
            "is timed on every library in turn (round-robin, the starting library rotating); figures are "
            "medians over segments and repetitions; ns/op is net of the loop overhead (an empty loop over the "
            "same keys, timed just before); gc off inside timed loops")
    pr.line()

    t_start = time.monotonic()

    def progress(msg: str) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\r  [{time.monotonic() - t_start:6.1f}s] {msg:<50}")
            sys.stderr.flush()

    rnd = random.Random(SEED)
    n = sizes.hit_keys

    def passes(keys: List[Any]) -> List[List[Any]]:
        out = []
        for _ in range(sizes.hit_passes):
            p = list(keys)
            rnd.shuffle(p)
            out.append(p)
        return out

    int_keys = list(range(n))
    str_keys = [f"user:{i}:profile" for i in range(n)]
    workloads = [
        run_get("get_hit_int", f"get-hit: {n:,} int keys, random order", libs, int_keys, passes(int_keys),
                repeat, progress),
        run_get("get_hit_str", f"get-hit: {n:,} str keys, random order", libs, str_keys, passes(str_keys),
                repeat, progress),
        run_get("get_miss", f"get-miss: {n:,} absent int keys, random order, cache holding {n:,}", libs,
                int_keys, passes(list(range(n, 2 * n))), repeat, progress),
    ]
    del int_keys, str_keys
    prefill = list(range(10**9, 10**9 + sizes.set_capacity))
    inserts = list(range(sizes.set_inserts))
    rnd.shuffle(inserts)
    workloads.append(run_set(libs, sizes.set_capacity, prefill, inserts, sizes.segment, repeat, progress))
    del prefill, inserts
    if has_numpy:
        zipf = zipf_trace(sizes.zipf_keyspace, sizes.zipf_warmup + sizes.zipf_ops, SEED)
        warmup, trace = zipf[:sizes.zipf_warmup], zipf[sizes.zipf_warmup:]
        for fraction in (0.01, 0.10):
            workloads.append(run_zipf(libs, int(sizes.zipf_keyspace * fraction), sizes.zipf_keyspace, warmup,
                                      trace, sizes.segment, repeat, progress))
        del zipf, warmup, trace
    memory = {} if args.no_memory else run_memory(libs, sizes.mem_entries, progress)
    elapsed = time.monotonic() - t_start
    info["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    if sys.stderr.isatty():
        sys.stderr.write("\r" + " " * 70 + "\r")

    report(pr, workloads, memory)
    targets = check_targets(workloads, memory)
    pr.line(f"Limits checked for {COMPILED} (the compiled core) and {PURE} (the pure twin):")
    for t in targets:
        pr.line(f"  {t['status']:<4}  {t['target']}: {t['detail']}")
    pr.line(f"total time {elapsed:.0f} s" + (f"; load average {info['loadavg_end'][0]:.2f} at the end "
                                             "(the benchmark itself counts for 1)" if info["loadavg_end"] else ""))

    if args.json:
        doc = {
            "command": command,
            "machine": info,
            "repeat": repeat,
            "slow_repeat": SLOW_REPEAT,
            "sizes": asdict(sizes),
            "seed": SEED,
            "skipped": skipped,
            "workloads": {
                wl.key: {
                    "title": wl.title,
                    "ops": wl.ops,
                    "loop_overhead_ns_op": wl.overhead_ns,
                    "segment_ops": wl.segment,
                    "repetitions": wl.repetitions,
                    "cpu_share": wl.cpu_ns / max(wl.wall_ns, 1),
                    "overhead_samples_ns_op": wl.overhead,
                    "exact_lru_hit_ratio": wl.exact_lru_hit_ratio,
                    "results": {
                        name: {
                            "ns_op": wl.ns_op(name),
                            "ratio_to_baseline": wl.ratio(name),
                            "hit_ratio": wl.hit_ratio(name),
                            "samples_ns_op": r.samples,
                        }
                        for name, r in wl.results.items()
                    },
                }
                for wl in workloads
            },
            "memory": memory,
            "targets": targets,
            "elapsed_s": elapsed,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        pr.line(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
