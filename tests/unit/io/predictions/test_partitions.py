"""The day partitions of the prediction log, and the migration of a log written before them."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from permeability.io.predictions.log import PredictionLog
from permeability.io.predictions.maintenance import compact_predictions
from permeability.io.predictions.partitions import (
    day_predicate,
    is_partitioned,
    migrate_to_partitioned,
    with_day,
)
from permeability.io.predictions.reader import read_predictions
from permeability.io.predictions.schema import predictions_uri
from tests.unit.io.prediction_log_support import log_row, old_log, sorted_log


def test_a_rows_day_is_the_utc_date_of_its_request() -> None:
    stamps = pa.array(
        [datetime(2026, 1, 1, 23, 59, 59), datetime(2026, 1, 2, 0, 0)],
        pa.timestamp("us", tz="UTC"),
    )
    table = with_day(pa.table({"timestamp": stamps}))
    assert table.column("day").to_pylist() == [date(2026, 1, 1), date(2026, 1, 2)]


def test_a_range_ending_at_midnight_excludes_that_day() -> None:
    assert day_predicate(datetime(2026, 1, 2, 5), datetime(2026, 1, 4)) == [
        ("day", ">=", "2026-01-02"),
        ("day", "<=", "2026-01-03"),
    ]
    assert day_predicate(None, datetime(2026, 1, 4, 0, 0, 1)) == [("day", "<=", "2026-01-04")]


def test_a_new_log_is_partitioned_by_day(tmp_path: Path) -> None:
    log = PredictionLog(predictions_uri(str(tmp_path)), flush_interval_s=3600)
    log.append(log_row(0))
    log.flush()
    assert is_partitioned(DeltaTable(predictions_uri(str(tmp_path))))


def test_an_old_unpartitioned_log_keeps_taking_appends(tmp_path: Path) -> None:
    uri = old_log(tmp_path, 3)
    log = PredictionLog(uri, flush_interval_s=3600)
    log.append(log_row(10))
    assert log.flush() == 1
    assert not is_partitioned(DeltaTable(uri))
    assert len(read_predictions(str(tmp_path))) == 4


def test_compaction_migrates_an_old_log_once_keeping_every_row_and_the_history(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uri = old_log(tmp_path, 3)
    log = PredictionLog(uri, flush_interval_s=3600)
    for i in range(10, 14):  # the current code appending to it, one commit each
        log.append(log_row(i * 40_000))  # over two days
        log.flush()
    before = sorted_log(str(tmp_path))
    old_version = DeltaTable(uri).version()

    result = compact_predictions(str(tmp_path), None)

    assert result.migrated_version == old_version + 1
    assert "migrated to day partitions" in caplog.text
    table = DeltaTable(uri)
    assert is_partitioned(table)
    assert sorted_log(str(tmp_path)).equals(before)  # nothing lost, nothing doubled
    assert len(before) == 7
    # The history before the migration is kept and readable.
    assert DeltaTable(uri, version=old_version).to_pyarrow_dataset().count_rows() == 7
    assert [h["operation"] for h in table.history()][-1] == "WRITE"
    assert len(table.history()) == table.version() + 1
    # Later appends land in their day's partition, and a second run migrates nothing.
    log.append(log_row(20 * 40_000))
    log.flush()
    assert compact_predictions(str(tmp_path), None).migrated_version is None
    assert migrate_to_partitioned(uri, None) is None
    assert len(read_predictions(str(tmp_path))) == 8
