"""Extract raw lab records, as text, from a CSV file, an .xlsx workbook or any SQLAlchemy database.

Everything is read as text: turning "16,4" or "16.4 µm" into numbers is the cleaning step's
job (:mod:`permeability.record.cleaning`), so every source gets exactly the same rules and a
rejected row can be shown as it was typed.

A source yields chunks of at most ``chunk_rows`` rows whose columns already carry the seed's
names, plus ``source_row``: the record's 1-based position among the source's records (the
header and blank lines are not counted; in a spreadsheet the record sits on row
``source_row + 1`` when there are no blank rows).

Text files are decoded by their byte-order mark (UTF-8, UTF-16 LE/BE, UTF-32: Excel's "Unicode
text" export is UTF-16 with a BOM), else as UTF-8 when the whole file is UTF-8, else latin-1.
A file named ``.xlsx`` that is not a workbook (a zip of something else, an HTML page, random
bytes) is refused saying what it looks like. SQL sources live in
:mod:`permeability.io.sources.sql` (read-only transaction, query check). Passwords never appear
in labels, messages or logs.
"""

from __future__ import annotations

import codecs
import csv
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from permeability.errors import InvalidInputError, NotFoundError
from permeability.record.cleaning import REASON, SOURCE_ROW

logger = logging.getLogger(__name__)

CSV_SUFFIXES: Final = (".csv", ".txt", ".tsv")
EXCEL_SUFFIXES: Final = (".xlsx", ".xlsm")
DELIMITERS: Final = (",", ";", "\t", "|")
_URL_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_ENCODING_PROBE_BYTES: Final = 1 << 23
#: Byte-order marks of the wide encodings, UTF-32 first (its LE mark starts with UTF-16 LE's).
#: Python's "utf-16"/"utf-32" codecs read the mark and drop it.
_WIDE_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class RawSource(Protocol):
    """An opened source: its masked label, its header, and its records in chunks."""

    label: str
    headers: tuple[str, ...]

    def chunks(self, columns: Mapping[str, str]) -> Iterator[RawChunk]:
        """Records in source order; ``columns`` maps source header -> seed column name."""
        ...

    def close(self) -> None:
        """Release files and connections."""
        ...


@dataclass(frozen=True)
class RawChunk:
    """Well-formed records (text, seed names, ``source_row``) and records that could not be split.

    ``malformed`` has the same columns plus ``reason`` (a CSV line with the wrong number of
    fields: the values are kept by position so nothing typed is lost).
    """

    records: pd.DataFrame
    malformed: pd.DataFrame


# --------------------------------------------------------------------------- secrets


def is_sql_url(source: str) -> bool:
    """A SQLAlchemy URL (``dialect+driver://...``); ``file://`` and plain paths are files."""
    return bool(_URL_SCHEME.match(source)) and not source.lower().startswith("file://")


def source_secrets(source: str) -> list[str]:
    """Passwords inside a URL (userinfo or a ``password=`` parameter), to be masked everywhere."""
    if not is_sql_url(source):
        return []
    secrets: list[str] = []
    try:
        parts = urlsplit(source)
        if parts.password:
            secrets.append(parts.password)
        secrets.extend(v for k, v in parse_qsl(parts.query) if "password" in k.lower() and v)
    except ValueError:
        match = re.search(r"://[^:/@\s]*:([^@\s]+)@", source)
        if match:
            secrets.append(match.group(1))
    raw_userinfo = re.search(r"://[^:/@\s]*:([^@\s]+)@", source)
    if raw_userinfo:
        secrets.append(raw_userinfo.group(1))
    return sorted({s for s in secrets if s}, key=len, reverse=True)


