"""Who may use the Dask cluster of executor="dask" jobs (SPEC §20).

A real ``jupyter server`` runs a real Dask job, which starts the server's own
``LocalCluster`` (it stays up until the server stops). Then a fresh Python with
none of the cluster's credentials, as another local user would be, tries every
port of the server and of its Dask processes: a ``Client`` on ``tcp://`` and on
``tls://`` (with no certificate, with one of its own) that would run ``id``,
Dask's ``identity`` request on each port, and HTTP GETs. Nothing may answer it,
and every socket those processes listen on is bound to loopback.

A cluster of the user's own on ``tls://`` (a real ``dask scheduler`` and
``dask worker`` started with certificate files) runs a job when the server has
the files in Dask's config (``DASK_DISTRIBUTED__COMM__TLS__*``), and fails it
saying what to configure when it does not.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from _dask import ATTEMPT_TIMEOUT, TESTS_DIR, DaskProcesses, TlsFiles
from _engine import ManagerFactory, create, make_manager, wait
from _server import ServerHandle, build_server, free_port, isolated_env

__all__ = ["make_manager"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(300)

WHERE = "sample_processors:where_and_when"
#: Seconds the first Dask job gets: it starts the LocalCluster (two busy shared cores).
JOB_TIMEOUT = 120.0
#: What the server logs for a Dask job: ``job … runs on <where> (<scheduler address>)``.
RUNS_ON = re.compile(r"runs on the server's Dask LocalCluster \((\w+://[\d.]+:\d+)\)")


@dataclass(frozen=True)
class Listening:
    """One listening socket of the server's process tree."""

    pid: int
    process: str
    kind: str
    address: str
    port: int

    def line(self) -> str:
        return f"{self.kind} {self.address}:{self.port} in {self.pid} {self.process}"


@dataclass(frozen=True)
class ClusterServer:
    """A server whose LocalCluster is up: its scheduler's address and what listens."""

    server: ServerHandle
    scheduler: str
    sockets: list[Listening]

    @property
    def dask_ports(self) -> list[int]:
        """Every port the server's process tree listens on but the Jupyter server's own."""
        return sorted({s.port for s in self.sockets if s.port != self.server.port})


def with_tests_on_path(server: ServerHandle) -> ServerHandle:
    """The server and its Dask workers import ``sample_processors`` from the tests."""
    server.env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(TESTS_DIR), server.env.get("PYTHONPATH")])
    )
    return server


def run_job(server: ServerHandle, items: int = 20) -> dict[str, Any]:
    """Run a Dask job to its end; return its final snapshot."""
    job = server.api(
        "POST",
        "api/batch/jobs",
        {"processor": WHERE, "items": list(range(items)), "executor": "dask"},
    )
    snapshot: dict[str, Any] = server.wait_for_job(
        job["id"], lambda s: s["status"] in ("completed", "failed"), timeout=JOB_TIMEOUT
    )
    return snapshot


def listening_sockets(root_pid: int) -> list[Listening]:
    """Every TCP socket listening, and every UDP socket bound, in the process tree."""
    root = psutil.Process(root_pid)
    seen = []
    for process in [root, *root.children(recursive=True)]:
        try:
            name = " ".join(process.cmdline())[:90]
            conns = process.net_connections(kind="inet")
        except psutil.Error:  # it ended between the listing and the look
            continue
        for conn in conns:
            udp = conn.type == psutil.socket.SOCK_DGRAM
            if udp or conn.status == psutil.CONN_LISTEN:
                seen.append(
                    Listening(
                        process.pid, name, "udp" if udp else "tcp", conn.laddr.ip, conn.laddr.port
                    )
                )
    return seen


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@pytest.fixture(scope="module")
def cluster_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServer]:
    """A real server after its first Dask job: the LocalCluster it started is up."""
    server = with_tests_on_path(build_server(tmp_path_factory.mktemp("dask-security")))
    server.start()
    try:
        final = run_job(server)
        assert final["status"] == "completed", final
        found = RUNS_ON.search(server.log())
        assert found, f"the server did not log its scheduler's address:\n{server.log()}"
        yield ClusterServer(server, found.group(1), listening_sockets(server.pid))
    finally:
        server.stop()


