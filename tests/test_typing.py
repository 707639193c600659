"""Type checkers see through the decorators: mypy --strict on a small typed module and the README's
examples (skipped when mypy is not installed outside CI)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"


def _mypy(*args: str) -> subprocess.CompletedProcess:
    if subprocess.run([sys.executable, "-c", "import mypy"], capture_output=True).returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("mypy is not installed (pip install -e '.[test]')")
        pytest.skip("mypy is not installed")
    return subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--show-error-codes",
                           "--follow-imports=silent",
                           "--warn-unused-ignores", *args], capture_output=True, text=True, timeout=600)


def test_the_decorators_keep_signatures_for_type_checkers(tmp_path: Any) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    files = []
    for i, block in enumerate(blocks):
        if "CACHES = " in block:  # (Django settings: a fragment of a settings module)
            continue
        path = tmp_path / f"readme_example_{i + 1}.py"
        path.write_text(block, encoding="utf-8")
        files.append(str(path))
    strict = _mypy("--strict", str(HERE / "typed" / "usage.py"))
    assert strict.returncode == 0, strict.stdout + strict.stderr
    examples = _mypy("--check-untyped-defs", *files)
    assert examples.returncode == 0, examples.stdout + examples.stderr
