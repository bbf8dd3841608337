"""Commits by the helper process: the log's guarantees hold, a dead helper is replaced."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from permeability.io.predictions.log import PredictionLog
from permeability.io.predictions.reader import read_predictions
from permeability.io.predictions.schema import predictions_uri
from tests.unit.io.prediction_log_support import served_row


def test_a_helper_process_can_make_the_commits_with_the_same_guarantees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handover = tmp_path / "tmp"
    handover.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(handover))
    blocker = tmp_path / "store"
    blocker.write_text("a file where the store folder should be", encoding="utf-8")
    log = PredictionLog(
        predictions_uri(str(blocker)), flush_interval_s=3600, write_in_subprocess=True
    )
    for i in range(3):
        log.append(served_row(i))
    assert log.flush() == 0  # the helper's failure comes back: the rows are kept
    assert log.pending_rows == 3
    assert log.last_error is not None
    helper = log._commits.helper
    assert helper is not None  # a write error does not cost a new helper process
    blocker.unlink()
    blocker.mkdir()
    for i in range(3, 5):
        log.append(served_row(i, Estructura=None))
    assert log.flush() == 5
    assert log._commits.helper is helper
    log.append(served_row(5))
    log.close()
    logged = read_predictions(str(blocker)).sort_values("Muestra")
    assert list(logged["Muestra"]) == [0, 1, 2, 3, 4, 5]
    assert logged["Estructura"].isna().sum() == 2
    assert log.commits == 2
    assert list(handover.iterdir()) == []  # the batches handed to the helper are cleaned up


def test_the_last_rows_are_written_even_if_the_helper_process_is_gone(tmp_path: Path) -> None:
    log = PredictionLog(
        predictions_uri(str(tmp_path)), flush_interval_s=3600, write_in_subprocess=True
    )
    log.append(served_row(0))
    assert log.flush() == 1  # the helper is running now
    assert log._commits.helper is not None
    log._commits.helper.process.kill()  # a crash of the helper
    log._commits.helper.process.wait()
    log.append(served_row(1))
    log.close()
    assert sorted(read_predictions(str(tmp_path))["Muestra"]) == [0, 1]
