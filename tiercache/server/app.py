"""The admin HTTP API: health, configuration, metrics, promotion, status, warm-up, load test, and data.

    create_app(manager, api_keys) -> FastAPI app        (tiercache serve runs it under uvicorn)

The seven endpoints of the Enhanced Cache System v1.0 answer in its shape (tiercache.server.contract): every
answer has `success` and `timestamp`. Every endpoint but GET /health and the dashboard (GET /dashboard, a page
of package data that holds no figures: it asks for the key and polls the JSON endpoints) needs the
`X-API-KEY` header, compared in constant time with the configured keys; a missing or wrong key is a 401. Errors are JSON
`{success: false, error, detail, timestamp}` with a 4xx status: malformed JSON (400), an oversize body
(413), wrong types or out-of-range numbers (422), an unknown namespace under strict_namespaces (404), a
configuration change that fails validation (400; nothing is applied). POST bodies are JSON with or without a
JSON content type; an absent body means the defaults. The OpenAPI schema is at /openapi.json.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import importlib.resources
import json
import random
import time
from typing import Any, Dict, List, Optional, Sequence

from .._extras import missing

try:
    from fastapi import Depends, FastAPI, Header, Request
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
    from pydantic import BaseModel, Field, ValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as exc:
    raise missing(exc, "server", "tiercache.server (the admin HTTP API)") from exc

from .. import IMPLEMENTATION, __version__
from ..config import SELFTEST_NAMESPACE, check_namespace
from ..errors import ConfigError, SerializationError
from . import contract
from .contract import ErrorBody, failure, ok

DEFAULT_MAX_BODY = 1 << 20  # bytes
DEFAULT_TEST_LOAD_CAP = 100_000
# The dashboard's files (package data) and how they are served: no key needed, since they hold no data; the
# page asks for the key and reads the JSON endpoints with it.
DASHBOARD_ASSETS = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
_DASHBOARD_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}


def _dashboard_file(name: str) -> bytes:
    return importlib.resources.files(__package__).joinpath("dashboard", name).read_bytes()


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: Any) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


_ERRORS: Dict[Any, Any] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in ((400, "malformed JSON or an invalid configuration change"),
                       (401, "missing or wrong X-API-KEY"), (404, "unknown namespace or key"),
                       (413, "body too large"), (422, "wrong types or out-of-range values"))
}


class ConfigPatch(BaseModel):
    namespace: str = Field(min_length=1, max_length=200)
    changes: Dict[str, Any] = Field(description="NamespaceConfig fields and their new values")


class WarmupRequest(BaseModel):
    namespace: Optional[str] = Field(default=None, min_length=1, max_length=200,
                                     description="one namespace (default: every configured one)")
    keys: List[str] = Field(default_factory=list, max_length=10_000,
                            description="keys to load from L2 into L1 first (then the most read, then keys L2 "
                                        "holds)")
    count: int = Field(default=100, ge=1, le=10_000, description="at most this many keys per namespace")


class TestLoadRequest(BaseModel):
    operations: int = Field(default=20, ge=1, description="capped by the server (default cap 100000)")
    namespace: str = Field(default=SELFTEST_NAMESPACE, min_length=1, max_length=200,
                           description="default: the reserved namespace of synthetic traffic")
    read_ratio: float = Field(default=0.8, ge=0.0, le=1.0)


def _body_schema(model: Any) -> Dict[str, Any]:
    """An optional JSON body in the OpenAPI schema (parsed by _parse_body, not by FastAPI)."""
    return {"requestBody": {"required": False,
                            "content": {"application/json": {"schema": model.model_json_schema()}}}}


async def _parse_body(request: Request, model: Any) -> Any:
    """The request's JSON body as `model`, whatever its content type; an absent body is the defaults."""
    raw = await request.body()
    data: Any = {}
    if raw.strip():
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "malformed JSON", str(exc)) from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid request", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [{"loc": ["body", *e.get("loc", ())], "msg": e.get("msg", "")} for e in exc.errors()]
        raise ApiError(422, "invalid request", problems) from None


class PutValue(BaseModel):
    value: Any
    ttl: Optional[float] = Field(default=None, gt=0, le=10 * 365 * 24 * 3600)


