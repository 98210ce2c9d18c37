"""Every socket the product opens stays on this machine (SPEC §20).

A real ``jupyter server`` with the extension runs a thread, a process and a Dask
job (the ``LocalCluster`` the server starts). While each runs, every socket of
the server's process tree (the server, its forkserver and worker processes, the
Dask scheduler, nannies and workers) is read from the kernel's tables with
psutil: whatever listens is bound to a loopback address, whatever is connected
talks to a loopback address, and a Unix socket's file sits in a directory
other users cannot enter. The sockets seen are written to the test's report
(``pytest -s`` prints them).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from _server import ServerHandle, running_server

pytestmark = pytest.mark.timeout(300)

#: Seconds a job gets to have run one item; a Dask job first starts its LocalCluster.
START_TIMEOUT = 120.0


@dataclass(frozen=True)
class SocketSeen:
    """One socket of the server's process tree, as the kernel's tables show it."""

    process: str
    kind: str
    local: str
    remote: str
    status: str

    def line(self) -> str:
        return f"{self.process:<28} {self.kind:<5} {self.local:<40} {self.remote:<24} {self.status}"


def _process_label(process: psutil.Process) -> str:
    try:
        cmdline = process.cmdline()
    except psutil.Error:
        return f"pid {process.pid}"
    text = " ".join(os.path.basename(part) if i == 0 else part for i, part in enumerate(cmdline))
    return f"{process.pid} {text[:80]}"


def _tree(root_pid: int) -> Iterator[psutil.Process]:
    root = psutil.Process(root_pid)
    yield root
    yield from root.children(recursive=True)


def _address(address: object) -> str:
    if not address:
        return ""
    if isinstance(address, str):
        return address or "(unnamed)"
    ip, port = address  # type: ignore[misc]  # psutil's addr namedtuple
    return f"{ip}:{port}"


def sockets_of(root_pid: int) -> dict[str, list[SocketSeen]]:
    """Every inet and Unix socket of the process tree under ``root_pid``, by process."""
    seen: dict[str, list[SocketSeen]] = {}
    for process in _tree(root_pid):
        try:
            inet = process.net_connections(kind="inet")
            unix = process.net_connections(kind="unix")
        except psutil.Error:  # ended between the listing and the look
            continue
        label = _process_label(process)
        for conn in [*inet, *unix]:
            kind = (
                "unix"
                if conn.family == socket.AF_UNIX
                else ("udp" if conn.type == socket.SOCK_DGRAM else "tcp")
            )
            seen.setdefault(label, []).append(
                SocketSeen(label, kind, _address(conn.laddr), _address(conn.raddr), conn.status)
            )
    return seen


def is_loopback(address: str) -> bool:
    """True for ``127.x.x.x:port``, ``::1:port`` and IPv4-mapped loopback."""
    host = address.rsplit(":", 1)[0].strip("[]")
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def private_dir(path: str) -> bool:
    """True if other users cannot enter the directory holding ``path``."""
    mode = stat.S_IMODE(Path(path).parent.stat().st_mode)
    return mode & 0o077 == 0


def _run_until_busy(server: ServerHandle, executor: str) -> str:
    job = server.api(
        "POST",
        "api/batch/jobs",
        {
            "processor": "batch_widget.processors:sleep",
            "executor": executor,
            "items": [f"item-{n}" for n in range(400)],
            "params": {"seconds": 0.2},
            "max_workers": 2,
            "name": f"sockets-{executor}",
        },
    )
    server.wait_for_job(job["id"], lambda s: s["done"] >= 2, timeout=START_TIMEOUT)
    return str(job["id"])


def test_no_socket_leaves_the_machine_while_thread_process_and_dask_jobs_run(
    tmp_path: Path,
    record_property: pytest.RecordProperty,
) -> None:
    report: list[str] = []
    with running_server(tmp_path, max_concurrent_jobs=1) as server:
        for executor in ("thread", "process", "dask"):
            job_id = _run_until_busy(server, executor)
            by_process = sockets_of(server.pid)
            server.api("POST", f"api/batch/jobs/{job_id}/cancel", {})
            server.wait_for_job(job_id, lambda s: s["status"] == "cancelled", timeout=60)

            report.append(f"-- while a {executor} job runs")
            everything = [s for sockets in by_process.values() for s in sockets]
            report += [s.line() for s in everything]
            listening = [
                s
                for s in everything
                if s.kind != "unix" and (s.status == psutil.CONN_LISTEN or s.kind == "udp")
            ]
            connected = [s for s in everything if s.kind != "unix" and s.remote]
            unix_named = [s for s in everything if s.kind == "unix" and s.local.startswith("/")]

            assert any(s.local.endswith(f":{server.port}") for s in listening), report
            assert [s for s in listening if not is_loopback(s.local)] == [], "\n".join(report)
            assert [s for s in connected if not is_loopback(s.remote)] == [], "\n".join(report)
            assert [s for s in unix_named if not private_dir(s.local)] == [], "\n".join(report)
            if executor == "dask":
                assert len(by_process) >= 3, ("a scheduler's worker processes were seen", report)
    print("\n".join(report))  # the socket table, for `pytest -s`
    record_property("sockets", "\n".join(report))
