"""The `tiercache` command.

    tiercache bench [--quick] [--l2 URL]       L1 and two-tier workloads (embedded SQLite L2 by default)
    tiercache serve [--host] [--port] ...      the admin HTTP API (pip install "pytiercache[server]")
    tiercache validate --url URL --api-key K   call every admin endpoint, one ✅/❌ line each; exit 1 on ❌
    tiercache health --url URL [--api-key-file F]   the health assessment of a running server
    tiercache health [--l2 URL] [--env ENV]    the same for a fresh manager on that L2 (idle: no traffic yet)
    tiercache config show [FILE] | validate FILE   the configuration in force / check a TOML file
    tiercache regress baseline NAME | compare NAME [--threshold 10%] | report NAME | list | run
    tiercache bench --compare [--plot FILE.png]     bench/compare.py beside other caches (source tree)
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import IMPLEMENTATION, HashCache, __version__
from ._extras import DISTRIBUTION, need
from .errors import MissingExtraError


def _rate(run: Callable[[], int], seconds: float) -> float:
    from .regress import rate

    return rate(run, seconds)


def bench(quick: bool) -> List[tuple]:
    seconds = 0.3 if quick else 1.5
    rows = []
    for name, fn in _l1_workloads(quick):
        with _progress(name):
            rows.append((name, _rate(fn, seconds)))
    return rows


def _l1_workloads(quick: bool) -> List[Tuple[str, Callable[[], int]]]:
    n = 20_000 if quick else 100_000
    rng = random.Random(42)
    keys = list(range(n))
    rng.shuffle(keys)
    misses = list(range(n, 2 * n))
    inserts = list(range(n, 5 * n))
    values = [b"x" * 100] * n

    cache = HashCache(max_bytes=1 << 40, max_entries=n)
    for k, v in zip(keys, values):
        cache.set(k, v)

    def get_hit() -> int:
        get = cache.get
        for k in keys:
            get(k)
        return len(keys)

    def get_miss() -> int:
        get = cache.get
        for k in misses:
            get(k)
        return len(misses)

    def set_evict() -> int:
        c = HashCache(max_bytes=1 << 40, max_entries=n)
        s = c.set
        for k in inserts:
            s(k, k)
        return len(inserts)

    ttl_cache = HashCache(max_bytes=1 << 40, max_entries=n, default_ttl=3600)
    for k in keys:
        ttl_cache.set(k, k)

    def get_hit_ttl() -> int:
        get = ttl_cache.get
        for k in keys:
            get(k)
        return len(keys)

    byte_cache = HashCache(max_bytes=n * 100 // 2)  # room for half the values: evicts by bytes

    def set_bytes() -> int:
        s = byte_cache.set
        for k, v in zip(keys, values):
            s(k, v)
        return len(keys)

    return [
        ("HashCache.get, hit", get_hit),
        ("HashCache.get, miss", get_miss),
        ("HashCache.get, hit, entry with TTL", get_hit_ttl),
        ("HashCache.set, evicting by count", set_evict),
        ("HashCache.set 100 B, evicting by bytes", set_bytes),
    ]


class _TwoTier:
    """A CacheManager on the given L2 (default: the embedded SQLite store) with the two-tier workloads of
    `tiercache bench` (L1 hits, L2 hits, get_many, writes), in namespaces of its own whose entries expire
    from L2 and are cleared on exit, so a run against a shared L2 leaves nothing behind."""

    namespace = "tiercache.bench"

    def __init__(self, quick: bool, l2_url: Optional[str]) -> None:
        from .config import NamespaceConfig
        from .manager.sync import CacheManager

        self.n = 500 if quick else 2000
        ns = self.namespace
        config = {ns: NamespaceConfig(l1_ttl=None, l2_ttl=300.0),
                  ns + "-thin": NamespaceConfig(l1_max_entries=1, l2_ttl=300.0)}
        self.m = CacheManager(l2_url, env="test", config=config, invalidation=False)
        self.kind = getattr(self.m.l2, "kind", "?")
        self.where = str(getattr(self.m.l2, "path", "") or l2_url or "")

    def __enter__(self) -> "_TwoTier":
        m, ns, n = self.m, self.namespace, self.n
        value = {"symbol": "ACME", "prices": [101.5, 101.75, 102.0], "volume": 12345}
        keys = [f"item:{i}" for i in range(n)]
        m.set_many(ns, {k: value for k in keys})
        m.set_many(ns + "-thin", {k: value for k in keys})

        def l1_hit() -> int:
            get = m.get
            for k in keys:
                get(ns, k)
            return n

        def l2_hit() -> int:  # L1 holds one entry: every get reads L2 and decodes
            get = m.get
            for k in keys:
                get(ns + "-thin", k)
            return n

        def get_many() -> int:
            thin = m.l1(ns + "-thin")
            for i in range(0, n, 100):
                thin.clear()
                m.get_many(ns + "-thin", keys[i:i + 100])
            return n

        def write_through() -> int:
            put = m.set
            for k in keys[:200]:
                put(ns, k, value)
            return 200

        kind = self.kind
        self.workloads = [
            ("manager.get, L1 hit", l1_hit),
            (f"manager.get, L2 hit ({kind})", l2_hit),
            (f"manager.get_many from L2 ({kind}), per key", get_many),
            (f"manager.set, write-through to {kind}", write_through),
        ]
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.m.clear(self.namespace)
            self.m.clear(self.namespace + "-thin")
        finally:
            self.m.close()


def bench_two_tier(quick: bool, l2_url: Optional[str]) -> Tuple[str, List[tuple]]:
    """CacheManager on the given L2 (default: the embedded SQLite store): L1 hits, L2 hits, writes."""
    seconds = 0.3 if quick else 1.5
    rows = []
    with _TwoTier(quick, l2_url) as tt:
        for name, fn in tt.workloads:
            with _progress(name):
                rows.append((name, _rate(fn, seconds)))
        m = tt.m
        stats = m.stats()
        _LAST_TWO_TIER.clear()
        snap = m.metrics_snapshot()["namespaces"]
        for ns in (tt.namespace, tt.namespace + "-thin"):
            entry = snap.get(ns, {})
            l1 = entry.get("l1") or {}
            lat = entry.get("latency", {})
            _LAST_TWO_TIER.append((ns, l1.get("hit_rate"), lat.get("l1_get", {}), lat.get("l2_get", {}),
                                   lat.get("l2_set", {})))
    where = f"{tt.kind} {tt.where}".strip()
    return f"{where}; circuit {stats['circuit']['state']}, l2 errors {stats['l2_errors']}", rows


_LAST_TWO_TIER: List[tuple] = []  # (namespace, L1 hit rate, l1_get, l2_get, l2_set latency summaries)


class _progress:
    """A rich status line while one workload runs (nothing without a terminal)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.status: Any = None

    def __enter__(self) -> "_progress":
        if sys.stderr.isatty():
            from rich.console import Console  # (main() has checked that rich is installed)

            self.status = Console(stderr=True).status(f"measuring {self.what}")
            self.status.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)


