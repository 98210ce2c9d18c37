"""Real Dask processes for the tests: a ``dask scheduler`` and ``dask worker``s started
through the ``dask`` command line, as a user starts a cluster of their own.

Workers run without a nanny, so each worker's pid is the process the test
started, and SIGKILL takes it away for good.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from distributed import Client

TESTS_DIR = Path(__file__).resolve().parent
#: Seconds a Dask process gets to start listening or to register (two busy shared cores).
START_TIMEOUT = 60.0


@dataclass
class DaskProcesses:
    """A scheduler on ``port`` and named workers, each a real subprocess with its own log."""

    port: int
    logs: Path
    scheduler: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _files: list[IO[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The scheduler's address, as ``dask_address`` takes it."""
        return f"tcp://127.0.0.1:{self.port}"

    def _spawn(self, name: str, *args: str, path_first: str | None = None,
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        self._files.append(log)
        dask = Path(sys.executable).with_name("dask")
        environment = {**os.environ, **(env or {})}
        environment["PYTHONPATH"] = os.pathsep.join(  # the workers import sample_processors
            filter(None, [path_first, str(TESTS_DIR), os.environ.get("PYTHONPATH")]))
        return subprocess.Popen([str(dask), *args], stdout=log, stderr=subprocess.STDOUT,
                                env=environment)

    def start_scheduler(self, allowed_failures: int | None = None) -> None:
        """Start ``dask scheduler`` and wait until it accepts connections.

        ``allowed_failures``: how many workers a task may take down with it before
        Dask gives up on it with ``KilledWorker`` (Dask's default is 3).
        """
        env = {} if allowed_failures is None else {
            "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(allowed_failures)}
        self.scheduler = self._spawn("scheduler", "scheduler", "--host", "127.0.0.1",
                                     "--port", str(self.port), "--no-dashboard", env=env)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.scheduler.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dask scheduler did not start:\n{self.log('scheduler')}"
                                       ) from None
                time.sleep(0.1)

    def start_worker(self, name: str, nthreads: int = 2, *, first_on_path: str | None = None,
                     nanny: bool = False) -> int:
        """Start ``dask worker``; return its pid. ``first_on_path`` goes first on its
        ``PYTHONPATH`` (to give it other installed packages). With ``nanny`` the pid
        is the nanny's, which starts the worker again each time it dies."""
        process = self._spawn(name, "worker", self.address, "--nthreads", str(nthreads),
                              "--nanny" if nanny else "--no-nanny", "--no-dashboard",
                              "--name", name, "--host", "127.0.0.1", path_first=first_on_path)
        self.workers[name] = process
        return process.pid

    def wait_for_workers(self, count: int) -> None:
        """Wait until ``count`` workers have registered with the scheduler."""
        with Client(self.address, timeout=START_TIMEOUT, set_as_default=False) as client:
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
