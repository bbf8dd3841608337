from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from permeability.io.logs import log_scope, process_scope, setup_logging


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def test_each_event_is_one_line_with_stage_and_run_id(tmp_path: Path) -> None:
    with log_scope("acquire", "run123", tmp_path) as logger:
        logger.info("read %d rows", 10)
        logger.warning("two\nlines")
    lines = _lines(tmp_path / "acquire.log")
    assert "run=run123" in lines[0]
    assert " acquire " in lines[0]
    assert lines[0].endswith("read 10 rows")
    assert len(lines) == 2
    assert "two \\n lines" in lines[1]


def test_a_nested_scope_writes_to_its_own_log_and_every_enclosing_one(tmp_path: Path) -> None:
    """``up`` runs acquisition inside it: up.log holds every step's lines, before and after."""
    with log_scope("up", "outer", tmp_path) as up:
        up.info("before")
        with log_scope("acquire", "inner", tmp_path) as acquire:
            acquire.info("loading")
        up.info("after")
    up_lines = _lines(tmp_path / "up.log")
    assert [line.rsplit(": ", 1)[1] for line in up_lines] == ["before", "loading", "after"]
    assert "acquire run=inner" in up_lines[1]  # stamped with the innermost scope
    assert [line.rsplit(": ", 1)[1] for line in _lines(tmp_path / "acquire.log")] == ["loading"]


def test_concurrent_scopes_do_not_see_each_other(tmp_path: Path) -> None:
    """The training service trains in several request threads at once."""
    barrier = threading.Barrier(2)

    def job(name: str) -> None:
        with log_scope(name, name, tmp_path) as logger:
            barrier.wait()
            for i in range(50):
                logger.info("%s %d", name, i)
            barrier.wait()

    threads = [threading.Thread(target=job, args=(n,)) for n in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, other in (("one", "two"), ("two", "one")):
        lines = _lines(tmp_path / f"{name}.log")
        assert len(lines) == 50
        assert not [line for line in lines if other in line]


def test_a_process_scope_applies_in_every_thread(tmp_path: Path) -> None:
    """Background threads of a service (log flusher, model refresher) have no context."""
    with process_scope("inference-api", "svc", tmp_path):
        worker = threading.Thread(
            target=lambda: logging.getLogger("permeability.io.model_cache").info("refreshed")
        )
        worker.start()
        worker.join()
        with log_scope("train", "t1", tmp_path) as logger:
            logger.info("trained")
    logging.getLogger("permeability.io.model_cache").info("after the service stopped")
    service = [line.rsplit(": ", 1)[1] for line in _lines(tmp_path / "inference-api.log")]
    assert service == ["refreshed", "trained"]
    assert [line.rsplit(": ", 1)[1] for line in _lines(tmp_path / "train.log")] == ["trained"]


def test_setting_up_twice_installs_the_handlers_once() -> None:
    setup_logging()
    before = list(logging.getLogger("permeability").handlers)
    setup_logging()
    assert logging.getLogger("permeability").handlers == before
    ours = [h for h in before if type(h).__module__ == "permeability.io.logs"]
    assert len(ours) == 2  # the files router and stderr


def test_console_lines_go_to_the_current_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with log_scope("cli", "r1", tmp_path) as logger:
        logger.info("to the console")
    captured = capsys.readouterr()
    assert "cli run=r1 permeability.cli: to the console" in captured.err
