"""Per-namespace settings, the default profile, and the validated whole a cache is built from.

    profile (env)  ->  [default] / [namespaces.NAME]  ->  [environments.ENV...]  ->  TIERCACHE_* variables
    (shipped below)    (from_dict / from_toml)             (same file, per env)      (apply_env_overrides)

Each layer overrides only the fields it names. Every constructor validates the complete result and raises
one ConfigError listing every problem (its `.errors` holds one "namespace 'X': field: message (got VALUE)"
string per problem), so a bad config is never half-applied: you get a new CacheConfig or an exception.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import asdict, dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from .errors import ConfigError
from .observability import alerts as _alerts
from .wire.serialization import COMPRESSIONS, MAX_VALUE_BYTES, SERIALIZERS

__all__ = [
    "NamespaceConfig", "CacheConfig", "apply_env_overrides", "resolve_env", "check_namespace",
    "build_namespaces", "ENVIRONMENTS", "L1_ALLOCATIONS", "PRIORITIES", "PROMOTION_STRATEGIES",
    "DEFAULT_NAMESPACE",
    "DEFAULT_NAMESPACE_NAME", "SELFTEST_NAMESPACE", "SELFTEST_CONFIG",
]

ENVIRONMENTS = ("development", "production", "test")
PRIORITIES = ("high", "medium", "low")  # under global L1 pressure, low is evicted first, high last
# how the global L1 budget is split: "static" = each namespace's l1_max_bytes; "adaptive" = shares that move
# toward where a byte buys the most hits (tiercache.manager.autosize)
L1_ALLOCATIONS = ("static", "adaptive")
PROMOTION_STRATEGIES = ("immediate", "conditional", "lazy", "predictive", "auto")
DEFAULT_NAMESPACE_NAME = "<default>"  # how errors name the settings for namespaces not listed
_ENV_ALIASES = {"dev": "development", "prod": "production", "testing": "test"}
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9_.\-]{1,128}")  # (always fullmatch: "$" would let "a\n" through)
_NAMESPACE_RULE = "must be 1-128 characters of letters, digits, '_', '.', '-'"
_MiB = 1024 * 1024


def resolve_env(env: Optional[str]) -> str:
    """`env`, else TIERCACHE_ENV, else "development"; aliases dev/prod/testing accepted."""
    raw = env if env is not None else os.environ.get("TIERCACHE_ENV", "development")
    name = _env_name(raw)
    if name is None:
        raise ConfigError(f"env must be one of {', '.join(ENVIRONMENTS)} (or dev/prod/testing), got {raw!r}")
    return name


def _env_name(raw: Any) -> Optional[str]:
    if not isinstance(raw, str):
        return None
    name = _ENV_ALIASES.get(raw.strip().lower(), raw.strip().lower())
    return name if name in ENVIRONMENTS else None


def check_namespace(namespace: Any) -> str:
    if not isinstance(namespace, str):
        raise TypeError(f"namespace must be a str, got {type(namespace).__name__} {namespace!r}")
    if not _NAMESPACE_RE.fullmatch(namespace):
        raise ValueError(f"namespace {_NAMESPACE_RULE}, got {namespace!r}")
    return namespace


# ---------------------------------------------------------------------------------------------- errors


class _Errors(List[str]):
    """Problems found so far; raise_if_any() turns them into one ConfigError."""

    def add(self, where: Optional[str], field_name: str, message: str, value: Any = ...) -> None:
        prefix = f"namespace {where!r}: " if where is not None else ""
        got = "" if value is ... else f" (got {value!r})"
        self.append(f"{prefix}{field_name}: {message}{got}")

    def raise_if_any(self) -> None:
        if self:
            raise _config_error(list(self))


def _config_error(errors: List[str]) -> ConfigError:
    if len(errors) == 1:
        message = errors[0]
    else:
        message = f"{len(errors)} configuration errors:\n" + "\n".join(f"  {e}" for e in errors)
    exc = ConfigError(message)
    exc.errors = errors  # type: ignore[attr-defined]
    return exc


# ------------------------------------------------------------------------------------- field kinds
# One table drives validation of every field, the "none" spelling TOML needs (it has no null) and the
# parsing of TIERCACHE_* strings, so the three can never disagree about what a field accepts.

_NONE_WORDS = ("none", "null")
_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("0", "false", "no", "off")


@dataclass(frozen=True)
class _Kind:
    check: Callable[[Any], Optional[str]]  # None when the value is acceptable, else what it must be
    parse: Callable[[str], Any]  # from an environment variable's text; ValueError when it cannot
    nullable: bool = False
    normalize: Callable[[Any], Any] = lambda v: v


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _seconds(*, nullable: bool = False, zero: bool = False) -> _Kind:
    def check(v: Any) -> Optional[str]:
        if v is None and nullable:
            return None
        if not _is_number(v) or math.isnan(v) or math.isinf(v):
            return "must be a finite number of seconds" + (" or None" if nullable else "")
        if v < 0 or (v == 0 and not zero):
            return "must be >= 0" if zero else "must be > 0"
        return None
    return _Kind(check, float, nullable, lambda v: None if v is None else float(v))


def _count(*, nullable: bool = False, zero: bool = False) -> _Kind:
    def check(v: Any) -> Optional[str]:
        if v is None and nullable:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            return ("must be an int >= 0" if zero else "must be a positive int") + (" or None" if nullable else "")
        if zero:
            return "must be >= 0" if v < 0 else None
        return "must be > 0" if v <= 0 else None
    return _Kind(check, int, nullable)


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE_WORDS:
        return True
    if t in _FALSE_WORDS:
        return False
    raise ValueError(text)


_BOOL = _Kind(lambda v: None if isinstance(v, bool) else "must be a bool", _parse_bool)


def _choice(options: Tuple[Any, ...]) -> _Kind:
    shown = ", ".join("None" if o is None else repr(o) for o in options)
    return _Kind(lambda v: None if isinstance(v, (str, type(None))) and v in options else f"must be one of {shown}",
                 str.strip, None in options)


MAX_WARMUP_KEYS = 10_000


def _check_keys(v: Any) -> Optional[str]:
    if (not isinstance(v, (list, tuple)) or len(v) > MAX_WARMUP_KEYS
            or not all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in v)):
        return f"must be a list of at most {MAX_WARMUP_KEYS} keys (str or int)"
    return None


def _check_fraction(v: Any) -> Optional[str]:
    if not _is_number(v) or math.isnan(v) or not 0 <= v < 1:
        return "must be a fraction in [0, 1)"
    return None


_FIELD_KINDS: Dict[str, _Kind] = {
    "l1_ttl": _seconds(nullable=True),
    "l1_max_entries": _count(nullable=True),
    "l1_max_bytes": _count(),
    "l1_min_bytes": _count(zero=True),
    "l1_grace_period": _seconds(zero=True),
    "l2_ttl": _seconds(nullable=True),
    "persist_to_l2": _BOOL,
    "serializer": _choice(SERIALIZERS),
    "compression": _choice(COMPRESSIONS),
    "compress_threshold": _count(),
    "max_value_bytes": _count(),
    "description": _Kind(lambda v: None if isinstance(v, str) else "must be a str", str),
    "background_refresh": _BOOL,
    "refresh_threshold": _seconds(),
    "priority": _choice(PRIORITIES),
    "promotion": _choice(PROMOTION_STRATEGIES),
    "ttl_jitter": _Kind(_check_fraction, float, normalize=float),
    "enable_stats": _BOOL,
    "warmup_keys": _Kind(_check_keys, lambda text: tuple(k.strip() for k in text.split(",") if k.strip()),
                         normalize=tuple),
}


def _unknown(errors: _Errors, where: Optional[str], name: Any, value: Any, known: Any, what: str) -> None:
    close = difflib.get_close_matches(str(name), list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    errors.add(where, str(name), f"unknown {what}{hint}", value)


def _none_word(kind: _Kind, value: Any) -> Any:
    """TOML has no null: a nullable field may be written as the string "none"."""
    if kind.nullable and isinstance(value, str) and value.strip().lower() in _NONE_WORDS:
        return None
    return value


# ------------------------------------------------------------------------------------- one namespace


@dataclass(frozen=True)
class NamespaceConfig:
    """What one namespace keeps, for how long, and how its values travel to L2.

    Times are seconds, sizes bytes. Construction does not validate; validated() (and every CacheConfig
    constructor) does, reporting every problem at once.
    """

    l1_ttl: Optional[float] = 300.0  # seconds an entry stays fresh in L1 (None: until evicted)
    l1_max_entries: Optional[int] = None
    l1_max_bytes: int = 8 * _MiB  # with l1_allocation "adaptive": the namespace's starting weight in the split
    l1_min_bytes: int = 0  # with l1_allocation "adaptive": the share it always keeps
    l1_grace_period: float = 0.0  # seconds past l1_ttl an entry may still be served when L2 and loader fail
    l2_ttl: Optional[float] = None  # None: kept in L2 until deleted
    persist_to_l2: bool = True
    serializer: str = "msgpack"
    compression: Optional[str] = None  # "zlib" or None
    compress_threshold: int = 1024
    # The largest value (serialized, uncompressed) the namespace writes or reads: a larger write raises,
    # a larger L2 value (or one that inflates past it) reads as corrupt.
    max_value_bytes: int = MAX_VALUE_BYTES
    description: str = ""
    # refresh-ahead: on access, an entry older than refresh_threshold is reloaded in the background while the
    # old value is served. A threshold with background_refresh off is allowed (it is simply unused).
    background_refresh: bool = False
    refresh_threshold: float = 600.0
    priority: str = "medium"  # "high" | "medium" | "low": eviction order under global L1 pressure
    promotion: str = "auto"  # L2 -> L1 promotion strategy; "auto" picks one by priority
    ttl_jitter: float = 0.0  # each TTL is scaled by a random factor in [1 - j, 1 + j] to spread expiries
    enable_stats: bool = True
    warmup_keys: Tuple[Any, ...] = ()  # loaded from L2 into L1 first by preload() and POST /cache-warmup

    def problems(self, namespace: str) -> List[str]:
        """Every problem with these settings, as "namespace 'X': field: message (got VALUE)" strings."""
        errors = _Errors()
        for name, kind in _FIELD_KINDS.items():
            value = getattr(self, name)
            message = kind.check(value)
            if message is not None:
                errors.add(namespace, name, message, value)
        l1, l2 = self.l1_ttl, self.l2_ttl
        if (l1 is not None and l2 is not None and _is_number(l1) and _is_number(l2)
                and not _has_error(errors, "l1_ttl", "l2_ttl") and l1 > l2):
            errors.add(namespace, "l1_ttl", f"must not exceed l2_ttl ({l2!r})", l1)
        return list(errors)

    def validated(self, namespace: str) -> "NamespaceConfig":
        """This config with seconds as floats, or a ConfigError listing every problem."""
        _raise_if(self.problems(namespace))
        return replace(self, **{name: kind.normalize(getattr(self, name)) for name, kind in _FIELD_KINDS.items()})

    @classmethod
    def from_mapping(cls, namespace: str, data: Mapping[str, Any],
                     base: Optional["NamespaceConfig"] = None) -> "NamespaceConfig":
        """`base` (default: NamespaceConfig()) with the fields in `data` replaced, validated."""
        cfg, errors = _merge(namespace, base or cls(), data)
        _raise_if(errors)
        return cfg.validated(namespace)


# Synthetic traffic (the admin API's load test and warm-up self-test, tiercache validate and bench) goes here:
# it expires from both tiers, and health assessments and hit-rate totals leave it out.
SELFTEST_NAMESPACE = "tiercache.selftest"
SELFTEST_CONFIG = NamespaceConfig(
    l1_ttl=60.0, l1_max_bytes=1 * _MiB, l2_ttl=300.0, priority="low", promotion="immediate",
    description="Synthetic traffic of tiercache's own tools: expires, kept out of health and hit-rate totals")


def _has_error(errors: List[str], *field_names: str) -> bool:
    """Whether `errors` already holds a problem with any of these fields (so a cross-check would only repeat it)."""
    return any(f": {name}: " in e for e in errors for name in field_names)


def _raise_if(errors: List[str]) -> None:
    if errors:
        raise _config_error(list(errors))


def _merge(namespace: str, base: NamespaceConfig, data: Any) -> Tuple[NamespaceConfig, List[str]]:
    """`base` with the known fields of mapping `data` applied, and every problem found (unknown fields,
    bad values). The problems are final: callers need not validate the result again to find them."""
    errors = _Errors()
    if not isinstance(data, Mapping):
        errors.add(namespace, "settings", "must be a table of fields", data)
        return base, list(errors)
    changes: Dict[str, Any] = {}
    for name, value in data.items():
        kind = _FIELD_KINDS.get(name) if isinstance(name, str) else None
        if kind is None:
            _unknown(errors, namespace, name, value, _FIELD_KINDS, "field")
        else:
            changes[name] = _none_word(kind, value)
    cfg = replace(base, **changes)
    errors.extend(cfg.problems(namespace))
    return cfg, list(errors)


DEFAULT_NAMESPACE = NamespaceConfig()


def build_namespaces(config: Optional[Mapping[str, Union[NamespaceConfig, Mapping[str, Any]]]]
                     ) -> Dict[str, NamespaceConfig]:
    """Validated NamespaceConfig per namespace from a mapping of configs or plain dicts (all errors at once)."""
    out, errors = _build_namespaces(config or {}, lambda name: DEFAULT_NAMESPACE)
    _raise_if(errors)
    return out


def _build_namespaces(config: Any, base_for: Callable[[str], NamespaceConfig]
                      ) -> Tuple[Dict[str, NamespaceConfig], List[str]]:
    out: Dict[str, NamespaceConfig] = {}
    errors = _Errors()
    if not isinstance(config, Mapping):
        errors.add(None, "namespaces", "must be a table of namespace tables", config)
        return out, list(errors)
    for name, value in config.items():
        if not isinstance(name, str) or not _NAMESPACE_RE.fullmatch(name):
            errors.add(str(name), "name", _NAMESPACE_RULE, name)
            continue
        if isinstance(value, NamespaceConfig):
            problems = value.problems(name)
            cfg = value
        elif isinstance(value, Mapping):
            cfg, problems = _merge(name, base_for(name), value)
        else:
            errors.add(name, "settings", "must be a NamespaceConfig or a table of fields", value)
            continue
        errors.extend(problems)
        if not problems:
            out[name] = cfg.validated(name)
    return out, list(errors)


# ------------------------------------------------------------------------------------- default profile
# The original system's seven namespaces. Per env: (l1_ttl s, l1_max_entries,
# l1_max_bytes MiB, priority).
_PROFILE_TABLE: Dict[str, Dict[str, Tuple[float, int, int, str]]] = {
    "sentiment_analysis": {"development": (300, 50, 5, "high"), "production": (900, 100, 10, "high"),
                           "test": (5, 10, 1, "medium")},
    "market_data": {"development": (30, 200, 3, "high"), "production": (60, 500, 8, "high"),
                    "test": (2, 20, 1, "medium")},
    "sector_data": {"development": (120, 100, 4, "medium"), "production": (300, 200, 6, "medium"),
                    "test": (5, 15, 1, "low")},
    "reports": {"development": (600, 30, 8, "medium"), "production": (1800, 100, 20, "medium"),
                "test": (10, 5, 2, "low")},
    "api_responses": {"development": (60, 150, 2, "low"), "production": (180, 300, 5, "low"),
                      "test": (3, 25, 1, "low")},
    "news_articles": {"development": (900, 100, 10, "high"), "production": (900, 200, 20, "high"),
                      "test": (5, 15, 2, "medium")},
    "ai_results": {"development": (1800, 25, 15, "high"), "production": (3600, 50, 25, "high"),
                   "test": (8, 8, 2, "medium")},
}
_DESCRIPTIONS = {
    "sentiment_analysis": "Sentiment scores computed from text",
    "market_data": "Quotes and market snapshots: short-lived, read often",
    "sector_data": "Sector aggregates and classifications",
    "reports": "Generated reports: large, slow to build, rarely changed",
    "api_responses": "Responses from third-party APIs",
    "news_articles": "Fetched news articles",
    "ai_results": "Results of model calls: expensive to recompute",
}
# l2_ttl seconds per env: a few times the L1 TTL (and past the grace period), as the original's (market_data
# 180 s / 300 s); in test, short so runs do not pile up.
_L2_TTL = {"sentiment_analysis": {"development": 1800, "production": 3600, "test": 30},
           "market_data": {"development": 180, "production": 300, "test": 10},
           "sector_data": {"development": 600, "production": 1800, "test": 30},
           "reports": {"development": 3600, "production": 7200, "test": 60},
           "api_responses": {"development": 300, "production": 900, "test": 15},
           "news_articles": {"development": 3600, "production": 7200, "test": 30},
           "ai_results": {"development": 7200, "production": 86400, "test": 60}}
_DEFAULT_L2_TTL = {"development": 3600.0, "production": 3600.0, "test": 30.0}
_GRACE = {"sentiment_analysis": {"development": 900, "production": 1800},  # others (and test): 0
          "market_data": {"development": 30, "production": 60},
          "sector_data": {"development": 180, "production": 600},
          "reports": {"development": 1800, "production": 3600}}
_REFRESH_THRESHOLD = {"market_data": 300.0}  # others 600 s
_NO_BACKGROUND_REFRESH = {"reports"}
# Background refresh is off everywhere in test: a reload thread racing the test makes results depend on
# timing, and test TTLs (2-10 s) are far below the 600 s threshold anyway.
_BACKGROUND_REFRESH_ENVS = ("development", "production")
# Namespaces not listed: modest budgets, low priority (they yield L1 first under global pressure), no
# refresh-ahead (it needs a loader the namespace opted into).
_PROFILE_DEFAULT = {"development": (300, 100, 4), "production": (600, 200, 8), "test": (5, 10, 1)}
# Global L1 cap: above the sum of the seven budgets (47 / 94 / 10 MiB) to leave room for other namespaces.
_PROFILE_L1_MAX_BYTES = {"development": 64 * _MiB, "production": 128 * _MiB, "test": 16 * _MiB}


def _profile(env: str) -> Tuple[Dict[str, NamespaceConfig], NamespaceConfig, int]:
    namespaces = {}
    for name, per_env in _PROFILE_TABLE.items():
        l1_ttl, entries, mib, priority = per_env[env]
        namespaces[name] = NamespaceConfig(
            l1_ttl=float(l1_ttl), l1_max_entries=entries, l1_max_bytes=mib * _MiB,
            l1_grace_period=float(_GRACE.get(name, {}).get(env, 0)),
            l2_ttl=float(_L2_TTL[name][env]),
            background_refresh=env in _BACKGROUND_REFRESH_ENVS and name not in _NO_BACKGROUND_REFRESH,
            refresh_threshold=_REFRESH_THRESHOLD.get(name, 600.0),
            priority=priority, description=_DESCRIPTIONS[name])
    l1_ttl, entries, mib = _PROFILE_DEFAULT[env]
    default = NamespaceConfig(l1_ttl=float(l1_ttl), l1_max_entries=entries, l1_max_bytes=mib * _MiB,
                              l2_ttl=_DEFAULT_L2_TTL[env], priority="low",
                              description="Namespaces not listed in the configuration")
    return namespaces, default, _PROFILE_L1_MAX_BYTES[env]


# ------------------------------------------------------------------------------------- the whole config

_TOP_LEVEL_KEYS = ("env", "l1_max_bytes", "l1_allocation", "strict_namespaces", "default", "namespaces", "health",
                   "alerts", "environments")
_ENV_SECTION_KEYS = ("l1_max_bytes", "l1_allocation", "strict_namespaces", "default", "namespaces", "health",
                     "alerts")
_GLOBAL_MAX_BYTES = _count(nullable=True)
_ENV_RULE = f"must be one of {', '.join(ENVIRONMENTS)} (or dev/prod/testing)"


@dataclass(frozen=True)
class CacheConfig:
    """Every namespace's settings for one environment, validated as a whole; immutable.

    `namespaces`: name -> NamespaceConfig (a read-only mapping). `default_namespace`: the settings of a
    namespace not listed, unless `strict_namespaces`, which makes such a namespace an error.
    `l1_max_bytes`: the global L1 cap over all namespaces (None: only the per-namespace budgets bound L1).
    `l1_allocation`: "static" (each namespace's own l1_max_bytes; under the global cap, low priority is
    evicted first) or "adaptive" (needs l1_max_bytes: the namespaces share it, and the shares move toward
    where a byte buys the most hits, each keeping its l1_min_bytes).
    `health`: health-assessment thresholds replacing the defaults (tiercache.observability.health).
    `alerts`: alert rules and where notifications go (tiercache.observability.alerts.AlertsConfig, or the
    [alerts] table as a mapping).
    Construction validates and raises one ConfigError listing every problem (its `.errors`); derive a
    changed config with updated() or dataclasses.replace(), which validate the same way.
    """

    env: str = "development"
    namespaces: Mapping[str, NamespaceConfig] = field(default_factory=dict)
    default_namespace: NamespaceConfig = DEFAULT_NAMESPACE
    strict_namespaces: bool = False
    l1_max_bytes: Optional[int] = None
    health: Mapping[str, float] = field(default_factory=dict)
    l1_allocation: str = "static"
    alerts: _alerts.AlertsConfig = _alerts.NO_ALERTS

    def __post_init__(self) -> None:
        errors = _Errors()
        env = _env_name(self.env)
        if env is None:
            errors.add(None, "env", _ENV_RULE, self.env)
        default = self.default_namespace
        if isinstance(default, NamespaceConfig):
            errors.extend(default.problems(DEFAULT_NAMESPACE_NAME))
        elif isinstance(default, Mapping):
            default, problems = _merge(DEFAULT_NAMESPACE_NAME, DEFAULT_NAMESPACE, default)
            errors.extend(problems)
        else:
            errors.add(None, "default_namespace", "must be a NamespaceConfig or a table of fields", default)
            default = DEFAULT_NAMESPACE
        namespaces, problems = _build_namespaces(self.namespaces, lambda name: default)
        errors.extend(problems)
        _check_globals(errors, self.l1_max_bytes, self.strict_namespaces, self.l1_allocation,
                       [default, *namespaces.values()])
        health = _check_health(errors, self.health)
        alerts = self.alerts
        if not isinstance(alerts, _alerts.AlertsConfig):
            alerts, problems = _parse_alerts(alerts)
            errors.extend(problems)
        errors.raise_if_any()
        object.__setattr__(self, "alerts", alerts)
        object.__setattr__(self, "env", env)
        object.__setattr__(self, "health", MappingProxyType(health))
        object.__setattr__(self, "namespaces", MappingProxyType(namespaces))
        object.__setattr__(self, "default_namespace", default.validated(DEFAULT_NAMESPACE_NAME))
        object.__setattr__(self, "_source", None)  # the data from_dict() read, for a TIERCACHE_ENV switch

    def __hash__(self) -> int:
        return hash((self.env, tuple(sorted(self.namespaces.items())), self.default_namespace,
                     self.strict_namespaces, self.l1_max_bytes, tuple(sorted(self.health.items())),
                     self.l1_allocation, self.alerts))

    def __reduce__(self) -> Any:  # a MappingProxyType does not pickle
        return (_rebuild, (self.env, dict(self.namespaces), self.default_namespace, self.strict_namespaces,
                           self.l1_max_bytes, dict(self.health), self.l1_allocation, self.alerts))

    # ---------------------------------------------------------------- constructors

    @classmethod
    def default(cls, env: Optional[str] = None) -> "CacheConfig":
        """The shipped profile for resolve_env(env): seven namespaces, the default namespace, the L1 cap."""
        return cls.from_dict({}, env=env)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], env: Optional[str] = None) -> "CacheConfig":
        """The profile for the environment with `data` (shaped like the TOML file) laid over it.

        The environment is `env`, else data["env"], else TIERCACHE_ENV, else development. Top-level keys:
        env, l1_max_bytes, l1_allocation, strict_namespaces, health, alerts, default (table), namespaces (table
        of tables), environments (ENV -> table with the same keys but env, applied after the top level and only
        in that environment; its [alerts] replaces the top level's). Fields given replace the profile's; a
        namespace not in the profile starts from the default namespace as it stands at that layer. TOML has no
        null, so a field that may be None can be written "none".
        """
        errors = _Errors()
        if not isinstance(data, Mapping):
            raise _config_error([f"config: must be a table (got {data!r})"])
        for key in data:
            if key not in _TOP_LEVEL_KEYS:
                _unknown(errors, None, key, data[key], _TOP_LEVEL_KEYS, "setting")
        raw_env = env if env is not None else data.get("env")
        if raw_env is None:
            raw_env = os.environ.get("TIERCACHE_ENV", "development")
        name = _env_name(raw_env)
        if name is None:
            errors.add(None, "env", _ENV_RULE, raw_env)
            name = "development"  # keep checking the rest, so every problem is reported in one go

        layers: List[Tuple[str, Mapping[str, Any]]] = [("", data)]
        sections = data.get("environments", {})
        if not isinstance(sections, Mapping):
            errors.add(None, "environments", "must be a table of environment tables", sections)
            sections = {}
        for section_env, section in sections.items():
            where = f"environments.{section_env}"
            if _env_name(section_env) is None:
                errors.add(None, where, f"unknown environment; use one of {', '.join(ENVIRONMENTS)}")
                continue
            if not isinstance(section, Mapping):
                errors.add(None, where, "must be a table", section)
                continue
            for key in section:
                if key not in _ENV_SECTION_KEYS:
                    _unknown(errors, None, f"{where}.{key}", section[key], _ENV_SECTION_KEYS, "setting")
            if _env_name(section_env) == name:
                layers.append((where + ".", section))

        namespaces, default, l1_max_bytes = _profile(name)
        strict: Any = False
        allocation: Any = "static"
        health: Dict[str, Any] = {}
        alerts = _alerts.NO_ALERTS
        for prefix, layer in layers:
            if "alerts" in layer:  # (an environment's [alerts] replaces the top level's whole)
                alerts, problems = _parse_alerts(layer["alerts"])
                errors.extend(f"{prefix}{p}" for p in problems)
            if "health" in layer:
                if isinstance(layer["health"], Mapping):
                    health.update(layer["health"])
                else:
                    errors.add(None, prefix + "health", "must be a table of thresholds", layer["health"])
            if "default" in layer:
                merged, problems = _merge(DEFAULT_NAMESPACE_NAME, default, layer["default"])
                errors.extend(problems)
                if not problems:  # else namespaces built on it would repeat its problems as their own
                    default = merged
            if "l1_max_bytes" in layer:
                l1_max_bytes = _none_word(_GLOBAL_MAX_BYTES, layer["l1_max_bytes"])
            if "strict_namespaces" in layer:
                strict = layer["strict_namespaces"]
            if "l1_allocation" in layer:
                allocation = layer["l1_allocation"]
            table = layer.get("namespaces", {})
            if not isinstance(table, Mapping):
                errors.add(None, prefix + "namespaces", "must be a table of namespace tables", table)
                continue
            base = default
            built, problems = _build_namespaces(table, lambda ns: namespaces.get(ns, base))
            errors.extend(problems)
            namespaces.update(built)
        _check_globals(errors, l1_max_bytes, strict, allocation, [default, *namespaces.values()])
        _check_health(errors, health)
        errors.raise_if_any()
        config = cls(env=name, namespaces=namespaces, default_namespace=default, strict_namespaces=strict,
                     l1_max_bytes=l1_max_bytes, health=health, l1_allocation=allocation, alerts=alerts)
        object.__setattr__(config, "_source", _plain_copy(data))
        return config

    @classmethod
    def from_toml(cls, path: Union[str, "os.PathLike[str]"], env: Optional[str] = None) -> "CacheConfig":
        """from_dict() of a TOML file (stdlib tomllib; the `tomli` package on Python < 3.11)."""
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise _config_error([f"{os.fspath(path)}: invalid TOML: {exc}"]) from None
        return cls.from_dict(data, env=env)

    # ---------------------------------------------------------------- use

    def namespace(self, name: str) -> NamespaceConfig:
        """The settings for `name`: its own, else the default namespace's; ConfigError if strict_namespaces.
        The reserved SELFTEST_NAMESPACE always exists."""
        check_namespace(name)
        cfg = self.namespaces.get(name)
        if cfg is not None:
            return cfg
        if name == SELFTEST_NAMESPACE:
            return SELFTEST_CONFIG
        if self.strict_namespaces:
            known = ", ".join(sorted(self.namespaces)) or "none"
            raise _config_error([f"namespace {name!r}: name: not configured and strict_namespaces is set "
                                 f"(configured: {known})"])
        return self.default_namespace

    def updated(self, namespace: str, **changes: Any) -> "CacheConfig":
        """A new CacheConfig with `changes` applied to `namespace`; this one is unchanged.

        Raises one ConfigError listing every problem with the changes. A namespace not yet configured
        starts from the default namespace, unless strict_namespaces (then it is an error: configure it).
        """
        if not isinstance(namespace, str) or not _NAMESPACE_RE.fullmatch(namespace):
            raise _config_error([f"namespace {str(namespace)!r}: name: {_NAMESPACE_RULE} (got {namespace!r})"])
        if namespace not in self.namespaces and self.strict_namespaces:
            raise _config_error([f"namespace {namespace!r}: name: not configured and strict_namespaces is set"])
        cfg, problems = _merge(namespace, self.namespaces.get(namespace, self.default_namespace), changes)
        _raise_if(problems)
        return replace(self, namespaces={**self.namespaces, namespace: cfg})

    def figures(self) -> Dict[str, Any]:
        """The original system's summary figures over the configured namespaces: how many, their average L1
        and L2 TTLs (seconds, over those that have one), their L1 budgets together (MiB), and which keep
        values in L2 until deleted."""
        spaces = self.namespaces
        l1 = [c.l1_ttl for c in spaces.values() if c.l1_ttl is not None]
        l2 = [c.l2_ttl for c in spaces.values() if c.l2_ttl is not None]
        return {
            "namespaces": len(spaces),
            "avg_l1_ttl": round(sum(l1) / len(l1), 1) if l1 else None,
            "avg_l2_ttl": round(sum(l2) / len(l2), 1) if l2 else None,
            "total_memory_mb": round(sum(c.l1_max_bytes for c in spaces.values()) / _MiB, 2),
            "global_memory_mb": None if self.l1_max_bytes is None else round(self.l1_max_bytes / _MiB, 2),
            "without_l2_ttl": sorted(ns for ns, c in spaces.items() if c.l2_ttl is None and c.persist_to_l2),
        }

    def summary(self) -> Dict[str, Any]:
        """A JSON-serializable dict, accepted back by from_dict(): env, l1_max_bytes, l1_allocation,
        strict_namespaces, health, alerts (when configured), default (the default namespace) and namespaces,
        each with every field."""
        alerts = self.alerts.as_dict()
        return {
            "env": self.env,
            "l1_max_bytes": self.l1_max_bytes,
            "l1_allocation": self.l1_allocation,
            "strict_namespaces": self.strict_namespaces,
            "health": dict(self.health),
            **({"alerts": alerts} if alerts else {}),
            "default": _as_json(self.default_namespace),
            "namespaces": {name: _as_json(cfg) for name, cfg in sorted(self.namespaces.items())},
        }


def _as_json(cfg: NamespaceConfig) -> Dict[str, Any]:
    """A namespace's fields as JSON has them (lists, not tuples)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


def _check_globals(errors: _Errors, l1_max_bytes: Any, strict: Any, allocation: Any = "static",
                   spaces: Iterable[Any] = ()) -> None:
    message = _GLOBAL_MAX_BYTES.check(l1_max_bytes)
    if message is not None:
        errors.add(None, "l1_max_bytes", message, l1_max_bytes)
    if not isinstance(strict, bool):
        errors.add(None, "strict_namespaces", "must be a bool", strict)
    if allocation not in L1_ALLOCATIONS:
        errors.add(None, "l1_allocation", f"must be one of {', '.join(map(repr, L1_ALLOCATIONS))}", allocation)
    elif allocation == "adaptive" and message is None:
        if l1_max_bytes is None:
            errors.add(None, "l1_allocation", "\"adaptive\" shares the global l1_max_bytes: set it", allocation)
        else:
            floors = sum(c.l1_min_bytes for c in spaces if isinstance(c, NamespaceConfig)
                         and isinstance(c.l1_min_bytes, int))
            if floors > l1_max_bytes:
                errors.add(None, "l1_allocation", f"the namespaces' l1_min_bytes add up to {floors}, more than "
                           f"l1_max_bytes", allocation)


def _check_health(errors: _Errors, health: Any) -> Dict[str, float]:
    """The health thresholds of `health` (a mapping), each checked; problems go to `errors`."""
    from .observability.health import DEFAULT_THRESHOLDS, thresholds

    if not isinstance(health, Mapping):
        errors.add(None, "health", "must be a table of thresholds", health)
        return {}
    good = {}
    for name, value in health.items():
        if name not in DEFAULT_THRESHOLDS:
            _unknown(errors, None, f"health.{name}", value, DEFAULT_THRESHOLDS, "threshold")
            continue
        try:
            good[name] = thresholds({name: value})[name]
        except ValueError as exc:
            errors.add(None, f"health.{name}", str(exc), value)
    return good


def _parse_alerts(data: Any) -> Tuple[_alerts.AlertsConfig, List[str]]:
    """An [alerts] table (tiercache.observability.alerts.parse), its rules' namespaces checked too."""
    alerts, problems = _alerts.parse(data)
    for rule in alerts.rules:
        if rule.namespace not in (None, _alerts.ALL_NAMESPACES) and not _NAMESPACE_RE.fullmatch(rule.namespace):
            problems.append(f"alerts.rules.{rule.name}.namespace: {_NAMESPACE_RULE}, or \"*\" for each "
                            f"(got {rule.namespace!r})")
    return alerts, problems


def _rebuild(env: str, namespaces: Dict[str, NamespaceConfig], default: NamespaceConfig, strict: bool,
             l1_max_bytes: Optional[int], health: Optional[Dict[str, float]] = None,
             l1_allocation: str = "static", alerts: _alerts.AlertsConfig = _alerts.NO_ALERTS) -> CacheConfig:
    return CacheConfig(env=env, namespaces=namespaces, default_namespace=default, strict_namespaces=strict,
                       l1_max_bytes=l1_max_bytes, health=health or {}, l1_allocation=l1_allocation, alerts=alerts)


def _plain_copy(data: Any) -> Any:
    """A deep copy of plain TOML-like data, so later edits by the caller cannot reach the stored source."""
    if isinstance(data, Mapping):
        return {k: _plain_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain_copy(v) for v in data]
    return data


# ------------------------------------------------------------------------------------- TIERCACHE_* variables

_NS_PREFIX = "TIERCACHE_NS__"
_DEFAULT_PREFIX = "TIERCACHE_DEFAULT__"


def apply_env_overrides(config: CacheConfig, environ: Optional[Mapping[str, str]] = None) -> CacheConfig:
    """`config` with the TIERCACHE_* variables in `environ` (default os.environ) applied; a new object.

    TIERCACHE_ENV=development|production|test (aliases dev/prod/testing): rebuild the config for that
        environment from the data it was loaded from (profile + file). A config without that source (built
        directly, or changed with updated()) raises ConfigError when asked to switch environment.
    TIERCACHE_L1_MAX_BYTES=<int>|none              the global L1 cap
    TIERCACHE_L1_ALLOCATION=static|adaptive       how the global L1 cap is split
    TIERCACHE_STRICT_NAMESPACES=true|false
    TIERCACHE_ALERTS_WEBHOOK=<url>|none            where alert notifications are POSTed (a URL holding a
                                                  token stays out of the file)
    TIERCACHE_DEFAULT__<FIELD>=<value>             a field of the default namespace settings
    TIERCACHE_NS__<NAMESPACE>__<FIELD>=<value>     a field of one namespace
    <NAMESPACE> matches a configured namespace case-insensitively (TIERCACHE_NS__MARKET_DATA__L1_TTL=15);
    one that matches none adds a namespace named in lower case. <FIELD> is a NamespaceConfig field, any case.
    Values are parsed by the field's type: numbers; true/false/yes/no/on/off/1/0 for bools; none/null for
    a field that may be None. Other TIERCACHE_* variables (TIERCACHE_L2_URL, ...) belong to other parts of
    tiercache and are ignored here. Every problem is reported in one ConfigError naming the variable.
    """
    environ = os.environ if environ is None else environ
    errors = _Errors()
    raw_env = environ.get("TIERCACHE_ENV")
    if raw_env is not None and raw_env.strip():
        name = _env_name(raw_env)
        if name is None:
            errors.add(None, "TIERCACHE_ENV", _ENV_RULE, raw_env)
        elif name != config.env:
            source = getattr(config, "_source", None)
            if source is None:
                errors.add(None, "TIERCACHE_ENV", f"cannot switch this config from {config.env!r}: it was not "
                           "loaded by CacheConfig.default/from_dict/from_toml, or was since updated()", raw_env)
            else:
                try:
                    config = CacheConfig.from_dict(source, env=name)
                except ConfigError as exc:
                    errors.extend(f"TIERCACHE_ENV={raw_env}: {e}" for e in exc.errors)  # type: ignore[attr-defined]

    global_changes: Dict[str, Any] = {}
    default_changes: Dict[str, Any] = {}
    ns_changes: Dict[str, Dict[str, Any]] = {}
    sources: Dict[Tuple[Optional[str], str], str] = {}  # (namespace, field) -> the variable that set it
    lower_names: Dict[str, List[str]] = {}
    for ns in config.namespaces:
        lower_names.setdefault(ns.lower(), []).append(ns)

    for var in sorted(environ):
        text = environ[var]
        if var == "TIERCACHE_L1_MAX_BYTES":
            _parse_into(errors, sources, var, None, "l1_max_bytes", _GLOBAL_MAX_BYTES, text, global_changes)
        elif var == "TIERCACHE_L1_ALLOCATION":
            _parse_into(errors, sources, var, None, "l1_allocation", _choice(L1_ALLOCATIONS), text, global_changes)
        elif var == "TIERCACHE_STRICT_NAMESPACES":
            _parse_into(errors, sources, var, None, "strict_namespaces", _BOOL, text, global_changes)
        elif var == "TIERCACHE_ALERTS_WEBHOOK":
            url = None if text.strip().lower() in _NONE_WORDS else text.strip()
            problems = _alerts.parse({"webhook": url})[1] if url is not None else []
            errors.extend(f"{problem} (from {var})" for problem in problems)
            global_changes["alerts"] = replace(config.alerts, webhook=url)
        elif var.startswith(_DEFAULT_PREFIX):
            field_name = var[len(_DEFAULT_PREFIX):].lower()
            _parse_into(errors, sources, var, DEFAULT_NAMESPACE_NAME, field_name, _FIELD_KINDS.get(field_name), text,
                        default_changes)
        elif var.startswith(_NS_PREFIX):
            ns_part, sep, field_part = var[len(_NS_PREFIX):].rpartition("__")
            if not sep or not ns_part or not field_part:
                errors.add(None, var, "must be TIERCACHE_NS__<NAMESPACE>__<FIELD>", text)
                continue
            matches = lower_names.get(ns_part.lower(), [])
            if len(matches) > 1:
                errors.add(None, var, f"matches several namespaces ({', '.join(sorted(matches))}); "
                           "namespace names in variables are case-insensitive", text)
                continue
            ns = matches[0] if matches else ns_part.lower()
            field_name = field_part.lower()
            _parse_into(errors, sources, var, ns, field_name, _FIELD_KINDS.get(field_name), text,
                        ns_changes.setdefault(ns, {}))
    if not (errors or global_changes or default_changes or ns_changes):
        return config

    default, problems = _merge(DEFAULT_NAMESPACE_NAME, config.default_namespace, default_changes)
    errors.extend(_from_vars(problems, sources))
    if problems:
        default = config.default_namespace
    namespaces = dict(config.namespaces)
    for ns, changes in ns_changes.items():
        if not _NAMESPACE_RE.fullmatch(ns):
            errors.add(ns, "name", _NAMESPACE_RULE, ns)
            continue
        cfg, problems = _merge(ns, namespaces.get(ns, default), changes)
        errors.extend(_from_vars(problems, sources))
        namespaces[ns] = cfg
    problems = _Errors()
    _check_globals(problems, global_changes.get("l1_max_bytes", config.l1_max_bytes),
                   global_changes.get("strict_namespaces", config.strict_namespaces),
                   global_changes.get("l1_allocation", config.l1_allocation), [default, *namespaces.values()])
    errors.extend(_from_vars(problems, sources))
    errors.raise_if_any()
    return replace(config, namespaces=namespaces, default_namespace=default, **global_changes)


def _from_vars(problems: List[str], sources: Dict[Tuple[Optional[str], str], str]) -> List[str]:
    """Each problem with the variable it came from appended, so the user knows which one to fix."""
    out = []
    for problem in problems:
        for (ns, field_name), var in sources.items():
            if problem.startswith(f"namespace {ns!r}: {field_name}: " if ns is not None else f"{field_name}: "):
                problem += f" (from {var})"
                break
        out.append(problem)
    return out


def _parse_into(errors: _Errors, sources: Dict[Tuple[Optional[str], str], str], var: str, ns: Optional[str],
                field_name: str, kind: Optional[_Kind], text: str, into: Dict[str, Any]) -> None:
    if kind is None:
        _unknown(errors, ns, field_name, text, _FIELD_KINDS, f"field (from {var})")
        return
    sources[(ns, field_name)] = var
    if kind.nullable and text.strip().lower() in _NONE_WORDS:
        into[field_name] = None
        return
    try:
        into[field_name] = kind.parse(text)
    except ValueError:
        # check() of a value of no accepted type yields the rule, e.g. "must be a positive int or None"
        errors.add(ns, field_name, f"{kind.check(object())} (from {var})", text)
