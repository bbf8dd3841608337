"""What every lab source gives: its masked label, its header, and its records as text in chunks.

Everything is read as text: turning "16,4" or "16.4 µm" into numbers is the cleaning step's
job (:mod:`permeability.record.cleaning`), so every source gets exactly the same rules and a
rejected row can be shown as it was typed.

A source yields chunks of at most ``chunk_rows`` rows whose columns already carry the seed's
names, plus ``source_row``: the record's 1-based position among the source's records (the
header and blank lines are not counted; in a spreadsheet the record sits on row
``source_row + 1`` when there are no blank rows).

One adapter a file: :mod:`~permeability.io.sources.csv`, :mod:`~permeability.io.sources.excel`,
:mod:`~permeability.io.sources.sql`; :func:`permeability.io.sources.opening.open_source` picks
one. Passwords never appear in labels, messages or logs
(:mod:`permeability.io.sources.secrets`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Protocol

import numpy as np
import pandas as pd

from permeability.errors import InvalidInputError
from permeability.record.cleaning import REASON, SOURCE_ROW


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


# --------------------------------------------------------------------------- building chunks


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
    return str(value)
