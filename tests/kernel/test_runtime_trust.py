"""What the kernel trusts in the Jupyter runtime dir (issue 22, items 6 to 8; SPEC §12, §20).

Real processes and a real second local user: a leftover ``batch_widget-server.json``
naming a server another user runs (or a process of this user that is no batch
server, or a server that relays the proof question to the real batch server)
gets neither the kernel's token nor its items, and the kernel ends up with a
batch server of its own; a runtime dir other users can write in is refused; no
symlink there is followed; modules in the kernel's folder or home never shadow
the standard library in the batch server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from _batch_server import env, is_serve_command, isolated, runtime_record, stop_batch_servers
from _recorder import Recorder, other_user, own_private_dir, what_it_was_sent

from batch_widget.kernel.launcher import START_TIMEOUT
from batch_widget.protocol import RUNTIME_FILE

__all__ = ["env"]  # a fixture, imported for the tests below

#: The batch server's files in the runtime dir, and its proof route (docs/http-api.md).
LOG_FILE = "batch_widget-server.log"
LOCK_FILE = "batch_widget-server.lock"
PROOF_ROUTE = "api/batch/proof"

pytestmark = pytest.mark.timeout(300)

#: Seconds of slack on top of what a setting promises: two busy shared cores.
SLACK = 30.0

#: A kernel's work: find the server, create a job with items and params, read results.
KERNEL = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
import batch_widget as bw
from batch_widget.kernel import client
try:
    url = client.default_client().url
    job = bw.submit("batch_widget.processors:sleep", ["a", "b"], params={"seconds": 0})
    job.wait(timeout=60)
    print(json.dumps({"url": url, "results": job.results()}))
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
"""


@pytest.fixture
def recorders() -> Iterator[list[Recorder]]:
    started: list[Recorder] = []
    yield started
    for recorder in started:
        recorder.stop()


@pytest.fixture
def live_batch_server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A real batch server of this user with its own runtime and data dirs (its own
    store), and its runtime record."""
    environment = isolated(tmp_path / "elsewhere")
    log = (tmp_path / "elsewhere.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "batch_widget", "serve"],
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=environment["HOME"],
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT + SLACK
        record = runtime_record(environment)
        while (record is None or record["pid"] != process.pid) and time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "elsewhere.log").read_text()
            time.sleep(0.1)
            record = runtime_record(environment)
        assert record is not None, "the batch server wrote no runtime file in time"
        yield record
    finally:
        stop_batch_servers(environment)
        log.close()


def run_kernel(
    env: dict[str, str],
    code: str = KERNEL,
    cwd: str | None = None,
    python_args: tuple[str, ...] = (),
) -> tuple[dict[str, Any], str]:
    """Run ``code`` in a fresh ``python``; return the JSON of its last line and its stderr."""
    done = subprocess.run(
        [sys.executable, *python_args, "-c", code],
        env=env,
        timeout=240,
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd or env["HOME"],
    )
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def leave_runtime_file(env: dict[str, str], mode: int = 0o600, **record: Any) -> Path:
    """A leftover runtime file (as after SIGKILL, OOM or a reboot) saying ``record``."""
    path = Path(env["JUPYTER_RUNTIME_DIR"]) / RUNTIME_FILE
    path.write_text(json.dumps(record), encoding="utf-8")
    path.chmod(mode)
    return path


def assert_own_batch_server(env: dict[str, str], answer: dict[str, Any], *not_at: str) -> None:
    """The kernel did its work on a batch server of this user that it started."""
    assert answer.get("results") == ["a", "b"], answer
    record = runtime_record(env)
    assert record is not None and answer["url"] == record["url"]
    assert record["url"] not in not_at
    process = psutil.Process(record["pid"])
    assert process.uids().effective == os.geteuid()
    assert is_serve_command(process.cmdline())


# --------------------------------------------------------------------------- item 6


def test_another_users_server_at_the_files_url_gets_nothing(
    env: dict[str, str],
    recorders: list[Recorder],
) -> None:
    """Another user serves the URL of a leftover runtime file, and the file's pid is
    that user's process: the kernel neither sends it the token nor asks it anything."""
    user = other_user()
    fake = Recorder(user.pw_name)
    recorders.append(fake)
    leave_runtime_file(env, url=fake.url, token="t" * 48, pid=fake.pid)

    answer, log = run_kernel(env)

    assert what_it_was_sent(fake.requests()) == []
    assert fake.requests() == [], "another user's process is not even asked"
    assert_own_batch_server(env, answer, fake.url)
    assert f"another user's process (uid {user.pw_uid})" in log


