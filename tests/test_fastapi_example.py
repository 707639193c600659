"""examples/fastapi_app.py works: through FastAPI's TestClient (real ASGI app, lifespan and all), on the
embedded SQLite store and on a real redis-server."""

from __future__ import annotations

import importlib.util
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi_app.py"


@pytest.fixture(params=["sqlite", "redis"])
def example(request: pytest.FixtureRequest, tmp_path: Any, monkeypatch: Any) -> Iterator[Any]:
    url = f"sqlite:///{tmp_path}/l2.db" if request.param == "sqlite" else request.getfixturevalue("redis_url")
    monkeypatch.setenv("TIERCACHE_L2_URL", url)
    monkeypatch.setenv("TIERCACHE_ENV", "test")
    spec = importlib.util.spec_from_file_location("fastapi_app_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["fastapi_app_example"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    yield module
    sys.modules.pop("fastapi_app_example", None)


def test_read_through_write_and_delete(example: Any) -> None:
    with TestClient(example.app) as client:
        first = client.get("/quotes/acme")
        assert first.status_code == 200 and first.json()["symbol"] == "ACME"
        assert client.get("/quotes/acme").json() == first.json()
        assert example.SOURCE_CALLS == {"acme": 1}  # the second read came from the cache
        assert client.put("/quotes/acme", json={"symbol": "ACME", "price": 1.5}).json()["price"] == 1.5
        assert client.get("/quotes/acme").json()["price"] == 1.5
        assert client.delete("/quotes/acme").json() == {"deleted": True}
        assert client.get("/quotes/acme").json()["price"] != 1.5 and example.SOURCE_CALLS["acme"] == 2
        assert client.get("/quotes/404x").status_code == 404
        assert client.put("/quotes/acme", json={"symbol": "OTHER", "price": 1}).status_code == 422
        assert client.put("/quotes/acme", json={"symbol": "ACME", "price": "not a number"}).status_code == 422
        health = client.get("/cache/health").json()
        assert health["status"] in ("idle", "healthy", "degraded", "unhealthy", "critical")


def test_concurrent_requests_load_once(example: Any) -> None:
    with TestClient(example.app) as client:
        with ThreadPoolExecutor(8) as pool:
            bodies = list(pool.map(lambda _: client.get("/quotes/busy").json(), range(32)))
        assert all(b == bodies[0] for b in bodies)
        assert example.SOURCE_CALLS["busy"] == 1
