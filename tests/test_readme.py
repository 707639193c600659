"""The README's Python examples run as written (on the embedded SQLite store, in a temporary cache dir)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int, tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("TIERCACHE_L2_URL", raising=False)
    exec(compile(BLOCKS[index], f"README.md example {index + 1}", "exec"), {})


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 2


def test_readme_toml_example_loads(tmp_path: Any) -> None:
    from tiercache.config import CacheConfig

    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks
    path = tmp_path / "cache.toml"
    path.write_text(blocks[0], encoding="utf-8")
    config = CacheConfig.from_toml(path)
    assert config.env == "production" and config.namespace("market_data").l1_ttl == 30
