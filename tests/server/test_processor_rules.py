"""What a job may run, seen through real servers (issue 22, items 2, 9 and 13).

- Of batch_widget's own modules only ``batch_widget.processors`` may be named, whatever
  ``allowed_processors`` says: ``worker.run_chunk`` runs any import path it is handed,
  so naming it ran ``os.system`` under ``["batch_widget*"]``.
- A class is refused, in ``__all__`` or not (``subprocess.Popen`` re-exported ran a shell).
- Worker processes load only what the server's rules granted, checked again there.
- A ``process`` job's pickled function is never unpickled in the server: one whose
  unpickling ends the process it runs in leaves the server up, and runs in the workers.
- A body's unknown fields, and params JSON reads as infinity, are a 400 naming them.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from _helpers import SLEEP, Api
from _server import ServerHandle, build_server

import batch_widget.kernel.job as bw
from batch_widget.engine import job_entry, worker
from batch_widget.engine.store import Store
from batch_widget.engine.validation import JobSpec
from batch_widget.kernel import client as _client
from batch_widget.protocol import InvalidRequest

RUN_CHUNK = "batch_widget.engine.worker:run_chunk"
OWN = ["batch_widget*"]  # the allowlist of the report: "our package only"
HERE = Path(__file__).resolve().parent  # the workers unpickle loads_as from this module
TESTS_DIR = HERE.parent  # tests/: sample_processors and the helpers this module imports


def run_chunk_exploit(marker: Path) -> dict[str, Any]:
    """The body that made ``run_chunk`` call ``os.system`` (``touch marker``)."""
    chunk = [[0, json.dumps(f"touch {marker}")]]
    return {
        "processor": RUN_CHUNK,
        "items": ["os:system"],
        "params": {"params": {}, "job_key": 0, "chunk": chunk, "max_result_bytes": 10**6},
    }


# -- item 2: the package's own functions ---------------------------------------------------


@pytest.mark.batch_config(allowed_processors=OWN, allow_callables=False)
async def test_run_chunk_named_as_a_processor_is_refused_and_runs_nothing(
    api: Api, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    code, body, _ = await api.call("POST", "jobs", body=run_chunk_exploit(marker))

    assert code == 403, body
    assert RUN_CHUNK in body["message"] and "only batch_widget.processors" in body["message"]
    assert (await api.jobs())["total"] == 0
    assert not marker.exists()


@pytest.mark.parametrize(
    "allowed",
    [
        pytest.param(["*"], marks=pytest.mark.batch_config(allowed_processors=["*"])),
        pytest.param([RUN_CHUNK], marks=pytest.mark.batch_config(allowed_processors=[RUN_CHUNK])),
    ],
)
async def test_no_pattern_allows_the_package_machinery(
    api: Api, tmp_path: Path, allowed: list[str]
) -> None:
    marker = tmp_path / "pwned"
    code, body, _ = await api.call("POST", "jobs", body=run_chunk_exploit(marker))
    assert code == 403, body
    assert "whatever BatchWidgetApp.allowed_processors says" in body["message"]
    assert not marker.exists()


@pytest.mark.batch_config(allowed_processors=OWN, allow_callables=False)
@pytest.mark.parametrize("processor", ["batch_widget:jobs", "batch_widget.kernel.listing:jobs"])
async def test_the_package_and_its_kernel_side_are_refused_through_the_api(
    api: Api, processor: str
) -> None:
    code, body, _ = await api.call("POST", "jobs", body={"processor": processor, "items": [1]})
    assert code == 403, body
    assert processor in body["message"] and "batch_widget.processors" in body["message"]
    assert (await api.jobs())["total"] == 0


@pytest.mark.batch_config(allowed_processors=OWN, allow_callables=False)
@pytest.mark.parametrize("executor", ["thread", "process"])
async def test_batch_widget_processors_still_run_under_our_package_only(
    api: Api, executor: str
) -> None:
    job = await api.create([1, 2], processor=SLEEP, params={"seconds": 0}, executor=executor)
    final = await api.wait(job["id"], timeout=120)
    assert (final["status"], final["done"]) == ("completed", 2)


@pytest.fixture
def exports_a_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module that lists classes in ``__all__``: ``Popen`` it imports, one it defines."""
    name = "exports_a_class"
    module_dir = tmp_path / "modules"
    module_dir.mkdir()
    (module_dir / f"{name}.py").write_text(
        textwrap.dedent("""
        from subprocess import Popen

        __all__ = ["Popen", "Record", "double"]

        class Record:
            def __init__(self, item):
                self.item = item

        def double(item):
            return item * 2
    """),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(module_dir))
    yield name
    sys.modules.pop(name, None)


