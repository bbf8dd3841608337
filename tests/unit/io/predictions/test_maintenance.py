"""Compacting the prediction log: fewer files, the same rows, replaced files kept as long as asked."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError
from deltalake.table import TableOptimizer

from permeability.errors import InvalidInputError
from permeability.io.predictions.log import PredictionLog
from permeability.io.predictions.maintenance import (
    ConcurrentCompactionError,
    compact_predictions,
)
from permeability.io.predictions.reader import read_predictions
from permeability.io.predictions.schema import predictions_uri
from tests.unit.io.prediction_log_support import (
    data_files,
    fill_prediction_log,
    log_row,
    sorted_log,
)

EIGHT_DAYS_AGO = time.time() - 8 * 86_400


def _commit_info(root: str, version: int) -> dict[str, Any]:
    """What the log holds for one version, read from its commit file (deltalake's history()
    numbers entries wrongly while appends land)."""
    path = Path(predictions_uri(root)) / "_delta_log" / f"{version:020d}.json"
    with path.open(encoding="utf-8") as commit:
        for line in commit:
            action = json.loads(line)
            if "commitInfo" in action:
                info: dict[str, Any] = action["commitInfo"]
                return info
    raise AssertionError(f"version {version} has no commitInfo")


def _age(root: str, names: set[str], when: float) -> None:
    for name in names:
        os.utime(Path(predictions_uri(root)) / name, (when, when))


def test_many_small_appends_become_one_file_with_the_same_rows(tmp_path: Path) -> None:
    root = str(tmp_path)
    rows = fill_prediction_log(root, commits=30)
    before = sorted_log(root)

    result = compact_predictions(root, None)

    assert result.table_exists
    assert (result.files_before, result.files_after) == (30, 1)
    assert (result.files_rewritten, result.files_written) == (30, 1)
    assert result.rows == rows == 90
    assert result.version_before == 29
    assert result.attempts == 1
    pd.testing.assert_frame_equal(sorted_log(root), before)
    optimize = _commit_info(root, result.optimize_version or -1)
    assert optimize["operation"] == "OPTIMIZE"
    assert optimize["readVersion"] == 29
    assert len(DeltaTable(predictions_uri(root)).file_uris()) == 1


def test_the_default_retention_keeps_replaced_files_for_time_travel(tmp_path: Path) -> None:
    root = str(tmp_path)
    fill_prediction_log(root, commits=30)
    before = sorted_log(root)
    small_files = data_files(root)

    result = compact_predictions(root, None)

    assert result.retention_hours == 168
    assert result.files_vacuumed == 0
    assert small_files < data_files(root)  # the 30 replaced files are still there
    old = DeltaTable(predictions_uri(root), version=result.version_before)
    assert len(old.file_uris()) == 30
    travelled = old.to_pyarrow_table().drop_columns(["day"]).to_pandas().sort_values("request_id")
    pd.testing.assert_frame_equal(travelled.reset_index(drop=True), before)


def test_retention_zero_deletes_the_replaced_files_and_the_log_still_reads(
    tmp_path: Path,
) -> None:
    root = str(tmp_path)
    fill_prediction_log(root, commits=30)
    before = sorted_log(root)
    small_files = data_files(root)

    result = compact_predictions(root, None, retention_hours=0)

    assert result.files_vacuumed == 30
    assert len(data_files(root)) == 1
    assert not small_files & data_files(root)
    pd.testing.assert_frame_equal(sorted_log(root), before)
    with pytest.raises(FileNotFoundError):
        DeltaTable(predictions_uri(root), version=result.version_before).to_pyarrow_table()


def test_replaced_files_the_checkpoints_forgot_are_still_deleted(tmp_path: Path) -> None:
    """A checkpoint drops a tombstone once it is older than the table's tombstone retention
    (7 days, like the default retention): the files must still go once they are old enough."""
    root = str(tmp_path)
    fill_prediction_log(root, commits=30)
    uri = predictions_uri(root)
    DeltaTable(uri).alter.set_table_properties(
        {"delta.deletedFileRetentionDuration": "interval 1 seconds"}
    )
    first = compact_predictions(root, None)
    assert first.files_vacuumed == 0
    replaced = data_files(root) - {
        Path(u).relative_to(uri).as_posix() for u in DeltaTable(uri).file_uris()
    }
    assert len(replaced) == 30
    _age(root, replaced, EIGHT_DAYS_AGO)  # as if replaced a week ago: written before that
    time.sleep(1.5)
    log = PredictionLog(uri, flush_interval_s=3600)
    for i in range(12):  # a checkpoint every 10 commits, written after the tombstones expired
        log.append(log_row(10_000 + i))
        log.flush()

    second = compact_predictions(root, None)

    assert second.files_vacuumed == 30
    assert not replaced & data_files(root)
    assert second.rows == 102
    assert len(read_predictions(root)) == 102


def test_unreferenced_files_go_when_old_but_an_append_being_written_stays(
    tmp_path: Path,
) -> None:
    root = str(tmp_path)
    fill_prediction_log(root, commits=3)
    folder = Path(predictions_uri(root))
    write_failed = folder / "part-00000-failed-write.parquet"
    being_written = folder / "part-00000-not-yet-committed.parquet"
    for stray in (write_failed, being_written):
        stray.write_bytes(b"PAR1")
    _age(root, {write_failed.name}, EIGHT_DAYS_AGO)

    compact_predictions(root, None, retention_hours=0)

    assert not write_failed.exists()
    assert being_written.exists()
    assert len(read_predictions(root)) == 9


def test_appends_racing_the_compaction_are_neither_lost_nor_doubled(tmp_path: Path) -> None:
    root = str(tmp_path)
    uri = predictions_uri(root)
    log = PredictionLog(uri, flush_interval_s=3600)
    appended = 0
    stop = threading.Event()

    def serve() -> None:
        nonlocal appended
        while not stop.is_set():
            for _ in range(2):
                log.append(log_row(appended))
                appended += 1
            log.flush()

    writer = threading.Thread(target=serve, daemon=True)
    writer.start()
    raced = 0
    try:
        deadline = time.monotonic() + 60
        while raced < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
            result = compact_predictions(root, None, retention_hours=0)
            if result.optimize_version is None:
                continue
            optimize = _commit_info(root, result.optimize_version)
            assert optimize["operation"] == "OPTIMIZE"
            raced += result.optimize_version > optimize["readVersion"] + 1  # appends between
    finally:
        stop.set()
        writer.join(timeout=60)
        log.close()

    assert raced == 3, "no append committed while a compaction was running"
    assert log.rows_dropped == 0
    assert log.last_error is None
    frame = read_predictions(root)
    assert len(frame) == appended
    assert frame["request_id"].is_unique
    assert set(frame["request_id"]) == {f"r-{i}" for i in range(appended)}


def test_a_refused_optimize_commit_is_planned_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = str(tmp_path)
    fill_prediction_log(root, commits=10)
    before = sorted_log(root)
    original = TableOptimizer.compact
    calls = 0

    def refused_once(self: TableOptimizer, *args: Any, **kwargs: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise CommitFailedError("Transaction failed: a concurrent transaction conflicted")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TableOptimizer, "compact", refused_once)

    result = compact_predictions(root, None)

    assert result.attempts == 2
    assert result.files_after == 1
    pd.testing.assert_frame_equal(sorted_log(root), before)


def test_a_compaction_racing_another_is_reported_not_passed_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deltalake lets two OPTIMIZEs of the same files both commit (the rows are then stored
    twice); the later one must say so, and must not vacuum what a restore would need."""
    root = str(tmp_path)
    fill_prediction_log(root, commits=10)
    uri = predictions_uri(root)
    original = TableOptimizer.compact

    def another_compaction_first(self: TableOptimizer, *args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(TableOptimizer, "compact", original)
        DeltaTable(uri).optimize.compact()  # the racer commits first, on the same version
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TableOptimizer, "compact", another_compaction_first)

    with pytest.raises(ConcurrentCompactionError, match=r"version\(s\) \[10\].*read at version 9"):
        compact_predictions(root, None, retention_hours=0)
    assert len(data_files(root)) == 12  # nothing vacuumed: version 9 can still be restored


