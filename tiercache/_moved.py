"""Modules that moved into the package layout, still importable under their old names (with a
DeprecationWarning): `import tiercache.metrics` gives a module holding what tiercache.observability.metrics
holds."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any, Optional, Sequence

MOVED = {
    "tiercache.aio": "tiercache.manager.aio",
    "tiercache.circuit": "tiercache.manager.circuit",
    "tiercache.promotion": "tiercache.manager.promotion",
    "tiercache.singleflight": "tiercache.manager.singleflight",
    "tiercache.serialization": "tiercache.wire.serialization",
    "tiercache.metrics": "tiercache.observability.metrics",
    "tiercache.health": "tiercache.observability.health",
    "tiercache.prometheus": "tiercache.observability.prometheus",
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Optional[Sequence[str]], target: Any = None) -> Any:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> Optional[ModuleType]:
        return None  # a new module, filled below

    def exec_module(self, module: ModuleType) -> None:
        new = MOVED[module.__name__]
        warnings.warn(f"{module.__name__} is now {new}; the old name will be removed in a future release",
                      DeprecationWarning, stacklevel=2)
        real = importlib.import_module(new)
        module.__dict__.update({k: v for k, v in vars(real).items() if not k.startswith("__")})
        module.__all__ = list(getattr(real, "__all__", ()))
        module.__doc__ = real.__doc__


def install() -> None:
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
