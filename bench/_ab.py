"""What the A/B scripts share: an earlier checkout's package loaded beside the working tree's, and the
median-with-quartiles they print."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
from typing import Any, List


class _OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """While the earlier build is imported: `tiercache.X` (its compiled core's absolute imports) is
    `tiercache_ab_old.X`, not the working tree's module."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname == "tiercache" or fullname.startswith("tiercache."):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: Any) -> Any:
        return importlib.import_module("tiercache_ab_old" + spec.name[len("tiercache"):])

    def exec_module(self, module: Any) -> None:
        pass


def load_old(checkout: str) -> Any:
    """The earlier checkout's package, imported as `tiercache_ab_old` (its absolute imports rewritten, and
    those of its compiled core pointed at it while it loads)."""
    root = tempfile.mkdtemp(prefix="tiercache-ab-")
    dest = os.path.join(root, "tiercache_ab_old")
    shutil.copytree(os.path.join(checkout, "tiercache"), dest)
    for folder, _, files in os.walk(dest):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                text = text.replace("from tiercache.", "from tiercache_ab_old.").replace("import tiercache.",
                                                                                        "import tiercache_ab_old.")
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
    sys.path.insert(0, root)
    saved = {k: v for k, v in sys.modules.items() if k == "tiercache" or k.startswith("tiercache.")}
    for k in saved:
        del sys.modules[k]
    finder = _OldNames()
    sys.meta_path.insert(0, finder)
    try:
        return importlib.import_module("tiercache_ab_old")
    finally:
        sys.meta_path.remove(finder)
        for k in [k for k in sys.modules if k == "tiercache" or k.startswith("tiercache.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def quartiles(values: List[float]) -> str:
    q = statistics.quantiles(values, n=4)
    return f"{statistics.median(values):.3f} [{q[0]:.3f}-{q[2]:.3f}]"
