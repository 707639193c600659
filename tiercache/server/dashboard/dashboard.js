// The tiercache dashboard: polls the admin API's JSON endpoints with the API key the user typed in, and
// shows them. Every figure is an element whose data-metric attribute names the JSON field it shows (its raw
// value is in data-value); per-namespace figures sit in a row with data-namespace. No data is in the page.
"use strict";

(function () {
  const KEY = "tiercache.apiKey";
  const params = new URLSearchParams(location.search);
  const refresh = Math.min(3600, Math.max(1, Number(params.get("refresh")) || 5)) * 1000;
  const $ = (sel, root) => (root || document).querySelector(sel);
  let timer = null;
  let generation = 0; // a new key, or signing out, ends the polls of the one before

  // ------------------------------------------------------------------ formatting

  const pct = (v) => (v === null || v === undefined ? "–" : (v * 100).toFixed(1) + " %");
  const num = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"));
  const ms = (s) => (s === null || s === undefined ? "–" : s * 1e3 < 1 ? (s * 1e6).toFixed(0) + " µs" : (s * 1e3).toFixed(2) + " ms");
  const bytes = (b) => {
    if (b === null || b === undefined) return "–";
    for (const [unit, size] of [["GB", 2 ** 30], ["MB", 2 ** 20], ["kB", 2 ** 10]]) {
      if (b >= size) return (b / size).toFixed(1) + " " + unit;
    }
    return b + " B";
  };
  const plain = (v) => {
    if (v === null || v === undefined) return "–";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
    if (typeof v === "object") return Object.entries(v).map(([k, x]) => k + " " + plain(x)).join(", ");
    return String(v);
  };

  function show(el, value, format) {
    if (!el) return;
    el.textContent = (format || plain)(value);
    el.dataset.value = value === undefined ? "" : JSON.stringify(value);
    if (el.classList.contains("status")) {
      el.className = "status " + String(value);
    }
  }

  function metric(name, value, format, root) {
    show($('[data-metric="' + name + '"]', root), value, format);
  }

  function cell(row, name, value, format) {
    const td = document.createElement("td");
    td.dataset.metric = name;
    show(td, value, format);
    row.appendChild(td);
  }

  function list(el, items, render) {
    el.replaceChildren();
    if (!items.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "none";
      el.appendChild(li);
      return;
    }
    for (const item of items) el.appendChild(render(item));
  }

  function line(text, className) {
    const li = document.createElement("li");
    li.textContent = text;
    if (className) li.className = className;
    return li;
  }

  // ------------------------------------------------------------------ fetching

  class Unauthorized extends Error {}

  async function get(path) {
    const answer = await fetch(path, { headers: { "X-API-KEY": sessionStorage.getItem(KEY) || "" }, cache: "no-store" });
    const body = await answer.json().catch(() => ({}));
    if (answer.status === 401) throw new Unauthorized(body.detail || "unauthorized");
    if (!answer.ok) throw new Error(path + ": HTTP " + answer.status + " " + (body.detail || ""));
    return body;
  }

  function start() {
    generation += 1;
    clearTimeout(timer);
    poll(generation);
  }

  async function poll(mine) {
    try {
      const [health, metrics, system] = await Promise.all([get("cache-health"), get("cache-metrics"), get("cache-system-status")]);
      if (mine !== generation) return;
      render(health.assessment, metrics, system);
      $("#login").hidden = true;
      $("#board").hidden = false;
      $("#sign-out").hidden = false;
      $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (err) {
      if (mine !== generation) return;
      if (err instanceof Unauthorized) {
        signOut("Unauthorized: " + err.message);
        return;
      }
      $("#updated").textContent = "update failed: " + err.message;
    }
    timer = setTimeout(() => poll(mine), refresh);
  }

  function signOut(message) {
    generation += 1;
    clearTimeout(timer);
    sessionStorage.removeItem(KEY);
    $("#board").hidden = true;
    $("#sign-out").hidden = true;
    $("#login").hidden = false;
    const error = $("#auth-error");
    error.hidden = !message;
    error.textContent = message || "";
  }

  // ------------------------------------------------------------------ rendering

  function render(assessment, metrics, system) {
    metric("overallScore", assessment.overallScore, (v) => (v === null ? "–" : v.toFixed(1)));
    metric("status", assessment.status);
    const stats = metrics.cacheStats;
    metric("totalRequests", stats.totalRequests, num);
    metric("errors", stats.errors, num);
    metric("evictions", stats.evictions, num);
    for (const name of ["l1HitRate", "l2HitRate", "overallHitRate"]) metric(name, stats[name], pct);
    metric("kind", system.l2.kind);
    metric("circuit.state", system.l2.circuit.state);
    metric("reachable", system.l2.reachable, (v) => (v ? "reachable" : "not reachable"));
    metric("environment", system.environment);
    metric("implementation", system.implementation);
    metric("version", system.version);

    const alerts = (system.alerts && system.alerts.active) || [];
    list($("#alerts"), alerts, (a) => {
      const li = line(a.alert + (a.namespace ? " [" + a.namespace + "]" : "") + ": " + a.metric + " = " + plain(a.value) +
        (a.threshold === null ? "" : " (threshold " + plain(a.threshold) + ")"), "sev-" + a.severity);
      li.dataset.alert = a.alert;
      li.dataset.metric = "alerts.active";
      li.dataset.value = JSON.stringify(a);
      return li;
    });

    const body = $("#components tbody");
    body.replaceChildren();
    for (const [name, c] of Object.entries(assessment.components || {})) {
      const row = document.createElement("tr");
      row.dataset.component = name;
      const th = document.createElement("td");
      th.textContent = name;
      row.appendChild(th);
      cell(row, "score", c.score, (v) => (v === null ? "–" : v.toFixed(1)));
      cell(row, "value", c.value);
      cell(row, "threshold", c.threshold);
      cell(row, "weight", c.weight);
      body.appendChild(row);
    }
    list($("#issues"), assessment.issues || [], (i) => line(i.severity + ": " + i.description + " — " + i.solution, "sev-" + i.severity));
    list($("#recommendations"), assessment.recommendations || [], (r) => line(r));

    namespaces(metrics);
    charts(metrics.trends);
  }

  function namespaces(metrics) {
    const per = (metrics.metrics && metrics.metrics.namespaces) || {};
    const body = $("#namespaces tbody");
    body.replaceChildren();
    for (const [ns, l1] of Object.entries(metrics.l1Stats || {})) {
      if (l1.selfTest) continue;
      const lat = (per[ns] || {}).latency || {};
      const row = document.createElement("tr");
      row.dataset.namespace = ns;
      const name = document.createElement("td");
      name.textContent = ns;
      row.appendChild(name);
      cell(row, "hitRate", l1.hitRate, pct);
      cell(row, "l2HitRate", l1.l2HitRate, pct);
      cell(row, "overallHitRate", l1.overallHitRate, pct);
      cell(row, "opsPerSecond", l1.opsPerSecond, (v) => (v === null || v === undefined ? "–" : num(Math.round(v))));
      cell(row, "latency.l1_get.p50", (lat.l1_get || {}).p50, ms);
      cell(row, "latency.l1_get.p99", (lat.l1_get || {}).p99, ms);
      cell(row, "latency.l2_get.p50", (lat.l2_get || {}).p50, ms);
      cell(row, "latency.l2_get.p99", (lat.l2_get || {}).p99, ms);
      cell(row, "evictionsBySize", l1.evictionsBySize, num);
      cell(row, "evictionsByCount", l1.evictionsByCount, num);
      cell(row, "expirations", l1.expirations, num);
      cell(row, "bytes", l1.bytes, bytes);
      cell(row, "maxBytes", l1.maxBytes, bytes);
      cell(row, "entries", l1.entries, num);
      cell(row, "maxEntries", l1.maxEntries, num);
      cell(row, "precision", ((metrics.promotionStats || {})[ns] || {}).precision, pct);
      body.appendChild(row);
    }
  }

  // ------------------------------------------------------------------ charts (plain SVG)

  const CHARTS = [
    { title: "Hit rates", series: ["l1_hit_rate", "overall_hit_rate"], format: pct, min: 0, max: 1 },
    { title: "Throughput (ops/s)", series: ["throughput_ops"], format: (v) => num(Math.round(v)), min: 0 },
    { title: "Get latency p99", series: ["l1_get_p99", "l2_get_p99"], format: ms, min: 0 },
    { title: "L2 error rate", series: ["l2_error_rate"], format: pct, min: 0 },
    { title: "L1 bytes", series: ["l1_bytes"], format: bytes, min: 0 },
    { title: "L1 budget used", series: ["l1_budget_used"], format: pct, min: 0, max: 1 },
  ];
  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, parent) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (parent) parent.appendChild(el);
    return el;
  }

  function charts(trends) {
    const root = $("#charts");
    root.replaceChildren();
    if (!trends || !trends.points) {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = "No history yet: points appear as the server's metrics take snapshots.";
      root.appendChild(p);
      return;
    }
    for (const spec of CHARTS) root.appendChild(chart(spec, trends));
  }

  function chart(spec, trends) {
    const box = document.createElement("div");
    box.className = "chart";
    box.dataset.chart = spec.series.join(",");
    const title = document.createElement("h2");
    title.textContent = spec.title;
    box.appendChild(title);
    const W = 300, H = 120, L = 48, B = 16;
    const xs = trends.seconds;
    const all = spec.series.flatMap((s) => (trends.series[s] || []).filter((v) => v !== null));
    const lo = spec.min !== undefined ? spec.min : Math.min(...all);
    let hi = spec.max !== undefined ? spec.max : Math.max(...all, lo);
    if (hi <= lo) hi = lo + 1;
    const span = Math.max(1, xs[xs.length - 1] - xs[0]);
    const plot = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": spec.title });
    svg("line", { x1: L, y1: H - B, x2: W, y2: H - B, class: "axis" }, plot);
    svg("line", { x1: L, y1: 4, x2: L, y2: H - B, class: "axis" }, plot);
    svg("text", { x: L - 4, y: 10, "text-anchor": "end" }, plot).textContent = spec.format(hi);
    svg("text", { x: L - 4, y: H - B, "text-anchor": "end" }, plot).textContent = spec.format(lo);
    svg("text", { x: L, y: H - 3 }, plot).textContent = "-" + Math.round(span / 60) + " min";
    svg("text", { x: W, y: H - 3, "text-anchor": "end" }, plot).textContent = "now";
    const legend = document.createElement("div");
    legend.className = "legend";
    spec.series.forEach((name, i) => {
      const ys = trends.series[name] || [];
      const points = [];
      ys.forEach((v, j) => {
        if (v === null) return;
        const x = L + ((xs[j] - xs[0]) / span) * (W - L);
        const y = H - B - ((Math.min(Math.max(v, lo), hi) - lo) / (hi - lo)) * (H - B - 4);
        points.push(x.toFixed(1) + "," + y.toFixed(1));
      });
      svg("polyline", { points: points.join(" "), class: "s" + i }, plot).dataset.series = name;
      const last = ys.filter((v) => v !== null).pop();
      const label = document.createElement("span");
      label.className = "k" + i;
      label.dataset.metric = name;
      label.dataset.value = JSON.stringify(last === undefined ? null : last);
      const trend = (trends.trends[name] || {}).label;
      label.textContent = name + " " + (last === undefined ? "–" : spec.format(last)) + (trend ? " · " + trend : "");
      legend.appendChild(label);
    });
    box.appendChild(plot);
    box.appendChild(legend);
    return box;
  }

  // ------------------------------------------------------------------ start

  document.addEventListener("DOMContentLoaded", () => {
    $("#key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("#api-key").value);
      $("#api-key").value = "";
      $("#auth-error").hidden = true;
      start();
    });
    $("#sign-out").addEventListener("click", () => signOut(""));
    if (sessionStorage.getItem(KEY)) start();
  });
})();
