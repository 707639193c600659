"""Per-namespace settings and the environment they are chosen for.

A namespace's settings decide its L1 budget and TTLs, its L2 TTL, its grace period for stale serving and
how its values are serialized. This module holds the settings type and the environment rules; profiles,
TOML files and live updates build on it.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, fields, replace
from typing import Any, Dict, Mapping, Optional, Union

from .errors import ConfigError

__all__ = ["NamespaceConfig", "resolve_env", "check_namespace", "ENVIRONMENTS", "DEFAULT_NAMESPACE"]

ENVIRONMENTS = ("development", "production", "test")
_ENV_ALIASES = {"dev": "development", "prod": "production", "testing": "test"}
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
SERIALIZERS = ("msgpack", "json", "pickle")


def resolve_env(env: Optional[str]) -> str:
    """`env`, else TIERCACHE_ENV, else "development"; aliases dev/prod/testing accepted."""
    raw = env if env is not None else os.environ.get("TIERCACHE_ENV", "development")
    name = _ENV_ALIASES.get(raw.strip().lower(), raw.strip().lower())
    if name not in ENVIRONMENTS:
        raise ConfigError(f"env must be one of {', '.join(ENVIRONMENTS)} (or dev/prod/testing), got {raw!r}")
    return name


def check_namespace(namespace: Any) -> str:
    if not isinstance(namespace, str):
        raise TypeError(f"namespace must be a str, got {type(namespace).__name__} {namespace!r}")
    if not _NAMESPACE_RE.match(namespace):
        raise ValueError(f"namespace must be 1-128 characters of letters, digits, '_', '.', '-', got {namespace!r}")
    return namespace


def _seconds(ns: str, field: str, value: Any, *, allow_none: bool, allow_zero: bool = False) -> Optional[float]:
    if value is None:
        if allow_none:
            return None
        raise ConfigError(f"namespace {ns!r}: {field} must be a number of seconds, got None")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or math.isinf(value):
        raise ConfigError(f"namespace {ns!r}: {field} must be a finite number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"namespace {ns!r}: {field} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def _count(ns: str, field: str, value: Any, *, allow_none: bool) -> Optional[int]:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"namespace {ns!r}: {field} must be a positive int, got {value!r}")
    return value


@dataclass(frozen=True)
class NamespaceConfig:
    """What one namespace keeps, for how long, and how its values travel to L2."""

    l1_ttl: Optional[float] = 300.0  # seconds an entry stays fresh in L1 (None: until evicted)
    l1_max_entries: Optional[int] = None
    l1_max_bytes: int = 8 * 1024 * 1024
    l1_grace_period: float = 0.0  # seconds past l1_ttl an entry may still be served when L2 and loader fail
    l2_ttl: Optional[float] = None  # None: kept in L2 until deleted
    persist_to_l2: bool = True
    serializer: str = "msgpack"
    compression: Optional[str] = None  # "zlib" or None
    compress_threshold: int = 1024
    description: str = ""

    def validated(self, namespace: str) -> "NamespaceConfig":
        """This config, or a ConfigError naming the namespace, the field and the value."""
        ns = namespace
        _seconds(ns, "l1_ttl", self.l1_ttl, allow_none=True)
        _count(ns, "l1_max_entries", self.l1_max_entries, allow_none=True)
        _count(ns, "l1_max_bytes", self.l1_max_bytes, allow_none=False)
        _seconds(ns, "l1_grace_period", self.l1_grace_period, allow_none=False, allow_zero=True)
        _seconds(ns, "l2_ttl", self.l2_ttl, allow_none=True)
        if self.l1_ttl is not None and self.l2_ttl is not None and self.l1_ttl > self.l2_ttl:
            raise ConfigError(f"namespace {ns!r}: l1_ttl ({self.l1_ttl}) must not exceed l2_ttl ({self.l2_ttl})")
        if self.serializer not in SERIALIZERS:
            raise ConfigError(f"namespace {ns!r}: serializer must be one of {', '.join(SERIALIZERS)}, "
                              f"got {self.serializer!r}")
        if self.compression not in (None, "zlib"):
            raise ConfigError(f"namespace {ns!r}: compression must be 'zlib' or None, got {self.compression!r}")
        _count(ns, "compress_threshold", self.compress_threshold, allow_none=False)
        if not isinstance(self.persist_to_l2, bool):
            raise ConfigError(f"namespace {ns!r}: persist_to_l2 must be a bool, got {self.persist_to_l2!r}")
        return self

    @classmethod
    def from_mapping(cls, namespace: str, data: Mapping[str, Any],
                     base: Optional["NamespaceConfig"] = None) -> "NamespaceConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"namespace {namespace!r}: unknown field(s) {', '.join(unknown)}")
        return replace(base or cls(), **dict(data)).validated(namespace)


DEFAULT_NAMESPACE = NamespaceConfig()


def build_namespaces(config: Optional[Mapping[str, Union[NamespaceConfig, Mapping[str, Any]]]]
                     ) -> Dict[str, NamespaceConfig]:
    """Validated NamespaceConfig per namespace from a mapping of configs or plain dicts."""
    out: Dict[str, NamespaceConfig] = {}
    for name, value in (config or {}).items():
        check_namespace(name)
        if isinstance(value, NamespaceConfig):
            out[name] = value.validated(name)
        elif isinstance(value, Mapping):
            out[name] = NamespaceConfig.from_mapping(name, value)
        else:
            raise ConfigError(f"namespace {name!r}: settings must be a NamespaceConfig or a mapping, "
                              f"got {type(value).__name__}")
    return out
