"""Several processes appending to one prediction log: every row once, every commit kept.

Each writer is a process with its own :class:`PredictionLog` (the replicas of the service), on
a local folder and on S3 (moto's server on localhost, the object store of a plant deployment,
where deltalake commits with conditional puts).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import deltalake
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from permeability.io.predictions.partitions import is_partitioned
from permeability.io.predictions.reader import read_predictions
from permeability.io.predictions.schema import new_row_buffer, predictions_uri
from permeability.io.predictions.writer import append_table
from tests.object_store import moto_s3
from tests.unit.io.prediction_log_support import log_row

#: One replica: ``commits`` flushes of ``rows`` rows each, with request ids of its own.
REPLICA = """
import json, sys, time
from permeability.io.predictions.log import PredictionLog
from permeability.io.predictions.schema import COLUMNS, RECORD_COLUMNS
uri, name, commits, rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
options = json.loads(sys.argv[5])
log = PredictionLog(uri, flush_interval_s=3600, storage_options=options)
text = {"endpoint": "single", "version": "0.1", "Estructura": "BOPP", "structure": "BOPP",
        "decision": "approve"}
for c in range(commits):
    columns = {column: text.get(column, 1.0) for column in COLUMNS if column not in RECORD_COLUMNS}
    columns.update(timestamp=time.time(), Muestra=1,
                   request_id=[f"{name}-{c}-{k}" for k in range(rows)])
    log.append_columns(columns, rows)
    log.flush()
log.close()
print(json.dumps({"commits": log.commits, "conflicts": log.commit_conflicts,
                  "written": log.rows_written, "dropped": log.rows_dropped}))
"""


def _replicas(
    uri: str, options: dict[str, str] | None, *, processes: int, commits: int, rows: int
) -> list[dict[str, int]]:
    started = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                REPLICA,
                uri,
                f"p{k}",
                str(commits),
                str(rows),
                json.dumps(options),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(processes)
    ]
    outputs = [process.communicate(timeout=300)[0] for process in started]
    assert [process.returncode for process in started] == [0] * processes
    return [json.loads(output.strip().splitlines()[-1]) for output in outputs]


def _check_nothing_lost(
    root: str, options: dict[str, str] | None, reports: list[dict[str, int]], rows: int
) -> None:
    logged = read_predictions(root, options)
    commits = sum(report["commits"] for report in reports)
    assert sum(report["written"] for report in reports) == commits * rows == len(logged)
    assert logged["request_id"].is_unique
    assert all(report["dropped"] == 0 for report in reports)
    # Every commit kept: one table version per commit (version 0 is the first commit).
    assert DeltaTable(predictions_uri(root), storage_options=options).version() == commits - 1


def test_two_processes_appending_to_a_local_log_lose_nothing(tmp_path: Path) -> None:
    root = str(tmp_path)
    reports = _replicas(predictions_uri(root), None, processes=2, commits=15, rows=20)
    assert [report["commits"] for report in reports] == [15, 15]
    _check_nothing_lost(root, None, reports, rows=20)


def _batch(request_id: str) -> pa.Table:
    rows = new_row_buffer()
    rows.append({**log_row(0), "request_id": request_id})
    return rows.to_table()


def test_a_commit_that_lost_its_version_is_retried_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rival commit lands between the writer's read of the table and its commit: the
    commit is refused (its version is taken), counted, and retried on the new version."""
    uri = predictions_uri(str(tmp_path))
    assert append_table(uri, _batch("r-0"), None) == 0
    real_write = deltalake.write_deltalake
    rivals: list[str] = []

    def rival_commits_first(*args: Any, **kwargs: Any) -> None:
        if not rivals:
            rivals.append("rival")
            append_table(uri, _batch("rival"), None)  # a real commit of another writer
        real_write(*args, **kwargs)

    monkeypatch.setattr(deltalake, "write_deltalake", rival_commits_first)
    assert append_table(uri, _batch("r-1"), None) == 1
    assert sorted(read_predictions(str(tmp_path))["request_id"]) == ["r-0", "r-1", "rival"]
    assert DeltaTable(uri).version() == 2  # three commits, none lost


@pytest.fixture
def s3_options() -> Iterator[dict[str, str]]:
    with moto_s3() as options:
        yield options


@pytest.mark.slow
def test_two_processes_appending_to_a_log_on_s3_lose_nothing(s3_options: dict[str, str]) -> None:
    root = "s3://store/features"
    reports = _replicas(predictions_uri(root), s3_options, processes=2, commits=8, rows=10)
    _check_nothing_lost(root, s3_options, reports, rows=10)
    table = DeltaTable(predictions_uri(root), storage_options=s3_options)
    assert is_partitioned(table)
