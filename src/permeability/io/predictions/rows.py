"""Single prediction rows buffered column-wise in typed arrays, for the prediction log.

Why: the inference service appends one row per answer (thousands a second per worker) and
turns the buffer into an Arrow table every few seconds. Kept as Python lists, that conversion
reads every value back as a Python object while holding the GIL (≈ 40 ms for 5 s of rows),
and the serving thread waits for the GIL meanwhile: measured on the 2-core machine kind, the
log's conversion and hand-over lifted p99 at 32 connections from ≈ 6.3 ms (no log) to ≈ 8–9 ms.
Here numbers (and dates, as day counts) go straight into C arrays (``array.array``), repeated
text into small dictionaries of codes, so the conversion is a few vectorised Arrow/numpy calls
over buffers: no Python object is read back except the request ids, which are unique by design.

A missing value (``None``) is null in the table; a float NaN stays NaN: nulls are remembered
by position, not encoded in the values. A value its column cannot hold (text where a number
belongs, an integer beyond 64 bits) is refused at :meth:`RowBuffer.append` with the column
named, and the buffer is left as it was (no half-appended row).

A scored batch arrives column-wise already and becomes a table at once
(:func:`table_from_columns`), with the same column types.
"""

from __future__ import annotations

import datetime
import time
from array import array
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import pyarrow as pa

#: Rows per conversion step of the request ids; a step holds the GIL well under 1 ms.
_SLICE_ROWS: Final = 4096
#: Pause after each step: hands the GIL to a request thread waiting for it (``sleep(0)``
#: would not: the converting thread usually takes the GIL straight back).
_YIELD_S: Final = 0.00005
_NO_CODE: Final = -1


class UnstorableValueError(ValueError):
    """A value that the log's column cannot hold."""

    def __init__(self, column: str, problem: str) -> None:
        super().__init__(f"column {column!r}: {problem}")
        self.column = column


def timestamps(values: Any) -> pa.Array:
    """Epoch seconds (floats) as the log's UTC microsecond timestamps."""
    micros = np.round(np.asarray(values, dtype=np.float64) * 1e6).astype(np.int64)
    return pa.array(micros, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))


class _Codes:
    """A text column as int32 codes into the distinct values seen (``-1``: null)."""

    __slots__ = ("codes", "lookup", "required", "values")

    def __init__(self, *, required: bool) -> None:
        self.required = required
        self.codes = array("i")
        self.values: list[str] = []
        self.lookup: dict[str, int] = {}

    def append(self, value: Any) -> None:
        if value is None:
            if self.required:
                raise TypeError("a value is required")
            self.codes.append(_NO_CODE)
            return
        code = self.lookup.get(value)
        if code is None:
            if not isinstance(value, str):
                raise TypeError(f"expected text, got {type(value).__name__} {value!r:.40}")
            code = self.lookup[value] = len(self.values)
            self.values.append(value)
        self.codes.append(code)

    def to_arrow(self) -> pa.Array:
        codes = np.frombuffer(self.codes, dtype=np.int32)
        encoded = pa.DictionaryArray.from_arrays(
            pa.array(codes, mask=codes == _NO_CODE), pa.array(self.values, type=pa.string())
        )
        return encoded.cast(pa.string())


class _Numbers:
    """A float64 or int64 column in a C array; ``None`` kept as a null position."""

    __slots__ = ("data", "nulls", "required", "type")

    def __init__(self, type_: pa.DataType, *, required: bool) -> None:
        self.type = type_
        self.required = required
        self.data = array("q" if pa.types.is_integer(type_) else "d")
        self.nulls: list[int] = []

    def append(self, value: Any) -> None:
        if value is None:
            if self.required:
                raise TypeError("a value is required")
            self.nulls.append(len(self.data))
            self.data.append(0)
        else:
            self.data.append(value)

    def numpy(self) -> np.ndarray[Any, Any]:
        return np.frombuffer(self.data, dtype=np.int64 if self.data.typecode == "q" else float)

    def to_arrow(self) -> pa.Array:
        mask = None
        if self.nulls:
            mask = np.zeros(len(self.data), dtype=bool)
            mask[self.nulls] = True
        return pa.array(self.numpy(), type=self.type, mask=mask)


class _Texts:
    """Text that is new on (almost) every row, such as request ids: a plain list."""

    __slots__ = ("items", "required")

    def __init__(self, *, required: bool) -> None:
        self.required = required
        self.items: list[Any] = []

    def append(self, value: Any) -> None:
        if value is None and self.required:
            raise TypeError("a value is required")
        if value is not None and not isinstance(value, str):
            raise TypeError(f"expected text, got {type(value).__name__} {value!r:.40}")
        self.items.append(value)

    def to_arrow(self) -> pa.ChunkedArray:
        pieces = []
        for start in range(0, len(self.items), _SLICE_ROWS):
            pieces.append(pa.array(self.items[start : start + _SLICE_ROWS], type=pa.string()))
            time.sleep(_YIELD_S)
        return pa.chunked_array(pieces, type=pa.string())


#: ``date.toordinal()`` of 1970-01-01: date32 counts days from there.
_EPOCH_ORDINAL: Final = 719_163


