"""The compaction job: compacts the service's log, says so in its log and report, one at a time."""

from __future__ import annotations

import fcntl
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from permeability.errors import ConflictError, InvalidInputError
from permeability.io.predictions.log import PredictionLog
from permeability.io.predictions.schema import predictions_uri
from permeability.pipelines.compaction import LOCK_FILE, compact, retention_from_args
from permeability.settings import Settings
from tests.unit.io.prediction_log_support import (
    data_files,
    fill_prediction_log,
    log_row,
    old_log,
    sorted_log,
)


def test_no_log_yet_succeeds_saying_there_was_nothing_to_compact(settings: Settings) -> None:
    report = compact(settings)

    assert not report.compaction.table_exists
    assert report.summary().startswith("nothing to compact: no prediction log yet at ")
    log = (settings.paths.logs / "compact.log").read_text(encoding="utf-8")
    assert "nothing to compact" in log
    assert "done in" in log


def test_the_services_log_is_compacted_and_the_run_logged(settings: Settings) -> None:
    root = settings.resolved_feature_store_uri
    fill_prediction_log(root, commits=20)
    before = sorted_log(root)

    report = compact(settings, retention_hours=0)

    pd.testing.assert_frame_equal(sorted_log(root), before)
    assert len(data_files(root)) == 1
    done = report.compaction
    assert (done.files_before, done.files_after, done.rows, done.files_vacuumed) == (20, 1, 60, 20)
    summary = report.summary()
    assert "20 -> 1 files, 60 rows" in summary
    assert f"rewrote 20 files into 1 (OPTIMIZE, version {done.optimize_version})" in summary
    assert "vacuumed 20 files replaced more than 0 h ago" in summary
    assert report.run_id in summary
    log = (settings.paths.logs / "compact.log").read_text(encoding="utf-8")
    assert "retention 0 h" in log
    assert "20 -> 1 files, 60 rows; rewrote 20 files into 1" in log


def test_a_compacted_log_is_already_compact_the_next_night(settings: Settings) -> None:
    fill_prediction_log(settings.resolved_feature_store_uri, commits=5)
    compact(settings)

    again = compact(settings)

    assert again.compaction.optimize_version is None
    assert "already compact: nothing rewritten" in again.summary()


def test_a_second_compaction_at_the_same_time_is_refused(settings: Settings) -> None:
    fill_prediction_log(settings.resolved_feature_store_uri, commits=5)
    lock = settings.paths.ensure().data / LOCK_FILE
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a compaction is running
        with pytest.raises(ConflictError, match="another compaction of the prediction log"):
            compact(settings)
        fcntl.flock(held, fcntl.LOCK_UN)
    assert len(data_files(settings.resolved_feature_store_uri)) == 5
    assert compact(settings).compaction.files_after == 1


@pytest.mark.parametrize(
    ("args", "expected"), [({}, 168), ({"retention_hours": 0}, 0), ({"retention_hours": 24}, 24)]
)
def test_schedule_args_give_the_retention(args: dict[str, Any], expected: int) -> None:
    assert retention_from_args(args) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"retention_hours": -1}, "args.retention_hours must be a whole number of hours >= 0"),
        ({"retention_hours": 1.5}, "args.retention_hours"),
        ({"retention_hours": "168"}, "args.retention_hours"),
        ({"retention_hours": True}, "args.retention_hours"),
        ({"retention": 24}, r"unknown args \['retention'\]; allowed: retention_hours"),
    ],
)
def test_bad_schedule_args_are_refused_naming_them(args: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        retention_from_args(args)


def test_the_days_given_are_the_only_ones_compacted(settings: Settings) -> None:
    root = settings.resolved_feature_store_uri
    log = PredictionLog(predictions_uri(root), flush_interval_s=3600)
    for i in (0, 1, 86_400, 86_401):  # two commits on 2026-01-01, two on 2026-01-02
        log.append(log_row(i))
        log.flush()
    second_day = {name for name in data_files(root) if name.startswith("day=2026-01-02/")}

    report = compact(settings, days=[date(2026, 1, 1)])

    assert report.compaction.days == (date(2026, 1, 1),)
    assert "rewrote 2 files into 1" in report.summary()
    assert "days compacted: 2026-01-01" in report.summary()
    assert second_day <= data_files(root)
    assert compact(settings).compaction.days == (date(2026, 1, 2),)  # the default: what is left


def test_a_log_from_before_the_partitions_is_migrated_and_says_so(settings: Settings) -> None:
    root = settings.resolved_feature_store_uri
    old_log(Path(root), 4)
    before = sorted_log(root)

    report = compact(settings)

    assert report.compaction.migrated_version == 1
    assert "migrated to day partitions as version 1" in report.summary()
    pd.testing.assert_frame_equal(sorted_log(root), before)
    log = (settings.paths.logs / "compact.log").read_text(encoding="utf-8")
    assert "migrated to day partitions" in log
