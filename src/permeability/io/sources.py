"""Extract raw lab records, as text, from a CSV file, an .xlsx workbook or any SQLAlchemy database.

Everything is read as text: turning "16,4" or "16.4 µm" into numbers is the cleaning step's
job (:mod:`permeability.domain.cleaning`), so every source gets exactly the same rules and a
rejected row can be shown as it was typed.

A source yields chunks of at most ``chunk_rows`` rows whose columns already carry the seed's
names, plus ``source_row``: the record's 1-based position among the source's records (the
header and blank lines are not counted; in a spreadsheet the record sits on row
``source_row + 1`` when there are no blank rows).

SQL safety: ``--table`` must name a table or view the database really has (checked with the
SQLAlchemy inspector, ``schema.table`` allowed) and is read through ``Table`` reflection and
``select()``, never by formatting the name into SQL. ``--query`` must be one read-only
SELECT/WITH statement; it runs in a read-only transaction (where the database supports one)
that is rolled back. Passwords never appear in labels, messages or logs.
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
from zipfile import BadZipFile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from permeability.domain.cleaning import REASON, SOURCE_ROW
from permeability.errors import InvalidInputError, NotFoundError

logger = logging.getLogger(__name__)

CSV_SUFFIXES: Final = (".csv", ".txt", ".tsv")
EXCEL_SUFFIXES: Final = (".xlsx", ".xlsm")
DELIMITERS: Final = (",", ";", "\t", "|")
_URL_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_ENCODING_PROBE_BYTES: Final = 1 << 23


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
    opened: CsvSource | ExcelSource | SqlSource
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


def _open_file(path: Path, chunk_rows: int) -> CsvSource | ExcelSource:
    if not path.is_file():
        raise NotFoundError(f"source file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        return ExcelSource(path, chunk_rows)
    if suffix == ".xls":
        raise InvalidInputError(f"source {path}: .xls workbooks are not supported; save as .xlsx")
    return CsvSource(path, chunk_rows)


def _empty(label: str) -> InvalidInputError:
    return InvalidInputError(f"source {label} is empty (no header row)")


def _frame(columns: Mapping[str, Sequence[str | None]], first_row: int, n: int) -> pd.DataFrame:
    frame = pd.DataFrame(
        {name: pd.Series(list(values), dtype="str") for name, values in columns.items()}
    )
    frame[SOURCE_ROW] = np.arange(first_row, first_row + n, dtype=np.int64)
    return frame


def _no_malformed(columns: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame(columns=[*columns.values(), SOURCE_ROW, REASON])


# --------------------------------------------------------------------------- CSV


def sniff_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) when the whole file decodes as UTF-8, else latin-1."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as handle:
        start = handle.read(3)
        bom = start == codecs.BOM_UTF8
        try:
            decoder.decode(start)
            while block := handle.read(_ENCODING_PROBE_BYTES):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "latin-1"
    return "utf-8-sig" if bom else "utf-8"


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
            raise _empty(self.label)
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
        raise _empty(self.label)

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
            yield RawChunk(frame, _no_malformed(columns))
        if table.num_rows == 0:
            yield RawChunk(_frame({n: [] for n in columns.values()}, 1, 0), _no_malformed(columns))

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
        return RawChunk(records, malformed if len(bad) else _no_malformed(columns))


def _as_str_dtype(arrow_type: pa.DataType) -> Any:
    return pd.StringDtype(na_value=np.nan) if pa.types.is_string(arrow_type) else None


# --------------------------------------------------------------------------- Excel


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


class ExcelSource:
    """The first worksheet of an .xlsx workbook, streamed (openpyxl read-only mode)."""

    def __init__(self, path: Path, chunk_rows: int) -> None:
        self.path = path
        self.label = str(path)
        self.chunk_rows = chunk_rows
        if path.stat().st_size == 0:
            raise _empty(self.label)
        self._workbook = self._open_workbook()
        self._rows = iter(self._workbook.worksheets[0].iter_rows(values_only=True))
        header = next((row for row in self._rows if _has_values(row)), None)
        if header is None:
            self.close()
            raise _empty(self.label)
        self.headers = tuple("" if v is None else str(v) for v in header)

    def _open_workbook(self) -> Any:
        from openpyxl import load_workbook
        from openpyxl.utils.exceptions import InvalidFileException

        try:
            return load_workbook(self.path, read_only=True, data_only=True)
        except (InvalidFileException, BadZipFile, OSError, KeyError, ValueError) as exc:
            raise InvalidInputError(
                f"source {self.label} is not a readable .xlsx workbook: {exc}"
            ) from exc

    def close(self) -> None:
        """Read-only workbooks hold the file open until closed."""
        self._workbook.close()

    def chunks(self, columns: Mapping[str, str]) -> Iterator[RawChunk]:
        positions = {self.headers.index(h): name for h, name in columns.items()}
        buffer: list[tuple[object, ...]] = []
        first = 1
        for row in self._rows:
            if not _has_values(row):
                continue
            buffer.append(row)
            if len(buffer) == self.chunk_rows:
                yield self._chunk(buffer, first, positions, columns)
                first += len(buffer)
                buffer = []
        if buffer or first == 1:
            yield self._chunk(buffer, first, positions, columns)

    @staticmethod
    def _chunk(
        rows: list[tuple[object, ...]],
        first: int,
        positions: Mapping[int, str],
        columns: Mapping[str, str],
    ) -> RawChunk:
        values = {
            name: [cell_text(r[i]) if i < len(r) else None for r in rows]
            for i, name in positions.items()
        }
        return RawChunk(_frame(values, first, len(rows)), _no_malformed(columns))


def _has_values(row: tuple[object, ...]) -> bool:
    return any(v is not None and str(v).strip() for v in row)


# --------------------------------------------------------------------------- SQL

_FORBIDDEN_WORDS: Final = frozenset(
    {
        "insert", "update", "delete", "merge", "upsert", "replace", "drop", "create", "alter",
        "truncate", "rename", "grant", "revoke", "copy", "call", "exec", "execute", "do",
        "set", "reset", "lock", "unlock", "vacuum", "analyze", "attach", "detach", "pragma",
        "load", "into", "handler", "commit", "rollback", "savepoint", "begin", "declare",
        "prepare", "listen", "notify", "refresh", "reindex", "cluster", "comment", "security",
        "pg_sleep", "sleep", "benchmark", "pg_terminate_backend", "pg_cancel_backend",
        "pg_reload_conf", "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "lo_import",
        "lo_export", "dblink", "dblink_exec", "load_file", "setval", "nextval", "outfile",
        "dumpfile",
    }
)  # fmt: skip
_LITERALS: Final = re.compile(
    r"""'(?:[^'\\]|''|\\.)*'|"(?:[^"]|"")*"|`[^`]*`|--[^\n]*|\#[^\n]*|/\*.*?\*/""", re.DOTALL
)