class _Dates:
    """A date column (the test date) as int32 days since 1970-01-01; ``None`` is null."""

    __slots__ = ("days", "nulls", "required")

    def __init__(self, *, required: bool) -> None:
        self.required = required
        self.days = array("i")
        self.nulls: list[int] = []

    def append(self, value: Any) -> None:
        if value is None:
            if self.required:
                raise TypeError("a value is required")
            self.nulls.append(len(self.days))
            self.days.append(0)
            return
        if not isinstance(value, datetime.date) or isinstance(value, datetime.datetime):
            raise TypeError(f"expected a date, got {type(value).__name__} {value!r:.40}")
        self.days.append(value.toordinal() - _EPOCH_ORDINAL)

    def to_arrow(self) -> pa.Array:
        mask = None
        if self.nulls:
            mask = np.zeros(len(self.days), dtype=bool)
            mask[self.nulls] = True
        days = np.frombuffer(self.days, dtype=np.int32)
        return pa.array(days, type=pa.int32(), mask=mask).cast(pa.date32())


_Column = _Codes | _Numbers | _Texts | _Dates


class RowBuffer:
    """Rows of ``schema`` (its ``timestamp`` column given as epoch seconds) until
    :meth:`to_table`. ``unique_text`` names the text columns whose values rarely repeat.
    Not thread-safe: the prediction log appends under its lock."""

    def __init__(self, schema: pa.Schema, *, unique_text: tuple[str, ...] = ()) -> None:
        self.schema = schema
        self.rows = 0
        self._columns: dict[str, _Column] = {}
        for field in schema:
            required = not field.nullable
            if field.name == "timestamp" or pa.types.is_floating(field.type):
                self._columns[field.name] = _Numbers(pa.float64(), required=required)
            elif pa.types.is_integer(field.type):
                self._columns[field.name] = _Numbers(pa.int64(), required=required)
            elif pa.types.is_date32(field.type):
                self._columns[field.name] = _Dates(required=required)
            elif field.name in unique_text:
                self._columns[field.name] = _Texts(required=required)
            else:
                self._columns[field.name] = _Codes(required=required)

    def __len__(self) -> int:
        return self.rows

    def append(self, row: Mapping[str, Any]) -> None:
        """Add one row (a missing key is null); raises :class:`UnstorableValueError` for a
        value the column cannot hold and for a missing one in a non-nullable column."""
        name = ""
        try:
            for name, column in self._columns.items():
                column.append(row.get(name))
        except (TypeError, OverflowError, ValueError) as exc:
            self._truncate()
            raise UnstorableValueError(name, f"{exc} (value {row.get(name)!r:.60})") from None
        self.rows += 1

    def _truncate(self) -> None:
        """Undo the columns already appended for a refused row."""
        for column in self._columns.values():
            if isinstance(column, _Codes):
                del column.codes[self.rows :]
            elif isinstance(column, _Numbers):
                del column.data[self.rows :]
                while column.nulls and column.nulls[-1] >= self.rows:
                    column.nulls.pop()
            elif isinstance(column, _Dates):
                del column.days[self.rows :]
                while column.nulls and column.nulls[-1] >= self.rows:
                    column.nulls.pop()
            else:
                del column.items[self.rows :]

    def to_table(self) -> pa.Table:
        arrays = []
        for field in self.schema:
            column = self._columns[field.name]
            if field.name == "timestamp" and isinstance(column, _Numbers):
                arrays.append(timestamps(column.numpy()))
            else:
                arrays.append(column.to_arrow())
        return pa.Table.from_arrays(arrays, schema=self.schema)


# -- a batch given column-wise ---------------------------------------------------------------


def table_from_columns(
    schema: pa.Schema, columns: Mapping[str, Any], count: int, *, optional: tuple[str, ...] = ()
) -> pa.Table:
    """An Arrow table of ``schema`` from arrays of ``count`` values, or one scalar for a
    column that is the same on every row (a scored batch's request id, version, level).

    The ``timestamp`` column is epoch seconds; the ``optional`` columns may be left out (null),
    every other one must be given.
    """
    missing = [f.name for f in schema if f.name not in columns and f.name not in optional]
    if missing:
        raise ValueError(f"prediction log rows lack columns {missing}")
    arrays = []
    for field in schema:
        value: Any = columns.get(field.name)
        if np.ndim(value) == 0:
            arrays.append(_constant(value, field, count))
        elif field.name == "timestamp":
            arrays.append(timestamps(value))
        elif pa.types.is_floating(field.type):
            arrays.append(pa.array(np.asarray(value, dtype=np.float64), type=pa.float64()))
        elif pa.types.is_integer(field.type):
            arrays.append(pa.array(np.asarray(value, dtype=np.int64), type=pa.int64()))
        elif pa.types.is_date32(field.type):
            arrays.append(_dates(value))
        else:
            arrays.append(
                pa.array(np.asarray(value, dtype=object), type=pa.string(), from_pandas=True)
            )
    return pa.Table.from_arrays(arrays, schema=schema)


def _constant(value: Any, field: pa.Field, count: int) -> pa.Array:
    """``count`` copies of one value without a Python list of ``count`` items."""
    if field.name == "timestamp":
        return timestamps(np.full(count, value, dtype=np.float64))
    if value is None:
        return pa.nulls(count, type=field.type)
    if pa.types.is_date32(field.type):
        return _dates(np.full(count, value, dtype="datetime64[D]"))
    if pa.types.is_string(field.type):
        indices = pa.array(np.zeros(count, dtype=np.int32))
        return pa.DictionaryArray.from_arrays(indices, pa.array([value])).cast(pa.string())
    return pa.array(np.full(count, value), type=field.type)


def _dates(values: Any) -> pa.Array:
    """Dates (numpy ``datetime64``, ``datetime.date`` objects, None/NaT for missing) as date32."""
    days = np.asarray(values, dtype="datetime64[D]")
    missing = np.isnat(days)
    numbers = days.astype(np.int64).astype(np.int32)
    return pa.array(numbers, type=pa.int32(), mask=missing if missing.any() else None).cast(
        pa.date32()
    )
