"""The suite's layout holds: ``pytest tests/engine`` needs no Jupyter server.

Collects ``tests/engine`` in a fresh pytest with a tiny plugin that writes, for every
test, each fixture it uses and where that fixture is defined. A test moved there that
needs a server (pytest-jupyter's fixtures, the root conftest's ``api`` and friends, a
``server`` fixture, or the ``_server`` / ``_batch_server`` helpers) fails this test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
ENGINE = TESTS / "engine"
SERVER_FIXTURES = {"api", "batch_app", "server", "server_token", "jp_server_config"}
SERVER_HELPERS = ("_server", "_batch_server", "_helpers")

PLUGIN = """
import inspect, json, os

def pytest_collection_finish(session):
    found = []
    for item in session.items:
        defs = getattr(item, "_fixtureinfo", None)
        for name in getattr(item, "fixturenames", ()):
            chain = defs.name2fixturedefs.get(name, ()) if defs else ()
            where = inspect.getsourcefile(chain[-1].func) if chain else None
            found.append({"test": item.nodeid, "fixture": name, "where": where,
                          "module": inspect.getsourcefile(item.module)})
    with open(os.environ["LAYOUT_OUT"], "w") as out:
        json.dump(found, out)
"""


def engine_fixtures(tmp_path: Path) -> list[dict[str, str | None]]:
    """Every (test, fixture, defining file) of ``tests/engine``, from a real collection."""
    (tmp_path / "layout_plugin.py").write_text(PLUGIN)
    out = tmp_path / "fixtures.json"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "LAYOUT_OUT": str(out)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(ENGINE),
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "layout_plugin",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found: list[dict[str, str | None]] = json.loads(out.read_text())
    return found


def needs_a_server(use: dict[str, str | None]) -> bool:
    """A fixture from pytest-jupyter, the root conftest, or named for a server."""
    where = use["where"] or ""
    return (
        use["fixture"] in SERVER_FIXTURES
        or "pytest_jupyter" in where
        or where == str(TESTS / "conftest.py")
    )


def imports(source: str, module: str) -> bool:
    """True if ``source`` imports ``module`` at any indentation."""
    return any(
        line.strip().startswith((f"from {module} import", f"import {module}"))
        and line.strip().split()[1] == module
        for line in source.splitlines()
    )


def test_no_engine_test_uses_a_server_fixture(tmp_path: Path) -> None:
    found = engine_fixtures(tmp_path)
    assert found, "tests/engine collected no test"
    bad = sorted({f"{use['test']} uses {use['fixture']}" for use in found if needs_a_server(use)})
    assert not bad, "tests/engine must need no Jupyter server:\n" + "\n".join(bad)


def test_no_engine_module_imports_the_server_helpers() -> None:
    bad = [
        f"{path.name} imports {helper}"
        for path in sorted(ENGINE.glob("*.py"))
        for helper in SERVER_HELPERS
        if imports(path.read_text(), helper)
    ]
    assert not bad, bad


def test_test_module_names_are_unique_across_directories() -> None:
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert not [name for name, count in names.items() if count > 1]
