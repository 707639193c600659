#!/usr/bin/env python3
"""Hit ratios of tiercache.HashCache policies beside exact LRU and Belady's optimum, on real traces and Zipf.

    python bench/hit_ratio.py [--traces DIR] [--quick] [--variants] [--seeds N] [--bytes-bound F]
                              [--theine-runs N] [--json OUT.json]

Traces come from DIR (default: $TIERCACHE_TRACES, else ../shared/traces next to the repository root); their
formats and the published reference figures are in that directory's README. Each row replays one trace at one
cache size (in entries) through:

- exact LRU: an OrderedDict simulator;
- OPT: Belady's optimal offline policy with bypass (on a miss with a full cache, evict the resident key whose
  next use is furthest away, or do not admit the new key when its own next use is furthest);
- HashCache <policy>: tiercache.HashCache(max_entries=size, max_bytes=2**40, policy=...) used read-through
  (get; on a miss, set). Every policy HashCache accepts becomes a column: a policy is tried by passing the
  keyword, and a TypeError or ValueError means this build does not have it;
- theine, when installed (`pip install theine`): its W-TinyLFU (Rust), used read-through the same way. It
  draws random numbers, so the same trace gives it different hit ratios from run to run (on loop @ 1000 over
  more than a point): each row runs it --theine-runs times (default 5) and shows the mean, with the range in
  the next column, and tinylfu is compared with that mean.

Hit ratio = hits / all requests (cold misses included), in %. The published exact-LRU and OPT figures must
reproduce to 0.01 points, and HashCache "lru" must equal exact LRU hit for hit; any row that does not is
flagged, and the exit status is 1. Zipf rows: bounded Zipf(0.99) over 100k keys (inverse CDF, fixed seed),
1M requests (200k with --quick), cache at 1 % and 10 % of the keys; they have no published figures.

--seeds N replays each Zipf exponent (0.99, and with --variants the others) at each size with N seeds, 500k
requests each, and prints the mean and range of HashCache tinylfu and theine over the seeds: one seed's key
labelling decides which keys' sketch counters collide, a few tenths of a point either way.

--bytes-bound F bounds the HashCache columns by bytes at each size (entries weigh 1 byte) with max_entries
F x the size: a cache whose entry limit is far above what its bytes hold.

--variants adds workloads generated here, to check that tinylfu's adaptation is not fitted to the shared
traces: `drift` with other parameters (new-key rate q, Pareto alpha, age scale; 600k requests each, made by
the traces directory's gen_drift.py) at 500 / 2,000 / 10,000 entries, Zipf with exponents 0.7, 0.9 and
1.1 at 1 % and 10 % of the keys, and mixed programs at 1,000 / 2,000 / 5,000 entries: oltp + loop,
drift + oltp and drift + loop merged at random (each trace in its own order, its keys kept apart from the
other's), and oltp then loop one after the other.
"""

from __future__ import annotations

import argparse
import collections
import functools
import gzip
import heapq
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from _report import Printer, machine_info  # bench/_report.py (this directory is on sys.path)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Measure the working tree (where `setup.py build_ext --inplace` puts the extension), not an installed copy.
if os.path.isdir(os.path.join(ROOT, "tiercache")):
    sys.path.insert(0, ROOT)

DEFAULT_TRACES = os.path.join(os.path.dirname(ROOT), "shared", "traces")
CANDIDATE_POLICIES = ("lru", "tinylfu")  # HashCache policies to try; those this build accepts become columns
MAX_BYTES = 2**40  # byte accounting on, never the binding limit
ENTRY_FACTOR = 0  # --bytes-bound F: max_bytes binds at the size (entries weigh 1), max_entries = F x size
SEED = 20240601
ZIPF_S = 0.99
ZIPF_KEYS = 100_000
ZIPF_REQUESTS = 1_000_000
ZIPF_REQUESTS_QUICK = 200_000
Keys = Union[Sequence[Any], np.ndarray]  # a trace: numpy int64 array or any sequence of hashable keys
TOLERANCE = 0.01  # percentage points: the published figures are exact simulator results, rounded

