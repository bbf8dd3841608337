"""The prediction log read back: every column, even for a log written before some existed, and
only the day partitions a time range needs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from permeability.io.predictions.log import PredictionLog
from permeability.io.predictions.reader import open_predictions, read_predictions
from permeability.io.predictions.schema import COLUMNS, predictions_uri
from tests.unit.io.prediction_log_support import data_files, log_row, old_log


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


def _three_days(root: str) -> None:
    """Two rows on each of 2026-01-01, -02 and -03 (UTC), one commit per day."""
    log = PredictionLog(predictions_uri(root), flush_interval_s=3600)
    for day in range(3):
        for k in range(2):
            log.append(log_row(day * 86_400 + k * 3600))
        assert log.flush() == 2


def test_a_read_since_a_day_opens_only_the_files_of_that_day_and_later(tmp_path: Path) -> None:
    root = str(tmp_path)
    _three_days(root)
    every_file = data_files(root)
    assert {name.split("/")[0] for name in every_file} == {
        "day=2026-01-01",
        "day=2026-01-02",
        "day=2026-01-03",
    }

    dataset = open_predictions(root, since=datetime(2026, 1, 2, 0, 30))
    assert dataset is not None
    opened = {name.split("/")[0] for name in dataset.files}  # type: ignore[attr-defined]
    assert opened == {"day=2026-01-02", "day=2026-01-03"}

    frame = read_predictions(root, since=datetime(2026, 1, 2, 0, 30))
    assert list(frame.columns) == list(COLUMNS)
    assert sorted(frame["request_id"]) == ["r-172800", "r-176400", "r-90000"]


def test_a_read_of_one_day_opens_only_that_day(tmp_path: Path) -> None:
    root = str(tmp_path)
    _three_days(root)
    since, until = datetime(2026, 1, 2), datetime(2026, 1, 3)

    dataset = open_predictions(root, since=since, until=until)
    assert dataset is not None
    assert {name.split("/")[0] for name in dataset.files} == {"day=2026-01-02"}  # type: ignore[attr-defined]
    frame = read_predictions(root, since=since, until=until)
    assert sorted(frame["request_id"]) == ["r-86400", "r-90000"]


def test_an_aware_bound_is_read_as_its_utc_moment(tmp_path: Path) -> None:
    root = str(tmp_path)
    _three_days(root)
    bogota = timezone(timedelta(hours=-5))
    # 2026-01-02 19:30 in Bogotá is 2026-01-03 00:30 UTC: only the last day's second row.
    frame = read_predictions(root, since=datetime(2026, 1, 2, 19, 30, tzinfo=bogota))
    assert list(frame["request_id"]) == ["r-176400"]


def test_a_log_in_the_layout_before_the_partitions_is_read_by_time(tmp_path: Path) -> None:
    old_log(tmp_path, 3)  # unpartitioned, rows one second apart from 2026-01-01 00:00
    frame = read_predictions(str(tmp_path), since=datetime(2026, 1, 1, 0, 0, 1))
    assert sorted(frame["request_id"]) == ["r-1", "r-2"]