def _print_latency() -> None:
    """Hit rates and latency percentiles of the two-tier run, from the manager's own metrics."""
    from rich.console import Console
    from rich.table import Table

    def ms(s: Any) -> str:
        return "-" if not s or s.get("p50") is None else f"{s['p50'] * 1e6:,.1f} / {s['p99'] * 1e6:,.1f}"

    table = Table(title="two tiers: hit rates and latency (µs, p50 / p99; L1 get sampled 1 in 64)")
    for col in ("workload", "L1 hit rate", "L1 get", "L2 get", "L2 set"):
        table.add_column(col, justify="left" if col == "workload" else "right")
    for ns, rate, l1, l2, l2s in _LAST_TWO_TIER:
        label = "L1 holds all" if not ns.endswith("-thin") else "L1 of 1 entry"
        table.add_row(label, "-" if rate is None else f"{rate:.1%}", ms(l1), ms(l2), ms(l2s))
    Console().print(table)


def _print_table(title: str, rows: Sequence[tuple]) -> None:
    from rich.console import Console  # (main() has checked that rich, the [cli] extra, is installed)
    from rich.table import Table

    table = Table(title=title)
    table.add_column("operation")
    table.add_column("M ops/s", justify="right")
    table.add_column("ns/op", justify="right")
    for name, rate in rows:
        table.add_row(name, f"{rate / 1e6:.2f}", f"{1e9 / rate:.1f}")
    Console().print(table)


def _compare_script() -> Optional[str]:
    """bench/compare.py of the source tree this package runs from (it is not installed with the wheel)."""
    import os

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(here, "bench", "compare.py")
    return path if os.path.exists(path) else None


