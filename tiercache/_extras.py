"""The optional dependencies: importing one that is missing raises MissingExtraError, naming the extra that
installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

__all__ = ["DISTRIBUTION", "missing", "need"]

DISTRIBUTION = "pytiercache"  # the name on the package index (the import package is tiercache)


def missing(exc: ImportError, extra: str, what: str) -> MissingExtraError:
    """The error to raise when `what` failed to import an optional dependency (`exc`): it names the extra
    of the distribution that installs it."""
    module = exc.name or "a dependency"
    return MissingExtraError(f"{what} needs {module.split('.')[0]}, which is not installed: "
                             f"pip install \"{DISTRIBUTION}[{extra}]\"", name=exc.name)


def need(module: str, extra: str, what: str) -> ModuleType:
    """Import `module`, which `what` needs (MissingExtraError when it is not installed)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing(exc, extra, what) from exc