def test_a_single_file_is_already_compact(tmp_path: Path) -> None:
    root = str(tmp_path)
    fill_prediction_log(root, commits=1)

    result = compact_predictions(root, None)

    assert result.optimize_version is None
    assert (result.files_before, result.files_after, result.rows) == (1, 1, 3)
    assert result.version_after == result.version_before == 0


def test_no_log_yet_is_nothing_to_compact(tmp_path: Path) -> None:
    result = compact_predictions(str(tmp_path), None)

    assert not result.table_exists
    assert (result.files_before, result.files_after, result.files_vacuumed) == (0, 0, 0)
    assert result.optimize_version is None
    assert not Path(predictions_uri(str(tmp_path))).exists()


def test_the_feature_table_is_never_touched(tmp_path: Path) -> None:
    root = str(tmp_path)
    samples = str(tmp_path / "samples")
    for i in range(3):
        write_deltalake(samples, pa.table({"Muestra": [i]}), mode="append")
    DeltaTable(samples).optimize.compact()  # its own replaced files, kept for reproducibility
    stored = set(os.listdir(samples))
    fill_prediction_log(root, commits=5)

    compact_predictions(root, None, retention_hours=0)

    assert set(os.listdir(samples)) == stored
    assert len(DeltaTable(samples, version=2).to_pyarrow_table()) == 3


