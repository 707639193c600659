"""The admin HTTP API (an ASGI app on FastAPI, served by uvicorn): `pip install "pytiercache[server]"`."""

from .app import create_app

__all__ = ["create_app"]
