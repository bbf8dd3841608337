"""Open a lab source by what it is: a SQL URL, an .xlsx workbook, or else a delimited text file.

Checks the ``--table``/``--query`` combination first (they apply to SQL sources only) and
closes the source when the caller is done with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from permeability.errors import InvalidInputError, NotFoundError
from permeability.io.sources.base import RawSource
from permeability.io.sources.csv import CsvSource
from permeability.io.sources.excel import ExcelSource
from permeability.io.sources.secrets import is_sql_url, mask_source
from permeability.io.sources.sql import SqlSource

EXCEL_SUFFIXES: Final = (".xlsx", ".xlsm")


@contextmanager
def open_source(
    source: str, *, table: str | None = None, query: str | None = None, chunk_rows: int = 200_000
) -> Iterator[RawSource]:
    """Open a file path or SQL URL; checks the --table/--query combination first."""
    opened: RawSource
    if is_sql_url(source):
        if (table is None) == (query is None):
            raise InvalidInputError(
                f"SQL source {mask_source(source)} needs exactly one of --table or --query"
            )
        opened = SqlSource(source, table=table, query=query, chunk_rows=chunk_rows)
    else:
        if table is not None or query is not None:
            raise InvalidInputError(
                f"--table and --query apply to SQL sources, not to file {source}"
            )
        opened = _open_file(Path(source.removeprefix("file://")).expanduser(), chunk_rows)
    try:
        yield opened
    finally:
        opened.close()


def _open_file(path: Path, chunk_rows: int) -> RawSource:
    if not path.is_file():
        raise NotFoundError(f"source file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        return ExcelSource(path, chunk_rows)
    if suffix == ".xls":
        raise InvalidInputError(f"source {path}: .xls workbooks are not supported; save as .xlsx")
    return CsvSource(path, chunk_rows)
