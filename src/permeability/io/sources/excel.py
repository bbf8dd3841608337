"""The first worksheet of an .xlsx workbook, streamed as text (openpyxl read-only mode).

Whatever a file named ``.xlsx`` really holds, the user gets one sentence naming the file and
what it looks like ("... is not an Excel workbook (.xlsx): an HTML page ..."), never a parser's
traceback: openpyxl raises whatever the bytes provoke (``BadZipFile``, ``KeyError`` for a
missing part, an XML ``ParseError`` for a junk part, ...), on opening or later while rows are
streamed, so every failure of the reader becomes an :class:`InvalidInputError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from permeability.errors import InvalidInputError
from permeability.io.sources.base import (
    RawChunk,
    cell_text,
    empty_malformed,
    empty_source,
    text_frame,
)

_ZIP_MAGIC: Final = (b"PK\x03\x04", b"PK\x05\x06")
_OLE2_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_SNIFF_BYTES: Final = 2048
_REASON_CHARS: Final = 160


class ExcelSource:
    """The first worksheet of an .xlsx workbook, streamed (openpyxl read-only mode)."""

    def __init__(self, path: Path, chunk_rows: int) -> None:
        self.path = path
        self.label = str(path)
        self.chunk_rows = chunk_rows
        if path.stat().st_size == 0:
            raise empty_source(self.label)
        self._records_read = 0
        self._workbook = self._open_workbook()
        try:
            sheet = self._workbook.worksheets[0]
            self._rows = iter(sheet.iter_rows(values_only=True))
            header = next((row for row in self._sheet_rows() if _has_values(row)), None)
        except InvalidInputError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise not_a_workbook(path, exc) from None
        if header is None:
            self.close()
            raise empty_source(self.label)
        self.headers = tuple("" if v is None else str(v) for v in header)

    def _open_workbook(self) -> Any:
        from openpyxl import load_workbook

        try:
            return load_workbook(self.path, read_only=True, data_only=True)
        except Exception as exc:  # whatever the bytes provoke; see the module docstring
            raise not_a_workbook(self.path, exc) from None

    def _sheet_rows(self) -> Iterator[tuple[object, ...]]:
        """The sheet's rows; a part that breaks while streaming is named, not a traceback."""
        while True:
            try:
                row = next(self._rows)
            except StopIteration:
                return
            except Exception as exc:
                raise InvalidInputError(
                    f"source {self.label} is a damaged Excel workbook (.xlsx): its first sheet "
                    f"cannot be read after record {self._records_read} "
                    f"({reader_reason(exc)})"
                ) from None
            yield row

    def close(self) -> None:
        """Read-only workbooks hold the file open until closed."""
        self._workbook.close()

    def chunks(self, columns: Mapping[str, str]) -> Iterator[RawChunk]:
        positions = {self.headers.index(h): name for h, name in columns.items()}
        buffer: list[tuple[object, ...]] = []
        first = 1
        for row in self._sheet_rows():
            if not _has_values(row):
                continue
            buffer.append(row)
            self._records_read += 1
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
        return RawChunk(text_frame(values, first, len(rows)), empty_malformed(columns))


def _has_values(row: tuple[object, ...]) -> bool:
    return any(v is not None and str(v).strip() for v in row)


def not_a_workbook(path: Path, exc: BaseException) -> InvalidInputError:
    """The refusal: the file, what it is instead, and the reader's own reason (short)."""
    return InvalidInputError(
        f"source {path} is not an Excel workbook (.xlsx): {describe_file(path)} "
        f"(reader: {reader_reason(exc)})"
    )


def describe_file(path: Path) -> str:
    """What a file that failed to open as a workbook looks like, from its first bytes."""
    try:
        with path.open("rb") as handle:
            start = handle.read(_SNIFF_BYTES)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    return describe_start(start)


def describe_start(start: bytes) -> str:
    """What content that is not a workbook looks like, from its first bytes (any length)."""
    start = start[:_SNIFF_BYTES]
    if start.startswith(_ZIP_MAGIC):
        return "it is a zip archive without a readable workbook inside"
    if start.startswith(_OLE2_MAGIC):
        return (
            "it is an OLE2 file: a legacy .xls workbook or a password-protected one; "
            "save it as an unprotected .xlsx"
        )
    if start.startswith(b"%PDF-"):
        return "it is a PDF document"
    text = _as_text(start)
    if text is None:
        return "it is unrecognised binary content, not the zip archive an .xlsx is"
    head = text.lstrip("\ufeff \t\r\n").lower()
    if head.startswith("<!doctype html") or "<html" in head[:512]:
        return "it is an HTML page (a web page or report saved under an .xlsx name)"
    if head.startswith("<"):
        return "it is an XML or HTML document"
    return "it is a text file; a CSV export must be named .csv"


def _as_text(start: bytes) -> str | None:
    """The bytes as text if they look like text (no NUL, decodable), else None."""
    if b"\x00" in start:
        return None
    try:
        return start.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(start) - 3:  # a character cut at the end of the sniffed block
            return start[: exc.start].decode("utf-8")
    try:
        text = start.decode("cp1252")
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch in "\t\r\n" for ch in text)
    return text if printable >= 0.95 * len(text) else None


def reader_reason(exc: BaseException) -> str:
    """The reader's own reason, first line, trimmed: enough to search for, not a traceback."""
    # A KeyError's str() is its repr; its argument is the message.
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    lines = str(message).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"