# Published reference hit ratios (%) from the traces README: exact LRU, W-TinyLFU as published, OPT.
REFERENCE: Dict[Tuple[str, int], Tuple[float, str, float]] = {
    ("oltp", 1000): (32.83, "39.95", 53.62),
    ("oltp", 1868): (41.63, "44.62", 59.76),
    ("oltp", 5606): (54.98, "55.07", 69.15),
    ("glimpse", 500): (0.95, "≈32.7", 34.33),
    ("glimpse", 1000): (11.21, "≈50.2", 53.15),
    ("loop", 500): (0.00, "≈44.5", 49.36),
    ("loop", 1000): (0.00, "≈98", 98.71),
    ("drift", 500): (70.02, "-", 74.94),
    ("drift", 2000): (74.04, "-", 74.94),
    ("drift", 10000): (74.83, "-", 74.94),
}
TRACE_FILES = {
    "oltp": ("oltp.lis.gz", "lis"),
    "glimpse": ("glimpse.trc.gz", "lirs"),
    "loop": ("loop.trc.gz", "lirs"),
    "drift": ("drift.trc.gz", "lirs"),
}
TRACE_SIZES = {"oltp": (1000, 1868, 5606), "glimpse": (500, 1000), "loop": (500, 1000), "drift": (500, 2000, 10000)}
ZIPF_FRACTIONS = (0.01, 0.10)
DRIFT_VARIANTS = ((0.1, 1.5, 200), (0.4, 1.1, 20), (0.25, 2.0, 500), (0.05, 1.3, 1000), (0.15, 1.05, 100))
DRIFT_VARIANT_REQUESTS = 600_000
DRIFT_VARIANT_SIZES = (500, 2000, 10000)
ZIPF_VARIANTS = (0.7, 0.9, 1.1)
# mixed programs: shared traces merged at random (each in its own order, keys kept apart) or one after another
MIXES = ((("oltp", "loop"), "merged", None), (("drift", "oltp"), "merged", 500_000),
         (("drift", "loop"), "merged", 300_000), (("oltp", "loop"), "one after another", None))
MIX_SIZES = (1000, 2000, 5000)
SEEDS_REQUESTS = 500_000  # per seed, with --seeds

# Targets for HashCache "tinylfu" checked when the policy exists: (trace, size, minimum %).
TINYLFU_TARGETS = (("oltp", 1868, 44.6), ("glimpse", 1000, 50.0), ("loop", 500, 44.0))
TINYLFU_MAX_BELOW_LRU = 1.0  # points


# --------------------------------------------------------------------------- traces

def read_lis(path: str) -> np.ndarray:
    """An ARC `.lis` trace (gzip): each line `start num ignore reqno` stands for keys start .. start+num-1."""
    with gzip.open(path, "rb") as f:
        cols = np.array(f.read().split(), dtype=np.int64)
    if cols.size % 4:
        raise ValueError(f"{path}: expected 4 columns per line, got {cols.size} fields")
    cols = cols.reshape(-1, 4)
    start, num = cols[:, 0], cols[:, 1]
    if (num == 1).all():
        return start.copy()
    if (num < 1).any():
        raise ValueError(f"{path}: num_blocks < 1 on line {int(np.argmax(num < 1)) + 1}")
    # Line i expands to start[i] + 0 .. num[i]-1: repeat each start, then add the offset within its run.
    first = np.cumsum(num) - num
    offsets = np.arange(int(num.sum()), dtype=np.int64) - np.repeat(first, num)
    return np.repeat(start, num) + offsets


def read_lirs(path: str) -> np.ndarray:
    """A LIRS trace (gzip): one integer key per line; blank lines and `*` lines are skipped."""
    with gzip.open(path, "rb") as f:
        tokens = [t for t in f.read().split() if t != b"*"]  # split() already drops blank lines
    return np.array(tokens, dtype=np.int64)


def read_trace(directory: str, name: str) -> np.ndarray:
    filename, fmt = TRACE_FILES[name]
    path = os.path.join(directory, filename)
    return read_lis(path) if fmt == "lis" else read_lirs(path)


def zipf_keys(n_keys: int, n_requests: int, s: float = ZIPF_S, seed: int = SEED) -> np.ndarray:
    """Bounded Zipf(s) over `n_keys` keys: rank r (1-based) has probability ∝ 1/r**s; key ids are shuffled."""
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(1.0 / np.arange(1, n_keys + 1, dtype=np.float64) ** s)
    cdf /= cdf[-1]
    ranks = np.minimum(np.searchsorted(cdf, rng.random(n_requests), side="right"), n_keys - 1)
    # A random key per rank, so that popularity does not follow the integers' hash order.
    return rng.permutation(n_keys).astype(np.int64)[ranks]


