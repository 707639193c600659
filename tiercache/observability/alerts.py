"""Alerting: rules over the manager's figures, evaluated off the request path, one notification per change.

    [alerts] in the TOML config ──parse()──> AlertsConfig (rules, webhook, log)
    Alerts thread, every `interval` s:  snapshot() ──> each rule's value per instance ──> state machine
                                                                                        └──> sinks (notify)

Each rule instance (a rule, and a namespace when the rule names one or "*") moves through

    ok ──breach──> pending ──breach for `for` s──> FIRING ──clear──> resolving ──clear for `for` s──> ok
     ^               │ clear                         ^                   │ breach            (RESOLVED)
     └───────────────┘                               └───────────────────┘

so a value that flaps within `for` sends nothing, and "firing" and "resolved" are each sent once per
episode. After a resolved notification the same instance fires again no sooner than `cooldown` s later (a
breach meanwhile waits in pending). No data (too few lookups or L2 calls in the window) counts as no breach.

Rates (hit rates, L2 error rate, L2 p99) are measured over the rule's `window` of seconds from snapshots
this evaluator keeps itself; memory and the circuit are read as they stand; health_status is the manager's
health assessment. Alerts observe: nothing in the data paths reads them.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

from .health import STATUS_RANK
from .histogram import summarize
from .hotkeys import iso_time
from .metrics import delta
from .notify import LogSink, WebhookSink, webhook_problem

__all__ = ["ALL_NAMESPACES", "METRICS", "NO_ALERTS", "AlertRule", "AlertsConfig", "Alerts", "parse"]

log = logging.getLogger("tiercache.alerts")

# metric -> (the comparison its threshold takes, default severity, default min_samples, what it measures)
METRICS: Dict[str, Tuple[Optional[str], str, int, str]] = {
    "health_status": ("level", "warning", 0, "the health assessment's status"),
    "l1_hit_rate": ("below", "warning", 100, "L1 hits / lookups over the window"),
    "overall_hit_rate": ("below", "warning", 100, "(L1 + L2 hits) / lookups over the window"),
    "circuit_open": (None, "critical", 0, "the L2 circuit is not closed"),
    "l2_error_rate": ("above", "warning", 20, "L2 errors / L2 calls over the window"),
    "l2_latency_p99": ("above", "warning", 20, "p99 of L2 gets over the window, seconds"),
    "memory": ("above", "warning", 0, "L1 bytes held / the L1 budget"),
}
SEVERITIES = ("info", "warning", "critical")
LEVELS = ("degraded", "unhealthy", "critical")  # health statuses worse than healthy, in order
_RULE_KEYS = ("metric", "below", "above", "level", "namespace", "for", "cooldown", "severity", "window",
              "min_samples", "summary")
_TOP_KEYS = ("webhook", "log", "interval", "timeout", "retries", "queue_size", "rules")
ALL_NAMESPACES = "*"
WEEK = 7 * 24 * 3600.0
# setting -> (default, smallest, largest, an int): what each number of the table may be
_KNOBS: Dict[str, Tuple[Any, float, float, bool]] = {
    "interval": (1.0, 0.05, 3600.0, False), "timeout": (5.0, 0.1, 300.0, False),
    "retries": (3, 0, 20, True), "queue_size": (1000, 1, 1_000_000, True),
}
_DURATIONS: Dict[str, Tuple[float, float, float]] = {  # rule setting -> (default, smallest, largest) in s
    "for": (30.0, 0.0, WEEK), "cooldown": (300.0, 0.0, WEEK), "window": (60.0, 1.0, WEEK),
}
_FRACTIONS = ("l1_hit_rate", "overall_hit_rate", "l2_error_rate", "memory")  # thresholds in [0, 1]


@dataclass(frozen=True)
class AlertRule:
    """One rule: `metric` compared with `threshold` (or `level`), held for `for_` s before it fires or
    resolves, at most one firing per `cooldown` s after a resolve; over `namespace` (None: the whole cache,
    "*": each namespace on its own)."""

    name: str
    metric: str
    threshold: Any = None  # a number for below/above; the level name for health_status; None for the circuit
    namespace: Optional[str] = None
    for_: float = 30.0
    cooldown: float = 300.0
    severity: str = "warning"
    window: float = 60.0
    min_samples: int = 0
    summary: Optional[str] = None

    @property
    def comparison(self) -> Optional[str]:
        return METRICS[self.metric][0]

    def as_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"metric": self.metric}
        if self.comparison is not None:
            out[self.comparison] = self.threshold
        if self.namespace is not None:
            out["namespace"] = self.namespace
        out.update({"for": self.for_, "cooldown": self.cooldown, "severity": self.severity,
                    "window": self.window, "min_samples": self.min_samples})
        if self.summary is not None:
            out["summary"] = self.summary
        return out


@dataclass(frozen=True)
class AlertsConfig:
    """The [alerts] table: rules, and where notifications go (a webhook URL, the log)."""

    rules: Tuple[AlertRule, ...] = ()
    webhook: Optional[str] = None
    log: bool = True
    interval: float = 1.0  # s between evaluations
    timeout: float = 5.0  # s per webhook attempt
    retries: int = 3  # webhook attempts after the first, with doubling backoff
    queue_size: int = 1000  # notifications waiting for the webhook; more are dropped (and counted)

    def as_dict(self) -> Dict[str, Any]:
        """The table as TOML has it (accepted back by parse())."""
        if self == NO_ALERTS:
            return {}
        out: Dict[str, Any] = {"log": self.log, "interval": self.interval, "timeout": self.timeout,
                               "retries": self.retries, "queue_size": self.queue_size,
                               "rules": {r.name: r.as_dict() for r in self.rules}}
        if self.webhook is not None:
            out["webhook"] = self.webhook
        return out


NO_ALERTS = AlertsConfig()


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse(data: Any) -> Tuple[AlertsConfig, List[str]]:
    """The AlertsConfig of an [alerts] table, and every problem with it ("alerts.rules.NAME.FIELD: ...")."""
    problems: List[str] = []

    def bad(where: str, message: str, value: Any = ...) -> None:
        problems.append(f"alerts.{where}: {message}" + ("" if value is ... else f" (got {value!r})"))

    if not isinstance(data, Mapping):
        return NO_ALERTS, [f"alerts: must be a table (got {data!r})"]
    for key in data:
        if key not in _TOP_KEYS:
            bad(str(key), f"unknown setting (known: {', '.join(_TOP_KEYS)})", data[key])
    webhook = data.get("webhook")
    problem = None if webhook is None else webhook_problem(webhook)
    if problem is not None:
        bad("webhook", problem, webhook)
        webhook = None
    log_on = data.get("log", True)
    if not isinstance(log_on, bool):
        bad("log", "must be a bool", log_on)
    knobs: Dict[str, Any] = {}
    for name, (default, low, high, integer) in _KNOBS.items():
        v = data.get(name, default)
        if integer and (isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high):
            bad(name, f"must be an int from {low} to {high:,}", v)
            v = default
        elif not integer and (not _number(v) or not low <= v <= high):
            bad(name, f"must be a number of seconds from {low:g} to {high:g}", v)
            v = default
        knobs[name] = v
    rules: List[AlertRule] = []
    table = data.get("rules", {})
    if not isinstance(table, Mapping):
        bad("rules", "must be a table of rule tables ([alerts.rules.NAME])", table)
        table = {}
    for name, spec in table.items():
        rule = _rule(str(name), spec, lambda where, msg, value=...: bad(f"rules.{name}.{where}", msg, value))
        if rule is not None:
            rules.append(rule)
    config = AlertsConfig(rules=tuple(rules), webhook=webhook, log=log_on if isinstance(log_on, bool) else True,
                          **knobs)
    return config, problems


def _rule(name: str, spec: Any, bad: Callable[..., None]) -> Optional[AlertRule]:
    if not isinstance(spec, Mapping):
        bad("", "must be a table", spec)
        return None
    problems = 0

    def fail(where: str, message: str, value: Any = ...) -> None:
        nonlocal problems
        problems += 1
        bad(where, message, value)

    for key in spec:
        if key not in _RULE_KEYS:
            fail(str(key), f"unknown setting (known: {', '.join(_RULE_KEYS)})", spec[key])
    metric = spec.get("metric")
    if not isinstance(metric, str) or metric not in METRICS:
        fail("metric", f"must be one of {', '.join(METRICS)}", metric)
        return None
    comparison, severity, min_samples, _ = METRICS[metric]
    threshold: Any = None
    for other in ("below", "above", "level"):
        if other in spec and other != comparison:
            what = f"take `{comparison}`" if comparison else "take no threshold"
            fail(other, f"{metric} rules {what}", spec[other])
    if comparison == "level":
        threshold = spec.get("level", "unhealthy")
        if threshold not in LEVELS:
            fail("level", f"must be one of {', '.join(LEVELS)} (the status at which it fires)", threshold)
    elif comparison is not None:
        if comparison not in spec:
            fail(comparison, "is required")
        else:
            threshold = spec[comparison]
            if not _number(threshold) or threshold < 0 or (metric in _FRACTIONS and threshold > 1):
                rule_text = "a fraction in [0, 1]" if metric in _FRACTIONS else "a number >= 0"
                fail(comparison, f"must be {rule_text}", threshold)
    namespace = spec.get("namespace")
    if namespace is not None:
        if metric in ("health_status", "circuit_open"):
            fail("namespace", f"{metric} rules are about the whole cache", namespace)
        elif not isinstance(namespace, str) or not namespace:
            fail("namespace", 'must be a namespace name, or "*" for each namespace on its own', namespace)
    durations = {}
    for key, (default, low, high) in _DURATIONS.items():
        v = spec.get(key, default)
        if not _number(v) or not low <= v <= high:
            fail(key, f"must be a number of seconds from {low:g} to {high:g}", v)
            v = default
        durations[key] = float(v)
    severity = spec.get("severity", "critical" if threshold == "critical" else severity)
    if severity not in SEVERITIES:
        fail("severity", f"must be one of {', '.join(SEVERITIES)}", severity)
    samples = spec.get("min_samples", min_samples)
    if isinstance(samples, bool) or not isinstance(samples, int) or not 0 <= samples <= 1_000_000_000:
        fail("min_samples", "must be an int from 0 to 1,000,000,000", samples)
    summary = spec.get("summary")
    if summary is not None and not isinstance(summary, str):
        fail("summary", "must be a string", summary)
    if problems:
        return None
    return AlertRule(name=name, metric=metric, threshold=threshold, namespace=namespace, for_=durations["for"],
                     cooldown=durations["cooldown"], severity=severity, window=durations["window"],
                     min_samples=samples, summary=summary)


# ------------------------------------------------------------------------------------------- evaluation


@dataclass
class _Instance:
    """One rule over one scope: where it stands in the state machine."""

    state: str = "ok"  # ok | pending | firing | resolving
    since: float = 0.0  # when the current breach (pending) or clear spell (resolving) began
    resolved_at: Optional[float] = None  # (the snapshots' clock)
    fired_time: Optional[str] = None  # when it fired, as ISO 8601 UTC
    value: Any = None


class Alerts:
    """Evaluates `config.rules` over the figures `snapshot()` returns and sends each transition to `sinks`.

    `snapshot()` returns a metrics snapshot (tiercache.observability.metrics: "time", "namespaces",
    "circuit", "histograms"); `assess()` the health assessment (needed by health_status rules);
    `global_budget` the global L1 cap (None: the namespaces' budgets added up). Notifications go to the
    log and the webhook as `config` says, and to `sinks`: callables taking the notification dict, which
    must not block (tiercache.observability.notify queues and delivers).
    """

    def __init__(self, config: AlertsConfig, snapshot: Callable[[], Dict[str, Any]],
                 assess: Optional[Callable[[], Dict[str, Any]]] = None, sinks: Sequence[Callable[[Dict[str, Any]], Any]] = (),
                 *, global_budget: Optional[int] = None, env: Optional[str] = None) -> None:
        self.config = config
        self._snapshot = snapshot
        self._assess = assess
        self._sinks: List[Callable[[Dict[str, Any]], Any]] = []
        if config.log:
            self._sinks.append(LogSink())
        self.webhook: Optional[WebhookSink] = None
        if config.webhook is not None:
            self.webhook = WebhookSink(config.webhook, timeout=config.timeout, retries=config.retries,
                                       queue_size=config.queue_size)
            self._sinks.append(self.webhook)
        self._sinks += sinks
        self._global_budget = global_budget
        self._env = env
        # one evaluation, and its deliveries, at a time (so every sink sees the transitions in order); an
        # RLock, so that a sink may read active() or states()
        self._lock = threading.RLock()
        self._instances: Dict[Tuple[str, Optional[str]], _Instance] = {}
        windows = [r.window for r in config.rules] or [60.0]
        self._longest = max(windows)
        # snapshots kept for the windows: one per `_spacing` s (a 30th of the shortest window, at most 1000
        # over the longest), each trimmed to what the rules read
        self._spacing = max(min(windows) / 30, self._longest / 1000)
        self._history: Deque[Dict[str, Any]] = deque()
        self.sent = 0  # notifications handed to the sinks
        self.sink_errors = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def add_sink(self, sink: Callable[[Dict[str, Any]], Any]) -> None:
        """Also send every notification to `sink` (a callable taking the notification dict; must not block)."""
        self._sinks.append(sink)

    # -- evaluation

    def evaluate(self) -> List[Dict[str, Any]]:
        """Evaluate every rule now and send what changed; the notifications sent (usually none)."""
        with self._lock:
            now = self._snapshot()
            t = now["time"]
            report = None
            out: List[Dict[str, Any]] = []
            for rule in self.config.rules:
                if rule.metric == "health_status" and report is None and self._assess is not None:
                    report = self._assess()
                for scope, value, breach in self._measure(rule, now, report):
                    note = self._step(rule, scope, value, breach, t)
                    if note is not None:
                        out.append(note)
            self._prune(now)
            self._keep(now)
            for note in out:
                self._deliver(note)
        return out

    def _keep(self, now: Dict[str, Any]) -> None:
        """Add `now` to the history (trimmed, and only every `_spacing` s); drop what no window reaches."""
        t = now["time"]
        if not self._history or t - self._history[-1]["time"] >= self._spacing:
            self._history.append({"time": t, "started": now.get("started", t), "namespaces": now["namespaces"],
                                  "histograms": {k: v for k, v in now["histograms"].items() if k[1] == "l2_get"}})
        while len(self._history) > 2 and self._history[1]["time"] <= t - self._longest:
            self._history.popleft()

    def _prune(self, now: Dict[str, Any]) -> None:
        """Forget the per-namespace instances at rest whose namespace is gone."""
        gone = [key for key, inst in self._instances.items()
                if key[1] is not None and inst.state == "ok" and key[1] not in now["namespaces"]]
        for key in gone:
            del self._instances[key]

    def _base(self, now: Dict[str, Any], window: float) -> Optional[Dict[str, Any]]:
        """The latest kept snapshot at least `window` s before `now`; None (since the start, when every
        counter was zero) while the evaluator has not run that long."""
        base = None
        for snap in self._history:
            if snap["time"] > now["time"] - window:
                break
            base = snap
        return base

    def _scopes(self, rule: AlertRule, now: Dict[str, Any]) -> List[Optional[str]]:
        if rule.namespace == ALL_NAMESPACES:
            seen = set(now["namespaces"]) | {ns for (name, ns) in self._instances if name == rule.name and ns}
            return sorted(seen)
        return [rule.namespace]

    def _measure(self, rule: AlertRule, now: Dict[str, Any],
                 report: Optional[Dict[str, Any]]) -> List[Tuple[Optional[str], Any, bool]]:
        """(scope, value, breached) for each instance of `rule`."""
        m = rule.metric
        if m == "circuit_open":
            state = (now.get("circuit") or {}).get("state", "closed")
            return [(None, state, state != "closed")]
        if m == "health_status":
            status = (report or {}).get("status")
            breach = status in STATUS_RANK and STATUS_RANK[status] >= STATUS_RANK[rule.threshold]
            return [(None, status, breach)]
        out: List[Tuple[Optional[str], Any, bool]] = []
        for scope in self._scopes(rule, now):
            value = self._value(rule, now, scope)
            if value is None:
                out.append((scope, None, False))
            elif rule.comparison == "below":
                out.append((scope, value, value < rule.threshold))
            else:
                out.append((scope, value, value > rule.threshold))
        return out

    def _value(self, rule: AlertRule, now: Dict[str, Any], scope: Optional[str]) -> Optional[float]:
        m = rule.metric
        if m == "memory":
            entries = [e.get("l1") or {} for ns, e in now["namespaces"].items() if scope is None or ns == scope]
            held = sum(l1.get("bytes") or 0 for l1 in entries)
            budget = (self._global_budget if scope is None and self._global_budget is not None
                      else sum(l1.get("max_bytes") or 0 for l1 in entries))
            return round(held / budget, 4) if budget else None
        if scope is not None and scope not in now["namespaces"]:
            return None
        d = delta(now, self._base(now, rule.window), scope)
        if m in ("l1_hit_rate", "overall_hit_rate"):
            return None if d["lookups"] < max(1, rule.min_samples) else round(d[m], 4)
        if m == "l2_error_rate":
            return None if d["l2_calls"] < max(1, rule.min_samples) else round(d["l2_error_rate"], 4)
        s = summarize(d["latency"]["l2_get"])  # l2_latency_p99
        return None if s["count"] < max(1, rule.min_samples) else s["p99"]

    def _step(self, rule: AlertRule, scope: Optional[str], value: Any, breach: bool,
              t: float) -> Optional[Dict[str, Any]]:
        inst = self._instances.setdefault((rule.name, scope), _Instance())
        inst.value = value
        if inst.state == "ok":
            if breach:
                inst.state, inst.since = "pending", t
        elif inst.state == "pending":
            if not breach:
                inst.state = "ok"
        elif inst.state == "firing":
            if not breach:
                inst.state, inst.since = "resolving", t
        elif inst.state == "resolving":
            if breach:
                inst.state = "firing"
        if inst.state == "pending" and t - inst.since >= rule.for_ and (
                inst.resolved_at is None or t - inst.resolved_at >= rule.cooldown):
            inst.state, inst.fired_time = "firing", iso_time()
            return self._note(rule, scope, "firing", value)
        if inst.state == "resolving" and t - inst.since >= rule.for_:
            inst.state, inst.resolved_at = "ok", t
            return self._note(rule, scope, "resolved", value)
        return None

    def _note(self, rule: AlertRule, scope: Optional[str], state: str, value: Any) -> Dict[str, Any]:
        summary = rule.summary or _summary(rule, scope, value)
        text = f"[{state.upper()}] {rule.name} ({rule.severity}): {summary}"
        if state == "resolved":
            text += " — back to normal"
        return {"alert": rule.name, "state": state, "severity": rule.severity, "summary": summary,
                "namespace": scope, "metric": rule.metric, "value": value, "threshold": rule.threshold,
                "for": rule.for_, "timestamp": iso_time(), "env": self._env, "text": text}

    def _deliver(self, note: Dict[str, Any]) -> None:
        self.sent += 1
        for sink in list(self._sinks):
            try:
                sink(dict(note))  # (a copy each: what one sink changes, the next does not see)
            except Exception:  # a sink's trouble never stops evaluation or the other sinks
                self.sink_errors += 1
                log.exception("tiercache: alert sink %r failed", sink)

    # -- reading

    def active(self) -> List[Dict[str, Any]]:
        """The alerts firing now (including those waiting out `for` before they resolve)."""
        rules = {r.name: r for r in self.config.rules}
        with self._lock:
            items = list(self._instances.items())
        return [{"alert": name, "namespace": scope, "severity": rules[name].severity, "metric": rules[name].metric,
                 "value": inst.value, "threshold": rules[name].threshold, "since": inst.fired_time}
                for (name, scope), inst in items if inst.state in ("firing", "resolving")]

    def stats(self) -> Dict[str, Any]:
        """Notifications sent, sink failures, the webhook's delivery counts, each instance's state."""
        return {"sent": self.sent, "sink_errors": self.sink_errors, "states": self.states(),
                "webhook": None if self.webhook is None else self.webhook.stats()}

    def states(self) -> Dict[str, str]:
        """Each rule instance's state ("NAME" or "NAME[namespace]" -> ok | pending | firing | resolving)."""
        with self._lock:
            return {name if scope is None else f"{name}[{scope}]": inst.state
                    for (name, scope), inst in self._instances.items()}

    # -- background evaluation

    def start(self) -> None:
        if self._thread is not None or not self.config.rules:
            return
        self._thread = threading.Thread(target=self._run, name="tiercache-alerts", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.config.interval):
            try:
                self.evaluate()
            except Exception:  # (a closing manager, or a bug: logged, and evaluation goes on)
                if self._stop.is_set():
                    return
                log.exception("tiercache: alert evaluation failed")

    def stop(self) -> None:
        """Stop evaluating, without waiting for the webhook: what it has not sent yet is dropped (call
        `webhook.flush(timeout)` first to wait for it)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if self.webhook is not None:
            self.webhook.close()


def _pct(v: Any) -> str:
    return f"{v:.1%}" if isinstance(v, float) else str(v)


def _summary(rule: AlertRule, scope: Optional[str], value: Any) -> str:
    """A sentence for people: what is measured, its value and the threshold."""
    where = f"{scope}: " if scope is not None else ""
    m, window = rule.metric, f"over {rule.window:g} s"
    if m == "circuit_open":
        return f"L2 circuit {value}: reads are served from L1 alone"
    if m == "health_status":
        return f"health status {value} (fires at {rule.threshold} or worse)"
    if value is None:
        return f"{where}{m.replace('_', ' ')}: no data {window}"
    if m in ("l1_hit_rate", "overall_hit_rate"):
        name = "L1 hit rate" if m == "l1_hit_rate" else "overall hit rate"
        return f"{where}{name} {_pct(value)} {window} (threshold {_pct(float(rule.threshold))})"
    if m == "l2_error_rate":
        return f"{where}L2 error rate {_pct(value)} {window} (threshold {_pct(float(rule.threshold))})"
    if m == "l2_latency_p99":
        return f"{where}L2 get p99 {value * 1e3:.1f} ms {window} (threshold {rule.threshold * 1e3:g} ms)"
    return f"{where}L1 holds {_pct(value)} of its budget (threshold {_pct(float(rule.threshold))})"
