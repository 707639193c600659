"""tiercache.config: the default profile, loading (dict, TOML, TIERCACHE_* variables), validation, updates."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import re
from pathlib import Path
from typing import Any, Dict, List

import pytest

from tiercache.config import (
    DEFAULT_NAMESPACE,
    ENVIRONMENTS,
    CacheConfig,
    NamespaceConfig,
    apply_env_overrides,
    build_namespaces,
    resolve_env,
)
from tiercache.errors import ConfigError

MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _no_env_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    # The profile is chosen by TIERCACHE_ENV when no env is given: a developer's shell must not pick it.
    monkeypatch.delenv("TIERCACHE_ENV", raising=False)


def errors_of(excinfo: pytest.ExceptionInfo[ConfigError]) -> List[str]:
    errors = excinfo.value.errors  # type: ignore[attr-defined]
    assert isinstance(errors, list) and errors
    for e in errors:
        assert e in str(excinfo.value)
    return errors


# ------------------------------------------------------------------------------------------ the profile

# the shipped profiles' table: l1_ttl s / l1_max_entries / l1_max_bytes MB / priority
TABLE = {
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
L2_TTL = dict(zip(TABLE, ((1800, 3600, 30), (180, 300, 10), (600, 1800, 30), (3600, 7200, 60), (300, 900, 15),
                          (3600, 7200, 30), (7200, 86400, 60))))  # development, production, test
GRACE = {"sentiment_analysis": (900, 1800), "market_data": (30, 60), "sector_data": (180, 600),
         "reports": (1800, 3600)}
CASES = [(ns, env) for ns in TABLE for env in ENVIRONMENTS]


@pytest.mark.parametrize("namespace, env", CASES)
def test_profile_table(namespace: str, env: str) -> None:
    cfg = CacheConfig.default(env).namespace(namespace)
    l1_ttl, entries, mb, priority = TABLE[namespace][env]
    assert (cfg.l1_ttl, cfg.l1_max_entries, cfg.l1_max_bytes, cfg.priority) == (l1_ttl, entries, mb * MiB,
                                                                              priority)
    assert cfg.l2_ttl == L2_TTL[namespace][("development", "production", "test").index(env)]
    assert cfg.l1_ttl + cfg.l1_grace_period <= cfg.l2_ttl  # (L2 outlives every L1 copy, stale ones too)
    dev_grace, prod_grace = GRACE.get(namespace, (0, 0))
    assert cfg.l1_grace_period == {"development": dev_grace, "production": prod_grace, "test": 0}[env]
    assert cfg.refresh_threshold == (300 if namespace == "market_data" else 600)
    # reports never refreshes ahead; test never does (a background reload would make tests timing-dependent)
    assert cfg.background_refresh is (namespace != "reports" and env != "test")
    assert cfg.promotion == "auto"
    assert cfg.persist_to_l2 and cfg.enable_stats and cfg.ttl_jitter == 0
    assert cfg.description


def test_profile_is_exactly_the_seven_namespaces_and_valid() -> None:
    for env in ENVIRONMENTS:
        config = CacheConfig.default(env)
        assert set(config.namespaces) == set(TABLE)
        assert config.env == env and not config.strict_namespaces
        for name, cfg in config.namespaces.items():
            assert cfg.validated(name) == cfg
        assert config.default_namespace.priority == "low"
        # the global cap leaves room above the seven budgets for namespaces not listed
        assert config.l1_max_bytes > sum(c.l1_max_bytes for c in config.namespaces.values())


def test_unknown_namespace_gets_the_profiles_default() -> None:
    config = CacheConfig.default("production")
    assert config.namespace("invoices") is config.default_namespace
    assert config.default_namespace.l1_ttl == 600 and config.default_namespace.background_refresh is False
    assert CacheConfig.default("test").namespace("invoices").l2_ttl == 30


# ------------------------------------------------------------------------------------------ environments

@pytest.mark.parametrize("given, expected", [
    ("development", "development"), ("dev", "development"), ("production", "production"), ("prod", "production"),
    ("test", "test"), ("testing", "test"), (" PROD ", "production"), ("Testing", "test"),
])
def test_env_names_and_aliases(given: str, expected: str) -> None:
    assert resolve_env(given) == expected
    assert CacheConfig.default(given).env == expected
    assert CacheConfig(env=given).env == expected


def test_env_from_tiercache_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CacheConfig.default().env == "development"
    monkeypatch.setenv("TIERCACHE_ENV", "prod")
    assert CacheConfig.default().env == "production"
    assert CacheConfig.default().namespace("market_data").l1_ttl == 60
    assert CacheConfig.default("test").env == "test"  # an explicit env wins
    assert CacheConfig.from_dict({"env": "dev"}).env == "development"  # so does the file's


def test_unknown_env_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="staging"):
        CacheConfig.default("staging")
    with pytest.raises(ConfigError, match="env"):
        CacheConfig(env="qa")
    monkeypatch.setenv("TIERCACHE_ENV", "staging")
    with pytest.raises(ConfigError, match="staging"):
        CacheConfig.default()


# ------------------------------------------------------------------------------------------ dict and TOML

def test_from_dict_overrides_only_the_fields_given() -> None:
    config = CacheConfig.from_dict({
        "env": "production",
        "l1_max_bytes": 512 * MiB,
        "default": {"l1_ttl": 45, "priority": "medium"},
        "namespaces": {
            "market_data": {"l1_ttl": 15, "ttl_jitter": 0.1},
            "invoices": {"l1_max_entries": 10, "compression": "zlib"},
        },
    })
    profile = CacheConfig.default("production")
    market = config.namespace("market_data")
    assert market == dataclasses.replace(profile.namespace("market_data"), l1_ttl=15.0, ttl_jitter=0.1)
    assert config.namespace("reports") == profile.namespace("reports")
    assert config.l1_max_bytes == 512 * MiB
    assert config.default_namespace.l1_ttl == 45 and config.default_namespace.priority == "medium"
    # a namespace the profile does not have starts from the (overridden) default
    invoices = config.namespace("invoices")
    assert (invoices.l1_ttl, invoices.l1_max_entries, invoices.compression) == (45, 10, "zlib")
    assert invoices.l1_max_bytes == config.default_namespace.l1_max_bytes


def test_environment_sections_apply_only_in_their_environment() -> None:
    data = {
        "namespaces": {"market_data": {"l1_ttl": 8}},  # below the test profile's l2_ttl of 10
        "environments": {
            "prod": {"l1_max_bytes": 1024 * MiB, "strict_namespaces": True,
                     "namespaces": {"market_data": {"l1_ttl": 40}, "orders": {"priority": "high"}}},
            "test": {"default": {"l2_ttl": "none"}},
        },
    }
    dev = CacheConfig.from_dict(data, env="dev")
    assert dev.namespace("market_data").l1_ttl == 8 and "orders" not in dev.namespaces
    assert not dev.strict_namespaces
    prod = CacheConfig.from_dict(data, env="production")
    assert prod.namespace("market_data").l1_ttl == 40
    assert prod.namespace("orders").priority == "high" and prod.strict_namespaces
    assert prod.l1_max_bytes == 1024 * MiB
    assert CacheConfig.from_dict(data, env="test").default_namespace.l2_ttl is None


def test_none_may_be_spelled_as_a_string_for_toml() -> None:
    config = CacheConfig.from_dict({"l1_max_bytes": "none",
                                    "namespaces": {"reports": {"l1_ttl": "None", "compression": "none"}}},
                                   env="test")
    assert config.l1_max_bytes is None
    assert config.namespace("reports").l1_ttl is None and config.namespace("reports").compression is None
    with pytest.raises(ConfigError, match="l1_max_bytes"):  # only for fields that may be None
        CacheConfig.from_dict({"namespaces": {"reports": {"l1_max_bytes": "none"}}})


TOML = """
env = "prod"
l1_max_bytes = 268435456
strict_namespaces = true