# --------------------------------------------------------------------------- simulators
# Each takes a sequence of keys (a numpy int64 array or a list) and a size in entries and returns the hit count.

def drift_variant(traces_dir: str, q: float, alpha: float, scale: float, n: int = DRIFT_VARIANT_REQUESTS,
                  seed: int = 3) -> np.ndarray:
    """A `drift` trace with other parameters, from the traces directory's generator (gen_drift.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_drift", os.path.join(traces_dir, "gen_drift.py"))
    if spec is None or spec.loader is None:
        raise OSError(f"no gen_drift.py in {traces_dir}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return np.fromiter(module.drift(n, q, alpha, scale, seed), dtype=np.int64, count=n)


def mixed_trace(traces_dir: str, names: Sequence[str], how: str, limit: Optional[int] = None,
                seed: int = SEED) -> np.ndarray:
    """Several programs sharing one cache: the traces `names` (their first `limit` requests), each trace's keys
    moved to a range of their own, "merged" (interleaved at random, each in its own order) or "one after
    another"."""
    parts = [read_trace(traces_dir, name)[:limit].astype(np.int64) + (i + 1) * 10**12
             for i, name in enumerate(names)]
    if how != "merged":
        return np.concatenate(parts)
    order = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(parts)), [len(p) for p in parts]))
    out = np.empty(len(order), dtype=np.int64)
    for i, part in enumerate(parts):
        out[order == i] = part
    return out


def _as_list(keys: Keys) -> List[Any]:
    # Python ints from a list are much faster to hash and compare in the loops below than numpy scalars.
    return keys.tolist() if isinstance(keys, np.ndarray) else list(keys)


def lru_hits(keys: Keys, size: int) -> int:
    """Exact LRU with room for `size` keys."""
    if size <= 0:
        return 0
    od: "collections.OrderedDict[Any, None]" = collections.OrderedDict()
    touch = od.move_to_end
    evict = od.popitem
    hits = 0
    for k in _as_list(keys):
        if k in od:
            touch(k)
            hits += 1
        else:
            od[k] = None
            if len(od) > size:
                evict(False)
    return hits


def next_use(keys: Keys) -> np.ndarray:
    """For each position i, the position of the next request for keys[i]; `n + i` when there is none.

    The "never again" values are distinct and all beyond the trace, so every position's next use is unique.
    Vectorized: a stable sort groups each key's positions in order; within a group each points at the next.
    """
    arr = np.asarray(keys)
    n = len(arr)
    out = np.arange(n, 2 * n, dtype=np.int64)
    if n < 2:
        return out
    order = np.argsort(arr, kind="stable")
    same = arr[order[1:]] == arr[order[:-1]]
    out[order[:-1][same]] = order[1:][same]
    return out


def opt_hits(keys: Keys, size: int) -> int:
    """Belady's OPT with bypass: evict the resident key used furthest in the future, or skip admitting the
    new key when its own next use is furthest. O(n log n).

    A resident key is represented only by its next-use position (unique, see next_use): the request at
    position i is a hit exactly when some resident key's next use is i. `resident` holds those positions;
    `heap` holds their negatives for the furthest one, with lazy deletion (a hit leaves its old entry behind,
    which is then in the past and never at the top; the heap is rebuilt when such entries pile up).
    """
    if size <= 0:
        return 0
    nxt = next_use(keys).tolist()
    resident: set = set()
    heap: List[int] = []
    add, remove = resident.add, resident.remove
    push, replace = heapq.heappush, heapq.heapreplace
    limit = 4 * size + 1024
    hits = 0
    for i, nu in enumerate(nxt):
        if i in resident:
            hits += 1
            remove(i)
            add(nu)
            push(heap, -nu)
            if len(heap) > limit:
                heap = [-v for v in resident]
                heapq.heapify(heap)
        elif len(resident) < size:
            add(nu)
            push(heap, -nu)
        else:
            far = -heap[0]
            while far not in resident:  # stale top: drop it
                heapq.heappop(heap)
                far = -heap[0]
            if far > nu:  # otherwise bypass: the new key's next use is the furthest
                remove(far)
                add(nu)
                replace(heap, -nu)
    return hits


_MISS = object()


