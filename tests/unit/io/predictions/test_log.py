"""The prediction log: buffered rows land in the Delta table in few commits, and none are lost."""

from __future__ import annotations

import datetime
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from permeability.io.predictions.log import PredictionLog
from permeability.io.predictions.reader import read_predictions
from permeability.io.predictions.schema import COLUMNS, predictions_uri
from tests.unit.io.prediction_log_support import old_log, served_row


def _commits(root: Path) -> int:
    return len(DeltaTable(predictions_uri(str(root))).history())


def test_rows_wait_in_memory_until_one_commit_writes_them_all(tmp_path: Path) -> None:
    log = PredictionLog(predictions_uri(str(tmp_path)), flush_interval_s=3600)
    for i in range(250):
        log.append(
            served_row(i, decision=None if i % 2 else "approve", p_exceed=None if i % 2 else 0.01)
        )
    assert read_predictions(str(tmp_path)).empty
    assert log.pending_rows == 250
    assert log.flush() == 250
    assert log.pending_rows == 0
    assert _commits(tmp_path) == 1
    frame = read_predictions(str(tmp_path)).sort_values("Muestra").reset_index(drop=True)
    assert list(frame.columns) == list(COLUMNS)
    assert frame["Muestra"].tolist() == list(range(250))
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["timestamp"].iloc[0].isoformat() == "2026-01-01T00:00:00+00:00"
    assert frame["Estructura"].iloc[0] == "bopp "
    assert frame["structure"].iloc[0] == "BOPP"
    assert frame["decision"].iloc[0] == "approve"
    assert frame["decision"].isna().sum() == 125
    assert frame["p_exceed"].isna().sum() == 125


def test_background_flusher_batches_many_requests_into_few_commits(tmp_path: Path) -> None:
    log = PredictionLog(predictions_uri(str(tmp_path)), flush_interval_s=0.2)
    log.start()
    try:
        for i in range(2000):
            log.append(served_row(i))
        deadline = time.monotonic() + 10
        while log.rows_written < 2000 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        log.close()
    assert log.rows_written == 2000
    assert len(read_predictions(str(tmp_path))) == 2000
    assert _commits(tmp_path) <= 5


def test_close_writes_what_is_still_buffered(tmp_path: Path) -> None:
    log = PredictionLog(predictions_uri(str(tmp_path)), flush_interval_s=3600)
    log.start()
    for i in range(7):
        log.append(served_row(i))
    log.close()
    assert len(read_predictions(str(tmp_path))) == 7


def test_a_full_buffer_wakes_the_flusher_early(tmp_path: Path) -> None:
    log = PredictionLog(predictions_uri(str(tmp_path)), flush_interval_s=3600, max_buffer_rows=50)
    log.start()
    try:
        for i in range(60):
            log.append(served_row(i))
        deadline = time.monotonic() + 10
        while log.rows_written < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.rows_written >= 50
    finally:
        log.close()


