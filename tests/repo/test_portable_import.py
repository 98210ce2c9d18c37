"""``batch_widget`` where there is no ``fcntl`` (Windows, and the other platforms
without it; issue 23): every module imports, and a kernel's discovery takes the
batch server's start lock through filelock's lock for such platforms.

Each check runs a fresh ``python`` in which ``sys.modules["fcntl"] = None``, so
``import fcntl`` raises ``ImportError`` as it does on Windows.
"""

from __future__ import annotations

import pytest
from _batch_server import env, run_python

__all__ = ["env"]  # a fixture, imported for the tests below

pytestmark = pytest.mark.timeout(300)

HIDE_FCNTL = "import sys\nsys.modules['fcntl'] = None  # `import fcntl` now raises ImportError\n"

IMPORT_EVERY_MODULE = (
    HIDE_FCNTL
    + """
import importlib, json, pkgutil
import batch_widget
names = [found.name for found in pkgutil.walk_packages(batch_widget.__path__, "batch_widget.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "fcntl": sys.modules.get("fcntl") is not None}))
"""
)

#: A kernel's first job with no server running: discovery takes the start lock and
#: starts the batch server (which has ``fcntl``: only the kernel lacks it).
FIRST_JOB = (
    HIDE_FCNTL
    + """
import json
import batch_widget as bw
import filelock
job = bw.submit("batch_widget.processors:sleep", ["a", "b"], params={"seconds": 0})
job.wait(timeout=60)
print(json.dumps({"results": job.results(), "lock": filelock.FileLock.__name__,
                  "fcntl": sys.modules.get("fcntl") is not None}))
"""
)


def test_every_module_of_the_package_imports_without_fcntl(env: dict[str, str]) -> None:
    answer = run_python(env, IMPORT_EVERY_MODULE)

    assert answer["fcntl"] is False, "fcntl stayed hidden"
    for name in (
        "batch_widget.kernel.launcher",
        "batch_widget.kernel.discovery",
        "batch_widget.engine.store",
        "batch_widget.server.app",
        "batch_widget.server.standalone",
    ):
        assert name in answer["imported"]


def test_a_kernel_without_fcntl_takes_the_start_lock_and_gets_its_results(
    env: dict[str, str],
) -> None:
    answer = run_python(env, FIRST_JOB)

    assert answer["lock"] == "SoftFileLock", "filelock's lock for platforms without flock"
    assert answer["fcntl"] is False
    assert answer["results"] == ["a", "b"]