def make_hashcache(size: int, policy: str, cls: Any = None) -> Any:
    """A HashCache bounded at `size` entries (with --bytes-bound, by bytes at `size` and max_entries F x size)
    with `policy`; TypeError/ValueError when `cls` lacks the policy.

    "lru" is also accepted by a HashCache without the `policy` keyword: LRU is what such a build does.
    """
    if cls is None:
        import tiercache

        cls = tiercache.HashCache  # Any: this build may not declare the policy keyword yet
    max_bytes, max_entries = (size, ENTRY_FACTOR * size) if ENTRY_FACTOR else (MAX_BYTES, size)
    try:
        return cls(max_bytes=max_bytes, max_entries=max_entries, policy=policy)
    except TypeError:
        if policy != "lru":
            raise
        return cls(max_bytes=max_bytes, max_entries=max_entries)


def hashcache_policies(candidates: Iterable[str] = CANDIDATE_POLICIES, cls: Optional[Any] = None) -> List[str]:
    """The policies among `candidates` that this HashCache build accepts."""
    found = []
    for policy in candidates:
        try:
            cache = make_hashcache(2, policy, cls)
        except (TypeError, ValueError):
            continue
        close = getattr(cache, "close", None)
        if close is not None:
            close()
        found.append(policy)
    return found


def hashcache_hits(keys: Keys, size: int, policy: str = "lru", cls: Optional[Any] = None) -> int:
    """Replay `keys` read-through on a HashCache (get; on a miss, set with size 1) and count the hits."""
    if size <= 0:
        return 0
    cache = make_hashcache(size, policy, cls)
    get, put, miss = cache.get, cache.set, _MISS
    hits = 0
    for k in _as_list(keys):
        if get(k, miss) is miss:
            put(k, True, None, 1)
        else:
            hits += 1
    stats_hits = cache.stats()["hits"]
    if stats_hits != hits:  # the cache's own count must agree with what the replay saw
        raise AssertionError(f"HashCache({policy!r}) stats report {stats_hits} hits, the replay saw {hits}")
    cache.close()
    return hits


def theine_hits(keys: Keys, size: int) -> int:
    """Replay `keys` read-through on theine's Cache (W-TinyLFU in Rust): get; on a miss, set."""
    from theine import Cache

    cache = Cache(size)
    get, put = cache.get, cache.set
    hits = 0
    for k in _as_list(keys):
        if get(k)[1]:
            hits += 1
        else:
            put(k, True)
    cache.close()
    return hits


def theine_version() -> Optional[str]:
    """theine's version when it is installed (`pip install theine`), else None: its column is left out."""
    from importlib.metadata import PackageNotFoundError, version
    from importlib.util import find_spec

    try:
        return version("theine") if find_spec("theine") is not None else None
    except PackageNotFoundError:
        return None


def simulators(policies: Sequence[str], theine: bool = False) -> Dict[str, Callable[[Keys, int], int]]:
    """Column name -> hit-count function, in column order."""
    sims: Dict[str, Callable[[Keys, int], int]] = {"exact LRU": lru_hits}
    for policy in policies:
        sims[f"HashCache {policy}"] = functools.partial(hashcache_hits, policy=policy)
    if theine:
        sims["theine"] = theine_hits
    sims["OPT"] = opt_hits
    return sims


# --------------------------------------------------------------------------- rows

@dataclass
class Row:
    trace: str
    size: int
    requests: int
    distinct: int
    hits: Dict[str, int] = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)
    flags: List[str] = field(default_factory=list)
    spread: Dict[str, Tuple[float, float]] = field(default_factory=dict)  # a repeated column's min, max (%)

    @property
    def label(self) -> str:
        return f"{self.trace} @ {self.size}"

    def ratio(self, column: str) -> float:
        return 100.0 * self.hits[column] / self.requests  # (a repeated column's hits are its mean)

    @property
    def reference(self) -> Optional[Tuple[float, str, float]]:
        return REFERENCE.get((self.trace, self.size))