def test_column_batches_accept_arrays_and_constants(tmp_path: Path) -> None:
    log = PredictionLog(predictions_uri(str(tmp_path)), flush_interval_s=3600)
    n = 1000
    columns = {name: value for name, value in served_row(0).items()}
    columns.update(
        {
            "timestamp": 1_767_225_600.0,
            "request_id": "batch-1",
            "endpoint": "batch",
            "Muestra": np.arange(n),
            "prediction": np.linspace(1, 2, n),
            "decision": np.array(["approve", None] * (n // 2), dtype=object),
            "spec_limit": None,
        }
    )
    log.append_columns(columns, n)
    log.append(served_row(5000))
    assert log.flush() == n + 1
    frame = read_predictions(str(tmp_path))
    batch = frame[frame["endpoint"] == "batch"].sort_values("Muestra")
    assert len(batch) == n
    assert batch["request_id"].unique().tolist() == ["batch-1"]
    np.testing.assert_allclose(batch["prediction"], np.linspace(1, 2, n))
    assert batch["spec_limit"].isna().all()
    assert (batch["decision"] == "approve").sum() == n // 2
    assert _commits(tmp_path) == 1


def test_column_batch_without_a_column_is_refused(tmp_path: Path) -> None:
    log = PredictionLog(predictions_uri(str(tmp_path)))
    columns = served_row(0)
    del columns["latency_ms"]
    with pytest.raises(ValueError, match="latency_ms"):
        log.append_columns(columns, 1)


def test_failed_write_keeps_the_rows_and_retries(tmp_path: Path) -> None:
    blocker = tmp_path / "store"
    blocker.write_text("a file where the store folder should be", encoding="utf-8")
    log = PredictionLog(predictions_uri(str(blocker)), flush_interval_s=3600)
    for i in range(3):
        log.append(served_row(i))
    assert log.flush() == 0
    assert log.pending_rows == 3
    assert log.last_error is not None
    blocker.unlink()
    blocker.mkdir()
    assert log.flush() == 3
    assert log.last_error is None
    assert len(read_predictions(str(blocker))) == 3


def test_beyond_the_pending_cap_the_oldest_rows_are_dropped_and_counted(tmp_path: Path) -> None:
    blocker = tmp_path / "store"
    blocker.write_text("not a folder", encoding="utf-8")
    log = PredictionLog(predictions_uri(str(blocker)), flush_interval_s=3600, max_pending_rows=5)
    for i in range(8):
        log.append(served_row(i))
    log.flush()
    assert log.pending_rows == 5
    assert log.rows_dropped == 3
    blocker.unlink()
    blocker.mkdir()
    log.flush()
    assert sorted(read_predictions(str(blocker))["Muestra"]) == [3, 4, 5, 6, 7]


def test_two_writers_append_to_the_same_table(tmp_path: Path) -> None:
    """Two uvicorn workers each have a log; neither loses rows to the other's commits."""
    logs = [PredictionLog(predictions_uri(str(tmp_path)), flush_interval_s=3600) for _ in range(2)]

    def write(log: PredictionLog, offset: int) -> None:
        for chunk in range(5):
            for i in range(20):
                log.append(served_row(offset + chunk * 20 + i))
            log.flush()

    threads = [threading.Thread(target=write, args=(log, k * 1000)) for k, log in enumerate(logs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(log.pending_rows == 0 for log in logs)
    assert len(read_predictions(str(tmp_path))) == 200


NULLABLE = [
    name for name in COLUMNS if name not in {"timestamp", "request_id", "endpoint", "version"}
]


@pytest.mark.parametrize("column", NULLABLE)
def test_a_none_is_stored_as_null_in_every_nullable_column(tmp_path: Path, column: str) -> None:
    log = PredictionLog(predictions_uri(str(tmp_path)), flush_interval_s=3600)
    log.append(served_row(0, **{column: None}))
    log.append(served_row(1))
    assert log.flush() == 2
    table = DeltaTable(predictions_uri(str(tmp_path))).to_pyarrow_table().sort_by("request_id")
    assert table.column(column).to_pylist()[0] is None
    assert table.column(column).null_count == 1


def test_a_nan_stays_nan_not_null(tmp_path: Path) -> None:
    log = PredictionLog(predictions_uri(str(tmp_path)), flush_interval_s=3600)
    log.append(served_row(0, p_exceed=float("nan")))
    log.flush()
    column = DeltaTable(predictions_uri(str(tmp_path))).to_pyarrow_table().column("p_exceed")
    assert column.null_count == 0
    assert np.isnan(column.to_pylist()[0])


def test_a_flush_of_many_conversion_steps_keeps_every_row_in_order(tmp_path: Path) -> None:
    """More rows than one conversion step (4096) and an odd remainder: nothing shifts."""
    log = PredictionLog(predictions_uri(str(tmp_path)), flush_interval_s=3600)
    n = 10_001
    for i in range(n):
        log.append(
            served_row(i, prediction=float(i), decision=None if i % 3 else "reject", upper=None)
        )
    assert log.flush() == n
    frame = read_predictions(str(tmp_path)).sort_values("Muestra").reset_index(drop=True)
    assert frame["Muestra"].tolist() == list(range(n))
    assert frame["prediction"].tolist() == [float(i) for i in range(n)]
    assert frame["request_id"].tolist() == [f"r-{i}" for i in range(n)]
    assert frame["decision"].isna().sum() == n - len(range(0, n, 3))
    assert frame["upper"].isna().all()
    assert frame["timestamp"].tolist() == [
        pd.Timestamp(1_767_225_600 + i, unit="s", tz="UTC") for i in range(n)
    ]


def test_rows_appended_by_threads_while_flushing_are_written_exactly_once(
    tmp_path: Path,
) -> None:
    log = PredictionLog(predictions_uri(str(tmp_path)), flush_interval_s=0.01)
    log.start()
    threads_n, per_thread = 4, 3000

    def serve(offset: int) -> None:
        for i in range(per_thread):
            log.append(served_row(offset + i))
            if i % 500 == 0:
                time.sleep(0.01)  # let flushes happen between and during the appends

    threads = [threading.Thread(target=serve, args=(k * 100_000,)) for k in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    muestras = read_predictions(str(tmp_path))["Muestra"].tolist()
    expected = [k * 100_000 + i for k in range(threads_n) for i in range(per_thread)]
    assert sorted(muestras) == expected
    assert log.commits > 1


def test_a_row_with_an_unstorable_value_is_dropped_alone_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = PredictionLog(predictions_uri(str(tmp_path)), flush_interval_s=3600)
    for i in range(5):
        log.append(served_row(i, Grados_C="hot" if i == 2 else 38.0))
    with caplog.at_level("ERROR", logger="permeability.prediction_log"):
        assert log.flush() == 4
    assert log.rows_dropped == 1
    assert "Grados_C" in caplog.text
    assert sorted(read_predictions(str(tmp_path))["Muestra"]) == [0, 1, 3, 4]
    log.append(served_row(9))
    assert log.flush() == 1


def test_record_fields_are_stored_with_their_types(tmp_path: Path) -> None:
    log = PredictionLog(predictions_uri(str(tmp_path)), flush_interval_s=3600)
    log.append(served_row(0))
    log.append(served_row(1, CONSECUTIVO=None, Referencia=None, Fecha=None))
    assert log.flush() == 2
    table = DeltaTable(predictions_uri(str(tmp_path))).to_pyarrow_table().sort_by("request_id")
    assert table.schema.field("Fecha").type == pa.date32()
    assert table.column("CONSECUTIVO").to_pylist() == ["C-0", None]
    assert table.column("Referencia").to_pylist() == ["REF-1", None]
    assert table.column("Fecha").to_pylist() == [datetime.date(2026, 1, 2), None]


def test_a_fecha_that_is_not_a_date_is_refused_and_counted(tmp_path: Path) -> None:
    log = PredictionLog(predictions_uri(str(tmp_path)), flush_interval_s=3600)
    log.append(served_row(0, Fecha="2026-01-02"))  # text, not a date: a caller's bug
    log.append(served_row(1, Fecha=datetime.datetime(2026, 1, 2, 10)))  # a time is not a test date
    assert log.rows_dropped == 2
    assert log.flush() == 0


@pytest.mark.parametrize("helper_process", [False, True])
def test_a_log_written_before_the_record_fields_takes_new_rows(
    tmp_path: Path, helper_process: bool
) -> None:
    uri = old_log(tmp_path, 3)
    log = PredictionLog(uri, flush_interval_s=3600, write_in_subprocess=helper_process)
    try:
        log.append(served_row(10))
        log.append_columns({**served_row(11), "Muestra": np.array([11, 12])}, 2)
        assert log.flush() == 3
        log.append(served_row(13))  # a second append: the table already has the columns
        assert log.flush() == 1
    finally:
        log.close()
    frame = read_predictions(str(tmp_path)).sort_values("Muestra")
    assert len(frame) == 7
    old, new = frame[frame["Muestra"] < 10], frame[frame["Muestra"] >= 10]
    assert old["CONSECUTIVO"].isna().all()
    assert new["CONSECUTIVO"].tolist() == ["C-10", "C-11", "C-11", "C-13"]
    assert new["Fecha"].tolist() == [datetime.date(2026, 1, 2)] * 4
    assert DeltaTable(uri).schema().to_arrow().field("Fecha").type == pa.date32()  # type: ignore[attr-defined]


def test_column_batches_may_leave_out_the_record_fields(tmp_path: Path) -> None:
    log = PredictionLog(predictions_uri(str(tmp_path)), flush_interval_s=3600)
    columns = {
        k: v for k, v in served_row(0).items() if k not in ("CONSECUTIVO", "Referencia", "Fecha")
    }
    log.append_columns({**columns, "Muestra": np.arange(4)}, 4)
    assert log.flush() == 4
    assert read_predictions(str(tmp_path))["Fecha"].isna().all()
