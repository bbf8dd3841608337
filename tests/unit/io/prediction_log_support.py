"""Prediction-log rows, a log made of many small commits, and a log from before the record fields."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from permeability.io.predictions.log import PredictionLog
from permeability.io.predictions.reader import read_predictions
from permeability.io.predictions.schema import RECORD_COLUMNS, SCHEMA, predictions_uri
from permeability.io.predictions.writer import TABLE_CONFIGURATION


def log_row(i: int) -> dict[str, Any]:
    """One served prediction; ``request_id`` ``r-<i>`` is unique per ``i``."""
    return {
        "timestamp": 1_767_225_600.0 + i,  # 2026-01-01T00:00:00Z + i s
        "request_id": f"r-{i}",
        "endpoint": "single",
        "version": "0.1",
        "Muestra": i,
        "Grados_C": 38.0,
        "Porc_Humedad": 90.0,
        "Estructura": "bopp ",
        "structure": "BOPP",
        "Calibre1": 21.0,
        "Calibre2": 21.0,
        "Calibre3": 21.0,
        "Calibre4": 21.0,
        "Calibre5": 21.0,
        "CalibreProm": 21.0,
        "prediction": 5.5 + i / 1000,
        "lower": 4.5,
        "upper": 6.5,
        "level": 0.9,
        "spec_limit": 6.0 if i % 3 else None,
        "p_exceed": 0.2,
        "decision": "retest" if i % 3 else None,
        "latency_ms": 0.3,
    }


def fill_prediction_log(feature_store_uri: str, *, commits: int, rows_per_commit: int = 3) -> int:
    """Append ``commits`` small commits the way the service does (a flush every few rows)."""
    log = PredictionLog(predictions_uri(feature_store_uri), flush_interval_s=3600)
    for commit in range(commits):
        for k in range(rows_per_commit):
            log.append(log_row(commit * rows_per_commit + k))
        assert log.flush() == rows_per_commit
    return commits * rows_per_commit


def sorted_log(feature_store_uri: str) -> pd.DataFrame:
    """The whole log in a stable row order, to compare reads before and after a rewrite."""
    frame = read_predictions(feature_store_uri)
    return frame.sort_values("request_id").reset_index(drop=True)


def data_files(feature_store_uri: str) -> set[str]:
    """Parquet files stored in the log's folder (its day partitions included), referenced or
    not, by their path below it."""
    root = Path(predictions_uri(feature_store_uri))
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*.parquet")
        if not p.relative_to(root).as_posix().startswith("_delta_log/")
    }


def served_row(i: int, **overrides: Any) -> dict[str, Any]:
    """One served prediction with the record fields, judged at a limit on every row (unlike
    :func:`log_row`); ``overrides`` replace values."""
    return {
        **log_row(i),
        "prediction": 5.5,
        "spec_limit": 6.0,
        "decision": "retest",
        "CONSECUTIVO": f"C-{i}",
        "Referencia": "REF-1",
        "Fecha": datetime.date(2026, 1, 2),
        **overrides,
    }


def old_log(tmp_path: Path, rows: int) -> str:
    """A log as the release before issue 11 wrote it: its schema without the record fields."""
    old_schema = pa.schema([f for f in SCHEMA if f.name not in RECORD_COLUMNS])
    old_rows = [
        {k: v for k, v in served_row(i).items() if k not in RECORD_COLUMNS} for i in range(rows)
    ]
    for row in old_rows:
        row["timestamp"] = pd.Timestamp(row["timestamp"], unit="s", tz="UTC")
    table = pa.Table.from_pylist(old_rows, schema=old_schema)
    uri = predictions_uri(str(tmp_path))
    write_deltalake(uri, table, mode="append", configuration=TABLE_CONFIGURATION)
    assert "CONSECUTIVO" not in DeltaTable(uri).schema().to_arrow().names  # type: ignore[attr-defined]
    return uri