async def _reply(send: Any, status: int, error: str, detail: Any) -> None:
    """An error answered by a middleware, in the API's error form."""
    body = json.dumps(failure(error, detail)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class _BodyLimit:
    """ASGI middleware: a request body over `max_body` bytes gets a 413 before the app sees it. A declared
    Content-Length is checked unread; a chunked body is read up to the limit (never beyond) and replayed."""

    def __init__(self, app: Any, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                await _reply(send, 400, "bad Content-Length", length.decode("latin-1"))
                return
            if too_big:
                await _reply(send, 413, "body too large", f"at most {self.max_body} bytes")
                return
            await self.app(scope, receive, send)
            return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # (the client went away)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _reply(send, 413, "body too large", f"at most {self.max_body} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class _RequireKey:
    """ASGI middleware: every HTTP request but those to `public` paths needs an X-API-KEY header equal to one
    of `keys` (compared as the bytes sent, in constant time with every key), checked before anything else
    reads the request: an unauthenticated request gets 401 whatever its body, and the API's own
    documentation (/docs, /redoc, /openapi.json) needs the key too."""

    def __init__(self, app: Any, keys: Sequence[bytes], public: Sequence[str]) -> None:
        self.app, self.keys, self.public = app, list(keys), frozenset(public)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]  # (behind a path prefix, as the router sees it)
        if scope["type"] != "http" or path in self.public:
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers") or () if k == b"x-api-key"), None)
        if given is None:
            detail = "the X-API-KEY header is missing"
        else:
            ok = False
            for key in self.keys:  # (every key compared, in constant time)
                ok |= hmac.compare_digest(given, key)
            if ok:
                await self.app(scope, receive, send)
                return
            detail = "the X-API-KEY header does not match a configured key"
        await _reply(send, 401, "unauthorized", detail)


def _as_json(value: Any) -> Any:
    """A cached value as the API returns it: bytes (which JSON has no form for) as {"$bytes": base64}, in
    containers too; tuples and sets as lists; the rest as FastAPI encodes it."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_as_json(v) for v in value]
    return value


def create_app(manager: Any, api_keys: Sequence[str], *, max_body: int = DEFAULT_MAX_BODY,
               test_load_cap: int = DEFAULT_TEST_LOAD_CAP, insecure_no_auth: bool = False) -> FastAPI:
    """The admin API over `manager` (an AsyncCacheManager, started and closed by the app's lifespan)."""
    keys = [k.encode("utf-8") for k in api_keys if k]  # (compared with the header's bytes as sent)
    if not keys and not insecure_no_auth:
        raise ValueError("no API key configured: pass api_keys, or insecure_no_auth=True to run without auth")
    started = time.monotonic()

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        await manager.start()
        try:
            yield
        finally:
            await manager.aclose()

    app = FastAPI(title="tiercache admin API", version=__version__, lifespan=lifespan, responses=_ERRORS)

    def error(status: int, err: str, detail: Any) -> JSONResponse:
        return JSONResponse(failure(err, detail), status_code=status)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.error, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return error(400, "malformed JSON", problems)
        return error(422, "invalid request", problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, "http error", exc.detail)

    app.add_middleware(_BodyLimit, max_body=max_body)
    if not insecure_no_auth:
        public = ["/health", "/dashboard", "/dashboard/", *(f"/dashboard/{name}" for name in DASHBOARD_ASSETS)]
        app.add_middleware(_RequireKey, keys=keys, public=public)  # (outermost: runs first)

    async def require_key(x_api_key: Optional[str] = Header(default=None, alias="X-API-KEY")) -> None:
        """Declares the header in the API's schema; _RequireKey has checked it before the request got here."""

    def namespace_or_404(namespace: str) -> str:
        try:
            check_namespace(namespace)
            manager.namespace_config(namespace)
        except ConfigError as exc:
            raise ApiError(404, "unknown namespace", str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise ApiError(422, "invalid namespace", str(exc)) from None
        return namespace

    def parse_key(key: str) -> Any:
        if len(key) > 1000:
            raise ApiError(422, "invalid key", "keys are at most 1000 characters")
        return key

    auth = [Depends(require_key)]

    async def l2_fine() -> bool:
        return manager.circuit.state == "closed" and await manager.ping()

    @app.get("/health", responses={200: {"model": contract.HealthBody}})
    async def health() -> Dict[str, Any]:
        """Liveness (no auth): `healthy` when the process runs and its L2 answers, else `degraded`."""
        if await l2_fine():
            return ok(status="healthy", message="tiercache is running", version=__version__)
        return ok(status="degraded", message="tiercache is running; its L2 does not answer (reads fall back "
                  "to L1)", version=__version__)

    @app.api_route("/dashboard", methods=["GET", "HEAD"], response_class=HTMLResponse)
    async def dashboard() -> Response:
        """The dashboard page (no auth: it holds no data; it asks for the API key and polls the JSON endpoints)."""
        return HTMLResponse(_dashboard_file("index.html"), headers=_DASHBOARD_HEADERS)

    @app.get("/dashboard/", include_in_schema=False)
    async def dashboard_slash(request: Request) -> Response:
        return RedirectResponse(str(request.url_for("dashboard")), status_code=308)

    @app.get("/dashboard/{name}", include_in_schema=False)
    async def dashboard_asset(name: str) -> Response:
        if name not in DASHBOARD_ASSETS:
            raise ApiError(404, "not found", name)
        return Response(_dashboard_file(name), media_type=DASHBOARD_ASSETS[name], headers=_DASHBOARD_HEADERS)

    @app.get("/cache-health", dependencies=auth, responses={200: {"model": contract.CacheHealthBody}})
    async def cache_health() -> Dict[str, Any]:
        return ok(assessment=contract.assessment(await manager.perform_health_assessment()))

    @app.get("/cache-config", dependencies=auth, responses={200: {"model": contract.ConfigBody}})
    async def get_config() -> Dict[str, Any]:
        summary = manager.config_summary()
        return ok(**contract.config_document(manager), l1Usage=summary.get("l1_usage", {}))

    @app.patch("/cache-config", dependencies=auth)
    async def patch_config(patch: ConfigPatch) -> Dict[str, Any]:
        namespace_or_404(patch.namespace)
        try:
            new = manager.update_namespace(patch.namespace, **patch.changes)
        except ConfigError as exc:
            raise ApiError(400, "invalid configuration", getattr(exc, "errors", None) or str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise ApiError(400, "invalid configuration", str(exc)) from None
        return ok(namespace=patch.namespace, configuration=contract.camel_config(new),
                  config=dataclasses.asdict(new))

    def trends() -> Optional[Dict[str, Any]]:
        return manager.performance_trends(60) if manager.metrics is not None else None

    @app.get("/cache-metrics", dependencies=auth, responses={200: {"model": contract.MetricsBody}})
    async def cache_metrics() -> Dict[str, Any]:
        snap = manager.metrics_snapshot() if manager.metrics is not None else {}
        stats = manager.stats()
        ops = contract.throughput(manager.metrics) if manager.metrics is not None else None
        l1 = contract.l1_stats(stats, manager.counters.by_namespace(), ops)
        return ok(cacheStats=contract.cache_stats(manager, stats), l1Stats=l1,
                  promotionStats=manager.promotion_stats(), trends=trends(), stats=stats, metrics=snap,
                  l1Budgets={"allocation": manager.config.l1_allocation, "budgets": manager.l1_budgets(),
                             "curves": manager.l1_curves()})

    @app.get("/metrics", dependencies=auth, response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        from ..observability.prometheus import exposition

        return PlainTextResponse(exposition(manager).decode(), media_type="text/plain; version=0.0.4")

    @app.get("/cache-promotion", dependencies=auth, responses={200: {"model": contract.PromotionBody}})
    async def cache_promotion() -> Dict[str, Any]:
        stats = manager.promotion_stats()
        patterns = [{**p, "key": _as_json(p["key"])} for p in manager.hot_keys.top(10, exclude=SELFTEST_NAMESPACE)]
        return ok(enabled=manager.enable_promotion, stats=stats, accessPatterns=patterns, namespaces=stats)

    @app.get("/cache-system-status", dependencies=auth, responses={200: {"model": contract.SystemBody}})
    async def system_status() -> Dict[str, Any]:
        reachable = await manager.ping()
        circuit = manager.circuit.snapshot()
        l2 = {"kind": getattr(manager.l2, "kind", type(manager.l2).__name__), "circuit": circuit,
              "reachable": reachable}
        namespaces = sorted(set(manager.config.namespaces) | set(manager.namespaces()))
        report = await manager.perform_health_assessment() if manager.metrics is not None else None
        system = {
            "cache": {"enabled": manager.enabled, "l1": {"namespaces": len(namespaces)}, "l2": l2,
                      "implementation": IMPLEMENTATION},
            "promotion": {"enabled": manager.enable_promotion, "strategies": {ns: s.get("strategy")
                                                          for ns, s in manager.promotion_stats().items()}},
            "metrics": {"enabled": manager.metrics is not None,
                        "lastAssessment": None if report is None else {
                            "status": report["status"], "overallScore": report["overall_score"],
                            "timestamp": contract.iso_time()},
                        "trends": None if report is None else trends()},
            "configuration": {"environment": manager.env, "namespaces": namespaces},
        }
        alerts = manager.alerts
        return ok(system=system, version=__version__, implementation=IMPLEMENTATION, environment=manager.env,
                  l2=l2, namespaces=namespaces, uptime_seconds=round(time.monotonic() - started, 3),
                  alerts=None if alerts is None else {"rules": len(alerts.config.rules), "active": alerts.active(),
                                                     **alerts.stats()})

    @app.post("/cache-warmup", dependencies=auth, openapi_extra=_body_schema(WarmupRequest),
              responses={200: {"model": contract.WarmupBody}})
    async def warmup(request: Request) -> Dict[str, Any]:
        """Warm L1 from L2 (manager.preload: the keys given, the most read, then keys L2 holds), then a
        self-test writes and reads back a few keys of the reserved namespace. Writes nothing elsewhere."""
        req = await _parse_body(request, WarmupRequest)
        names = [namespace_or_404(req.namespace)] if req.namespace else sorted(manager.config.namespaces)
        results: List[Dict[str, Any]] = []
        for ns in names:
            if ns == SELFTEST_NAMESPACE:
                continue
            loaded = await manager.preload(ns, req.keys, req.count)
            results += [{"namespace": ns, "key": _as_json(k), "success": ok} for k, ok in loaded.items()]
        probe = {f"warmup:{i}": {"warmup": i} for i in range(3)}
        await manager.set_many(SELFTEST_NAMESPACE, probe)
        back = await manager.get_many(SELFTEST_NAMESPACE, list(probe))
        results += [{"namespace": SELFTEST_NAMESPACE, "key": k, "success": back.get(k) == v}
                    for k, v in probe.items()]
        loaded = sum(r["success"] for r in results if r["namespace"] != SELFTEST_NAMESPACE)
        asked = sum(r["namespace"] != SELFTEST_NAMESPACE for r in results)
        probed = all(r["success"] for r in results if r["namespace"] == SELFTEST_NAMESPACE)
        return ok(message=f"Cache warmup completed: {loaded} of {asked} keys loaded from L2 into L1; self-test "
                          f"{'passed' if probed else 'FAILED'}",
                  results=results, cacheStats=contract.cache_stats(manager))

    @app.post("/cache-test-load", dependencies=auth, openapi_extra=_body_schema(TestLoadRequest),
              responses={200: {"model": contract.LoadTestBody}})
    async def test_load(request: Request) -> Dict[str, Any]:
        """Synthetic reads and writes (default: 20 in the reserved namespace, whose keys expire)."""
        req = await _parse_body(request, TestLoadRequest)
        ns = req.namespace if req.namespace == SELFTEST_NAMESPACE else namespace_or_404(req.namespace)
        n = min(req.operations, test_load_cap)
        rng = random.Random(n)
        keyspace = max(10, n // 10)
        latencies: List[float] = []
        reads = hits = failed = 0
        t0 = time.perf_counter()
        for i in range(n):
            key = f"load:{rng.randrange(keyspace)}"
            s = time.perf_counter()
            try:
                if rng.random() < req.read_ratio:
                    reads += 1
                    hits += (await manager.get(ns, key)) is not None
                else:
                    await manager.set(ns, key, {"i": i})
            except Exception:  # (counted: the load test reports, it does not fail)
                failed += 1
            latencies.append(time.perf_counter() - s)
        elapsed = time.perf_counter() - t0
        latencies.sort()
        test = {
            "operations": n, "successful": n - failed, "failed": failed,
            "totalTime": f"{round(elapsed * 1000)}ms", "opsPerSecond": int(n / elapsed) if elapsed else 0,
            "namespace": ns, "capped": n < req.operations, "reads": reads,
            "readHitRate": round(hits / reads, 4) if reads else None,
            "p50Ms": round(latencies[len(latencies) // 2] * 1e3, 4),
            "p99Ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3, 4),
        }
        return ok(test=test, cacheStats=contract.cache_stats(manager))

    @app.get("/cache/{namespace}/{key}", dependencies=auth)
    async def get_value(namespace: str, key: str) -> Dict[str, Any]:
        ns, k = namespace_or_404(namespace), parse_key(key)
        marker = object()
        value = await manager.get(ns, k, marker)
        if value is marker:
            raise ApiError(404, "not found", f"{namespace}/{key}")
        try:
            return ok(namespace=ns, key=k, value=jsonable_encoder(_as_json(value)))
        except (TypeError, ValueError) as exc:  # (a value of a type JSON cannot carry)
            raise ApiError(422, "value not representable as JSON", f"{type(value).__name__}: {exc}") from None

    @app.put("/cache/{namespace}/{key}", dependencies=auth)
    async def put_value(namespace: str, key: str, body: PutValue) -> Dict[str, Any]:
        ns, k = namespace_or_404(namespace), parse_key(key)
        try:
            await manager.set(ns, k, body.value, body.ttl)
        except (SerializationError, TypeError, ValueError) as exc:
            raise ApiError(422, "value not storable", str(exc)) from None
        return ok(namespace=ns, key=k, stored=True)

    @app.delete("/cache/{namespace}/{key}", dependencies=auth)
    async def delete_value(namespace: str, key: str) -> Dict[str, Any]:
        ns, k = namespace_or_404(namespace), parse_key(key)
        return ok(namespace=ns, key=k, deleted=await manager.delete(ns, k))

    return app
