"""Per-item capture of stdout, stderr and logging (SPEC §13), with real threads."""

from __future__ import annotations

import logging
import sys
from concurrent.futures import ThreadPoolExecutor

from batch_widget.engine.capture import ItemLog, capturing, install


def noisy(item: int) -> str | None:
    with capturing() as captured:
        for line in range(20):
            print(f"item {item} out {line}")
            sys.stderr.write(f"item {item} err {line}\n")
            logging.getLogger("noisy").warning("item %d log %d", item, line)
    return captured.text


def test_eight_threads_each_item_gets_exactly_its_own_lines() -> None:
    install()
    with ThreadPoolExecutor(8) as pool:
        logs = list(pool.map(noisy, range(200)))
    for item, text in enumerate(logs):
        assert text is not None
        lines = text.splitlines()
        assert len(lines) == 60
        assert all(f"item {item} " in line for line in lines), lines[:3]
        assert lines[:3] == [
            f"item {item} out 0",
            f"item {item} err 0",
            f"WARNING noisy: item {item} log 0",
        ]


def test_a_log_keeps_its_first_bytes_and_says_how_much_was_cut() -> None:
    log = ItemLog(limit=100)
    log.write("x" * 80)
    log.write("é" * 30)  # 60 bytes: 20 fit
    text = log.text()
    assert text is not None
    assert text.startswith("x" * 80 + "é" * 10)
    assert "[... 40 more bytes cut" in text
    assert ItemLog().text() is None


def test_outside_a_capture_output_goes_where_it_always_went(capsys: object) -> None:
    install()
    print("not an item's")
    assert "not an item's" in capsys.readouterr().out  # type: ignore[attr-defined]
