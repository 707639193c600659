"""Fetch Django's own cache backend tests (tests/cache of Django's source distribution, for the Django
installed here) so that tests/test_django_suite.py can run them against tiercache's backend.

    python tests/fetch_django_tests.py      # into tests/.django/<version>/cache (nothing to do when there)

Only this script reaches the package index; the tests themselves never leave the machine.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import django

HERE = Path(__file__).resolve().parent


def suite_dir(version: str = django.__version__) -> Path:
    """Where the tests of Django `version` go: the directory that holds their `cache` package."""
    return HERE / ".django" / version


def fetch(version: str = django.__version__) -> Path:
    target = suite_dir(version)
    if (target / "cache" / "tests.py").is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        download = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
                                   ":all:", f"django=={version}", "--dest", tmp])
        if download.returncode != 0:
            raise SystemExit(f"could not download Django {version}'s source distribution from the package index "
                             "(pip's message above); Django's cache tests stay unfetched")
        (sdist,) = Path(tmp).glob("*.tar.gz")
        package = Path(tmp) / "suite" / "cache"  # (moved into place once whole: a broken fetch leaves nothing)
        package.mkdir(parents=True)
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                parts = member.name.split("/")
                # <name>-<version>/tests/cache/<file>.py, regular files only (nothing else is written)
                if (member.isfile() and len(parts) == 4 and parts[1:3] == ["tests", "cache"]
                        and parts[3].endswith(".py")):
                    source = tar.extractfile(member)
                    assert source is not None
                    (package / parts[3]).write_bytes(source.read())
        if not (package / "tests.py").is_file():
            raise SystemExit(f"Django {version}'s source distribution has no tests/cache/tests.py")
        target.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target / "cache", ignore_errors=True)
        shutil.move(str(package), str(target / "cache"))
    return target


if __name__ == "__main__":
    print(f"Django {django.__version__}'s cache tests: {fetch()}")