def run_row(trace: str, keys: np.ndarray, size: int, sims: Dict[str, Callable[[Keys, int], int]],
            distinct: int, repeats: Optional[Dict[str, int]] = None) -> Row:
    """One trace at one size through every column; a column in `repeats` runs that many times (its hits are
    the mean, its range is kept)."""
    row = Row(trace, size, len(keys), distinct)
    for column, fn in sims.items():
        t0 = time.perf_counter()
        runs = [fn(keys, size) for _ in range(max(1, (repeats or {}).get(column, 1)))]
        row.hits[column] = sum(runs) / len(runs) if len(runs) > 1 else runs[0]  # type: ignore[assignment]
        if len(runs) > 1:
            row.spread[column] = (100.0 * min(runs) / len(keys), 100.0 * max(runs) / len(keys))
        row.seconds[column] = time.perf_counter() - t0
    ref = row.reference
    if ref is not None:
        for column, published in (("exact LRU", ref[0]), ("OPT", ref[2])):
            ours = row.ratio(column)
            if abs(ours - published) > TOLERANCE + 1e-9:
                row.flags.append(f"{column} {ours:.4f} % vs published {published:.2f} %")
    if "HashCache lru" in row.hits and row.hits["HashCache lru"] != row.hits["exact LRU"]:
        row.flags.append(f"HashCache lru {row.hits['HashCache lru']} hits vs exact LRU {row.hits['exact LRU']}")
    return row


def check_tinylfu(rows: List[Row]) -> List[Tuple[bool, str]]:
    """The hit-ratio limits for HashCache "tinylfu" (when the policy exists)."""
    col = "HashCache tinylfu"
    if not rows or col not in rows[0].hits:
        return []
    by_key = {(r.trace, r.size): r for r in rows}
    out = []
    for trace, size, minimum in TINYLFU_TARGETS:
        row = by_key.get((trace, size))
        if row is not None:
            got = row.ratio(col)
            out.append((got >= minimum, f"tinylfu {row.label}: {got:.2f} % (target ≥ {minimum} %)"))
    worst = min(rows, key=lambda r: r.ratio(col) - r.ratio("exact LRU"))
    gap = worst.ratio(col) - worst.ratio("exact LRU")
    out.append((gap >= -TINYLFU_MAX_BELOW_LRU,
                f"tinylfu vs exact LRU, worst row {worst.label}: {gap:+.2f} points "
                f"(target ≥ -{TINYLFU_MAX_BELOW_LRU})"))
    if "theine" in rows[0].hits:
        worst = min(rows, key=lambda r: r.ratio(col) - r.ratio("theine"))
        gap = worst.ratio(col) - worst.ratio("theine")
        what = "theine's mean" if "theine" in worst.spread else "theine"
        out.append((gap >= 0, f"tinylfu vs {what}, worst row {worst.label}: {gap:+.2f} points (target ≥ 0)"))
    return out


# --------------------------------------------------------------------------- reporting

def report(pr: Printer, rows: List[Row], columns: List[str]) -> None:
    ranged = [c for c in columns if any(c in r.spread for r in rows)]
    header = ["trace @ size", "requests"]
    for c in columns:
        header += [c + (" (mean)" if c in ranged else "")] + ([f"{c} range"] if c in ranged else [])
    header += ["pub. LRU", "pub. W-TinyLFU", "pub. OPT", "check"]
    body = []
    for r in rows:
        ref = r.reference
        cells = [r.label, f"{r.requests:,}"]
        for c in columns:
            cells.append(f"{r.ratio(c):.2f}")
            if c in ranged:
                lo, hi = r.spread.get(c, (r.ratio(c), r.ratio(c)))
                cells.append(f"{lo:.2f}-{hi:.2f}")
        cells += [f"{ref[0]:.2f}", ref[1], f"{ref[2]:.2f}"] if ref else ["-", "-", "-"]
        cells.append("MISMATCH" if r.flags else "ok")
        body.append(cells)
    pr.table(
        "Hit ratio (%) = hits / all requests, cold misses included",
        header,
        body,
        f"check: exact LRU and OPT within {TOLERANCE} points of the published figures, and HashCache lru "
        "equal to exact LRU hit for hit. Published W-TinyLFU: Caffeine's simulator for oltp, others' reports "
        "(≈) for glimpse and loop.",
    )