def mask_secrets(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def mask_source(source: str) -> str:
    """The source as it may be shown: a URL's password replaced by ``***``."""
    return mask_secrets(source, source_secrets(source))


# --------------------------------------------------------------------------- opening


@contextmanager
def open_source(
    source: str, *, table: str | None = None, query: str | None = None, chunk_rows: int = 200_000
) -> Iterator[RawSource]:
    """Open a file path or SQL URL; checks the --table/--query combination first."""
    opened: RawSource
    if is_sql_url(source):
        # Imported here: SQLAlchemy loads only for SQL sources (and sql_source imports this module).
        from permeability.io.sources.sql import SqlSource

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
        # Imported here: openpyxl loads only for workbooks (and excel_source imports this module).
        from permeability.io.sources.excel import ExcelSource

        return ExcelSource(path, chunk_rows)
    if suffix == ".xls":
        raise InvalidInputError(f"source {path}: .xls workbooks are not supported; save as .xlsx")
    return CsvSource(path, chunk_rows)


def empty_source(label: str) -> InvalidInputError:
    return InvalidInputError(f"source {label} is empty (no header row)")


def text_frame(columns: Mapping[str, Sequence[str | None]], first_row: int, n: int) -> pd.DataFrame:
    frame = pd.DataFrame(
        {name: pd.Series(list(values), dtype="str") for name, values in columns.items()}
    )
    frame[SOURCE_ROW] = np.arange(first_row, first_row + n, dtype=np.int64)
    return frame


def empty_malformed(columns: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame(columns=[*columns.values(), SOURCE_ROW, REASON])


# --------------------------------------------------------------------------- CSV


def sniff_encoding(path: Path) -> str:
    """The file's encoding: the one its byte-order mark names, else UTF-8, else latin-1.

    A UTF-16/UTF-32 BOM is trusted (Excel's "Unicode text" export, often tab-separated) and
    the whole file must then decode, or it is refused: read as latin-1 it would become column
    names full of NULs. Without a BOM, UTF-8 when the whole file decodes as UTF-8, else latin-1
    (a UTF-8 BOM before a stray latin-1 byte also ends up latin-1).
    """
    with path.open("rb") as handle:
        start = handle.read(4)
    wide = _wide_encoding(start)
    if wide is not None:
        error = _decode_error(path, wide)
        if error is not None:
            raise _not_wide_text(f"source {path}", wide, error)
        return wide
    if _decode_error(path, "utf-8") is None:
        return "utf-8-sig" if start.startswith(codecs.BOM_UTF8) else "utf-8"
    return "latin-1"


def decode_text(data: bytes, label: str) -> str:
    """Bytes already in memory (an upload, a file to score) decoded by :func:`sniff_encoding`'s rules."""
    wide = _wide_encoding(data)
    if wide is not None:
        try:
            return data.decode(wide)
        except UnicodeDecodeError as exc:
            raise _not_wide_text(label, wide, exc) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1").removeprefix("\u00ef\u00bb\u00bf")


def _decode_error(path: Path, encoding: str) -> UnicodeDecodeError | None:
    """Why the file does not decode as ``encoding`` (None: it does); read in blocks."""
    decoder = codecs.getincrementaldecoder(encoding)()
    with path.open("rb") as handle:
        try:
            while block := handle.read(_ENCODING_PROBE_BYTES):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return exc
    return None


def _wide_encoding(start: bytes) -> str | None:
    """The UTF-16/UTF-32 codec a byte-order mark at ``start`` names, or None."""
    return next((name for bom, name in _WIDE_BOMS if start.startswith(bom)), None)


def _not_wide_text(label: str, encoding: str, error: UnicodeDecodeError) -> InvalidInputError:
    """The refusal of text whose BOM names a wide encoding it does not decode as."""
    name = encoding.upper()
    return InvalidInputError(
        f"{label} starts with a {name} byte-order mark but is not valid {name} text "
        f"({error.reason}); export it again as UTF-8 or {name}"
    )


def sniff_delimiter(header_line: str) -> str:
    """The candidate that splits the header most often (headers hold no decimal commas)."""
    counts = {d: _count_outside_quotes(header_line, d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _count_outside_quotes(line: str, delimiter: str) -> int:
    count, quoted = 0, False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch == delimiter and not quoted:
            count += 1
    return count


class CsvSource:
    """A delimited text file: fast multi-threaded Arrow parse, or a tolerant Python pass.

    The Arrow reader refuses a file with a ragged line; the fallback reads it with the ``csv``
    module, passes well-formed records on and hands ragged ones over as malformed records.
    """

    def __init__(self, path: Path, chunk_rows: int) -> None:
        self.path = path
        self.label = str(path)
        self.chunk_rows = chunk_rows
        if path.stat().st_size == 0:
            raise empty_source(self.label)
        self.encoding = sniff_encoding(path)
        header_line, self.lines_before_data = self._header_line()
        # A BOM read as latin-1 (a UTF-8 export with one stray latin-1 byte) is not a header.
        header_line = header_line.lstrip("\ufeff").removeprefix("\u00ef\u00bb\u00bf")
        self.delimiter = sniff_delimiter(header_line)
        self.headers = tuple(next(csv.reader([header_line], delimiter=self.delimiter)))

    def close(self) -> None:
        """Nothing stays open between reads."""

    def _header_line(self) -> tuple[str, int]:
        with self.path.open(encoding=self.encoding, newline="") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    return line.rstrip("\r\n"), number
        raise empty_source(self.label)

    def chunks(self, columns: Mapping[str, str]) -> Iterator[RawChunk]:
        positions = {self.headers.index(h): name for h, name in columns.items()}
        try:
            table = self._read_arrow(positions)
        except pa.ArrowInvalid as exc:
            logger.warning("fast CSV parse failed (%s); reading %s line by line", exc, self.label)
            yield from self._python_chunks(positions, columns)
            return
        for offset in range(0, table.num_rows, self.chunk_rows):
            part = table.slice(offset, self.chunk_rows)
            records = part.rename_columns([positions[int(n[1:])] for n in part.column_names])
            frame = records.to_pandas(types_mapper=_as_str_dtype)
            frame[SOURCE_ROW] = np.arange(offset + 1, offset + 1 + part.num_rows, dtype=np.int64)
            yield RawChunk(frame, empty_malformed(columns))
        if table.num_rows == 0:
            yield RawChunk(
                text_frame({n: [] for n in columns.values()}, 1, 0), empty_malformed(columns)
            )

    def _read_arrow(self, positions: Mapping[int, str]) -> pa.Table:
        names = [f"f{i}" for i in range(len(self.headers))]
        wanted = [f"f{i}" for i in sorted(positions)]
        return pacsv.read_csv(
            str(self.path),
            read_options=pacsv.ReadOptions(
                column_names=names,
                skip_rows=self.lines_before_data,
                encoding="utf8" if self.encoding.startswith("utf-8") else self.encoding,
            ),
            parse_options=pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                include_columns=wanted, column_types=dict.fromkeys(wanted, pa.string())
            ),
        )

    def _python_chunks(
        self, positions: Mapping[int, str], columns: Mapping[str, str]
    ) -> Iterator[RawChunk]:
        width = len(self.headers)
        with self.path.open(encoding=self.encoding, newline="") as handle:
            for _ in range(self.lines_before_data):
                handle.readline()
            reader = csv.reader(handle, delimiter=self.delimiter)
            good: list[list[str]] = []
            bad: list[tuple[list[str], int]] = []
            first, number = 1, 0
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                number += 1
                if len(row) == width:
                    good.append(row)
                else:
                    bad.append((row, number))
                if number - first + 1 == self.chunk_rows:
                    yield self._python_chunk(good, bad, first, positions, columns)
                    good, bad, first = [], [], number + 1
            if number >= first or number == 0:
                yield self._python_chunk(good, bad, first, positions, columns)

    def _python_chunk(
        self,
        good: list[list[str]],
        bad: list[tuple[list[str], int]],
        first: int,
        positions: Mapping[int, str],
        columns: Mapping[str, str],
    ) -> RawChunk:
        bad_numbers = {number for _, number in bad}
        numbers = [n for n in range(first, first + len(good) + len(bad)) if n not in bad_numbers]
        records = pd.DataFrame(
            {name: pd.Series([r[i] for r in good], dtype="str") for i, name in positions.items()}
        )
        records[SOURCE_ROW] = np.asarray(numbers, dtype=np.int64)
        malformed = pd.DataFrame(
            {
                **{
                    name: pd.Series([r[i] if i < len(r) else None for r, _ in bad], dtype="str")
                    for i, name in positions.items()
                },
                SOURCE_ROW: np.asarray([n for _, n in bad], dtype=np.int64),
                REASON: pd.Series(
                    [
                        f"row has {len(r)} fields but the header has {len(self.headers)}: "
                        f"{self.delimiter.join(r)!r}"
                        for r, _ in bad
                    ],
                    dtype="str",
                ),
            }
        )
        return RawChunk(records, malformed if len(bad) else empty_malformed(columns))


def _as_str_dtype(arrow_type: pa.DataType) -> Any:
    return pd.StringDtype(na_value=np.nan) if pa.types.is_string(arrow_type) else None


# --------------------------------------------------------------------------- cells


def cell_text(value: object) -> str | None:
    """A cell or database value as text, the way a person would type it (floats round-trip)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, int | Decimal):
        return str(value)
    return str(value)
