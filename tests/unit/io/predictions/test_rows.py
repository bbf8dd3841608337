"""Typed row buffers: what goes in comes out as the same Arrow table a list conversion gives."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pytest

from permeability.io.predictions.rows import RowBuffer, UnstorableValueError, timestamps

SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("version", pa.string(), nullable=False),
        pa.field("Muestra", pa.int64()),
        pa.field("Estructura", pa.string()),
        pa.field("prediction", pa.float64()),
        pa.field("p_exceed", pa.float64()),
    ]
)


def _row(i: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "timestamp": 1_767_225_600.25 + i,
        "request_id": f"r-{i}",
        "version": "0.1",
        "Muestra": i,
        "Estructura": ["BOPP", "bopp ", "PET/LDPE"][i % 3],
        "prediction": 5.5 + i,
        "p_exceed": 0.2,
    }
    row.update(overrides)
    return row


def _expected(rows: list[dict[str, Any]]) -> pa.Table:
    """The straightforward conversion: one Python list per column."""
    arrays = [timestamps([r["timestamp"] for r in rows])]
    arrays += [pa.array([r.get(f.name) for r in rows], type=f.type) for f in SCHEMA][1:]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _buffer(rows: list[dict[str, Any]]) -> RowBuffer:
    buffer = RowBuffer(SCHEMA, unique_text=("request_id",))
    for row in rows:
        buffer.append(row)
    return buffer


def test_rows_come_out_as_the_list_conversion_gives_them() -> None:
    rows = [_row(i) for i in range(10_000)]  # more than one conversion step of the ids
    buffer = _buffer(rows)
    assert len(buffer) == len(rows)
    table = buffer.to_table()
    assert table.schema == SCHEMA
    assert table.equals(_expected(rows))
    assert table.column("timestamp")[0].as_py().isoformat() == "2026-01-01T00:00:00.250000+00:00"


def test_none_is_null_and_nan_stays_nan() -> None:
    rows = [
        _row(0, Muestra=None, Estructura=None, prediction=None),
        _row(1, p_exceed=math.nan),
        _row(2, p_exceed=None),
        _row(3, Estructura="BOPP"),
    ]
    table = _buffer(rows).to_table()
    assert table.drop_columns(["p_exceed"]).equals(_expected(rows).drop_columns(["p_exceed"]))
    assert table.column("Muestra").to_pylist() == [None, 1, 2, 3]
    assert table.column("Estructura").to_pylist() == [None, "bopp ", "PET/LDPE", "BOPP"]
    assert table.column("prediction").null_count == 1
    p_exceed = table.column("p_exceed").to_pylist()
    assert math.isnan(p_exceed[1])
    assert p_exceed[2] is None
    assert table.column("p_exceed").null_count == 1


def test_a_column_of_only_nulls() -> None:
    rows = [_row(i, Estructura=None, p_exceed=None) for i in range(3)]
    table = _buffer(rows).to_table()
    assert table.column("Estructura").null_count == 3
    assert table.column("p_exceed").null_count == 3


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("prediction", "5.5"),
        ("Muestra", 2.5),
        ("Muestra", 2**70),
        ("Estructura", 7),
        ("Estructura", ["BOPP"]),
        ("request_id", 17),
        ("request_id", None),
        ("version", None),
        ("timestamp", None),
    ],
)
def test_a_value_the_column_cannot_hold_is_refused_naming_it_and_leaves_the_buffer_intact(
    column: str, value: Any
) -> None:
    buffer = _buffer([_row(0), _row(1)])
    with pytest.raises(UnstorableValueError, match=column) as refused:
        buffer.append(_row(2, **{column: value}))
    assert refused.value.column == column
    buffer.append(_row(3))
    assert len(buffer) == 3
    assert buffer.to_table().equals(_expected([_row(0), _row(1), _row(3)]))


def test_a_missing_key_is_null_where_the_column_allows_it() -> None:
    row = _row(0)
    del row["p_exceed"]
    assert _buffer([row]).to_table().column("p_exceed").to_pylist() == [None]
    del row["version"]
    with pytest.raises(UnstorableValueError, match="version"):
        _buffer([row])
