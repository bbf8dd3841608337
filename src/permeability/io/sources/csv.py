"""A delimited lab text file (CSV, TSV, ``;``-separated...), read as text in chunks.

Text files are decoded by their byte-order mark (UTF-8, UTF-16 LE/BE, UTF-32: Excel's "Unicode
text" export is UTF-16 with a BOM), else as UTF-8 when the whole file is UTF-8, else latin-1.
The delimiter is the candidate that splits the header line most often. The same decoding and
delimiter rules serve bytes already in memory (:func:`decode_text`, a file to score).
"""

from __future__ import annotations

import codecs
import csv
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from permeability.errors import InvalidInputError
from permeability.io.sources.base import RawChunk, empty_malformed, empty_source, text_frame
from permeability.record.cleaning import REASON, SOURCE_ROW

logger = logging.getLogger(__name__)

DELIMITERS: Final = (",", ";", "\t", "|")
_ENCODING_PROBE_BYTES: Final = 1 << 23
#: Byte-order marks of the wide encodings, UTF-32 first (its LE mark starts with UTF-16 LE's).
#: Python's "utf-16"/"utf-32" codecs read the mark and drop it.
_WIDE_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


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