def seed_spread(pr: Printer, sims: Dict[str, Callable[[Keys, int], int]], exponents: Sequence[float],
                sizes: Sequence[int], seeds: int) -> List[Dict[str, Any]]:
    """With `seeds` > 0: each Zipf exponent at each size over seeds 1..seeds, HashCache tinylfu and theine
    (when installed): mean and range of the hit ratio, printed and returned."""
    cols = [c for c in ("HashCache tinylfu", "theine") if c in sims]
    out: List[Dict[str, Any]] = []
    if seeds <= 0 or not cols:
        return out
    pr.line()
    pr.line(f"Zipf over {seeds} seeds ({SEEDS_REQUESTS:,} requests each), hit %: mean [min - max]")
    for s in exponents:
        for size in sizes:
            ratios: Dict[str, List[float]] = {c: [] for c in cols}
            for seed in range(1, seeds + 1):
                keys = zipf_keys(ZIPF_KEYS, SEEDS_REQUESTS, s=s, seed=seed)
                for c in cols:
                    ratios[c].append(100.0 * sims[c](keys, size) / SEEDS_REQUESTS)
            pr.line(f"  zipf{s} @ {size:>6}: " + "   ".join(
                f"{c} {sum(v) / len(v):6.2f} [{min(v):.2f} - {max(v):.2f}]" for c, v in ratios.items()))
            out.append({"s": s, "size": size, "hit_ratio": ratios})
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", metavar="DIR",
                    help=f"trace directory (default: $TIERCACHE_TRACES, else {os.path.relpath(DEFAULT_TRACES)})")
    ap.add_argument("--quick", action="store_true",
                    help=f"Zipf rows with {ZIPF_REQUESTS_QUICK:,} requests instead of {ZIPF_REQUESTS:,}")
    ap.add_argument("--variants", action="store_true",
                    help="also replay generated drift variants and Zipf with other exponents")
    ap.add_argument("--bytes-bound", type=int, default=0, metavar="F",
                    help="HashCache bounded by bytes at each size, with max_entries F x the size (F >= 2)")
    ap.add_argument("--seeds", type=int, default=0, metavar="N",
                    help=f"also replay each Zipf exponent at each size with N seeds ({SEEDS_REQUESTS:,} requests)")
    ap.add_argument("--theine-runs", type=int, default=5, metavar="N",
                    help="runs of theine per row, which draws random numbers: its mean and range (default 5)")
    ap.add_argument("--json", metavar="OUT.json", help="also write the figures, the machine and the command here")
    args = ap.parse_args(argv)
    if args.theine_runs < 1:
        ap.error("--theine-runs N needs N >= 1")
    if args.bytes_bound and args.bytes_bound < 2:
        ap.error("--bytes-bound F needs F >= 2 (max_entries F x the size, above what the bytes hold)")
    global ENTRY_FACTOR
    ENTRY_FACTOR = args.bytes_bound

    traces_dir = args.traces or os.environ.get("TIERCACHE_TRACES") or DEFAULT_TRACES
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(os.path.abspath(__file__))]
                                   + (sys.argv[1:] if argv is None else argv))
    policies = hashcache_policies()
    theine = theine_version()
    sims = simulators(policies, theine is not None)
    columns = list(sims)

    pr = Printer(width=176)
    info = machine_info(("numpy",))
    pr.line(f"command:   {command}")
    pr.line(f"python:    {info['python']}, numpy {info['versions']['numpy']}")
    pr.line(f"machine:   {info['cpu']}, nproc {info['nproc']}, {info['platform']}")
    pr.line(f"date:      {info['date']}" + (f", load average {info['loadavg'][0]:.2f} at start"
                                             if info["loadavg"] else ""))
    pr.line(f"tiercache: {info['tiercache']}")
    missing = [p for p in CANDIDATE_POLICIES if p not in policies]
    pr.line(f"HashCache policies: {', '.join(policies) or 'none'}"
            + (f" (not in this build: {', '.join(missing)})" if missing else ""))
    pr.line(f"theine:    {theine or 'not installed (pip install theine): its column is left out'}")
    if ENTRY_FACTOR:
        pr.line(f"HashCache: max_bytes binds at the size (entries weigh 1 byte), max_entries = {ENTRY_FACTOR} x the size")
    pr.line(f"traces:    {os.path.abspath(traces_dir)}")

    t_start = time.monotonic()

    def progress(msg: str) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\r  [{time.monotonic() - t_start:6.1f}s] {msg:<50}")
            sys.stderr.flush()

    n_requests = ZIPF_REQUESTS_QUICK if args.quick else ZIPF_REQUESTS
    zipf_name = f"zipf{ZIPF_S}/{ZIPF_KEYS // 1000}k"
    zipf_sizes = tuple(int(round(ZIPF_KEYS * f)) for f in ZIPF_FRACTIONS)
    workloads: List[Tuple[str, Callable[[], np.ndarray], Sequence[int]]] = [
        (name, functools.partial(read_trace, traces_dir, name), sizes) for name, sizes in TRACE_SIZES.items()]
    workloads.append((zipf_name, functools.partial(zipf_keys, ZIPF_KEYS, n_requests), zipf_sizes))
    if args.variants:
        workloads += [(f"drift q={q} a={alpha} s={scale:g}",
                       functools.partial(drift_variant, traces_dir, q, alpha, scale), DRIFT_VARIANT_SIZES)
                      for q, alpha, scale in DRIFT_VARIANTS]
        workloads += [(f"zipf{s}/{ZIPF_KEYS // 1000}k", functools.partial(zipf_keys, ZIPF_KEYS, n_requests, s=s),
                       zipf_sizes) for s in ZIPF_VARIANTS]
        workloads += [((" + " if how == "merged" else ", then ").join(names)
                       + (f" ({limit // 1000}k each)" if limit else ""),
                       functools.partial(mixed_trace, traces_dir, names, how, limit), MIX_SIZES)
                      for names, how, limit in MIXES]
    rows: List[Row] = []
    notes: List[str] = []
    for name, load, sizes in workloads:
        try:
            keys = load()
        except OSError as exc:
            notes.append(f"{name}: skipped ({exc.strerror or exc}: {getattr(exc, 'filename', '') or ''})")
            continue
        distinct = int(np.unique(keys).size)
        for size in sizes:
            progress(f"{name} @ {size}")
            rows.append(run_row(name, keys, size, sims, distinct, {"theine": args.theine_runs}))
    elapsed = time.monotonic() - t_start
    if sys.stderr.isatty():
        sys.stderr.write("\r" + " " * 70 + "\r")

    pr.line(f"workloads: oltp, glimpse, loop, drift as in the traces README; {zipf_name}: bounded Zipf({ZIPF_S}) over "
            f"{ZIPF_KEYS:,} keys, {n_requests:,} requests, seed {SEED}, cache at "
            + " and ".join(f"{f:.0%}" for f in ZIPF_FRACTIONS) + " of the keys")
    if args.variants:
        pr.line(f"variants:  drift q/a/s = new-key rate / Pareto alpha / age scale, {DRIFT_VARIANT_REQUESTS:,} "
                f"requests, seed 3 (gen_drift.py); zipf<s>: as above with exponent s; a + b: traces merged at "
                f"random (seed {SEED}), each in its order, keys kept apart; a, then b: one after the other")
    for note in notes:
        pr.line(f"  {note}")
    pr.line()
    report(pr, rows, columns)

    failed = [r for r in rows if r.flags]
    for r in failed:
        for flag in r.flags:
            pr.line(f"MISMATCH {r.label}: {flag}")
    targets = check_tinylfu(rows)
    for ok, text in targets:
        pr.line(f"{'PASS' if ok else 'FAIL'}  {text}")
    if not failed:
        pr.line(f"all {len(rows)} rows reproduce: exact LRU and OPT match the published figures where there are "
                "any, and HashCache lru equals exact LRU on every row")
    spread = seed_spread(pr, sims, (ZIPF_S,) + (ZIPF_VARIANTS if args.variants else ()), zipf_sizes, args.seeds)
    slowest = {c: sum(r.seconds[c] for r in rows) for c in columns}
    pr.line(f"time: {elapsed:.1f} s in all; per column " + ", ".join(f"{c} {s:.1f} s" for c, s in slowest.items()))

    if args.json:
        with open(args.json, "w") as f:
            json.dump({
                "command": command,
                "machine": info,
                "traces": os.path.abspath(traces_dir),
                "policies": policies,
                "zipf": {"s": ZIPF_S, "keys": ZIPF_KEYS, "requests": n_requests, "seed": SEED},
                "bytes_bound": ENTRY_FACTOR or None,
                "rows": [{
                    "trace": r.trace, "size": r.size, "requests": r.requests, "distinct": r.distinct,
                    "hits": r.hits, "hit_ratio": {c: r.ratio(c) for c in columns}, "seconds": r.seconds,
                    "range": r.spread,
                    "reference": (dict(zip(("exact LRU", "W-TinyLFU", "OPT"), r.reference))
                                  if r.reference else None),
                    "flags": r.flags,
                } for r in rows],
                "tinylfu_targets": [{"ok": ok, "check": text} for ok, text in targets],
                "seeds": spread,
                "notes": notes,
                "seconds": elapsed,
            }, f, indent=2)
        pr.line(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
