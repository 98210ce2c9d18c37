"""Who may read the job store (SPEC §20): a real second local user tries.

Real servers (a ``jupyter server`` subprocess, and the batch server a plain
``python`` starts) run a job; then ``bwreader``, a real local user made with
``useradd``, tries to read the store's files and list its directory. The
stores live under a 0755 directory, as a home directory often is, so only the
store's own modes stand between that user and the jobs. A control file beside
them proves the user could read what is open to it. Without ``useradd`` (not
root) these tests fail: they cannot prove anything otherwise.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
from _batch_server import isolated, run_python, stop_batch_servers
from _server import build_server, running_server

pytestmark = pytest.mark.timeout(300)

READER = "bwreader"
CHATTY = "sample_processors:chatty"
SUBMIT = """
import json
import batch_widget as bw
print(json.dumps({"results": bw.map("sample_processors:chatty", [1, 2, 3])}))
"""


@pytest.fixture(scope="module")
def reader() -> str:
    """The second local user (made once; another test run may have made it already)."""
    try:
        pwd.getpwnam(READER)
    except KeyError:
        made = subprocess.run(
            ["useradd", "-m", READER], capture_output=True, text=True, check=False
        )
        if made.returncode not in (0, 9):  # 9: made meanwhile by a concurrent run
            pytest.fail(
                f"useradd -m {READER} failed ({made.returncode}): {made.stderr}; "
                "these tests need a second local user (run them as root)"
            )
    pwd.getpwnam(READER)
    return READER


@pytest.fixture
def shared() -> Iterator[Path]:
    """A 0755 directory every local user can traverse, as a home directory often is."""
    root = Path(tempfile.mkdtemp(prefix="bw-shared-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def with_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let servers import ``sample_processors``, and the batch_widget this test imports."""
    paths = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))


def reads(user: str, path: Path) -> bool:
    """True if ``user`` can read ``path`` (``cat`` as that user)."""
    done = subprocess.run(
        ["runuser", "-u", user, "--", "cat", str(path)],
        capture_output=True,
        check=False,
        timeout=30,
    )
    return done.returncode == 0


def lists(user: str, path: Path) -> bool:
    """True if ``user`` can list directory ``path``."""
    done = subprocess.run(
        ["runuser", "-u", user, "--", "ls", str(path)], capture_output=True, check=False, timeout=30
    )
    return done.returncode == 0


def control_file(directory: Path) -> Path:
    """A world-readable file in ``directory``: the reader must be able to read it."""
    path = directory / "public.txt"
    path.write_text("anyone may read this\n", encoding="utf-8")
    path.chmod(0o644)
    return path


def assert_private(user: str, store: Path) -> None:
    """``user`` reads none of the store's files and cannot list its directory."""
    files = [store, Path(f"{store}-wal"), Path(f"{store}-shm")]
    for path in files:
        assert path.exists(), f"{path} should exist while the server runs"
    found = {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in files}
    assert not any(reads(user, path) for path in files), found
    assert set(found.values()) == {"0o600"}, found
    assert oct(stat.S_IMODE(store.parent.stat().st_mode)) == "0o700"
    assert not lists(user, store.parent)
    lock = Path(f"{store}.lock")
    if lock.exists():
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600
        assert not reads(user, lock)


def test_another_user_cannot_read_a_jupyter_servers_store(
    reader: str,
    shared: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_samples(monkeypatch)
    public = control_file(shared)
    store = shared / "data" / "batch_widget" / "jobs.sqlite"
    with running_server(shared / "server", db_url=f"sqlite:///{store}") as server:
        job = server.api("POST", "api/batch/jobs", {"processor": CHATTY, "items": [1, 2, 3]})
        final = server.wait_for_job(job["id"], lambda s: s["status"] == "completed")
        assert final["done"] == 3
        assert reads(reader, public), "the reader must reach the shared directory"
        assert_private(reader, store)


def test_a_store_an_earlier_release_left_open_is_tightened(
    reader: str,
    shared: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_samples(monkeypatch)
    folder = shared / "data" / "batch_widget"
    folder.mkdir(parents=True, mode=0o755)
    folder.chmod(0o755)
    store = folder / "jobs.sqlite"
    with sqlite3.connect(store) as conn:  # as an earlier release left it: 0644 in 0755
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    store.chmod(0o644)
    assert reads(reader, store), "before: the reader can read the old store"
    with running_server(shared / "server", db_url=f"sqlite:///{store}") as server:
        job = server.api("POST", "api/batch/jobs", {"processor": CHATTY, "items": [1]})
        server.wait_for_job(job["id"], lambda s: s["status"] == "completed")
        assert_private(reader, store)
        log = server.log()
    assert f"the job store file {store} was readable by other users (mode 644)" in log
    assert f"the job store's directory {folder} was open to other users (mode 755)" in log


def test_another_user_cannot_read_the_batch_servers_store(reader: str, shared: Path) -> None:
    env = isolated(shared / "home")
    Path(env["JUPYTER_RUNTIME_DIR"]).chmod(0o700)
    try:
        assert run_python(env, SUBMIT) == {"results": [1, 2, 3]}  # the batch server stays up
        store = Path(env["JUPYTER_DATA_DIR"]) / "batch_widget" / "batch-server.sqlite"
        assert reads(reader, control_file(shared)), "the reader must reach the shared dir"
        assert_private(reader, store)
    finally:
        stop_batch_servers(env)


@pytest.mark.parametrize("planted", ["jobs.sqlite", "jobs.sqlite.lock"])
def test_a_symlink_planted_at_the_store_or_its_lock_is_refused(
    shared: Path,
    planted: str,
) -> None:
    folder = shared / "data"
    folder.mkdir(mode=0o700)
    target = shared / "victim.txt"
    target.write_text("precious\n", encoding="utf-8")
    target.chmod(0o644)
    (folder / planted).symlink_to(target)
    server = build_server(shared / "server", db_url=f"sqlite:///{folder / 'jobs.sqlite'}")
    server.ready_path = "api/status"  # the batch API is not there: the extension refused
    server.start()
    try:
        try:
            server.api("GET", "api/batch/jobs")
            code = 200
        except urllib.error.HTTPError as error:
            code = error.code
        log = server.log()
    finally:
        server.stop()
    assert target.read_text(encoding="utf-8") == "precious\n", "its target was written"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert (folder / planted).is_symlink()
    assert f"{folder / planted} is a symbolic link; batch_widget does not follow it" in log
    assert code == 404, "the extension must not run on a store it refused"
    assert "batch_widget] starting" not in log, "nothing retries the refused store"


def test_a_directory_of_another_user_is_left_as_it_is(reader: str, shared: Path) -> None:
    """A team folder named in db_url: the store file is private, the folder is not ours."""
    from batch_widget.engine.store import Store

    folder = shared / "team"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    os.chown(folder, pwd.getpwnam(reader).pw_uid, -1)
    store = Store(folder / "jobs.sqlite")
    try:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755
        assert stat.S_IMODE((folder / "jobs.sqlite").stat().st_mode) == 0o600
        assert not reads(reader, folder / "jobs.sqlite")
    finally:
        store.close()