[default]
l1_ttl = 20
priority = "medium"

[namespaces.market_data]
l1_ttl = 10
l2_ttl = 3600
ttl_jitter = 0.05
promotion = "conditional"

[namespaces."quotes.v2"]
serializer = "json"
compression = "zlib"
background_refresh = true
refresh_threshold = 30.5
description = "second quote feed"

[environments.test.namespaces.market_data]
l1_ttl = 1
l2_ttl = 5
"""


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "tiercache.toml"
    path.write_text(TOML)
    config = CacheConfig.from_toml(path)
    assert config.env == "production" and config.l1_max_bytes == 256 * MiB and config.strict_namespaces
    market = config.namespace("market_data")
    assert (market.l1_ttl, market.l2_ttl, market.ttl_jitter, market.promotion) == (10, 3600, 0.05, "conditional")
    assert market.l1_max_entries == 500  # from the production profile
    quotes = config.namespace("quotes.v2")
    assert (quotes.serializer, quotes.compression, quotes.background_refresh, quotes.refresh_threshold,
            quotes.description, quotes.l1_ttl) == ("json", "zlib", True, 30.5, "second quote feed", 20)
    with pytest.raises(ConfigError, match="'invoices'"):
        config.namespace("invoices")

    test = CacheConfig.from_toml(str(path), env="test")
    assert (test.namespace("market_data").l1_ttl, test.namespace("market_data").l2_ttl) == (1, 5)


def test_summary_round_trips_through_from_dict_and_json(tmp_path: Path) -> None:
    path = tmp_path / "tiercache.toml"
    path.write_text(TOML)
    config = CacheConfig.from_toml(path)
    summary = config.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert CacheConfig.from_dict(json.loads(json.dumps(summary))) == config
    assert set(summary) == {"env", "l1_max_bytes", "l1_allocation", "strict_namespaces", "health", "default",
                            "namespaces"}
    field_names = {f.name for f in dataclasses.fields(NamespaceConfig)}
    assert set(summary["default"]) == field_names
    assert all(set(ns) == field_names for ns in summary["namespaces"].values())
    assert summary["namespaces"]["market_data"]["l1_ttl"] == 10
    for env in ENVIRONMENTS:
        profile = CacheConfig.default(env)
        assert CacheConfig.from_dict(json.loads(json.dumps(profile.summary()))) == profile


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[namespaces.market_data\nl1_ttl = 1\n")
    with pytest.raises(ConfigError, match="bad.toml"):
        CacheConfig.from_toml(path)
    path.write_text("[namespaces.market_data]\nl1_ttl = -1\nl1_max_bytes = 0\n")
    with pytest.raises(ConfigError) as excinfo:
        CacheConfig.from_toml(path)
    assert len(errors_of(excinfo)) == 2


# ------------------------------------------------------------------------------------------ TIERCACHE_* variables

def test_env_overrides_per_namespace_default_and_global() -> None:
    environ = {
        "TIERCACHE_L1_MAX_BYTES": "1073741824",
        "TIERCACHE_STRICT_NAMESPACES": "yes",
        "TIERCACHE_DEFAULT__L1_TTL": "42.5",
        "TIERCACHE_DEFAULT__ENABLE_STATS": "off",
        "TIERCACHE_NS__MARKET_DATA__L1_TTL": "15",
        "TIERCACHE_NS__MARKET_DATA__BACKGROUND_REFRESH": "false",
        "TIERCACHE_NS__market_data__l1_max_entries": "none",
        "TIERCACHE_NS__REPORTS__COMPRESSION": "zlib",
        "TIERCACHE_NS__REPORTS__DESCRIPTION": "Monthly PDFs",
        "TIERCACHE_NS__ORDERS__PRIORITY": "high",  # not configured: added, named in lower case
        "TIERCACHE_L2_URL": "redis://localhost:6379/0",  # belongs to the L2 layer: ignored here
        "PATH": "/usr/bin",
    }
    config = CacheConfig.default("dev")
    out = apply_env_overrides(config, environ)
    assert out.l1_max_bytes == 1024 * MiB and out.strict_namespaces
    assert out.default_namespace.l1_ttl == 42.5 and out.default_namespace.enable_stats is False
    market = out.namespace("market_data")
    assert (market.l1_ttl, market.background_refresh, market.l1_max_entries) == (15, False, None)
    assert market.l1_max_bytes == 3 * MiB
    assert out.namespace("reports").compression == "zlib"
    assert out.namespace("reports").description == "Monthly PDFs"
    assert out.namespace("orders").priority == "high"
    assert out.namespace("orders").l1_ttl == 42.5  # built on the overridden default
    assert config == CacheConfig.default("dev")  # the input is untouched
    assert apply_env_overrides(config, {}) is config


def test_tiercache_env_switches_the_profile_and_keeps_the_file() -> None:
    config = CacheConfig.from_dict({"namespaces": {"market_data": {"l1_max_entries": 7}},
                                    "environments": {"production": {"namespaces": {"reports": {"l1_ttl": 99}}}}},
                                   env="development")
    out = apply_env_overrides(config, {"TIERCACHE_ENV": "prod", "TIERCACHE_NS__MARKET_DATA__L1_TTL": "5"})
    assert out.env == "production"
    assert out.namespace("market_data").l1_max_entries == 7  # from the file
    assert out.namespace("market_data").l1_ttl == 5  # from the variable
    assert out.namespace("reports").l1_ttl == 99  # the file's production section
    assert out.namespace("sector_data").l1_ttl == 300  # the production profile
    assert apply_env_overrides(CacheConfig.default("test"), {"TIERCACHE_ENV": "testing"}).env == "test"
    # a config built by hand or changed with updated() has no file to rebuild from
    with pytest.raises(ConfigError, match="TIERCACHE_ENV"):
        apply_env_overrides(config.updated("reports", l1_ttl=5), {"TIERCACHE_ENV": "prod"})
    with pytest.raises(ConfigError, match="TIERCACHE_ENV"):
        apply_env_overrides(CacheConfig(), {"TIERCACHE_ENV": "staging"})


def test_env_override_errors_are_reported_together_and_name_the_variable() -> None:
    environ = {
        "TIERCACHE_NS__MARKET_DATA__L1_TTL": "soon",
        "TIERCACHE_NS__MARKET_DATA__COLOUR": "red",
        "TIERCACHE_NS__REPORTS__PRIORITY": "urgent",
        "TIERCACHE_NS__AI_RESULTS__ENABLE_STATS": "maybe",
        "TIERCACHE_NS__NOFIELD": "1",
        "TIERCACHE_L1_MAX_BYTES": "-1",
    }
    config = CacheConfig.default("dev")
    with pytest.raises(ConfigError) as excinfo:
        apply_env_overrides(config, environ)
    errors = errors_of(excinfo)
    assert len(errors) == 6, errors
    text = "\n".join(errors)
    assert "namespace 'market_data': l1_ttl:" in text and "TIERCACHE_NS__MARKET_DATA__L1_TTL" in text
    assert "namespace 'market_data': colour: unknown field" in text
    assert "namespace 'reports': priority:" in text and "'urgent'" in text
    assert "namespace 'ai_results': enable_stats: must be a bool" in text
    assert "TIERCACHE_NS__NOFIELD" in text and "l1_max_bytes: must be > 0 (got -1)" in text


# ------------------------------------------------------------------------------------------ validation

VALID = NamespaceConfig()


@pytest.mark.parametrize("field_name, value, message", [
    ("l1_ttl", -5, "must be > 0"),
    ("l1_ttl", 0, "must be > 0"),
    ("l1_ttl", math.nan, "finite"),
    ("l1_ttl", math.inf, "finite"),
    ("l1_ttl", "300", "number of seconds"),
    ("l1_ttl", True, "number of seconds"),
    ("l1_max_entries", 0, "must be > 0"),
    ("l1_max_entries", -1, "must be > 0"),
    ("l1_max_entries", 1.5, "positive int"),
    ("l1_max_bytes", 0, "must be > 0"),
    ("l1_max_bytes", -1024, "must be > 0"),
    ("l1_max_bytes", None, "positive int"),
    ("l1_max_bytes", float(MiB), "positive int"),
    ("l1_grace_period", -1, "must be >= 0"),
    ("l1_grace_period", None, "number of seconds"),
    ("l2_ttl", -1, "must be > 0"),
    ("l2_ttl", -math.inf, "finite"),
    ("persist_to_l2", "yes", "bool"),
    ("background_refresh", 1, "bool"),
    ("enable_stats", None, "bool"),
    ("refresh_threshold", 0, "must be > 0"),
    ("refresh_threshold", -10, "must be > 0"),
    ("refresh_threshold", None, "number of seconds"),
    ("priority", "urgent", "'high', 'medium', 'low'"),
    ("priority", None, "'high', 'medium', 'low'"),
    ("promotion", "eager", "'immediate', 'conditional', 'lazy', 'predictive', 'auto'"),
    ("serializer", "yaml", "'msgpack', 'json', 'pickle'"),
    ("compression", "lz4", "'zlib'"),
    ("compress_threshold", 0, "must be > 0"),
    ("ttl_jitter", 1.0, r"\[0, 1\)"),
    ("ttl_jitter", -0.1, r"\[0, 1\)"),
    ("ttl_jitter", math.nan, r"\[0, 1\)"),
    ("description", 5, "str"),
])
def test_each_rule(field_name: str, value: Any, message: str) -> None:
    expected = rf"^namespace 'ns': {field_name}: .*{message}.* \(got {re.escape(repr(value))}\)$"
    with pytest.raises(ConfigError) as excinfo:
        NamespaceConfig.from_mapping("ns", {field_name: value})
    (error,) = errors_of(excinfo)
    assert re.search(expected, error), error
    for build in (lambda: dataclasses.replace(VALID, **{field_name: value}).validated("ns"),
                  lambda: CacheConfig(namespaces={"ns": {field_name: value}}),
                  lambda: CacheConfig.default("dev").updated("ns", **{field_name: value})):
        with pytest.raises(ConfigError) as excinfo:
            build()
        assert errors_of(excinfo) == [error]


def test_accepted_edge_values() -> None:
    cfg = NamespaceConfig.from_mapping("ns", {
        "l1_ttl": None, "l2_ttl": None, "l1_max_entries": None, "l1_grace_period": 0, "ttl_jitter": 0.999,
        "compression": None, "refresh_threshold": 0.001, "background_refresh": False})
    assert cfg.l1_ttl is None and cfg.ttl_jitter == 0.999
    # a refresh threshold with background refresh off is allowed (it is unused)
    assert NamespaceConfig.from_mapping("ns", {"refresh_threshold": 5}).refresh_threshold == 5
    # equal TTLs are fine; only l1_ttl > l2_ttl is not
    assert NamespaceConfig.from_mapping("ns", {"l1_ttl": 60, "l2_ttl": 60}).l2_ttl == 60
    assert isinstance(NamespaceConfig.from_mapping("ns", {"l1_ttl": 60}).l1_ttl, float)


def test_l1_ttl_must_not_exceed_l2_ttl() -> None:
    with pytest.raises(ConfigError) as excinfo:
        NamespaceConfig.from_mapping("reports", {"l1_ttl": 120, "l2_ttl": 60})
    assert errors_of(excinfo) == ["namespace 'reports': l1_ttl: must not exceed l2_ttl (60) (got 120)"]
    # the profile's test l2_ttl bounds a bigger l1_ttl given for that environment only
    with pytest.raises(ConfigError, match=r"'market_data': l1_ttl: must not exceed l2_ttl \(10.0\)"):
        CacheConfig.from_dict({"namespaces": {"market_data": {"l1_ttl": 11}}}, env="test")
    assert CacheConfig.from_dict({"namespaces": {"market_data": {"l1_ttl": 11}}}, env="dev")


def test_unknown_fields_and_settings() -> None:
    with pytest.raises(ConfigError) as excinfo:
        NamespaceConfig.from_mapping("ns", {"l1_tll": 5})
    assert errors_of(excinfo) == ["namespace 'ns': l1_tll: unknown field; did you mean 'l1_ttl'? (got 5)"]
    with pytest.raises(ConfigError, match="namespces: unknown setting; did you mean 'namespaces'"):
        CacheConfig.from_dict({"namespces": {}})
    with pytest.raises(ConfigError, match=r"environments.production.colour: unknown setting"):
        CacheConfig.from_dict({"environments": {"production": {"colour": 1}}})
    with pytest.raises(ConfigError, match=r"environments.staging: unknown environment"):
        CacheConfig.from_dict({"environments": {"staging": {}}})
    with pytest.raises(TypeError):  # a keyword the dataclass does not have is still a TypeError
        NamespaceConfig(l1_tll=5)  # type: ignore[call-arg]


@pytest.mark.parametrize("name", ["", "has space", "slash/ns", "x" * 129, "ünïcode"])
def test_namespace_names(name: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        CacheConfig(namespaces={name: {}})
    (error,) = errors_of(excinfo)
    assert error.startswith(f"namespace {name!r}: name: must be 1-128 characters")
    with pytest.raises(ConfigError, match="name: must be 1-128"):
        CacheConfig.default().updated(name, l1_ttl=5)
    with pytest.raises(ValueError):
        CacheConfig.default().namespace(name)


def test_global_settings() -> None:
    with pytest.raises(ConfigError) as excinfo:
        CacheConfig(l1_max_bytes=0, strict_namespaces="yes", default_namespace={"priority": "top"})  # type: ignore
    assert sorted(errors_of(excinfo)) == sorted([
        "l1_max_bytes: must be > 0 (got 0)",
        "strict_namespaces: must be a bool (got 'yes')",
        "namespace '<default>': priority: must be one of 'high', 'medium', 'low' (got 'top')",
    ])
    with pytest.raises(ConfigError, match="l1_max_bytes: must be a positive int or None"):
        CacheConfig.from_dict({"l1_max_bytes": 1.5})
    assert CacheConfig(l1_max_bytes=None).l1_max_bytes is None


def test_many_errors_are_reported_together() -> None:
    data = {
        "env": "staging",
        "l1_max_bytes": -1,
        "colour": "blue",
        "default": {"l1_ttl": 0},
        "namespaces": {
            "market_data": {"l1_ttl": -5, "l1_max_bytes": 0, "priority": "urgent", "promotion": "eager"},
            "reports": {"l1_ttl": 120, "l2_ttl": 60, "ttl_jitter": 2, "serializer": "yaml", "colour": 1},
            "bad name": {},
            "orders": 5,
        },
    }
    with pytest.raises(ConfigError) as excinfo:
        CacheConfig.from_dict(data)
    errors = errors_of(excinfo)
    expected = [
        "colour: unknown setting",
        "env: must be one of development, production, test (or dev/prod/testing) (got 'staging')",
        "l1_max_bytes: must be > 0 (got -1)",
        "namespace '<default>': l1_ttl: must be > 0 (got 0)",
        "namespace 'market_data': l1_ttl: must be > 0 (got -5)",
        "namespace 'market_data': l1_max_bytes: must be > 0 (got 0)",
        "namespace 'market_data': priority: must be one of 'high', 'medium', 'low' (got 'urgent')",
        "namespace 'market_data': promotion:",
        "namespace 'reports': l1_ttl: must not exceed l2_ttl (60) (got 120)",
        "namespace 'reports': ttl_jitter: must be a fraction in [0, 1) (got 2)",
        "namespace 'reports': serializer:",
        "namespace 'reports': colour: unknown field",
        "namespace 'bad name': name:",
        "namespace 'orders': settings:",
    ]
    assert len(errors) == len(expected), errors
    for item in expected:
        assert any(e.startswith(item) for e in errors), (item, errors)
    assert str(excinfo.value).startswith(f"{len(expected)} configuration errors:\n")


def test_build_namespaces_reports_every_namespace() -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_namespaces({"a": {"l1_ttl": -1}, "b": NamespaceConfig(priority="x"), "c": {"l1_ttl": 5}})
    assert [e.split(":")[0] for e in errors_of(excinfo)] == ["namespace 'a'", "namespace 'b'"]
    assert build_namespaces({"c": {"l1_ttl": 5}})["c"] == dataclasses.replace(DEFAULT_NAMESPACE, l1_ttl=5.0)


# ------------------------------------------------------------------------------------------ updates, strictness

def test_updated_returns_a_new_config_and_leaves_the_old_one() -> None:
    config = CacheConfig.default("production")
    before = config.summary()
    new = config.updated("market_data", l1_ttl=30, priority="medium")
    assert config.summary() == before and config.namespace("market_data").l1_ttl == 60
    assert new.namespace("market_data").l1_ttl == 30 and new.namespace("market_data").priority == "medium"
    assert new.namespace("market_data").l1_max_entries == 500
    assert new.namespace("reports") == config.namespace("reports") and new.env == config.env
    added = config.updated("invoices", l1_ttl=5)
    assert added.namespace("invoices") == dataclasses.replace(config.default_namespace, l1_ttl=5.0)
    assert "invoices" not in config.namespaces


def test_updated_rejects_bad_changes_all_at_once() -> None:
    config = CacheConfig.default("test")
    with pytest.raises(ConfigError) as excinfo:
        config.updated("market_data", l1_ttl=20, l1_max_bytes=-1, promotion="eager", bogus=1)
    errors = errors_of(excinfo)
    assert len(errors) == 4, errors
    assert "namespace 'market_data': l1_ttl: must not exceed l2_ttl (10.0) (got 20)" in errors
    assert config == CacheConfig.default("test")


def test_config_is_immutable() -> None:
    config = CacheConfig.default()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.env = "production"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.namespaces["x"] = NamespaceConfig()  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.namespace("reports").l1_ttl = 1  # type: ignore[misc]
    # a dict passed in and changed afterwards does not reach the config
    namespaces: Dict[str, Any] = {"a": NamespaceConfig()}
    config = CacheConfig(namespaces=namespaces)
    namespaces["b"] = NamespaceConfig()
    assert set(config.namespaces) == {"a"}
    assert hash(config) == hash(CacheConfig(namespaces={"a": NamespaceConfig()}))
    assert pickle.loads(pickle.dumps(config)) == config
    with pytest.raises(ConfigError, match="l1_max_bytes"):
        dataclasses.replace(config, l1_max_bytes=0)


def test_strict_namespaces() -> None:
    config = CacheConfig.from_dict({"strict_namespaces": True}, env="dev")
    assert config.namespace("reports").l1_ttl == 600
    with pytest.raises(ConfigError) as excinfo:
        config.namespace("invoices")
    (error,) = errors_of(excinfo)
    assert error.startswith("namespace 'invoices': name: not configured and strict_namespaces is set")
    assert "market_data" in error  # lists what is configured
    with pytest.raises(ConfigError, match="'invoices'.*strict_namespaces"):
        config.updated("invoices", l1_ttl=5)
    assert config.updated("reports", l1_ttl=5).namespace("reports").l1_ttl == 5
    lenient = CacheConfig.default("dev")
    assert lenient.namespace("invoices") == lenient.default_namespace


def test_existing_namespace_config_api_still_works() -> None:
    # CacheManager builds from these: keep their behaviour
    assert DEFAULT_NAMESPACE.validated("<default>") == DEFAULT_NAMESPACE
    assert DEFAULT_NAMESPACE.l1_ttl == 300 and DEFAULT_NAMESPACE.l1_max_bytes == 8 * MiB
    with pytest.raises(ConfigError, match=r"'reports'.*l1_ttl"):
        build_namespaces({"reports": {"l1_ttl": -5}})
    cfg = NamespaceConfig.from_mapping("x", {"l1_ttl": 5}, base=NamespaceConfig(l1_max_entries=3))
    assert (cfg.l1_ttl, cfg.l1_max_entries) == (5, 3)


def test_figures_summarise_the_namespaces() -> None:
    cfg = CacheConfig.from_dict({"namespaces": {"forever": {"l2_ttl": "none", "l1_ttl": 10}}}, env="production")
    f = cfg.figures()
    spaces = cfg.namespaces.values()
    assert f["namespaces"] == 8 and f["without_l2_ttl"] == ["forever"]
    assert f["avg_l1_ttl"] == round(sum(c.l1_ttl for c in spaces) / 8, 1)
    assert f["avg_l2_ttl"] == round(sum(c.l2_ttl for c in spaces if c.l2_ttl) / 7, 1)
    assert f["total_memory_mb"] == round(sum(c.l1_max_bytes for c in spaces) / 2**20, 2)
    assert f["global_memory_mb"] == 128.0
