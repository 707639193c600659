"""A small FastAPI service with AsyncCacheManager as a dependency.

    pip install "pytiercache[server]"
    TIERCACHE_L2_URL=redis://127.0.0.1:6379/0 uvicorn examples.fastapi_app:app   # or no URL: embedded SQLite

GET /quotes/{symbol} reads through the cache (L1 in this process, L2 shared): concurrent requests for one
symbol load it once. PUT and DELETE write through and invalidate the other processes' L1 copies.
GET /cache/health is the cache's health assessment.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel

from tiercache import AsyncCacheManager

NAMESPACE = "market_data"
SOURCE_CALLS: Dict[str, int] = {}  # how often the slow source was asked, per symbol (for the demo and tests)


class Quote(BaseModel):
    symbol: str
    price: float


async def load_quote(symbol: str) -> Dict[str, Any]:
    """The slow source of truth (a database or an upstream API in a real service)."""
    SOURCE_CALLS[symbol] = SOURCE_CALLS.get(symbol, 0) + 1
    await asyncio.sleep(0.05)
    if not symbol.isalpha():
        raise LookupError(symbol)
    return {"symbol": symbol.upper(), "price": float(sum(map(ord, symbol)) % 500)}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with AsyncCacheManager(os.environ.get("TIERCACHE_L2_URL"), env=os.environ.get("TIERCACHE_ENV")) as cache:
        app.state.cache = cache
        yield


app = FastAPI(title="quotes", lifespan=lifespan)


def get_cache(request: Request) -> AsyncCacheManager:
    return request.app.state.cache  # type: ignore[no-any-return]


@app.get("/quotes/{symbol}", response_model=Quote)
async def read_quote(symbol: str, cache: AsyncCacheManager = Depends(get_cache)) -> Any:
    try:
        return await cache.get_or_set(NAMESPACE, symbol, lambda: load_quote(symbol))
    except LookupError:
        raise HTTPException(status_code=404, detail=f"unknown symbol {symbol!r}") from None


@app.put("/quotes/{symbol}", response_model=Quote)
async def write_quote(symbol: str, quote: Quote, cache: AsyncCacheManager = Depends(get_cache)) -> Any:
    if quote.symbol.upper() != symbol.upper():
        raise HTTPException(status_code=422, detail="symbol in the path and the body differ")
    value = {"symbol": quote.symbol.upper(), "price": quote.price}
    await cache.set(NAMESPACE, symbol, value)
    return value


@app.delete("/quotes/{symbol}")
async def forget_quote(symbol: str, cache: AsyncCacheManager = Depends(get_cache)) -> Dict[str, bool]:
    return {"deleted": await cache.delete(NAMESPACE, symbol)}


@app.get("/cache/health")
async def cache_health(cache: AsyncCacheManager = Depends(get_cache)) -> Dict[str, Any]:
    report = await cache.perform_health_assessment()
    return {k: report[k] for k in ("status", "overall_score", "issues", "recommendations")}
