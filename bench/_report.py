"""Reporting shared by the benchmark scripts: what machine a figure came from, and tables (rich if installed)."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from typing import Any, Dict, List, Sequence


def machine_info(packages: Sequence[str] = ()) -> Dict[str, Any]:
    """What a figure was measured on: interpreter, CPU, load, tiercache build, versions of `packages`."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count()
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for dist in packages:
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = "not installed"
    try:
        import tiercache

        tc = (f"{tiercache.__version__} from {os.path.dirname(tiercache.__file__)}, "
              f"IMPLEMENTATION={tiercache.IMPLEMENTATION!r}")
        core = sys.modules.get("tiercache._core_c")
        if core is not None and getattr(core, "__file__", None):
            built = datetime.datetime.fromtimestamp(os.path.getmtime(core.__file__), datetime.timezone.utc)
            tc += f", compiled core {os.path.basename(core.__file__)} built {built:%Y-%m-%d %H:%M UTC}"
    except Exception as exc:  # report a broken package rather than hide it
        tc = f"not importable: {exc!r}"
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "cpu": cpu,
        "nproc": nproc,
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "tiercache": tc,
        "versions": versions,
    }


class Printer:
    """Tables with rich when it is installed, plain text otherwise."""

    def __init__(self, width: int = 100) -> None:
        try:
            from rich.console import Console
        except ImportError:
            self.console: Any = None
        else:
            self.console = Console(width=None if sys.stdout.isatty() else width)

    def line(self, text: str = "") -> None:
        if self.console is not None:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text)

    def table(self, title: str, header: List[str], rows: List[List[str]], caption: str) -> None:
        if self.console is not None:
            from rich.table import Table

            t = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
            for i, h in enumerate(header):
                t.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
            for row in rows:
                t.add_row(*row)
            self.console.print(t)
            return
        widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
        print(title)
        for row in [header, ["-" * w for w in widths]] + rows:
            print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        print(caption)
        print()
