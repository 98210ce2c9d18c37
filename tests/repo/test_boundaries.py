"""The three parts kept apart at run time, and what they share: one error-status
table and one settings object."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

import batch_widget as bw
from batch_widget.engine import DEFAULTS, Settings
from batch_widget.kernel.client import error_for
from batch_widget.protocol import (
    HTTP_STATUS,
    BatchError,
    StoreInUse,
    StoreIOError,
    StoreLost,
    StoreUnavailable,
    http_status,
)
from batch_widget.server import BatchWidgetApp


@pytest.mark.parametrize(("cls", "status"), list(HTTP_STATUS.items()))
def test_the_client_turns_each_status_back_into_the_error_the_server_answered(
    cls: type[BatchError], status: int
) -> None:
    received = error_for(status, "what the server said", job_id="abc")
    assert type(received) is cls
    assert str(received) == "what the server said"
    assert received.status_code == status


@pytest.mark.parametrize("cls", [StoreIOError, StoreLost, StoreInUse])
def test_a_subclass_travels_as_its_listed_ancestor(cls: type[BatchError]) -> None:
    assert http_status(cls) == 503
    assert type(error_for(503, "busy")) is StoreUnavailable


def test_a_status_outside_the_table_keeps_its_number() -> None:
    received = error_for(502, "Bad Gateway")
    assert type(received) is BatchError
    assert received.status_code == 502


@pytest.mark.parametrize("cls", [bw.ServerNotFound, bw.ServerUnreachable, bw.BatchFailed])
def test_errors_only_the_kernel_raises_have_no_status(cls: type[BatchError]) -> None:
    assert http_status(cls) is None


def test_the_traits_default_to_the_one_settings_object() -> None:
    app = BatchWidgetApp()
    assert app.batch_settings == DEFAULTS
    configurable = set(app.class_own_traits(config=True))
    fields = {f.name for f in dataclasses.fields(Settings)}
    # Every trait but the store's URL and the injectable classes is a setting, and
    # every setting but the stall warning (an engine detail) is a trait.
    assert configurable - fields == {"db_url", "broadcaster_class", "manager_class"}
    assert fields - configurable == {"stall_warning_after"}


def test_a_configured_trait_reaches_the_settings() -> None:
    app = BatchWidgetApp(max_workers=7, allowed_processors=["a.b:*"])
    assert app.batch_settings == DEFAULTS.replace(max_workers=7, allowed_processors=("a.b:*",))


def test_the_client_does_not_load_the_server() -> None:
    code = (
        "import sys, batch_widget.kernel.client, batch_widget.kernel.job; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tornado', 'jupyter_server')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_engine_runs_a_job_without_loading_tornado_or_jupyter(tmp_path: Path) -> None:
    code = (
        "import sys; from batch_widget.engine import JobManager, JobRequest, Store; "
        "m = JobManager(Store(sys.argv[1]), None); m.start(); "
        "job = m.create(JobRequest([1, 2, 3], processor='batch_widget.processors:sleep')); "
        "assert m.wait(job['id'], 60)['status'] == 'completed'; m.stop(); "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('tornado', 'jupyter_server', 'anywidget', 'ipywidgets')]; "
        "assert not bad, bad"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "jobs.sqlite")], check=True, timeout=120
    )
