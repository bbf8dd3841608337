"""Write a lab export the way a lab hands one over: CSV, Excel workbook or SQLite database.

Writes are atomic (a temporary file in the target folder, then a rename), so a reader or a
scheduled acquisition never sees half a file. Benchmark-only truth columns (names starting
with ``_``) are never written: an export is what the lab would have, nothing more.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import pandas as pd

from permeability.errors import InvalidInputError
from permeability.io.cells import write_sheet

#: SQLite table that holds the records of a database export.
SQLITE_TABLE: Final = "muestras"
#: Permissions of a new export (mkstemp would leave it readable by its owner only).
_EXPORT_MODE: Final = 0o644
#: Rows an .xlsx sheet holds, header included.
EXCEL_MAX_ROWS: Final = 1_048_576

_FORMATS: Final = {
    ".csv": "csv",
    ".xlsx": "xlsx",
    ".db": "sqlite",
    ".sqlite": "sqlite",
    ".sqlite3": "sqlite",
}


def export_format(path: Path) -> str:
    """``csv``, ``xlsx`` or ``sqlite`` from the file extension; anything else is refused."""
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        allowed = ", ".join(_FORMATS)
        raise InvalidInputError(
            f"export path {path} has extension {suffix or '(none)'!r}; use one of {allowed}"
        )
    return _FORMATS[suffix]


def lab_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame without benchmark truth columns (``_true_permeability``, ``_quirks``, ...)."""
    return frame.loc[:, [c for c in frame.columns if not str(c).startswith("_")]]


def write_lab_export(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` in the format its extension names; returns the final path.

    ``.csv``: comma-separated UTF-8 (decimal-comma values end up quoted). ``.xlsx``: one sheet
    via openpyxl, slow for large frames (a few thousand rows a second) and capped at 1,048,575
    rows. ``.db``/``.sqlite``/``.sqlite3``: table ``muestras`` created or replaced; other tables
    of an existing database are kept. Parent folders are created.
    """
    kind = export_format(path)
    records = lab_columns(frame)
    if kind == "xlsx" and len(records) >= EXCEL_MAX_ROWS:
        raise InvalidInputError(
            f"an .xlsx sheet holds at most {EXCEL_MAX_ROWS - 1} rows, got {len(records)}: "
            "write a .csv or .db export instead"
        )
    target = path.expanduser().absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    writers: dict[str, Callable[[pd.DataFrame, Path], None]] = {
        "csv": _write_csv,
        "xlsx": _write_xlsx,
        "sqlite": _write_sqlite,
    }
    with _atomic_target(target, keep_existing=kind == "sqlite") as temporary:
        writers[kind](records, temporary)
    return target


@contextlib.contextmanager
def _atomic_target(target: Path, *, keep_existing: bool) -> Iterator[Path]:
    """A temporary path beside ``target`` that replaces it only when writing succeeded.

    ``keep_existing`` starts from a copy of the current file (a database may hold other tables).
    """
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        if keep_existing and target.exists():
            shutil.copyfile(target, temporary)
        yield temporary
        # mkstemp makes the file private; an export is an ordinary file like the one it replaces.
        if target.exists():
            shutil.copymode(target, temporary)
        else:
            temporary.chmod(_EXPORT_MODE)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    # Cells as typed, not neutralised (io/cells.py): an export is the pipeline's *input*, and a
    # "-" placeholder or a "-0,5 µm" must reach acquisition as the lab wrote it.
    frame.to_csv(path, index=False, encoding="utf-8")


def _write_xlsx(frame: pd.DataFrame, path: Path) -> None:
    """Numbers stay numbers and text stays text (string cells, never formulas), as in a
    hand-kept workbook; missing values become empty cells. Cells as typed, as in the CSV."""
    write_sheet(frame, path, SQLITE_TABLE)


def _sqlite_types(frame: pd.DataFrame) -> dict[str, str]:
    """INTEGER/REAL for numeric columns, TEXT for text and for mixed (messy) columns."""
    types: dict[str, str] = {}
    for column, dtype in frame.dtypes.items():
        if pd.api.types.is_integer_dtype(dtype):
            types[str(column)] = "INTEGER"
        elif pd.api.types.is_float_dtype(dtype):
            types[str(column)] = "REAL"
        else:
            types[str(column)] = "TEXT"
    return types


def _write_sqlite(frame: pd.DataFrame, path: Path) -> None:
    # TEXT affinity stores a number in a mixed column as its text, so every cell keeps its
    # spelling ("16,4" stays "16,4", 16.4 becomes "16.4"); missing values become NULL.
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        frame.to_sql(
            SQLITE_TABLE,
            connection,
            if_exists="replace",
            index=False,
            dtype=_sqlite_types(frame),
            chunksize=50_000,
        )
