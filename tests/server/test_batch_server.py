"""The batch server (SPEC §12): where no Jupyter server with the extension runs.

Real processes all the way: plain ``python`` processes with an isolated
environment (no Jupyter server, no ``BATCH_WIDGET_URL``), the batch server they
start (``python -m batch_widget serve``, detached), and a real ``jupyter
server`` that does not have the extension enabled.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import stat
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import nbformat
import psutil
import pytest
from _batch_server import env, run_python, runtime_record, stop_batch_servers
from _server import QUIET_EXTENSIONS, build_server

__all__ = ["env"]  # a fixture, imported for the tests below

pytestmark = pytest.mark.timeout(300)

#: Seconds of slack on top of what a setting promises: two busy shared cores.
SLACK = 20.0

SUBMIT = """
import json
import batch_widget as bw
from batch_widget.kernel import client
squares = bw.map("sample_processors:square", [1, 2, 3, 4])
job = bw.submit("batch_widget.processors:sleep", ["a", "b", "c"], params={"seconds": 0})
job.wait(timeout=60)
print(json.dumps({"squares": squares, "id": job.id, "url": client.default_client().url}))
"""

ATTACH = """
import json, sys
import batch_widget as bw
from batch_widget.kernel import client
job = bw.attach(sys.argv[1])
print(json.dumps({"status": str(job.status), "results": job.results(),
                  "url": client.default_client().url}))
"""

WHERE = """
import json
from batch_widget.kernel import client
info = client.default_client()
print(json.dumps({"url": info.url}))
"""


def test_a_plain_python_starts_a_batch_server_that_outlives_it(env: dict[str, str]) -> None:
    first = run_python(env, SUBMIT)

    assert first["squares"] == [1, 4, 9, 16]
    record = runtime_record(env)
    assert record is not None, "the batch server describes itself in the runtime dir"
    path = Path(env["JUPYTER_RUNTIME_DIR"]) / "batch_widget-server.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first["url"] == record["url"]
    assert psutil.pid_exists(record["pid"]), "the process that started it has exited; it runs on"

    second = run_python(env, ATTACH.replace("sys.argv[1]", repr(first["id"])))

    assert (second["status"], second["results"]) == ("completed", ["a", "b", "c"])
    assert second["url"] == first["url"]
    assert runtime_record(env) == record, "the same server (same pid) served both"


def test_four_processes_started_at_once_share_one_batch_server(env: dict[str, str]) -> None:
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: run_python(env, WHERE), range(4)))

    assert len({a["url"] for a in answers}) == 1
    record = runtime_record(env)
    assert record is not None and answers[0]["url"] == record["url"]
    log = (Path(env["JUPYTER_RUNTIME_DIR"]) / "batch_widget-server.log").read_text()
    assert log.count("batch_widget] batch server at") == 1, "one server was ever started"


def test_a_jupyter_server_without_the_extension_is_skipped(
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    server = build_server(
        tmp_path / "plain",
        config={"ServerApp": {"jpserver_extensions": {**QUIET_EXTENSIONS, "batch_widget": False}}},
    )
    server = dataclasses.replace(server, ready_path="api/status")
    server.start()
    try:
        kernel_env = {
            **env,
            "JPY_PARENT_PID": str(server.pid),
            "JUPYTER_RUNTIME_DIR": server.env["JUPYTER_RUNTIME_DIR"],
        }
        with pytest.raises(urllib.error.HTTPError) as answered:
            server.api("GET", "api/batch/jobs")
        assert answered.value.code == 404, "the extension is really off there"

        answer = run_python(kernel_env, SUBMIT)

        record = runtime_record(kernel_env)
        assert record is not None and answer["url"] == record["url"]
        assert answer["squares"] == [1, 4, 9, 16]
    finally:
        server.stop()
        stop_batch_servers({**env, "JUPYTER_RUNTIME_DIR": server.env["JUPYTER_RUNTIME_DIR"]})


def test_the_batch_server_exits_when_idle_and_removes_its_runtime_file(
    env: dict[str, str],
) -> None:
    idle = 1.0
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "batch_widget", "serve", f"--idle-timeout={idle}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=idle + SLACK + 30,
        check=False,
    )
    took = time.monotonic() - started

    assert done.returncode == 0, done.stderr
    assert "idle for" in done.stderr and "stopping" in done.stderr
    assert took >= idle
    assert runtime_record(env) is None


def test_when_the_batch_server_cannot_start_the_error_says_why(
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    code = WHERE.replace(
        "info = client.default_client()",
        """
try:
    client.default_client()
except client.ServerNotFound as exc:
    print(json.dumps({"error": str(exc)}))
    raise SystemExit(0)""",
    ).replace('print(json.dumps({"url": info.url}))', "")
    answer = run_python({**env, "JUPYTER_RUNTIME_DIR": str(blocked / "runtime")}, code)

    assert "the batch server cannot start" in answer["error"]
    assert str(blocked / "runtime") in answer["error"]
    assert "JUPYTER_RUNTIME_DIR" in answer["error"]
    assert "bw.connect(url, token)" in answer["error"]


def test_the_console_command_runs_the_batch_server(env: dict[str, str]) -> None:
    command = Path(sys.executable).with_name("batch-widget")
    assert command.is_file(), "pip installs the batch-widget console command"
    done = subprocess.run(
        [str(command), "serve", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "--idle-timeout" in done.stdout


def test_a_saved_notebook_shows_the_jobs_state_where_no_widget_runs(
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    """Run a notebook for real (``jupyter nbconvert --execute``, an ipykernel, the batch
    server), save it, and read what a code host or a viewer would show: the
    ``text/html`` beside the widget's model reference."""
    notebook = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        }
    )
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import batch_widget as bw\n"
            'job = bw.submit("batch_widget.processors:sleep", [1, 2, 3], name="saved <html>",\n'
            '                params={"seconds": 0})\n'
            "job.wait(timeout=60)\n"
            "job"
        )
    ]
    path = tmp_path / "saved.ipynb"
    nbformat.write(notebook, path)

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--inplace",
            str(path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    [output] = nbformat.read(path, as_version=4).cells[0].outputs
    assert "application/vnd.jupyter.widget-view+json" in output["data"]
    shown = output["data"]["text/html"]
    assert "saved &lt;html&gt;" in shown, "the name, escaped"
    assert 'data-status="completed"' in shown and "3 done · 0 failed · 0 not run of 3" in shown