def test_a_server_that_relays_the_proof_question_gets_no_token(
    env: dict[str, str],
    recorders: list[Recorder],
    live_batch_server: dict[str, Any],
) -> None:
    """The file's pid is this user's live batch server, but its URL is another user's
    server, which passes the proof question on to the real one: the answer is bound to
    the real server's URL, so the kernel refuses it and sends nothing more."""
    relay = Recorder(other_user().pw_name, relay=live_batch_server["url"])
    recorders.append(relay)
    leave_runtime_file(
        env, url=relay.url, token=live_batch_server["token"], pid=live_batch_server["pid"]
    )

    answer, log = run_kernel(env)

    assert what_it_was_sent(relay.requests()) == []
    assert [r["path"].split("?")[0] for r in relay.requests()] == [f"/{PROOF_ROUTE}"]
    assert_own_batch_server(env, answer, relay.url, live_batch_server["url"])
    assert "does not prove it knows the token" in log


def test_a_pid_reused_by_a_process_of_this_user_that_is_no_batch_server(
    env: dict[str, str],
    recorders: list[Recorder],
) -> None:
    """The leftover file's pid now belongs to an unrelated process of this same user
    (here: one serving HTTP at the file's URL): it is not a batch server, so the
    kernel does not talk to it."""
    unrelated = Recorder()
    recorders.append(unrelated)
    leave_runtime_file(env, url=unrelated.url, token="t" * 48, pid=unrelated.pid)

    answer, log = run_kernel(env)

    assert what_it_was_sent(unrelated.requests()) == []
    assert unrelated.requests() == [], "Linux says what the pid runs: it is not asked"
    assert_own_batch_server(env, answer, unrelated.url)
    assert f"its pid {unrelated.pid} is not a batch server" in log


@pytest.mark.parametrize("whose", ["readable by others", "another user's"])
def test_a_runtime_file_that_is_not_this_users_alone_is_not_trusted(
    env: dict[str, str],
    live_batch_server: dict[str, Any],
    whose: str,
) -> None:
    """Even naming a real, live batch server, a runtime file others may have written
    (or read: its token is then no secret) is ignored, and a fresh server started."""
    path = leave_runtime_file(
        env, mode=0o644 if whose == "readable by others" else 0o600, **live_batch_server
    )
    if whose == "another user's":
        os.chown(path, other_user().pw_uid, -1)

    answer, log = run_kernel(env)

    assert_own_batch_server(env, answer, live_batch_server["url"])
    expected = (
        "can be read or written by other users"
        if whose == "readable by others"
        else "belongs to another user"
    )
    assert expected in log


def test_the_proof_route_answers_the_keyed_hash_and_nothing_else(
    live_batch_server: dict[str, Any],
) -> None:
    url, token = live_batch_server["url"], live_batch_server["token"]
    nonce = secrets.token_hex(32)

    with urllib.request.urlopen(f"{url}{PROOF_ROUTE}?nonce={nonce}", timeout=30) as answer:
        body, headers = json.loads(answer.read()), answer.headers

    keyed = hmac.new(token.encode(), (nonce + url).encode(), hashlib.sha256).hexdigest()
    assert body == {"proof": keyed}, "HMAC-SHA256(token, nonce + url), as docs/http-api.md says"
    assert "Server" not in headers and headers["Cache-Control"] == "no-store"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{url}{PROOF_ROUTE}?nonce=abc", timeout=30)
    assert refused.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as no_token:
        urllib.request.urlopen(f"{url}api/batch/jobs", timeout=30)
    assert no_token.value.code == 403, "every other route still needs the token"


async def test_the_jupyter_extension_has_no_proof_route(jp_fetch: Any, batch_app: Any) -> None:
    """The route that needs no token exists in the batch server alone."""
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as missing:
        await jp_fetch(*PROOF_ROUTE.split("/"), params={"nonce": secrets.token_hex(32)})
    assert missing.value.code == 404


# --------------------------------------------------------------------------- item 7


@pytest.mark.parametrize("how", ["world-writable (1777)", "another user's"])
def test_a_runtime_dir_other_users_can_write_in_is_refused(
    tmp_path: Path,
    env: dict[str, str],
    how: str,
) -> None:
    """Like ``/tmp``: a symlink planted there would make the server write through it."""
    shared = tmp_path / "shared"
    shared.mkdir()
    if how == "another user's":
        os.chown(shared, other_user().pw_uid, -1)
        shared.chmod(0o755)
    else:
        shared.chmod(0o1777)
    target = tmp_path / "precious"
    (shared / LOG_FILE).symlink_to(target)

    answer, _ = run_kernel({**env, "JUPYTER_RUNTIME_DIR": str(shared)})

    assert not target.exists(), "nothing was written through the planted symlink"
    assert "the batch server cannot start" in answer["error"]
    assert str(shared) in answer["error"]
    assert "Set JUPYTER_RUNTIME_DIR to a private folder" in answer["error"]
    assert (
        "can be written by other users" if how.startswith("world") else "belongs to another user"
    ) in answer["error"]
    assert not (shared / RUNTIME_FILE).exists(), "no batch server started"