@pytest.mark.batch_config(allowed_processors=["exports_a_class:*"], allow_callables=False)
@pytest.mark.parametrize("attr", ["Popen", "Record"])
async def test_a_class_is_refused_even_in_all_as_the_help_says(
    api: Api, exports_a_class: str, attr: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    processor = f"{exports_a_class}:{attr}"
    code, body, _ = await api.call(
        "POST",
        "jobs",
        body={"processor": processor, "items": [f"touch {marker}"], "params": {"shell": True}},
    )

    assert code == 400, body
    assert processor in body["message"] and "is a class" in body["message"]
    assert (await api.jobs())["total"] == 0
    assert not marker.exists()
    function = await api.create([4], processor=f"{exports_a_class}:double")  # in __all__ too
    assert (await api.wait(function["id"]))["done"] == 1


@pytest.fixture
def stored_exploit(tmp_path: Path) -> tuple[str, Path]:
    """A store holding the exploit job as a server before the fix stored it (queued)."""
    marker = tmp_path / "pwned-on-retry"
    body = run_chunk_exploit(marker)
    spec = JobSpec(
        name="run_chunk",
        label=RUN_CHUNK,
        pickled=None,
        params_json=json.dumps(body["params"]),
        max_workers=None,
        executor="thread",
    )
    store = Store(tmp_path / "store" / "jobs.sqlite")  # where jp_server_config puts it
    try:
        row = job_entry.new_row("0123456789ab", spec, 1)
        store.insert_job(row, body["items"])
    finally:
        store.close()
    return row.id, marker


@pytest.mark.batch_config(allowed_processors=OWN, allow_callables=False)
async def test_a_stored_job_naming_the_machinery_is_refused_on_retry(
    stored_exploit: tuple[str, Path], api: Api
) -> None:
    job_id, marker = stored_exploit
    assert (await api.get(job_id))["status"] == "interrupted"  # queued when its server died

    code, body, _ = await api.call("POST", "jobs", job_id, "retry")

    assert code == 403, body
    assert "only batch_widget.processors" in body["message"]
    assert (await api.get(job_id))["status"] == "interrupted"
    assert not marker.exists()


def test_a_worker_loads_only_grants_and_checks_them_again(tmp_path: Path) -> None:
    from batch_widget.engine.processor_rules import (  # new: imported here so the others
        Grant,  # run on the code before it too
        ProcessorRefused,
        ProcessorRules,
    )

    marker = tmp_path / "pwned"
    chunk = [(0, json.dumps(f"touch {marker}"))]
    with pytest.raises(worker.ProcessorError, match="granted"):
        worker.run_chunk("os:system", {}, 0, chunk, max_result_bytes=1000)  # type: ignore[arg-type]
    forged = Grant(RUN_CHUNK, ProcessorRules(("*",), allow_callables=True))
    with pytest.raises(ProcessorRefused, match=r"only batch_widget\.processors"):
        worker.resolve(forged)
    narrowed = Grant(SLEEP, ProcessorRules(("sample_processors:*",), allow_callables=True))
    with pytest.raises(ProcessorRefused, match="allowed_processors"):
        worker.resolve(narrowed)
    pickle_off = Grant(cloudpickle.dumps(len), ProcessorRules(("*",), allow_callables=False))
    with pytest.raises(ProcessorRefused, match="allow_callables"):
        worker.resolve(pickle_off)
    assert not marker.exists()


# -- item 13: params and fields ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ('{"seconds": 1e999}', "'seconds'"),
        ('{"seconds": 0, "fail": [1, -1e999]}', "'fail'"),
    ],
)
async def test_a_param_json_reads_as_infinity_is_a_400_naming_it(
    api: Api, params: str, named: str
) -> None:
    raw = f'{{"processor": "{SLEEP}", "items": [1], "params": {params}}}'
    code, body, _ = await api.call("POST", "jobs", body=raw)
    assert code == 400, body
    assert named in body["message"] and "1e999" in body["message"]
    assert (await api.jobs())["total"] == 0


@pytest.mark.parametrize(
    ("field", "hint"),
    [
        ("max_worker", "did you mean 'max_workers'?"),
        (
            "item_timeout",
            "The known fields are: callable, executor, items, max_workers, name, params, "
            "processor, retries, retry_delay, retry_on",
        ),
    ],
)
async def test_an_unknown_field_is_a_400_naming_it_and_the_known_ones(
    api: Api, field: str, hint: str
) -> None:
    code, body, _ = await api.call(
        "POST", "jobs", body={"processor": SLEEP, "items": [1], field: 8}
    )
    assert code == 400, body
    assert f"unknown field {field!r}" in body["message"] and hint in body["message"]
    assert (await api.jobs())["total"] == 0