def intruder_outcomes(cluster: ClusterServer, home: Path) -> list[dict[str, Any]]:
    """What a fresh Python with no credentials (its own HOME, no Dask config) got."""
    env = {key: value for key, value in isolated_env(home).items() if not key.startswith("DASK_")}
    env["PYTHONPATH"] = str(TESTS_DIR)
    env["TMPDIR"] = str(home)
    attempts = 3 + 4 * len(cluster.dask_ports)
    done = subprocess.run(
        [
            sys.executable,
            str(TESTS_DIR / "_dask.py"),
            "intrude",
            cluster.scheduler,
            *map(str, cluster.dask_ports),
        ],
        check=False,
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60 + 2 * ATTEMPT_TIMEOUT * attempts,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    outcomes: list[dict[str, Any]] = json.loads(done.stdout.splitlines()[-1])
    return outcomes


def test_a_process_without_the_clusters_credentials_runs_no_code_and_gets_no_answer(
    cluster_server: ClusterServer,
    tmp_path: Path,
) -> None:
    assert len(cluster_server.dask_ports) >= 3, "a scheduler, nannies and workers listen"

    outcomes = intruder_outcomes(cluster_server, tmp_path)

    table = "\n".join(
        f"{o['port']:>6} {o['attempt']:<45} "
        f"{'ANSWERED' if o['answered'] else 'refused '} {o['detail']}"
        for o in outcomes
    )
    print(table)  # for `pytest -s`
    assert {o["port"] for o in outcomes} == {0, *cluster_server.dask_ports}, "all tried"
    assert not any("uid=" in o["detail"] for o in outcomes), table
    assert [o for o in outcomes if o["answered"]] == [], table
    assert cluster_server.scheduler.startswith("tls://127.0.0.1:"), cluster_server.scheduler


def test_every_socket_of_the_server_and_its_dask_processes_listens_on_loopback(
    cluster_server: ClusterServer,
) -> None:
    sockets = cluster_server.sockets
    report = "\n".join(s.line() for s in sockets)
    print(report)  # for `pytest -s`
    assert {s.pid for s in sockets} - {cluster_server.server.pid}, (
        "the Dask worker processes were seen listening",
        report,
    )
    assert [s.line() for s in sockets if not is_loopback(s.address)] == [], report


@pytest.fixture
def tls_cluster(tmp_path: Path) -> Iterator[DaskProcesses]:
    """A ``dask scheduler`` and one ``dask worker`` of the user's own, on TLS only."""
    processes = DaskProcesses(
        port=free_port(), logs=tmp_path, tls=TlsFiles.made_in(tmp_path / "tls")
    )
    try:
        processes.start_scheduler()
        processes.start_worker("w1")
        processes.wait_for_workers(1)
        yield processes
    finally:
        processes.stop()


def test_a_tls_dask_address_runs_jobs_with_the_tls_files_from_dasks_config(
    tls_cluster: DaskProcesses,
    tmp_path: Path,
) -> None:
    assert tls_cluster.tls is not None and tls_cluster.address.startswith("tls://")
    server = with_tests_on_path(build_server(tmp_path / "server", dask_address=tls_cluster.address))
    server.env.update(tls_cluster.tls.config_env())
    server.start()
    try:
        final = run_job(server, items=30)
        assert (final["status"], final["done"]) == ("completed", 30), final
        rows = server.api("GET", f"api/batch/jobs/{final['id']}/items?limit=100")
        pids = {row["result"]["pid"] for row in rows["items"]}
        assert pids == {tls_cluster.workers["w1"].pid}, "the TLS cluster's worker ran them"
        assert "is not a tls:// address" not in server.log()
    finally:
        server.stop()


async def test_a_tls_dask_address_without_tls_files_fails_the_job_saying_what_to_set(
    make_manager: ManagerFactory,
    tls_cluster: DaskProcesses,
) -> None:
    """This test process has no TLS files in its Dask config."""
    manager = make_manager(dask_address=tls_cluster.address, dask_connect_timeout=3.0)
    job = create(manager, list(range(5)), processor=WHERE, executor="dask")
    failed = await wait(manager, job["id"], timeout=60)
    assert failed["status"] == "failed", failed
    assert tls_cluster.address in failed["error"]
    assert "distributed.comm.tls.ca-file" in failed["error"], failed["error"]