@pytest.mark.parametrize("retention", [-1, 1.5, True])
def test_a_bad_retention_is_refused(tmp_path: Path, retention: Any) -> None:
    with pytest.raises(InvalidInputError, match="retention_hours"):
        compact_predictions(str(tmp_path), None, retention_hours=retention)


def _days_of_small_commits(root: str, days: int, commits: int) -> None:
    """``commits`` small commits on each of ``days`` UTC days from 2026-01-01."""
    log = PredictionLog(predictions_uri(root), flush_interval_s=3600)
    for day in range(days):
        for commit in range(commits):
            log.append(log_row(day * 86_400 + commit))
            assert log.flush() == 1


def _files_of(root: str, day: str) -> set[str]:
    return {name for name in data_files(root) if name.startswith(f"day={day}/")}


def test_compacting_one_day_leaves_the_other_days_files_untouched(tmp_path: Path) -> None:
    root = str(tmp_path)
    _days_of_small_commits(root, days=3, commits=4)
    before = sorted_log(root)
    first, second, third = (_files_of(root, f"2026-01-0{d}") for d in (1, 2, 3))

    result = compact_predictions(root, None, days=[date(2026, 1, 2)])

    assert result.days == (date(2026, 1, 2),)
    assert (result.files_rewritten, result.files_written) == (4, 1)
    assert _files_of(root, "2026-01-01") == first
    assert _files_of(root, "2026-01-03") == third
    live = {
        Path(u).relative_to(predictions_uri(root)).as_posix()
        for u in DeltaTable(predictions_uri(root)).file_uris()
    }
    assert len(live & second) == 0  # the day's 4 files were replaced by one
    assert first | third <= live
    pd.testing.assert_frame_equal(sorted_log(root), before)


def test_by_default_only_the_days_with_several_files_are_compacted(tmp_path: Path) -> None:
    root = str(tmp_path)
    _days_of_small_commits(root, days=2, commits=3)
    assert compact_predictions(root, None).days == (date(2026, 1, 1), date(2026, 1, 2))
    log = PredictionLog(predictions_uri(root), flush_interval_s=3600)
    for k in range(2):  # today's appends after last night's compaction
        log.append(log_row(2 * 86_400 + k))
        log.flush()
    compacted = _files_of(root, "2026-01-01") | _files_of(root, "2026-01-02")

    result = compact_predictions(root, None)

    assert result.days == (date(2026, 1, 3),)
    assert result.files_rewritten == 2
    assert compacted <= data_files(root)
    assert len(sorted_log(root)) == 8


def test_compacting_a_day_with_nothing_to_merge_commits_nothing(tmp_path: Path) -> None:
    root = str(tmp_path)
    _days_of_small_commits(root, days=1, commits=1)
    result = compact_predictions(root, None)
    assert result.days == ()
    assert result.optimize_version is None
    assert result.version_after == result.version_before


def test_days_that_are_not_dates_are_refused(tmp_path: Path) -> None:
    fill_prediction_log(str(tmp_path), commits=1)
    with pytest.raises(InvalidInputError, match="days must be dates"):
        compact_predictions(str(tmp_path), None, days=["2026-01-01"])  # type: ignore[list-item]