def bench_compare(quick: bool, plot: Optional[str]) -> int:
    """Run bench/compare.py (side by side with the other libraries) and, with `plot`, draw its ratios."""
    import json
    import os
    import subprocess
    import tempfile

    script = _compare_script()
    if script is None:
        print("tiercache bench --compare runs bench/compare.py from a source checkout of tiercache "
              "(git clone, then pip install -e \".[bench]\")", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "compare.json")
        cmd = [sys.executable, script, "--json", out] + (["--quick"] if quick else [])
        code = subprocess.call(cmd)
        if not os.path.exists(out):
            return code or 1
        with open(out, encoding="utf-8") as f:
            doc = json.load(f)
    if plot:
        plot_compare(doc, plot)
        print(f"wrote {plot}")
    return code


def plot_compare(doc: dict, path: str) -> None:
    """A grouped bar chart of ns/op as ratios to cachebox.LRUCache, one group per workload."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit(f'plotting needs matplotlib: pip install "{DISTRIBUTION}[plot]"') from None
    workloads = [(k, w) for k, w in doc["workloads"].items() if k != "memory"]
    libs = [name for name in ("tiercache.HashCache", "tiercache.HashCache tinylfu", "cachebox.LRUCache",
                              "lru.LRU", "functools.lru_cache", "cachetools.LRUCache", "dict")
            if any(name in w["results"] for _, w in workloads)]
    fig, ax = plt.subplots(figsize=(11, 4.8))
    width = 0.8 / max(1, len(libs))
    for i, lib in enumerate(libs):
        xs, ys = [], []
        for j, (_, w) in enumerate(workloads):
            r = w["results"].get(lib)
            if r and r.get("ratio_to_baseline"):
                xs.append(j + i * width)
                ys.append(r["ratio_to_baseline"])
        ax.bar(xs, ys, width, label=lib)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([j + width * (len(libs) - 1) / 2 for j in range(len(workloads))])
    ax.set_xticklabels([k.replace("_", " ") for k, _ in workloads], rotation=15, fontsize=8)
    ax.set_ylabel("ns/op ÷ cachebox.LRUCache (lower is faster)")
    machine = doc.get("machine", {})
    import re

    command = re.sub(r" --json \S+", "", doc.get("command", ""))
    ax.set_title(f"tiercache beside other caches — {command}\n"
                 f"{machine.get('cpu', '')}, {machine.get('date', '')}".strip(", "), fontsize=9)
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# `tiercache regress`: benchmark baselines as JSON (ops/sec per workload of `tiercache bench`), compared.

def _baseline_path(directory: str, name: str) -> str:
    import os
    import re

    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name):
        raise SystemExit(f"baseline name must be letters, digits, '.', '_' or '-', got {name!r}")
    return os.path.join(directory, f"{name}.json")


def _regress_measure(args: argparse.Namespace) -> Dict[str, Any]:
    """Every `tiercache bench` workload measured in interleaved rounds against the anchor (tiercache.regress),
    with the health figure and the integration checks."""
    from . import regress as rg

    rounds = args.rounds or (5 if args.quick else 9)
    if rounds < 5:  # (the rank test needs a few samples a side)
        raise SystemExit("tiercache regress: --rounds must be at least 5")
    seconds = 0.1 if args.quick else 0.25
    with _TwoTier(args.quick, _l2_url(args)) as tt:
        workloads = dict(_l1_workloads(args.quick) + [(f"two-tier {n}", fn) for n, fn in tt.workloads])
        with _progress(f"{len(workloads)} workloads × {rounds} rounds"):
            samples = rg.measure(workloads, rounds=rounds, seconds=seconds)
    import statistics

    return {
        "implementation": IMPLEMENTATION, "python": platform.python_version(), "machine": platform.machine(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rounds": rounds,
        "samples": {name: v["relative"] for name, v in samples.items()},
        "ops_per_sec": {name: statistics.median(v["ops_per_sec"]) for name, v in samples.items()},
        "remeasured": {name: v["remeasured"] for name, v in samples.items()},
        "health": rg.health_figure(), "checks": rg.integration_checks(),
    }


def regress(args: argparse.Namespace) -> int:
    import json
    import os
    import statistics

    from . import regress as rg

    if args.action == "run":
        print(json.dumps(_regress_measure(args), indent=2))
        return 0
    if args.action == "list":
        names = sorted(f[:-5] for f in os.listdir(args.dir) if f.endswith(".json")) if os.path.isdir(args.dir) else []
        if not names:
            print(f"no baselines in {args.dir}")
        for name in names:
            try:
                with open(_baseline_path(args.dir, name), encoding="utf-8") as f:
                    b = json.load(f)
                print(f"{name}: {b.get('created')} {b.get('implementation')}, {len(b.get('samples', {}))} workloads, "
                      f"health {b.get('health', {}).get('score')} ({b.get('health', {}).get('status')}), "
                      f"checks {b.get('checks', {}).get('passed')}/{b.get('checks', {}).get('total')}")
            except (OSError, ValueError) as exc:
                print(f"{name}: unreadable ({exc})")
        return 0
    if not args.name:
        print(f"tiercache regress {args.action}: name the baseline", file=sys.stderr)
        return 2
    path = _baseline_path(args.dir, args.name)
    if args.action == "baseline":
        data = {"name": args.name, **_regress_measure(args)}
        os.makedirs(args.dir, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
        print(f"saved baseline {args.name!r} ({len(data['samples'])} workloads × {data['rounds']} rounds, health "
              f"{data['health']['score']}, checks {data['checks']['passed']}/{data['checks']['total']}) to {path}")
        return 0
    try:
        with open(path, encoding="utf-8") as f:
            base = json.load(f)
        base_samples = base["samples"]
    except (OSError, ValueError, KeyError) as exc:
        print(f"tiercache regress {args.action}: cannot read baseline {args.name!r} at {path}: {exc}",
              file=sys.stderr)
        return 2
    if args.action == "compare" and base.get("implementation") != IMPLEMENTATION:
        print(f"tiercache regress compare: baseline {args.name!r} measured the {base.get('implementation')} core, "
              f"this run would measure the {IMPLEMENTATION} one; compare like with like", file=sys.stderr)
        return 2
    from rich.console import Console
    from rich.table import Table

    if args.action == "report":
        table = Table(title=f"baseline {args.name!r}: {base.get('created')}, {base.get('implementation')}, "
                            f"{base.get('rounds')} rounds")
        for col in ("workload", "ops/s (median)", "relative to the anchor", "spread (robust σ)", "disturbed"):
            table.add_column(col, justify="left" if col == "workload" else "right")
        for name, values in base_samples.items():
            table.add_row(name, f"{base['ops_per_sec'].get(name, 0):,.0f}", f"{statistics.median(values):.4g}",
                          f"{rg.spread(values):.1%}", str(base.get("remeasured", {}).get(name, "-")))
        Console().print(table)
        print(f"health of the fixed workload: {base['health']['score']} ({base['health']['status']}); integration "
              f"checks {base['checks']['passed']}/{base['checks']['total']}")
        return 0
    threshold = _percent(args.threshold)
    now = _regress_measure(args)
    table = Table(title=f"against baseline {args.name!r} (regression: slower by more than {threshold:.0%} or the "
                        "noise, p < 0.05)")
    for col in ("workload", "baseline ops/s", "now ops/s", "change (vs anchor)", "p", ""):
        table.add_column(col, justify="left" if col in ("workload", "") else "right")
    regressions = 0
    for name, before in base_samples.items():
        after = now["samples"].get(name)
        if not after:
            table.add_row(name, f"{base['ops_per_sec'].get(name, 0):,.0f}", "-", "-", "-", "not measured")
            continue
        v = rg.judge(before, after, threshold)
        regressions += v["regression"]
        verdict = "REGRESSION" if v["regression"] else ("ok" if v["change"] >= -v["limit"] else "ok (not significant)")
        table.add_row(name, f"{base['ops_per_sec'].get(name, 0):,.0f}", f"{now['ops_per_sec'][name]:,.0f}",
                      f"{v['change']:+.1%} (limit {v['limit']:.0%})", f"{v['p']:.3f}", verdict)
    Console().print(table)
    checks_lost = now["checks"]["passed"] < base["checks"]["passed"]
    print(f"health of the fixed workload: {base['health']['score']} -> {now['health']['score']}; integration checks "
          f"{base['checks']['passed']}/{base['checks']['total']} -> {now['checks']['passed']}/{now['checks']['total']}"
          + (f" (failed: {', '.join(now['checks']['failed'])})" if now["checks"]["failed"] else ""))
    return 1 if regressions or checks_lost else 0


def _percent(text: str) -> float:
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise SystemExit(f"--threshold must look like 10% or 0.1, got {text!r}") from None
    if not 0 <= value < 1:
        raise SystemExit(f"--threshold must be between 0% and 100%, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .manager.aio import AsyncCacheManager
        from .server import create_app
    except ImportError as exc:
        print(f"tiercache serve: {exc}" if isinstance(exc, MissingExtraError) else
              f"tiercache serve needs the server extra: pip install \"{DISTRIBUTION}[server]\" ({exc})", file=sys.stderr)
        return 2
    keys = _api_keys(args)
    if not keys and not args.insecure_no_auth:
        print("tiercache serve: no API key configured (--api-key, --api-key-file or $TIERCACHE_API_KEYS); "
              "refusing to start. "
              "Pass --insecure-no-auth to serve without authentication.", file=sys.stderr)
        return 2
    if args.insecure_no_auth and not keys:
        print("WARNING: tiercache serve is running WITHOUT AUTHENTICATION: anyone who can reach "
              f"{args.host}:{args.port} can read, change and clear the cache.", file=sys.stderr)
    manager = AsyncCacheManager(_l2_url(args), env=args.env, config=args.config,
                                metrics_interval=args.metrics_interval)
    app = create_app(manager, keys, insecure_no_auth=args.insecure_no_auth and not keys,
                     test_load_cap=args.test_load_cap)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"tiercache serve: http://{host}:{args.port} (environment {manager.env}, L2 "
          f"{getattr(manager.l2, 'kind', '?')}, {IMPLEMENTATION}); GET /health, the API needs X-API-KEY; "
          f"dashboard at http://{host}:{args.port}/dashboard",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _read_secret_file(path: str, what: str) -> List[str]:
    """The lines of the file `path` (a secret per line; blank lines and # comments skipped); SystemExit naming
    `what` when unreadable."""
    try:
        with open(path, encoding="utf-8-sig") as f:  # (a BOM is not part of the first secret)
            return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemExit(f"tiercache: cannot read {what} from {path}: {exc}") from None


def _api_keys(args: Any, single_env: Optional[str] = None) -> List[str]:
    """The API keys of --api-key, --api-key-file, $`single_env` (one key) and $TIERCACHE_API_KEYS
    (comma-separated), in that order."""
    keys = list(args.api_key)
    for path in args.api_key_file:
        keys += _read_secret_file(path, "API keys")
    if single_env and os.environ.get(single_env, "").strip():
        keys.append(os.environ[single_env].strip())
    return keys + [k.strip() for k in os.environ.get("TIERCACHE_API_KEYS", "").split(",") if k.strip()]


def _l2_url(args: Any) -> Optional[str]:
    """--l2, else the first line of --l2-file, else None ($TIERCACHE_L2_URL, else the embedded store)."""
    if args.l2 is not None:
        if args.l2_file:
            raise SystemExit("tiercache: give --l2 or --l2-file, not both")
        return args.l2  # type: ignore[no-any-return]
    if args.l2_file:
        lines = _read_secret_file(args.l2_file, "the L2 URL")
        if not lines:
            raise SystemExit(f"tiercache: {args.l2_file} holds no L2 URL")
        return lines[0]
    return None


def validate(url: str, api_key: str, timeout: float) -> int:
    """The production check: every endpoint, one ✅/❌ line each."""
    httpx = need("httpx", "cli", "tiercache validate")

    from .config import SELFTEST_NAMESPACE

    base = url.rstrip("/")
    headers = {"X-API-KEY": api_key}
    failures = 0

    def check(label: str, method: str, path: str, want: Callable[[Any], Optional[str]], **kw: Any) -> None:
        nonlocal failures
        try:
            r = httpx.request(method, base + path, headers=headers, timeout=timeout, **kw)
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text
            if r.status_code >= 400:
                raise RuntimeError(f"HTTP {r.status_code}: {body}")
            note = want(body)
            print(f"✅ {label}" + (f": {note}" if note else ""))
        except Exception as exc:  # any failure is one ❌ line, and the next check still runs
            failures += 1
            print(f"❌ {label}: {exc}")

    def cache_health(b: Any) -> str:
        a = b["assessment"]
        score = float(a["overallScore"])
        if a["status"] in ("unhealthy", "critical"):
            raise RuntimeError(f"{a['status']}, score {score}: " + "; ".join(i["description"] for i in a["issues"][:3]))
        return f"{a['status']}, score {score}"

    def system_status(b: Any) -> str:
        cache = b["system"]["cache"]
        if not cache["enabled"]:
            raise RuntimeError("the cache is disabled")
        l2 = cache["l2"]
        if not l2["reachable"] or l2["circuit"]["state"] != "closed":
            raise RuntimeError(f"L2 {l2['kind']} {'unreachable' if not l2['reachable'] else 'failing'} "
                               f"(circuit {l2['circuit']['state']})")
        return f"cache enabled, {cache['implementation']}, L2 {l2['kind']} (circuit {l2['circuit']['state']})"

    def healthy(b: Any) -> str:
        if b["status"] != "healthy":
            raise RuntimeError(f"{b['status']}: {b['message']}")
        return b["message"]

    def promotion(b: Any) -> str:
        if b["enabled"] is not True:
            raise RuntimeError("promotion is not enabled")
        return f"enabled, {len(b['stats'])} namespaces tracked"

    def load(b: Any) -> str:
        t = b["test"]
        if not t["opsPerSecond"] > 0 or t["failed"]:
            raise RuntimeError(f"{t['failed']} of {t['operations']} operations failed, {t['opsPerSecond']} ops/s")
        return f"{t['opsPerSecond']} ops/s over {t['operations']} operations ({t['totalTime']})"

    def succeeded(b: Any) -> None:
        if b.get("success") is not True:
            raise RuntimeError(f"success is {b.get('success')!r}")

    def both(want: Callable[[Any], Optional[str]]) -> Callable[[Any], Optional[str]]:
        return lambda b: (succeeded(b), want(b))[1]

    # The Enhanced Cache System's own checks (the same requests and fields), then tiercache's. Synthetic
    # traffic goes to the reserved namespace: nothing is written into the user's namespaces.
    check("basic health", "GET", "/health", both(healthy))
    check("cache health", "GET", "/cache-health", both(cache_health))
    check("configuration", "GET", "/cache-config",
          both(lambda b: f"environment {b['environment']}, {int(b['summary']['namespaces'])} namespaces"))
    check("metrics", "GET", "/cache-metrics", both(
        lambda b: f"{int(b['cacheStats']['totalRequests'])} requests, {int(b['cacheStats']['l1Hits'])} L1 hits"))
    check("promotion", "GET", "/cache-promotion", both(promotion))
    check("warmup", "POST", "/cache-warmup", both(lambda b: b["message"]), json={"namespace": SELFTEST_NAMESPACE})
    check("load test", "POST", "/cache-test-load", both(load), json={})
    check("system status", "GET", "/cache-system-status", both(system_status))
    check("prometheus", "GET", "/metrics", lambda b: f"{b.count(chr(10))} lines")
    return 1 if failures else 0


def health(l2: Optional[str], env: Optional[str], url: Optional[str] = None, api_key: Optional[str] = None,
           timeout: float = 10.0) -> int:
    """The health assessment of the server at `url` (GET /cache-health), else of a fresh manager on `l2`."""
    import json

    if url is not None:
        httpx = need("httpx", "cli", "tiercache health --url")
        try:
            r = httpx.get(url.rstrip("/") + "/cache-health", headers={"X-API-KEY": api_key or ""}, timeout=timeout)
            body = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            print(f"tiercache: cannot read {url}/cache-health: {exc}", file=sys.stderr)
            return 2
        if r.status_code != 200:
            print(f"tiercache: {url}/cache-health answered {r.status_code}: {body}", file=sys.stderr)
            return 2
        a = body["assessment"]
        print(json.dumps({k: a[k] for k in ("status", "overallScore", "components", "issues", "recommendations",
                                            "performanceInsights")}, indent=2, default=str))
        return 0 if a["status"] in ("healthy", "idle") else 1

    from .manager.sync import CacheManager

    with CacheManager(l2, env=env, invalidation=False, metrics_interval=None) as m:
        report = m.perform_health_assessment()
    print(json.dumps({k: report[k] for k in ("status", "overall_score", "components", "issues",
                                             "recommendations", "insights")}, indent=2, default=str))
    return 0 if report["status"] in ("healthy", "idle") else 1


def config_command(action: str, file: Optional[str], env: Optional[str]) -> int:
    import json

    from .config import CacheConfig, apply_env_overrides
    from .errors import ConfigError
    from .observability.notify import redacted

    try:
        if file:
            config = apply_env_overrides(CacheConfig.from_toml(file, env))
        else:
            if action == "validate":
                print("tiercache config validate: name a TOML file", file=sys.stderr)
                return 2
            config = apply_env_overrides(CacheConfig.default(env))
    except ConfigError as exc:
        print(f"❌ {file}: {len(getattr(exc, 'errors', []) or [exc])} problem(s)")
        for problem in getattr(exc, "errors", None) or [str(exc)]:
            print(f"   - {problem}")
        return 1
    except (OSError, ValueError) as exc:
        print(f"❌ {file}: {exc}")
        return 1
    if action == "validate":
        print(f"✅ {file}: environment {config.env}, {len(config.namespaces)} namespaces")
        spaces = {**config.namespaces, "(default)": config.default_namespace}
        for name, cfg in spaces.items():
            if cfg.l2_ttl is None and cfg.persist_to_l2:
                print(f"⚠️  namespace {name}: no l2_ttl: its values stay in L2 until deleted, and are served from "
                      "there after their L1 TTL; set l2_ttl, or leave this if it is meant")
        if config.alerts.rules:
            print(f"   {len(config.alerts.rules)} alert rules" + (
                f", webhook {redacted(config.alerts.webhook)}" if config.alerts.webhook else ""))
        return 0
    summary = config.summary()
    if config.alerts.webhook:  # (its path is a secret: shown, it would end up in terminals and CI logs)
        summary["alerts"]["webhook"] = redacted(config.alerts.webhook)
    print(json.dumps(summary, indent=2, default=str, ensure_ascii=False))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="tiercache", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tiercache {__version__} ({IMPLEMENTATION})")
    sub = parser.add_subparsers(dest="command", required=True)
    p_bench = sub.add_parser("bench", help="measure L1 and both tiers (ops/sec); needs no server")
    p_bench.add_argument("--quick", action="store_true", help="a few seconds instead of ~20")
    p_bench.add_argument("--l2", metavar="URL", default=None,
                         help="the L2 URL (default: $TIERCACHE_L2_URL, else the embedded SQLite store); a URL "
                              "with a password shows in `ps`: prefer --l2-file or the environment")
    p_bench.add_argument("--l2-file", metavar="FILE", default=None,
                         help="a file whose first line is the L2 URL")
    p_bench.add_argument("--compare", action="store_true",
                         help="run bench/compare.py: tiercache beside the other caches (source checkout)")
    p_bench.add_argument("--plot", metavar="FILE.png", help="with --compare: draw the ratios (matplotlib)")
    p_reg = sub.add_parser("regress", help="benchmark baselines: save, compare, run, list, report")
    p_reg.add_argument("action", choices=["baseline", "compare", "run", "list", "report"])
    p_reg.add_argument("name", nargs="?")
    p_reg.add_argument("--threshold", default="10%",
                       help="slower, against the anchor, by more than this (or the samples' own spread, if "
                            "larger) and significantly (p < 0.05) is a regression (10%%)")
    p_reg.add_argument("--dir", default=".tiercache-baselines", help="where baselines live")
    p_reg.add_argument("--quick", action="store_true")
    p_reg.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 9; 5 with --quick)")
    p_reg.add_argument("--l2", metavar="URL", default=None,
                       help="the L2 URL (default: $TIERCACHE_L2_URL, else the embedded SQLite store); a URL "
                            "with a password shows in `ps`: prefer --l2-file or the environment")
    p_reg.add_argument("--l2-file", metavar="FILE", default=None,
                       help="a file whose first line is the L2 URL")
    p_serve = sub.add_parser("serve", help="run the admin HTTP API (uvicorn)")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=8080)
    p_serve.add_argument("--config", metavar="FILE.toml")
    p_serve.add_argument("--l2", metavar="URL", default=None,
                         help="the L2 URL (default: $TIERCACHE_L2_URL, else the embedded SQLite store); a URL "
                              "with a password shows in `ps`: prefer --l2-file or the environment")
    p_serve.add_argument("--l2-file", metavar="FILE", default=None,
                         help="a file whose first line is the L2 URL")
    p_serve.add_argument("--env", default=None)
    p_serve.add_argument("--api-key", action="append", default=[], metavar="KEY",
                         help="an accepted X-API-KEY (repeatable); prefer --api-key-file or $TIERCACHE_API_KEYS "
                              "(comma-separated): a flag's value shows in `ps`")
    p_serve.add_argument("--api-key-file", action="append", default=[], metavar="FILE",
                         help="a file of accepted API keys, one per line (repeatable)")
    p_serve.add_argument("--metrics-interval", type=_positive_seconds, default=10.0, metavar="SECONDS",
                         help="seconds between the metrics snapshots trends and the dashboard's charts are drawn "
                              "from (default 10; an hour of them is kept at the default)")
    p_serve.add_argument("--insecure-no-auth", action="store_true", help="serve without API keys (loudly)")
    p_serve.add_argument("--test-load-cap", type=int, default=100_000, metavar="N",
                         help="most operations one POST /cache-test-load runs (default 100000)")
    p_val = sub.add_parser("validate", help="check a running admin API, endpoint by endpoint")
    p_val.add_argument("--url", required=True)
    p_val.add_argument("--api-key", action="append", default=[], metavar="KEY",
                       help="the X-API-KEY to send; prefer --api-key-file or $TIERCACHE_API_KEY: a flag's value "
                            "shows in `ps`")
    p_val.add_argument("--api-key-file", action="append", default=[], metavar="FILE",
                       help="a file whose first line is the API key")
    p_val.add_argument("--timeout", type=float, default=10.0)
    p_health = sub.add_parser("health", help="the health assessment of a running server (--url), or of a fresh "
                                             "manager on this L2")
    p_health.add_argument("--url", default=None, help="a running `tiercache serve` (its GET /cache-health)")
    p_health.add_argument("--api-key", action="append", default=[], metavar="KEY",
                          help="with --url: the X-API-KEY; prefer --api-key-file or $TIERCACHE_API_KEY")
    p_health.add_argument("--api-key-file", action="append", default=[], metavar="FILE",
                          help="with --url: a file whose first line is the API key")
    p_health.add_argument("--l2", metavar="URL", default=None,
                          help="the L2 URL (default: $TIERCACHE_L2_URL, else the embedded SQLite store); a URL "
                               "with a password shows in `ps`: prefer --l2-file or the environment")
    p_health.add_argument("--l2-file", metavar="FILE", default=None,
                          help="a file whose first line is the L2 URL")
    p_health.add_argument("--env", default=None)
    p_config = sub.add_parser("config", help="show the configuration in force, or validate a TOML file")
    p_config.add_argument("action", choices=["show", "validate"])
    p_config.add_argument("file", nargs="?")
    p_config.add_argument("--env", default=None)
    args = parser.parse_args(argv)
    try:
        need("rich", "cli", "the tiercache command")
    except MissingExtraError as exc:
        print(f"tiercache: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve(args)
    if args.command == "regress":
        return regress(args)
    if args.command == "bench" and (args.compare or args.plot):
        if not args.compare:
            parser.error("--plot goes with --compare")
        return bench_compare(args.quick, args.plot)
    if args.command == "validate":
        keys = _api_keys(args, "TIERCACHE_API_KEY")
        if not keys:
            parser.error("no API key: pass --api-key-file FILE or set $TIERCACHE_API_KEY (or --api-key)")
        return validate(args.url, keys[0], args.timeout)
    if args.command == "health":
        if args.url is not None:
            keys = _api_keys(args, "TIERCACHE_API_KEY")
            if not keys:
                parser.error("no API key: pass --api-key-file FILE or set $TIERCACHE_API_KEY (or --api-key)")
            return health(None, None, args.url, keys[0])
        return health(_l2_url(args), args.env)
    if args.command == "config":
        return config_command(args.action, args.file, args.env)
    if args.command == "bench":
        title = (
            f"tiercache {__version__} HashCache ({IMPLEMENTATION}), Python {platform.python_version()}, "
            f"{platform.machine()}"
        )
        _print_table(title, bench(args.quick))
        where, rows = bench_two_tier(args.quick, _l2_url(args))
        _print_table(f"CacheManager, two tiers: L2 = {where}", rows)
        _print_latency()
        if IMPLEMENTATION != "compiled":
            print("note: running the pure-Python twin (extension not built or TIERCACHE_NO_EXTENSIONS set)")
        print("Side-by-side with other libraries: tiercache bench --compare (in a source checkout installed with "
              "pip install -e \".[bench]\")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
