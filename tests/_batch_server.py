"""The batch server in tests: run code the way a user's plain ``python`` does, and
stop every batch server a test started.

Every process gets an isolated environment (``_server.isolated_env``): its own
HOME and Jupyter dirs, no ``JPY_*`` or ``BATCH_WIDGET_*`` variables, so nothing
finds a Jupyter server unless the test says so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from batch_widget.protocol import RUNTIME_FILE

#: Seconds a batch server gets to stop after SIGTERM (it lets running items finish).
STOP_TIMEOUT = 20.0
TESTS_DIR = Path(__file__).resolve().parent


def is_serve_command(cmdline: list[str]) -> bool:
    """True for ``python [-P] -m batch_widget serve ...`` and ``batch-widget serve ...``."""
    return any(
        cmdline[i : i + 3] == ["-m", "batch_widget", "serve"]
        or (Path(word).name == "batch-widget" and cmdline[i + 1 : i + 2] == ["serve"])
        for i, word in enumerate(cmdline)
    )


def runtime_record(env: dict[str, str]) -> dict[str, Any] | None:
    """The batch server's runtime file in ``env``'s runtime dir, or None."""
    path = Path(env["JUPYTER_RUNTIME_DIR"]) / RUNTIME_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def run_python(env: dict[str, str], code: str, timeout: float = 120) -> Any:
    """Run ``code`` in a fresh ``python``; return the JSON it prints on its last line."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=env["HOME"],
    )
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def stop_batch_servers(env: dict[str, str]) -> None:
    """SIGTERM the batch server of ``env``'s runtime dir, and every other one started
    from it (found by their command line and environment); SIGKILL what lingers."""
    runtime = env["JUPYTER_RUNTIME_DIR"]
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            cmdline = process.info["cmdline"] or []
            if not is_serve_command(cmdline):
                continue
            if process.environ().get("JUPYTER_RUNTIME_DIR") == runtime:
                found.append(process)
        except (psutil.Error, IndexError):
            continue
    for process in found:
        process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(found, timeout=STOP_TIMEOUT)
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=STOP_TIMEOUT)


def isolated(home: Path) -> dict[str, str]:
    """An isolated environment (see the module doc) that imports ``sample_processors``."""
    from _server import isolated_env

    env = isolated_env(home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An isolated environment under ``tmp_path``; every batch server it started is stopped
    after the test."""
    environment = isolated(tmp_path / "home")
    try:
        yield environment
    finally:
        stop_batch_servers(environment)