@pytest.mark.parametrize("name", [LOG_FILE, LOCK_FILE])
def test_no_symlink_in_the_runtime_dir_is_followed(
    tmp_path: Path,
    env: dict[str, str],
    name: str,
) -> None:
    runtime = own_private_dir(Path(env["JUPYTER_RUNTIME_DIR"]))
    target = tmp_path / "elsewhere" / "file"
    target.parent.mkdir()
    (runtime / name).symlink_to(target)

    answer, _ = run_kernel(env)

    assert not target.exists()
    assert f"{runtime / name} is a symbolic link" in answer["error"]
    assert "Remove it" in answer["error"]


def test_the_batch_server_refuses_a_runtime_dir_others_can_write_in(
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)

    done = subprocess.run(
        [sys.executable, "-m", "batch_widget", "serve", "--idle-timeout=1"],
        env={**env, "JUPYTER_RUNTIME_DIR": str(shared)},
        timeout=120,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 2, done.stderr
    assert "can be written by other users" in done.stderr
    assert "Set JUPYTER_RUNTIME_DIR to a private folder" in done.stderr
    assert not (shared / RUNTIME_FILE).exists()


def test_the_servers_files_in_the_runtime_dir_are_its_users_alone(env: dict[str, str]) -> None:
    answer, _ = run_kernel(env)

    assert answer.get("results") == ["a", "b"], answer
    runtime = Path(env["JUPYTER_RUNTIME_DIR"])
    for name in (RUNTIME_FILE, LOG_FILE, LOCK_FILE):
        assert stat.S_IMODE((runtime / name).stat().st_mode) == 0o600, name


# --------------------------------------------------------------------------- item 8

SHADOWS = {
    name: f"raise RuntimeError('the {name} of a user folder was imported')\n"
    for name in ("json.py", "secrets.py")
}
#: As in ipykernel, whose launcher takes the working dir off ``sys.path`` while it
#: loads and IPython puts it back for the user's code: then discovery runs.
IN_A_KERNEL = "import sys\nimport batch_widget\nsys.path.insert(0, '')\n" + KERNEL


def test_modules_in_the_kernels_folder_and_home_do_not_break_the_batch_server(
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for folder in (project, Path(env["HOME"])):
        for name, code in SHADOWS.items():
            (folder / name).write_text(code)

    answer, _ = run_kernel(env, IN_A_KERNEL, cwd=str(project), python_args=("-P",))

    assert answer.get("results") == ["a", "b"], answer


def test_on_python_3_10_the_batch_server_runs_in_the_runtime_dir(env: dict[str, str]) -> None:
    """Python 3.10 has no ``-P``: the server's command then runs in the runtime dir (with
    the home dir as its root dir); run that very command with modules in the home dir."""
    from batch_widget.kernel.launcher import serve_command

    runtime = Path(env["JUPYTER_RUNTIME_DIR"])
    command, cwd = serve_command(runtime, (3, 10))
    for name, code in SHADOWS.items():
        (Path(env["HOME"]) / name).write_text(code)
    assert "-P" not in command and cwd == runtime
    assert f"--ServerApp.root_dir={Path.home()}" in command

    done = subprocess.run(
        [*command, "--idle-timeout=1"],
        cwd=cwd,
        timeout=120,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "was imported" not in done.stderr
    assert "batch_widget] batch server at" in done.stderr


def test_the_batch_server_command_keeps_pythonpath(tmp_path: Path, env: dict[str, str]) -> None:
    """``-P`` drops the working dir, not ``PYTHONPATH``: the batch server still imports a
    processor module found there."""
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "only_on_pythonpath.py").write_text(
        "def twice(item, **params):\n    return 2 * item\n"
    )
    env = {**env, "PYTHONPATH": os.pathsep.join([str(modules), env["PYTHONPATH"]])}
    code = KERNEL.replace(
        '"batch_widget.processors:sleep", ["a", "b"], params={"seconds": 0}',
        '"only_on_pythonpath:twice", ["a", "b"]',
    )

    answer, _ = run_kernel(env, code)

    assert answer.get("results") == ["aa", "bb"], answer
