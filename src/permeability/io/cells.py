"""Cells of the tables people open in a spreadsheet: CSV files, CSV answers, .xlsx workbooks.

Why (issue 13): text that came from a lab file or a request (a structure, a reference, an
analyst, an extra column, even a header) goes back out in the rejected-rows file, the
``permeability predict`` output, the CSV answer of ``POST /inference/batch`` and the training
and evaluation tables. A spreadsheet reads a cell starting with ``=``, ``+``, ``-`` or ``@``
(or a tab or carriage return in front of one) as a formula: ``=HYPERLINK("http://x","y")``
becomes a live link, a DDE payload starts a program. OWASP's CSV-injection rule is applied
here, once, for every such output:

* a text cell starting with one of :data:`FORMULA_STARTS` is written with a leading ``'``:
  the spreadsheet shows text, and the reader sees exactly what was typed behind the quote;
* numbers are never touched. Numeric columns are written as numbers, and a text cell that is
  a plain number (``-5``, ``+0,5``, ``-1.2e-3``: a sign, digits, decimal points or commas, an
  exponent) is kept as typed: a spreadsheet reads it as that number, and nothing else fits in
  it. ``-5 °C``, ``-2+3`` or a lone ``-`` are not plain numbers and get the quote;
* headers are cells too.

In an .xlsx every text cell is also written as a string cell: openpyxl would otherwise make
text starting with ``=`` a formula and ``#N/A`` an error value. The control characters XML
cannot hold (C0 but tab, line feed and carriage return) are written as U+FFFD; a record that
carries one is refused at every entry anyway, with a reason naming the character
(:func:`permeability.record.identity.control_character_problem`), so only an echoed input
cell can still hold one.

What is stored is not changed (the store keeps what was typed); only what is written for a
spreadsheet is. The lab export of the generator (:mod:`permeability.io.exports`) is an *input*
the pipeline reads back, so it keeps its cells as typed and only uses :func:`write_sheet`'s
typing.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

#: What a spreadsheet takes for the start of a formula (OWASP, "CSV Injection").
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
#: Put in front of a text cell that starts like a formula.
QUOTE: Final = "'"
#: Written in an .xlsx in place of a character XML 1.0 cannot hold.
XML_STAND_IN: Final = "\ufffd"
#: Sheet name of a workbook written by :func:`write_xlsx` (pandas' default, as before).
DEFAULT_SHEET: Final = "Sheet1"
_PLAIN_NUMBER: Final = re.compile(r"[+-]?(?:\d[\d.,]*|[.,]\d+)(?:[eE][+-]?\d+)?")
_NOT_IN_XML: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def neutralise_text(text: str) -> str:
    """``text`` as a spreadsheet must receive it: behind a ``'`` when it starts like a
    formula and is not a plain number (see the module docstring)."""
    if text.startswith(FORMULA_STARTS) and _PLAIN_NUMBER.fullmatch(text) is None:
        return QUOTE + text
    return text


def neutralise_cell(value: object) -> object:
    """:func:`neutralise_text` for text; any other value (a number, a date, missing) as is."""
    return neutralise_text(value) if isinstance(value, str) else value


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell and header neutralised; numeric, boolean and date
    columns untouched. Columns with nothing to change are not copied."""
    safe = frame.copy(deep=False)
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        neutralised = _safe_column(column)
        if neutralised is not column:
            safe.isetitem(position, neutralised.array)
    names = list(frame.columns)
    headers = [neutralise_cell(name) for name in names]
    if any(new is not old for new, old in zip(headers, names, strict=True)):
        safe.columns = pd.Index(headers, dtype=object)
    return safe


def _safe_column(column: pd.Series) -> pd.Series:
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = list(column.cat.categories)
        if all(neutralise_cell(c) is c for c in categories):
            return column  # a handful of names, checked once
        column = column.astype(object)
    elif isinstance(column.dtype, pd.StringDtype):
        found = column.str.startswith(FORMULA_STARTS).fillna(False)
        return _replaced(column, np.asarray(found, dtype=bool))
    elif not pd.api.types.is_object_dtype(column.dtype):
        return column  # numbers, booleans, dates
    values = column.to_numpy(dtype=object)
    starts = np.fromiter(
        (isinstance(v, str) and v.startswith(FORMULA_STARTS) for v in values),
        dtype=bool,
        count=len(values),
    )
    return _replaced(column, starts)


def _replaced(column: pd.Series, candidates: NDArray[np.bool_]) -> pd.Series:
    """``column`` with the candidate cells neutralised (plain numbers among them stay)."""
    rows = np.flatnonzero(candidates)
    if rows.size == 0:
        return column
    values = column.to_numpy(dtype=object, copy=True)
    fixed = [neutralise_text(v) for v in values[rows]]
    if all(new is old for new, old in zip(fixed, values[rows], strict=True)):
        return column
    values[rows] = fixed
    dtype = column.dtype if isinstance(column.dtype, pd.StringDtype) else object
    return pd.Series(values, index=column.index, name=column.name, dtype=dtype)


def csv_text(frame: pd.DataFrame) -> str:
    """The frame as CSV text (no index), neutralised."""
    return spreadsheet_safe(frame).to_csv(index=False)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """The frame as a UTF-8 CSV file (no index), neutralised. Not atomic: callers that need it
    write to a temporary name and rename."""
    spreadsheet_safe(frame).to_csv(path, index=False, encoding="utf-8")


def write_xlsx(frame: pd.DataFrame, path: Path, title: str = DEFAULT_SHEET) -> None:
    """The frame as a one-sheet .xlsx, neutralised, text in string cells (:func:`write_sheet`)."""
    write_sheet(spreadsheet_safe(frame), path, title)


def write_sheet(frame: pd.DataFrame, path: Path, title: str) -> None:
    """One sheet, streamed (openpyxl write-only mode, about twice as fast as pandas' writer),
    cells as given but typed: numbers stay numbers, text is a string cell (never a formula or
    an error value), missing values are empty cells. Neutralising is the caller's choice
    (:func:`write_xlsx` does it)."""
    # Imported here: openpyxl costs ≈ 0.15 s, which every importer of this module (the
    # inference service, at start) would pay without ever writing a sheet.
    import openpyxl
    from openpyxl.cell import WriteOnlyCell

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet(title)
    sheet.append([_xlsx_value(sheet, str(name), WriteOnlyCell) for name in frame.columns])
    columns = [frame.iloc[:, i].to_numpy(dtype=object) for i in range(frame.shape[1])]
    for row in zip(*columns, strict=True):
        sheet.append([_xlsx_value(sheet, value, WriteOnlyCell) for value in row])
    workbook.save(path)


def _xlsx_value(sheet: Any, value: object, cell_type: Any) -> object:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str):
        cell = cell_type(sheet, _NOT_IN_XML.sub(XML_STAND_IN, value))
        cell.data_type = "s"  # set after the value: openpyxl infers "f" for "=..."
        return cell
    return value