def check_read_only_query(sql: str) -> str:
    """The query without a trailing ';' if it is one SELECT/WITH statement that only reads.

    Literals, quoted identifiers and comments are blanked before looking, so a value such as
    ``'; DROP TABLE x'`` inside quotes is data; outside quotes it is refused.
    """
    statement = sql.strip().rstrip(";").strip()
    blanked = _LITERALS.sub(" ", statement)
    if not statement:
        raise InvalidInputError("--query is empty")
    if ";" in blanked:
        raise InvalidInputError("--query must be a single statement; it contains ';'")
    words = [w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", blanked)]
    if not words or words[0] not in ("select", "with"):
        raise InvalidInputError("--query must start with SELECT or WITH (read-only queries only)")
    forbidden = sorted(set(words) & _FORBIDDEN_WORDS)
    if forbidden:
        raise InvalidInputError(
            f"--query must only read; it uses {', '.join(w.upper() for w in forbidden)}"
        )
    return statement


class SqlSource:
    """A table or a read-only query on any SQLAlchemy database, streamed in chunks."""

    def __init__(self, url: str, *, table: str | None, query: str | None, chunk_rows: int) -> None:
        from sqlalchemy import MetaData, Table, create_engine, select, text
        from sqlalchemy.pool import NullPool

        self.label = mask_source(url)
        self.chunk_rows = chunk_rows
        self._secrets = source_secrets(url)
        statement = check_read_only_query(query) if query is not None else None
        try:
            self._engine = create_engine(url, poolclass=NullPool)
        except Exception as exc:  # a bad URL or a missing driver; the message may hold the URL
            raise InvalidInputError(
                f"cannot use SQL source {self.label}: {self._clean(exc)}"
            ) from None
        try:
            self._connection = self._engine.connect()
        except Exception as exc:
            self._engine.dispose()
            raise InvalidInputError(f"cannot connect to {self.label}: {self._clean(exc)}") from None
        try:
            self._make_read_only()
            if table is not None:
                schema, name = self._resolve_table(table)
                reflected = Table(name, MetaData(), schema=schema, autoload_with=self._connection)
                _floats_as_floats(reflected)
                executable: Any = select(reflected)
            else:
                executable = text(statement or "")
            streaming = self._connection.execution_options(stream_results=True)
            self._result = streaming.execute(executable)
        except (NotFoundError, InvalidInputError):
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise InvalidInputError(
                f"reading from {self.label} failed: {self._clean(exc)}"
            ) from None
        self.headers = tuple(map(str, self._result.keys()))

    def _clean(self, exc: BaseException) -> str:
        original = getattr(exc, "orig", None) or exc
        first_line = str(original).strip().splitlines()[0] if str(original).strip() else ""
        return mask_secrets(first_line or type(original).__name__, self._secrets)

    def _make_read_only(self) -> None:
        """Belt and braces beside the query check: the database itself refuses writes."""
        dialect = self._engine.dialect.name
        if dialect == "postgresql":
            self._connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        elif dialect in ("mysql", "mariadb"):
            self._connection.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        elif dialect == "sqlite":
            self._connection.exec_driver_sql("PRAGMA query_only = ON")

    def _resolve_table(self, wanted: str) -> tuple[str | None, str]:
        """(schema, table) of a table or view that exists; the name is never put into SQL."""
        from sqlalchemy import inspect

        inspector = inspect(self._connection)

        def names(schema: str | None) -> list[str]:
            return [*inspector.get_table_names(schema=schema), *inspector.get_view_names(schema)]

        candidates: list[tuple[str | None, str]] = [(None, n) for n in names(None)]
        if "." in wanted:
            schema, _, _ = wanted.partition(".")
            if schema in inspector.get_schema_names():
                candidates += [(schema, f"{schema}.{n}") for n in names(schema)]
        exact = [(s, n) for s, n in candidates if n == wanted]
        folded = [(s, n) for s, n in candidates if n.casefold() == wanted.casefold()]
        match = exact or (folded if len(folded) == 1 else [])
        if not match:
            shown = ", ".join(sorted(n for _, n in candidates)[:30]) or "none"
            raise NotFoundError(
                f"table {wanted!r} does not exist in {self.label}; tables found: {shown}"
            )
        found_schema, qualified = match[0]
        bare = qualified.split(".", 1)[1] if found_schema is not None else qualified
        return found_schema, bare

    def chunks(self, columns: Mapping[str, str]) -> Iterator[RawChunk]:
        positions = {self.headers.index(h): name for h, name in columns.items()}
        first = 1
        while True:
            try:
                rows = self._result.fetchmany(self.chunk_rows)
            except Exception as exc:
                raise InvalidInputError(
                    f"reading from {self.label} failed: {self._clean(exc)}"
                ) from None
            if not rows and first > 1:
                return
            values = {name: [cell_text(r[i]) for r in rows] for i, name in positions.items()}
            yield RawChunk(_frame(values, first, len(rows)), _no_malformed(columns))
            if not rows:
                return
            first += len(rows)

    def close(self) -> None:
        """Roll back (nothing is ever committed) and release the connection."""
        connection = getattr(self, "_connection", None)
        try:
            if connection is not None:
                result = getattr(self, "_result", None)
                if result is not None:
                    result.close()
                connection.rollback()
                connection.close()
        finally:
            self._engine.dispose()


def _floats_as_floats(table: Any) -> None:
    """Read floating-point columns as floats, every digit kept.

    SQLAlchemy reflects MariaDB/MySQL ``DOUBLE`` as ``Float(asdecimal=True)``, which rounds to
    10 decimals (1.2e-11 read back as ``Decimal('0E-10')``): a WVTR near the detection limit
    would change on the way in. Exact ``DECIMAL``/``NUMERIC`` columns are left as decimals.
    """
    from sqlalchemy import Float

    for column in table.columns:
        if isinstance(column.type, Float) and getattr(column.type, "asdecimal", False):
            column.type.asdecimal = False
