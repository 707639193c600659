"""Alerting: rules from the configuration, one notification per transition, webhook and log delivery."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List

import pytest

from tiercache import AsyncCacheManager, CacheManager, ConfigError
from tiercache.config import CacheConfig
from tiercache.errors import L2Error
from tiercache.l2 import from_url
from tiercache.manager.circuit import CircuitBreaker
from tiercache.observability.alerts import AlertsConfig, parse
from tiercache.observability.notify import WebhookSink

from redis_servers import wait_until

QUIET = {"interval": 3600.0, "log": False}  # (tests evaluate by hand; no background evaluation meanwhile)


def config(rules: Dict[str, Dict[str, Any]], **top: Any) -> CacheConfig:
    return CacheConfig.from_dict({"alerts": {**QUIET, **top, "rules": rules}}, env="test")


class Receiver:
    """A webhook receiver on a loopback port: records each JSON body; answers `statuses` in turn (then 200),
    or holds every request until `release` is set."""

    def __init__(self) -> None:
        self.bodies: List[Dict[str, Any]] = []
        self.statuses: List[int] = []
        self.release = threading.Event()
        self.release.set()
        self.arrived = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.release.wait(30)
                status = outer.statuses.pop(0) if outer.statuses else 200
                with outer.arrived:
                    outer.bodies.append({"status": status, "content_type": self.headers["Content-Type"],
                                         **json.loads(body)})
                    outer.arrived.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self) -> List[Dict[str, Any]]:
        return [b for b in self.bodies if 200 <= b["status"] < 300]

    def wait_for(self, count: int, timeout: float = 10.0) -> List[Dict[str, Any]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.delivered()) >= count, timeout)
        return self.delivered()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Switchable:
    """An L2 whose every call fails while `down` (as a dead server's would)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.down = inner, False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name in ("close", "aclose"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise L2Error("connection refused")
            return attr(*args, **kwargs)

        return call


# ------------------------------------------------------------------------------------------ configuration


def test_the_alerts_table_is_parsed_and_round_trips() -> None:
    cfg = config({"l2_down": {"metric": "circuit_open", "for": 5},
                  "cold": {"metric": "l1_hit_rate", "below": 0.5, "namespace": "*", "window": 120},
                  "sick": {"metric": "health_status", "level": "critical"}},
                 webhook="https://hooks.example.test/x")
    rules = {r.name: r for r in cfg.alerts.rules}
    assert rules["l2_down"].severity == "critical" and rules["l2_down"].for_ == 5.0
    assert rules["cold"].threshold == 0.5 and rules["cold"].namespace == "*" and rules["cold"].min_samples == 100
    assert rules["sick"].severity == "critical"  # (a rule at the critical level is critical)
    again = CacheConfig.from_dict(cfg.summary(), env="test")
    assert again.alerts == cfg.alerts and again == cfg


def test_an_environment_replaces_the_alerts_table(tmp_path: Any) -> None:
    path = tmp_path / "cache.toml"
    path.write_text('[alerts.rules.down]\nmetric = "circuit_open"\n\n'
                    '[environments.production.alerts]\nwebhook = "http://127.0.0.1:9/hook"\n'
                    '[environments.production.alerts.rules.cold]\nmetric = "overall_hit_rate"\nbelow = 0.2\n')
    assert [r.name for r in CacheConfig.from_toml(path, env="development").alerts.rules] == ["down"]
    prod = CacheConfig.from_toml(path, env="production").alerts
    assert [r.name for r in prod.rules] == ["cold"] and prod.webhook == "http://127.0.0.1:9/hook"


@pytest.mark.parametrize("table, problem", [
    ({"rules": {"a": {"metric": "l1_hit_rate"}}}, "alerts.rules.a.below: is required"),
    ({"rules": {"a": {"metric": "l1_hit_rate", "above": 0.5}}}, "alerts.rules.a.above: l1_hit_rate rules take `below`"),
    ({"rules": {"a": {"metric": "l1_hit_rate", "below": 1.5}}}, "alerts.rules.a.below: must be a fraction in [0, 1]"),
    ({"rules": {"a": {"metric": "l2_latency_p99", "above": float("nan")}}}, "alerts.rules.a.above: must be a number"),
    ({"rules": {"a": {"metric": "hitrate"}}}, "alerts.rules.a.metric: must be one of"),
    ({"rules": {"a": {"metric": "circuit_open", "namespace": "x"}}}, "circuit_open rules are about the whole cache"),
    ({"rules": {"a": {"metric": "circuit_open", "for": "5s"}}}, "alerts.rules.a.for: must be a number of seconds"),
    ({"rules": {"a": {"metric": "circuit_open", "severity": "page"}}}, "alerts.rules.a.severity: must be one of"),
    ({"rules": {"a": {"metric": "health_status", "level": "bad"}}}, "alerts.rules.a.level: must be one of"),
    ({"rules": {"a": {"metric": "circuit_open", "colour": 1}}}, "alerts.rules.a.colour: unknown setting"),
    ({"rules": {"a": "circuit_open"}}, "alerts.rules.a.: must be a table"),
    ({"webhook": "ftp://x"}, "alerts.webhook: must be an http:// or https:// URL"),
    ({"retries": -2}, "alerts.retries: must be an int"),
    ({"hooks": 1}, "alerts.hooks: unknown setting"),
    ({"rules": {"a": {"metric": ["circuit_open"]}}}, "alerts.rules.a.metric: must be one of"),
    ({"rules": {"a": {"metric": {"x": 1}}}}, "alerts.rules.a.metric: must be one of"),
    ({"rules": {"a": {"metric": "memory", "above": 80}}}, "alerts.rules.a.above: must be a fraction in [0, 1]"),
    ({"rules": {"a": {"metric": "l1_hit_rate", "below": 0.5, "namespace": "no such ns!"}}},
     "alerts.rules.a.namespace: must be 1-128 characters"),
    ({"rules": {"a": {"metric": "circuit_open", "window": 1e300}}}, "alerts.rules.a.window: must be a number of seconds from 1"),
    ({"interval": 1e300}, "alerts.interval: must be a number of seconds from 0.05 to 3600"),
    ({"interval": 1e-9}, "alerts.interval: must be a number of seconds from 0.05 to 3600"),
    ({"timeout": float("inf")}, "alerts.timeout: must be a number of seconds"),
    ({"retries": True}, "alerts.retries: must be an int"),
    ({"queue_size": 0}, "alerts.queue_size: must be an int from 1"),
    ({"webhook": "http://host/a b"}, "alerts.webhook: must not contain spaces"),
    ({"webhook": "http:///path"}, "alerts.webhook: must name a host"),
    ({"webhook": "http://host:99999/x"}, "alerts.webhook: is not a valid URL"),
    ("yes", "alerts: must be a table"),
])
def test_a_bad_alerts_table_is_rejected_naming_the_problem(table: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        CacheConfig.from_dict({"alerts": table}, env="test")
    assert problem in str(info.value)


def test_alert_rules_need_metrics(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="need metrics"):
        CacheManager(sqlite_url, config=config({"a": {"metric": "circuit_open"}}), enable_metrics=False)


def test_no_rules_means_no_evaluator(manager: Any) -> None:
    assert manager.alerts is None and manager.config.alerts == AlertsConfig()


# ------------------------------------------------------------------------------------------ transitions


@pytest.fixture
def alerting(sqlite_url: str, clock: Any) -> Iterator[Any]:
    """make(rules, **top) -> a CacheManager over SQLite timed by `clock`, its alerts evaluated by hand;
    `.notes` collects what they send."""
    made: List[Any] = []

    def make(rules: Dict[str, Dict[str, Any]], l2: Any = None, **top: Any) -> Any:
        m = CacheManager(l2 or sqlite_url, config=config(rules, **top), timer=clock, metrics_interval=None,
                         circuit=CircuitBreaker(timer=clock))
        m.notes = []
        m.alerts.add_sink(m.notes.append)
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()


_unique = iter(range(1 << 62))


def reads(m: Any, hits: int, misses: int, namespace: str = "users") -> None:
    """`hits` L1 hits and `misses` misses (keys never written) in `namespace`."""
    m.set(namespace, "hot", 1)
    for _ in range(hits):
        m.get(namespace, "hot")
    for _ in range(misses):
        m.get(namespace, f"cold:{next(_unique)}")


def test_a_breach_fires_once_after_for_and_resolves_once(alerting: Any, clock: Any) -> None:
    m = alerting({"cold": {"metric": "l1_hit_rate", "below": 0.5, "for": 10, "window": 30, "min_samples": 10}})
    reads(m, hits=2, misses=40)
    assert m.alerts.evaluate() == [] and m.alerts.states() == {"cold": "pending"}
    clock.advance(5)
    assert m.alerts.evaluate() == []
    clock.advance(5)
    [note] = m.alerts.evaluate()
    assert note["alert"] == "cold" and note["state"] == "firing" and note["severity"] == "warning"
    assert note["metric"] == "l1_hit_rate" and note["threshold"] == 0.5 and note["value"] < 0.5
    assert note["namespace"] is None and "L1 hit rate" in note["summary"] and note["text"].startswith("[FIRING] cold")
    assert note["timestamp"].endswith("Z") and note["env"] == "test"
    for _ in range(5):  # still breaching: nothing more
        clock.advance(3)
        assert m.alerts.evaluate() == []
    assert [a["alert"] for a in m.alerts.active()] == ["cold"]
    clock.advance(40)  # the window now holds only what follows
    reads(m, hits=100, misses=0)
    assert m.alerts.evaluate() == [] and m.alerts.states() == {"cold": "resolving"}
    clock.advance(10)
    reads(m, hits=10, misses=0)
    [note] = m.alerts.evaluate()
    assert note["state"] == "resolved" and note["value"] >= 0.5 and "back to normal" in note["text"]
    clock.advance(10)
    assert m.alerts.evaluate() == [] and m.alerts.active() == []
    assert [n["state"] for n in m.notes] == ["firing", "resolved"]


def test_a_value_flapping_within_for_sends_nothing(alerting: Any, clock: Any) -> None:
    m = alerting({"cold": {"metric": "l1_hit_rate", "below": 0.5, "for": 10, "window": 2, "min_samples": 10}})
    for _ in range(10):
        reads(m, hits=0, misses=20)
        m.alerts.evaluate()
        clock.advance(3)
        reads(m, hits=60, misses=0)
        m.alerts.evaluate()
        clock.advance(3)
    assert m.notes == []


def test_cooldown_holds_back_a_second_firing(alerting: Any, clock: Any) -> None:
    m = alerting({"cold": {"metric": "l1_hit_rate", "below": 0.5, "for": 0, "cooldown": 100, "window": 1,
                           "min_samples": 10}})

    def spell(hits: int, misses: int) -> List[str]:
        clock.advance(2)
        reads(m, hits=hits, misses=misses)
        return [n["state"] for n in m.alerts.evaluate()]

    assert spell(0, 20) == ["firing"]
    assert spell(40, 0) == ["resolved"]
    assert spell(0, 20) == []  # (in the cooldown: pending)
    clock.advance(100)
    assert spell(0, 20) == ["firing"]
    assert [n["state"] for n in m.notes] == ["firing", "resolved", "firing"]


def test_each_namespace_alerts_on_its_own(alerting: Any, clock: Any) -> None:
    m = alerting({"cold": {"metric": "l1_hit_rate", "below": 0.5, "for": 0, "namespace": "*", "min_samples": 10}})
    reads(m, hits=50, misses=0, namespace="users")
    reads(m, hits=0, misses=50, namespace="sessions")
    [note] = m.alerts.evaluate()
    assert note["namespace"] == "sessions" and note["summary"].startswith("sessions: L1 hit rate 0.0%")
    assert m.alerts.states() == {"cold[sessions]": "firing", "cold[users]": "ok"}


def test_too_few_lookups_is_no_breach(alerting: Any, clock: Any) -> None:
    m = alerting({"cold": {"metric": "overall_hit_rate", "below": 0.5, "for": 0}})  # (min_samples 100)
    reads(m, hits=0, misses=50)
    assert m.alerts.evaluate() == [] and m.alerts.states() == {"cold": "ok"}


def test_memory_fires_when_l1_fills_its_budget(alerting: Any, clock: Any) -> None:
    m = alerting({"full": {"metric": "memory", "above": 0.5, "for": 0, "namespace": "users"}})
    assert m.alerts.evaluate() == []
    budget = m.namespace_config("users").l1_max_bytes
    entries = m.namespace_config("users").l1_max_entries or 100
    for i in range(entries):
        m.set("users", f"k{i}", "x" * (budget // entries * 2 // 3))
    [note] = m.alerts.evaluate()
    assert note["metric"] == "memory" and note["value"] > 0.5 and "of its budget" in note["summary"]


def test_l2_errors_the_circuit_and_l2_latency(alerting: Any, clock: Any, sqlite_url: str) -> None:
    l2 = Switchable(from_url(sqlite_url))
    m = alerting({"errors": {"metric": "l2_error_rate", "above": 0.1, "for": 0, "min_samples": 3},
                  "down": {"metric": "circuit_open", "for": 0},
                  "slow": {"metric": "l2_latency_p99", "above": 0.0, "for": 0, "min_samples": 3}}, l2=l2)
    for i in range(5):
        m.get("users", f"a{i}")
    assert [n["alert"] for n in m.alerts.evaluate()] == ["slow"]  # (any L2 read is slower than 0 s)
    l2.down = True
    for i in range(10):
        m.get("users", f"b{i}")  # (reads never raise for L2 trouble)
    notes = {n["alert"]: n for n in m.alerts.evaluate()}
    assert set(notes) == {"errors", "down"}
    assert notes["down"]["severity"] == "critical" and notes["down"]["value"] == "open"
    assert notes["errors"]["value"] > 0.1
    l2.down = False
    clock.advance(60)  # (past the circuit's backoff)
    for i in range(5):
        m.get("users", f"c{i}")
    assert m.circuit.state == "closed"
    states = {n["alert"]: n["state"] for n in m.alerts.evaluate()}
    assert states["down"] == "resolved"


def test_health_status_rule(alerting: Any, clock: Any, sqlite_url: str) -> None:
    l2 = Switchable(from_url(sqlite_url))
    m = alerting({"sick": {"metric": "health_status", "level": "unhealthy", "for": 0}}, l2=l2)
    m.get("users", "a")
    assert m.alerts.evaluate() == []
    l2.down = True
    for i in range(10):
        m.get("users", f"b{i}")
    [note] = m.alerts.evaluate()
    assert note["value"] == "critical" and note["threshold"] == "unhealthy"  # (an open circuit is critical)


def test_a_failing_sink_does_not_stop_the_others(alerting: Any, clock: Any) -> None:
    m = alerting({"cold": {"metric": "l1_hit_rate", "below": 0.5, "for": 0, "min_samples": 10}})

    def broken(note: Dict[str, Any]) -> None:
        raise RuntimeError("sink down")

    got: List[Any] = []
    m.alerts.add_sink(broken)
    m.alerts.add_sink(got.append)
    reads(m, hits=0, misses=20)
    assert len(m.alerts.evaluate()) == 1 and len(got) == 1 and m.alerts.stats()["sink_errors"] == 1


def test_the_log_sink(sqlite_url: str, clock: Any, caplog: Any) -> None:
    cfg = CacheConfig.from_dict({"alerts": {"interval": 3600.0, "rules": {
        "cold": {"metric": "l1_hit_rate", "below": 0.5, "for": 0, "min_samples": 10}}}}, env="test")
    with CacheManager(sqlite_url, config=cfg, timer=clock, metrics_interval=None) as m:
        for i in range(20):
            m.get("users", i)
        with caplog.at_level(logging.INFO, logger="tiercache.alerts"):
            m.alerts.evaluate()
    [record] = [r for r in caplog.records if r.name == "tiercache.alerts"]
    assert record.levelno == logging.WARNING and "[FIRING] cold (warning)" in record.getMessage()


def test_the_async_manager_alerts_too(sqlite_url: str, clock: Any) -> None:
    cfg = config({"cold": {"metric": "l1_hit_rate", "below": 0.5, "for": 0, "min_samples": 10}})

    async def main() -> List[Dict[str, Any]]:
        async with AsyncCacheManager(sqlite_url, config=cfg, timer=clock, metrics_interval=None) as m:
            for i in range(20):
                await m.get("users", i)
            return m.alerts.evaluate()

    [note] = asyncio.run(main())
    assert note["state"] == "firing"


# ------------------------------------------------------------------------------------------ the webhook


def test_the_webhook_posts_json_with_a_text_field(alerting: Any, clock: Any, receiver: Receiver) -> None:
    m = alerting({"cold": {"metric": "l1_hit_rate", "below": 0.5, "for": 0, "min_samples": 10}},
                 webhook=receiver.url)
    reads(m, hits=0, misses=20)
    m.alerts.evaluate()
    [body] = receiver.wait_for(1)
    assert body["content_type"] == "application/json"
    for name in ("alert", "state", "severity", "summary", "namespace", "value", "threshold", "timestamp", "text"):
        assert name in body
    assert body["alert"] == "cold" and body["state"] == "firing" and body["text"].startswith("[FIRING]")


def test_the_webhook_retries_errors_and_gives_up_on_4xx(receiver: Receiver) -> None:
    receiver.statuses = [503, 500]
    sink = WebhookSink(receiver.url, backoff=0.01, retries=3)
    sink({"alert": "a", "state": "firing"})
    assert sink.flush(10)
    assert [b["status"] for b in receiver.bodies] == [503, 500, 200]
    assert sink.stats()["delivered"] == 1 and sink.stats()["retried"] == 2
    receiver.statuses = [400]
    sink({"alert": "b", "state": "firing"})
    assert sink.flush(10)
    assert sink.stats()["failed"] == 1 and len(receiver.bodies) == 4  # (a 400 is not retried)
    sink.close()


def test_a_dead_or_stuck_receiver_never_blocks_the_sender(receiver: Receiver) -> None:
    receiver.release.clear()  # every request hangs
    sink = WebhookSink(receiver.url, timeout=30, retries=0, queue_size=2)
    for i in range(6):
        sink({"alert": f"a{i}", "state": "firing"})  # (returns at once: queued or dropped)
    wait_until(lambda: sink.stats()["dropped"] >= 3, 10, "the full queue to drop notifications")
    assert sink.stats()["waiting"] <= 2
    receiver.release.set()
    assert sink.flush(10)
    assert sink.stats()["delivered"] + sink.stats()["dropped"] == 6
    sink.close()
    dead = WebhookSink("http://127.0.0.1:9/hook", retries=1, backoff=0.01)  # (nothing listens on port 9)
    dead({"alert": "a", "state": "firing"})
    assert dead.flush(10) and dead.stats()["failed"] == 1
    dead.close()


# ------------------------------------------------------------------------------------------ end to end


def test_redis_killed_and_restarted_fires_once_and_resolves_once(redis_server: Any, redis_url: str,
                                                                  receiver: Receiver) -> None:
    """A real Redis: killed -> one "circuit open" firing within 10 s; restarted -> one resolved."""
    cfg = CacheConfig.from_dict({"alerts": {"interval": 0.2, "log": False, "webhook": receiver.url, "rules": {
        "l2_down": {"metric": "circuit_open", "for": 1, "cooldown": 0}}}}, env="test")
    stop = threading.Event()
    with CacheManager(redis_url, config=cfg) as m:
        def traffic() -> None:
            i = 0
            while not stop.is_set():
                m.get("users", f"k{i % 50}")
                i += 1
                stop.wait(0.01)

        worker = threading.Thread(target=traffic, daemon=True)
        worker.start()
        try:
            assert m.alerts.evaluate() == [] and m.alerts.states() == {"l2_down": "ok"}
            redis_server.kill()
            [fired] = receiver.wait_for(1, timeout=10)
            assert fired["alert"] == "l2_down" and fired["state"] == "firing" and fired["severity"] == "critical"
            redis_server.start()
            notes = receiver.wait_for(2, timeout=30)
            assert [n["state"] for n in notes] == ["firing", "resolved"]
            assert m.alerts.evaluate() == [] and m.alerts.states() == {"l2_down": "ok"}
        finally:
            stop.set()
            worker.join(5)
        assert m.alerts.sent == 2  # (every notification goes through evaluate(): one firing, one resolved)
        assert m.alerts.webhook.flush(10) and [n["state"] for n in receiver.delivered()] == ["firing", "resolved"]


def test_a_forced_low_hit_rate_fires_once(redis_url: str, receiver: Receiver) -> None:
    cfg = CacheConfig.from_dict({"alerts": {"interval": 0.1, "log": False, "webhook": receiver.url, "rules": {
        "cold": {"metric": "l1_hit_rate", "below": 0.5, "for": 0.3, "window": 30, "min_samples": 50}}}}, env="test")
    with CacheManager(redis_url, config=cfg) as m:
        for i in range(500):
            m.get("users", f"never-set:{i}")
        [fired] = receiver.wait_for(1, timeout=10)
        assert fired["alert"] == "cold" and fired["state"] == "firing" and fired["value"] == 0.0
        for i in range(500, 800):
            m.get("users", f"never-set:{i}")
        assert m.alerts.evaluate() == [] and m.alerts.states() == {"cold": "firing"}
        assert m.alerts.sent == 1 and m.alerts.webhook.flush(10) and len(receiver.delivered()) == 1


def test_the_webhook_can_come_from_the_environment() -> None:
    from tiercache.config import apply_env_overrides

    base = config({"down": {"metric": "circuit_open"}})
    assert base.alerts.webhook is None
    url = "https://hooks.example.test/T000/B000/secret"
    assert apply_env_overrides(base, {"TIERCACHE_ALERTS_WEBHOOK": url}).alerts.webhook == url
    with_hook = apply_env_overrides(base, {"TIERCACHE_ALERTS_WEBHOOK": url})
    assert apply_env_overrides(with_hook, {"TIERCACHE_ALERTS_WEBHOOK": "none"}).alerts.webhook is None
    with pytest.raises(ConfigError, match=r"alerts.webhook: must be an http:// or https:// URL .*TIERCACHE_ALERTS_WEBHOOK"):
        apply_env_overrides(base, {"TIERCACHE_ALERTS_WEBHOOK": "ftp://x"})


def test_the_cli_shows_the_config_without_the_webhook_token(tmp_path: Any) -> None:
    import subprocess
    import sys

    path = tmp_path / "cache.toml"
    path.write_text('[alerts]\nwebhook = "https://hooks.example.test/services/T0/B0/SECRET"\n'
                    '[alerts.rules.down]\nmetric = "circuit_open"\n')
    for action in ("show", "validate"):
        done = subprocess.run([sys.executable, "-m", "tiercache", "config", action, str(path)], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "SECRET" not in done.stdout and "https://hooks.example.test/" in done.stdout


# ------------------------------------------------------------------------------------------ robustness


class Raw:
    """A TCP server on a loopback port that answers each connection with `script(conn)`."""

    def __init__(self, script: Any) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.script, self.connections = script, 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: Any) -> None:
        try:
            conn.recv(65536)
            self.script(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


def test_a_receiver_that_is_not_http_does_not_stop_the_sender(receiver: Receiver) -> None:
    junk = Raw(lambda conn: conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n"))
    sink = WebhookSink(junk.url, retries=1, backoff=0.01)
    sink({"alert": "a", "state": "firing"})
    assert sink.flush(10) and sink.stats()["failed"] == 1
    sink.url = receiver.url  # (the same sender thread, now to a receiver that answers)
    sink({"alert": "b", "state": "firing"})
    assert sink.flush(10) and sink.stats()["delivered"] == 1 and receiver.delivered()[0]["alert"] == "b"
    sink.close()
    junk.close()


def test_a_redirect_is_a_failure_not_a_lost_body() -> None:
    moved = Raw(lambda conn: conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"))
    sink = WebhookSink(moved.url, retries=2, backoff=0.01)
    sink({"alert": "a", "state": "firing"})
    assert sink.flush(10)
    assert sink.stats()["failed"] == 1 and sink.stats()["delivered"] == 0 and moved.connections == 1
    sink.close()
    moved.close()


def test_a_dribbling_receiver_is_cut_off_at_the_timeout() -> None:
    release = threading.Event()

    def dribble(conn: Any) -> None:
        for byte in b"HTTP/1.1 200 OK\r\n":
            if release.wait(0.3):
                return
            conn.sendall(bytes([byte]))

    slow = Raw(dribble)
    sink = WebhookSink(slow.url, timeout=0.5, retries=0)
    sink({"alert": "a", "state": "firing"})
    assert sink.flush(30)  # (without a deadline on the attempt this takes the 6 s the answer dribbles for)
    assert sink.stats()["failed"] == 1 and sink.stats()["delivered"] == 0
    release.set()
    sink.close()
    slow.close()


def test_closing_does_not_wait_for_a_stuck_receiver(receiver: Receiver, sqlite_url: str, caplog: Any) -> None:
    receiver.release.clear()
    cfg = CacheConfig.from_dict({"alerts": {**QUIET, "webhook": receiver.url, "timeout": 300, "rules": {
        "cold": {"metric": "l1_hit_rate", "below": 0.5, "for": 0, "min_samples": 10}}}}, env="test")
    m = CacheManager(sqlite_url, config=cfg)
    for i in range(20):
        m.get("users", i)
    [_] = m.alerts.evaluate()
    m.alerts.webhook({"alert": "queued", "state": "firing"})
    wait_until(lambda: m.alerts.webhook.stats()["waiting"] == 1, 10, "the first request to be under way")
    with caplog.at_level(logging.WARNING, logger="tiercache.alerts"):
        m.close()  # (returns although the receiver holds the request: the sender is a daemon thread)
    assert "1 notifications not sent before closing" in caplog.text
    receiver.release.set()


def test_each_sink_gets_its_own_copy_and_logs_hide_the_token(alerting: Any, clock: Any, caplog: Any) -> None:
    secret = "http://127.0.0.1:9/services/T000/B000/SECRET"  # (nothing listens on port 9)
    m = alerting({"cold": {"metric": "l1_hit_rate", "below": 0.5, "for": 0, "min_samples": 10}}, webhook=secret,
                 retries=0)

    def redact(note: Dict[str, Any]) -> None:
        note["summary"] = "changed by a sink"

    m.alerts.add_sink(redact)
    seen: List[Any] = []
    m.alerts.add_sink(seen.append)
    reads(m, hits=0, misses=20)
    with caplog.at_level(logging.WARNING, logger="tiercache.alerts"):
        [note] = m.alerts.evaluate()
        assert m.alerts.webhook.flush(10)
    assert seen[0]["summary"] == note["summary"] != "changed by a sink"
    assert m.alerts.webhook.stats()["failed"] == 1
    assert "not delivered" in caplog.text and "SECRET" not in caplog.text and "http://127.0.0.1:9/…" in caplog.text
    [active] = m.alerts.active()
    assert active["since"].endswith("Z")  # (a timestamp, not a clock reading)


def test_namespaces_that_go_are_forgotten() -> None:
    from tiercache.observability.alerts import Alerts
    from tiercache.observability.counters import COUNTERS

    def snap(t: float, namespaces: Dict[str, int]) -> Dict[str, Any]:  # namespace -> L1 hits (no misses)
        return {"time": t, "started": 0.0, "histograms": {}, "circuit": {"state": "closed"}, "namespaces": {
            ns: {**dict.fromkeys(COUNTERS, 0), "l1": {"hits": hits, "misses": 0}} for ns, hits in namespaces.items()}}

    feed = iter([snap(1, {"a": 50, "b": 50, "c": 50}), snap(2, {"a": 60})])
    alerts = Alerts(parse({"log": False, "rules": {"cold": {"metric": "l1_hit_rate", "below": 0.5, "for": 0,
                                                             "namespace": "*", "min_samples": 10}}})[0],
                    lambda: next(feed))
    alerts.evaluate()
    assert alerts.states() == {"cold[a]": "ok", "cold[b]": "ok", "cold[c]": "ok"}
    alerts.evaluate()
    assert alerts.states() == {"cold[a]": "ok"}
