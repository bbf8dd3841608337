"""Lab tables in and out of batch scoring: CSV/xlsx files, CSV text, JSON records.

Every cell of a file is read as text, so scoring parses it exactly as acquisition does
(decimal commas, units, placeholders); nothing is converted behind the row checks' back.
"""

from __future__ import annotations

import io
import math
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from permeability.errors import InvalidInputError
from permeability.io.cells import csv_text, write_csv, write_xlsx
from permeability.io.sources.csv import decode_text, sniff_delimiter
from permeability.io.sources.excel import describe_start, reader_reason
from permeability.scoring.rows import INPUT_FIELDS

SUPPORTED_FILES: Final = (".csv", ".xlsx")


def read_table(source: Path | bytes, name: str) -> pd.DataFrame:
    """A CSV (encoding and delimiter sniffed as acquisition does) or .xlsx file, cells as text."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_FILES:
        raise InvalidInputError(
            f"input file {name} must be one of {', '.join(SUPPORTED_FILES)}, got '{suffix or 'no extension'}'"
        )
    data = source.read_bytes() if isinstance(source, Path) else source
    if not data.strip():
        raise InvalidInputError(f"input file {name} is empty")
    if suffix == ".xlsx":
        return _read_xlsx(data, name)
    return _read_csv(data, name)


def _read_xlsx(data: bytes, name: str) -> pd.DataFrame:
    try:
        return pd.read_excel(io.BytesIO(data), dtype=str, keep_default_na=False)
    except Exception as exc:  # whatever the bytes provoke; named, never a traceback
        raise InvalidInputError(
            f"input file {name} is not an Excel workbook (.xlsx): {describe_start(data)} "
            f"(reader: {reader_reason(exc)})"
        ) from None


def _read_csv(data: bytes, name: str) -> pd.DataFrame:
    text = decode_text(data, f"input file {name}")
    header = text.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    try:
        return pd.read_csv(
            io.StringIO(text),
            sep=sniff_delimiter(header),
            dtype=str,
            keep_default_na=False,
            engine="c",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeError) as exc:
        raise InvalidInputError(f"input file {name} is not a readable CSV: {exc}") from exc


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``.csv`` (UTF-8) or ``.xlsx``, neutralised for a spreadsheet
    (:mod:`permeability.io.cells`); atomically (temp file, then rename)."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_FILES:
        raise InvalidInputError(f"output file {path} must end in {' or '.join(SUPPORTED_FILES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial{suffix}")
    try:
        if suffix == ".csv":
            write_csv(frame, partial)
        else:
            write_xlsx(frame, partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def to_csv_text(frame: pd.DataFrame) -> str:
    """The CSV answer of ``POST /inference/batch``, neutralised as the files are."""
    return csv_text(frame)


def jsonable_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts: NaN and infinities become null (JSON has neither)."""
    records: list[dict[str, Any]] = [
        {str(k): v for k, v in row.items()}
        for row in frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    ]
    for record in records:
        for key, value in record.items():
            if isinstance(value, float) and not math.isfinite(value):
                record[key] = None
    return records


def records_frame(records: Sequence[Any]) -> tuple[pd.DataFrame, NDArray[np.bool_]]:
    """JSON records as a frame (non-object items become empty rows, flagged in the mask)."""
    is_object = np.array([isinstance(r, Mapping) for r in records], dtype=bool)
    rows = [dict(r) if isinstance(r, Mapping) else {} for r in records]
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=list(INPUT_FIELDS))
    frame.index = pd.RangeIndex(len(rows))
    return frame.astype(object) if len(frame.columns) else frame, ~is_object
