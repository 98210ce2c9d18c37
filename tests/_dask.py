"""Real Dask processes for the tests: a ``dask scheduler`` and ``dask worker``s started
through the ``dask`` command line, as a user starts a cluster of their own, on plain
TCP or on TLS with certificate files (:class:`TlsFiles`).

Workers run without a nanny, so each worker's pid is the process the test
started, and SIGKILL takes it away for good.

Run as a script (``python _dask.py intrude SCHEDULER PORT...``), this file is a
local user without the cluster's credentials: it tries every port it is given
(:func:`intrude`) and prints, as JSON, what each one let it do.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from distributed import Client
from distributed.comm import registry
from distributed.security import Security

TESTS_DIR = Path(__file__).resolve().parent
#: Seconds a Dask process gets to start listening or to register (two busy shared cores).
START_TIMEOUT = 60.0
#: Seconds the intruder gives one attempt: a cluster that lets it in answers in well under 1 s.
ATTEMPT_TIMEOUT = 10.0


@dataclass(frozen=True)
class TlsFiles:
    """A certificate, its key and the CA that signed it, in PEM files (one self-signed
    certificate for every role): what ``dask scheduler --tls-*`` and Dask's config take."""

    ca_file: Path
    cert: Path
    key: Path

    @classmethod
    def made_in(cls, folder: Path) -> TlsFiles:
        """New credentials (``Security.temporary()``'s) written to files in ``folder``."""
        made = Security.temporary()  # type: ignore[no-untyped-call]
        folder.mkdir(parents=True, exist_ok=True)
        files = cls(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
        files.ca_file.write_text(made.tls_ca_file)
        files.cert.write_text(made.tls_client_cert)
        files.key.touch(mode=0o600)
        files.key.write_text(made.tls_client_key)
        return files

    def cli_args(self) -> list[str]:
        """The ``dask scheduler`` / ``dask worker`` options that use these files."""
        return [
            "--tls-ca-file",
            str(self.ca_file),
            "--tls-cert",
            str(self.cert),
            "--tls-key",
            str(self.key),
        ]

    def config_env(self) -> dict[str, str]:
        """Dask's config as environment variables: a client's TLS files."""
        return {
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(self.ca_file),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(self.cert),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(self.key),
        }

    def security(self) -> Security:
        """A client's ``Security`` for these files."""
        return Security(
            tls_ca_file=str(self.ca_file),  # type: ignore[no-untyped-call]
            tls_client_cert=str(self.cert),
            tls_client_key=str(self.key),
            require_encryption=True,
        )


@dataclass
class DaskProcesses:
    """A scheduler on ``port`` and named workers, each a real subprocess with its own log."""

    port: int
    logs: Path
    #: Credentials: the scheduler and the workers then speak TLS only.
    tls: TlsFiles | None = None
    scheduler: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _files: list[IO[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The scheduler's address, as ``dask_address`` takes it."""
        return f"{'tls' if self.tls else 'tcp'}://127.0.0.1:{self.port}"

    def _tls_args(self) -> list[str]:
        return self.tls.cli_args() if self.tls else []

    def _spawn(
        self,
        name: str,
        *args: str,
        path_first: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        self._files.append(log)
        dask = Path(sys.executable).with_name("dask")
        environment = {**os.environ, **(env or {})}
        environment["PYTHONPATH"] = os.pathsep.join(  # the workers import sample_processors
            filter(None, [path_first, str(TESTS_DIR), os.environ.get("PYTHONPATH")])
        )
        return subprocess.Popen(
            [str(dask), *args], stdout=log, stderr=subprocess.STDOUT, env=environment
        )

    def start_scheduler(self, allowed_failures: int | None = None) -> None:
        """Start ``dask scheduler`` and wait until it accepts connections.

        ``allowed_failures``: how many workers a task may take down with it before
        Dask gives up on it with ``KilledWorker`` (Dask's default is 3).
        """
        env = (
            {}
            if allowed_failures is None
            else {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(allowed_failures)}
        )
        self.scheduler = self._spawn(
            "scheduler",
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-dashboard",
            *self._tls_args(),
            env=env,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.scheduler.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"dask scheduler did not start:\n{self.log('scheduler')}"
                    ) from None
                time.sleep(0.1)

    def start_worker(
        self, name: str, nthreads: int = 2, *, first_on_path: str | None = None, nanny: bool = False
    ) -> int:
        """Start ``dask worker``; return its pid. ``first_on_path`` goes first on its
        ``PYTHONPATH`` (to give it other installed packages). With ``nanny`` the pid
        is the nanny's, which starts the worker again each time it dies."""
        process = self._spawn(
            name,
            "worker",
            self.address,
            "--nthreads",
            str(nthreads),
            "--nanny" if nanny else "--no-nanny",
            "--no-dashboard",
            "--name",
            name,
            "--host",
            "127.0.0.1",
            *self._tls_args(),
            path_first=first_on_path,
        )
        self.workers[name] = process
        return process.pid

    def wait_for_workers(self, count: int) -> None:
        """Wait until ``count`` workers have registered with the scheduler."""
        security = self.tls.security() if self.tls else None
        with Client(
            self.address,
            timeout=START_TIMEOUT,
            security=security,  # type: ignore[no-untyped-call]
            set_as_default=False,
        ) as client:
            client.wait_for_workers(count, timeout=START_TIMEOUT)

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker, as the out-of-memory killer would."""
        process = self.workers.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def kill_scheduler(self) -> None:
        """SIGKILL the scheduler."""
        assert self.scheduler is not None
        self.scheduler.send_signal(signal.SIGKILL)
        self.scheduler.wait()
        self.scheduler = None

    def stop(self) -> None:
        """Kill every process still running and close the logs."""
        for process in [*self.workers.values(), self.scheduler]:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        self.workers.clear()
        self.scheduler = None
        for log in self._files:
            log.close()

    def log(self, name: str) -> str:
        """What the process ``name`` (``"scheduler"`` or a worker's) wrote."""
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


# -- a local user without the cluster's credentials ------------------------------------


def _stranger_tls(own_certificate: bool) -> ssl.SSLContext:
    """TLS that trusts any server, with no client certificate or with one of its own."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if own_certificate:
        made = Security.temporary()  # type: ignore[no-untyped-call]
        context.load_cert_chain(*_pem_files(made.tls_client_cert, made.tls_client_key))
    return context


def _pem_files(cert: str, key: str) -> tuple[str, str]:
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"intruder-{os.getpid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    (folder / "cert.pem").write_text(cert)
    (folder / "key.pem").write_text(key)
    return str(folder / "cert.pem"), str(folder / "key.pem")


async def _dask_identity(address: str, context: ssl.SSLContext | None) -> str:
    """One connection (no retries), Dask's handshake, then the ``identity`` request."""
    scheme, location = address.split("://")
    connector = registry.get_backend(scheme).get_connector()
    extra = {} if context is None else {"ssl_context": context}
    comm = await asyncio.wait_for(
        connector.connect(location, deserialize=True, **extra), ATTEMPT_TIMEOUT
    )
    try:
        await asyncio.wait_for(comm.write(comm.handshake_info()), ATTEMPT_TIMEOUT)
        await asyncio.wait_for(comm.read(), ATTEMPT_TIMEOUT)
        await asyncio.wait_for(comm.write({"op": "identity", "reply": True}), ATTEMPT_TIMEOUT)
        return str(await asyncio.wait_for(comm.read(), ATTEMPT_TIMEOUT))[:200]
    finally:
        comm.abort()


def _run_id(address: str, security: Security | None) -> str:
    """What ``id`` prints when run on the cluster through a client of the intruder's own."""
    with Client(
        address,
        timeout=ATTEMPT_TIMEOUT,
        security=security,  # type: ignore[no-untyped-call]
        set_as_default=False,
    ) as client:
        task = client.submit(subprocess.check_output, ["id"], pure=False)
        return bytes(task.result(timeout=ATTEMPT_TIMEOUT)).decode().strip()


class _ServesNothing(LookupError):
    """An HTTP server that answers 404 to everything (it speaks no Dask either)."""


def _http_get(port: int) -> str:
    """What the port answers to HTTP GETs; raises if it is no HTTP server or serves nothing."""
    answers = []
    for path in ("/", "/health", "/metrics", "/json/identity.json", "/status"):
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}{path}", timeout=ATTEMPT_TIMEOUT
            ) as response:
                answers.append(f"{path} {response.status}")
        except urllib.error.HTTPError as error:
            if error.code != 404:
                answers.append(f"{path} {error.code}")
    if not answers:
        raise _ServesNothing("an HTTP server: 404 for every path")
    return ", ".join(answers)


def _attempt(what: str, port: int, call: Any) -> dict[str, Any]:
    try:
        detail = call()
    except Exception as exc:  # any failure is a refusal; its message is shown
        return {
            "port": port,
            "attempt": what,
            "answered": False,
            "detail": f"{type(exc).__name__}: {exc}"[:200],
        }
    return {"port": port, "attempt": what, "answered": True, "detail": str(detail)}


def intrude(scheduler: str, ports: list[int]) -> list[dict[str, Any]]:
    """Try the cluster as a local user with no credentials would; say what answered.

    On the scheduler: a ``Client`` on ``tcp://``, on ``tls://`` with Dask's default
    (empty) security, and on ``tls://`` with a certificate of the intruder's own, each
    running ``id`` if it gets in. On every port: Dask's ``identity`` request over plain
    TCP, over TLS without a client certificate and with one of its own; and HTTP GETs
    (a port that is an HTTP server gets no Dask requests).
    """
    host_port = scheduler.split("://")[1]
    outcomes = [
        _attempt("Client tcp:// runs id", 0, lambda: _run_id(f"tcp://{host_port}", None)),
        _attempt("Client tls:// runs id", 0, lambda: _run_id(f"tls://{host_port}", None)),
        _attempt(
            "Client tls:// with its own certificate runs id",
            0,
            lambda: _run_id(f"tls://{host_port}", Security.temporary()),
        ),  # type: ignore[no-untyped-call]
    ]
    for port in ports:
        http = _attempt("HTTP GET", port, lambda p=port: _http_get(p))
        outcomes.append(http)
        if http["answered"] or http["detail"].startswith(_ServesNothing.__name__):
            continue  # an HTTP server, which speaks no Dask: the probes would only time out
        plain, bare, own = None, _stranger_tls(False), _stranger_tls(True)
        for what, address, context in (
            ("identity over tcp", f"tcp://127.0.0.1:{port}", plain),
            ("identity over TLS, no certificate", f"tls://127.0.0.1:{port}", bare),
            ("identity over TLS, own certificate", f"tls://127.0.0.1:{port}", own),
        ):
            outcomes.append(
                _attempt(what, port, lambda a=address, c=context: asyncio.run(_dask_identity(a, c)))
            )
    return outcomes


if __name__ == "__main__" and sys.argv[1:2] == ["intrude"]:
    print(json.dumps(intrude(sys.argv[2], [int(port) for port in sys.argv[3:]])))