# -- item 9: a process job's pickle stays out of the server ------------------------------


def loads_as(marker: str, server_pid: int) -> Callable[[Any], Any]:
    """What unpickling the job's function runs: note this pid; end the server if it is it.

    ``os._exit`` stands for a crash in native unpickling (or the memory a captured
    model takes): it must happen in a worker process, never in the server.
    """
    with open(marker, "a", encoding="utf-8") as notes:
        notes.write(f"{os.getpid()}\n")
    if os.getpid() == server_pid:
        os._exit(70)
    return triple


def triple(item: int) -> int:
    """The processor ``loads_as`` gives."""
    return item * 3


class Tattletale:
    """A callable whose pickle, when loaded, calls :func:`loads_as`."""

    def __init__(self, marker: Path, server_pid: int) -> None:
        self.marker = str(marker)
        self.server_pid = server_pid

    def __call__(self, item: int) -> int:
        return triple(item)

    def __reduce__(self) -> tuple[Any, ...]:
        return loads_as, (self.marker, self.server_pid)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A real ``jupyter server`` whose worker processes can import this module."""
    handle = build_server(tmp_path_factory.mktemp("server"))
    handle.env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(HERE), str(TESTS_DIR), handle.env.get("PYTHONPATH")])
    )
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def connected(server: ServerHandle, monkeypatch: pytest.MonkeyPatch) -> ServerHandle:
    """Point the kernel API at the module's server; forget the choice after the test."""
    monkeypatch.setattr(_client._default, "client", None)  # restored after the test
    bw.connect(server.url, server.token)
    return server


@pytest.mark.timeout(240)
@pytest.mark.parametrize("executor", ["process", "dask"])  # the test extra has Dask
def test_a_process_jobs_pickle_is_loaded_in_its_workers_never_in_the_server(
    connected: ServerHandle, tmp_path: Path, executor: str
) -> None:
    marker = tmp_path / "unpickled-in"
    server_pid = connected.pid

    job = bw.submit(Tattletale(marker, server_pid), [1, 2, 3], executor=executor)
    snap = job.wait(timeout=120)

    assert connected.process is not None and connected.process.poll() is None, connected.log()
    assert (snap["status"], snap["done"]) == ("completed", 3), snap
    assert job.results() == [3, 6, 9]
    loaded_in = {int(line) for line in marker.read_text(encoding="utf-8").split()}
    assert loaded_in and server_pid not in loaded_in
    assert snap["name"] == "loads_as"  # read from the pickle's opcodes


def test_a_function_that_cannot_take_the_params_is_refused_before_sending(
    connected: ServerHandle,
) -> None:
    before = connected.api("GET", "api/batch/jobs")["total"]
    with pytest.raises(InvalidRequest, match=r"f\(item, \*\*params\) with params \['scale'\]"):
        bw.submit(lambda item: item, [1], params={"scale": 2}, executor="process")
    assert connected.api("GET", "api/batch/jobs")["total"] == before


def make_scaler(offset: int) -> Callable[..., int]:
    """A closure, as a notebook cell makes: it travels cloudpickled by value."""

    def scale(item: int, factor: int = 1) -> int:
        return item * factor + offset

    return scale


async def test_a_pickles_name_and_shape_are_read_without_loading_it(api: Api) -> None:
    payload = base64.b64encode(cloudpickle.dumps(make_scaler(1))).decode()
    names = set()
    for executor in ("thread", "process"):
        code, job, _ = await api.call(
            "POST",
            "jobs",
            body={
                "callable": payload,
                "items": [1, 2],
                "params": {"factor": 10},
                "executor": executor,
            },
        )
        assert code == 201, job
        names.add((job["name"], job["processor"]))
        final = await api.wait(job["id"], timeout=120)
        assert (final["status"], final["done"]) == ("completed", 2)
    assert names == {("make_scaler.scale", "<make_scaler.scale>")}  # the same on both
    truncated = base64.b64encode(cloudpickle.dumps(make_scaler(1))[:-3]).decode()
    code, body, _ = await api.call(
        "POST", "jobs", body={"callable": truncated, "items": [1], "executor": "process"}
    )
    assert code == 400, body
    assert "not a pickle" in body["message"]
