"""The monitoring snapshot on disk: written whole, read back, and a clear error without one."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from permeability.io.monitoring_snapshot import (
    NoSnapshotError,
    read_snapshot,
    snapshot_path,
    write_snapshot,
)
from permeability.monitoring.events import Event
from permeability.monitoring.reports import EvaluationMetrics
from permeability.monitoring.snapshot import MonitoringSnapshot
from tests.monitoring_snapshots import bare_snapshot


def _snapshot(champion: str = "v1") -> MonitoringSnapshot:
    event = Event(kind="drift", severity="warning", subject=champion, figures={"rows": 4})
    return bare_snapshot(champion, [event])


def test_a_written_snapshot_reads_back_equal(tmp_path: Path) -> None:
    written = _snapshot()
    write_snapshot(tmp_path / "monitoring", written)
    assert read_snapshot(tmp_path / "monitoring") == written


def test_a_new_snapshot_replaces_the_old_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    write_snapshot(tmp_path, _snapshot("v1"))
    write_snapshot(tmp_path, _snapshot("v2"))
    assert read_snapshot(tmp_path).champion == "v2"
    assert [p.name for p in tmp_path.iterdir()] == ["latest.json"]


def test_no_snapshot_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(NoSnapshotError, match="permeability evaluate"):
        read_snapshot(tmp_path)


def test_an_unreadable_snapshot_is_named_not_a_crash(tmp_path: Path) -> None:
    snapshot_path(tmp_path).write_text('{"champion": 3}', encoding="utf-8")
    with pytest.raises(NoSnapshotError, match="cannot be read"):
        read_snapshot(tmp_path)


def test_figures_that_are_not_finite_read_back_as_themselves(tmp_path: Path) -> None:
    recent = EvaluationMetrics(
        n=1,
        tests=1,
        level=0.9,
        metrics={"r2": math.nan, "mae": 0.1, "mean_width": math.inf},
        per_structure=[],
        decisions={},
        first=None,
        last=None,
    )
    write_snapshot(tmp_path, _snapshot().model_copy(update={"recent": recent}))
    read = read_snapshot(tmp_path).recent
    assert read is not None
    assert math.isnan(read.metrics["r2"])
    assert read.metrics["mean_width"] == math.inf
    assert read.metrics["mae"] == 0.1
