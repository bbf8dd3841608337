"""The prediction log read back whole: every column, even for a log written before some existed."""

from __future__ import annotations

from pathlib import Path

from permeability.io.predictions.reader import read_predictions
from permeability.io.predictions.schema import COLUMNS
from tests.unit.io.prediction_log_support import old_log


def test_reading_a_log_that_does_not_exist_yet_gives_the_columns(tmp_path: Path) -> None:
    frame = read_predictions(str(tmp_path))
    assert frame.empty
    assert list(frame.columns) == list(COLUMNS)


def test_a_log_written_before_the_record_fields_reads_them_as_null(tmp_path: Path) -> None:
    old_log(tmp_path, 3)
    frame = read_predictions(str(tmp_path))
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == 3
    assert frame[["CONSECUTIVO", "Referencia", "Fecha"]].isna().all().all()
