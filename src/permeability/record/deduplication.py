"""Rows that share a record key: repeats, later values, conflicts; and what a batch changes.

Inside one batch (a file, a table), rows with the same ``record_id`` are:

* **exact repeats** (every value equal to an earlier row): skipped, counted;
* **superseded**: a row whose test date is older than another row of the same record (the
  record was re-tested or corrected later): skipped, counted, each example saying by which row;
* **conflicts**: rows of the same record that differ and that no date orders (same or no test
  date). Nothing says which one is right, so none is dropped: the first keeps the record id,
  the others are kept as ``<id>#2``, ``<id>#3`` (source order, so a second acquisition of the
  same file gives the same ids) and the report lists them with what differs.

Against the store (:func:`plan_upsert`), a record is inserted, updated (a corrected value of
the same record), unchanged, or stale (its test date is older than the stored one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd

from permeability.record.cleaning import CLEAN_COLUMNS, SOURCE_ROW
from permeability.record.schema import FECHA, RECORD_ID

#: Examples a report shows of each kind (the counts are always complete).
MAX_EXAMPLES: Final = 5
CONFLICT_SUFFIX: Final = "#"
_VALUE_COLUMNS: Final = tuple(c for c in CLEAN_COLUMNS if c != RECORD_ID)


@dataclass(frozen=True)
class BatchDeduplication:
    """One row per record id, and how many rows were skipped or kept apart, with examples."""

    rows: pd.DataFrame
    exact_repeats: int
    superseded: int
    conflict_records: int = 0
    conflict_rows: int = 0
    superseded_examples: list[str] = field(default_factory=list)
    conflict_examples: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return self.exact_repeats + self.superseded


def deduplicate_batch(clean: pd.DataFrame, key: Sequence[str] = ()) -> BatchDeduplication:
    """Apply the rules of the module docstring to a cleaned batch (with ``source_row``).

    ``key`` names the record-key columns, only to word the examples.
    """
    if clean[SOURCE_ROW].is_monotonic_increasing:  # chunks arrive in source order
        ordered = clean.reset_index(drop=True)
    else:
        ordered = clean.sort_values(SOURCE_ROW, kind="stable").reset_index(drop=True)
    repeated = np.asarray(ordered[RECORD_ID].duplicated(keep=False), dtype=bool)
    if not repeated.any():
        return BatchDeduplication(ordered, exact_repeats=0, superseded=0)
    group = ordered[repeated]
    exact = np.asarray(group.duplicated(subset=[*_VALUE_COLUMNS, RECORD_ID]), dtype=bool)
    distinct = group[~exact]
    dates = distinct[FECHA]
    newest = dates.groupby(distinct[RECORD_ID]).transform("max")
    older = np.asarray(dates.notna() & newest.notna() & (dates < newest), dtype=bool)
    survivors = distinct[~older].copy()
    occurrence = survivors.groupby(RECORD_ID, sort=False).cumcount().to_numpy()
    in_conflict = np.asarray(survivors[RECORD_ID].duplicated(keep=False), dtype=bool)
    conflict_examples = _conflict_examples(survivors[in_conflict], key)
    conflict_records = int(survivors[RECORD_ID][in_conflict].nunique())
    suffixed = survivors[RECORD_ID].to_numpy(dtype=object).copy()
    later = occurrence > 0
    suffixed[later] = [
        f"{rid}{CONFLICT_SUFFIX}{k + 1}"
        for rid, k in zip(suffixed[later], occurrence[later], strict=True)
    ]
    survivors[RECORD_ID] = pd.Series(suffixed, index=survivors.index, dtype="str")
    rows = pd.concat([ordered[~repeated], survivors]).sort_values(SOURCE_ROW, kind="stable")
    return BatchDeduplication(
        rows.reset_index(drop=True),
        exact_repeats=int(exact.sum()),
        superseded=int(older.sum()),
        conflict_records=conflict_records,
        conflict_rows=int(in_conflict.sum()),
        superseded_examples=_superseded_examples(distinct, older, newest, key),
        conflict_examples=conflict_examples,
    )


def _label(record_id: str, key: Sequence[str]) -> str:
    return f"{'/'.join(key)} {record_id}" if key else f"record {record_id}"


def _superseded_examples(
    distinct: pd.DataFrame, older: np.ndarray, newest: pd.Series, key: Sequence[str]
) -> list[str]:
    examples = []
    for position in np.flatnonzero(older)[:MAX_EXAMPLES]:
        row = distinct.iloc[position]
        same = distinct[
            (distinct[RECORD_ID] == row[RECORD_ID]) & (distinct[FECHA] == newest.iloc[position])
        ]
        winner = int(same[SOURCE_ROW].iloc[-1]) if len(same) else None
        examples.append(
            f"{_label(row[RECORD_ID], key)}: row {int(row[SOURCE_ROW])} "
            f"(test date {_day(row[FECHA])}) superseded by row {winner} with the later test "
            f"date {_day(newest.iloc[position])}"
        )
    return examples


def _conflict_examples(conflicting: pd.DataFrame, key: Sequence[str]) -> list[str]:
    examples: list[str] = []
    for record_id, rows in conflicting.groupby(RECORD_ID, sort=False):
        if len(examples) == MAX_EXAMPLES:
            break
        differing = [c for c in _VALUE_COLUMNS if rows[c].astype("str").nunique(dropna=False) > 1]
        shown = ", ".join(
            f"{c} " + " vs ".join(repr(v) for v in rows[c].astype("str").tolist()[:3])
            for c in differing[:3]
        )
        kept = ", ".join(
            [str(record_id)] + [f"{record_id}{CONFLICT_SUFFIX}{k}" for k in range(2, len(rows) + 1)]
        )
        sources = ", ".join(str(int(r)) for r in rows[SOURCE_ROW])
        examples.append(
            f"{_label(str(record_id), key)}: rows {sources} differ ({shown}); kept as {kept}"
        )
    return examples


def _day(value: object) -> str:
    stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    return "none" if pd.isna(stamp) else str(stamp.date())


@dataclass(frozen=True)
class UpsertPlan:
    """What a batch changes in the store: new records, changed records, and what it skips."""

    inserts: pd.DataFrame
    updates: pd.DataFrame
    unchanged: int
    stale: int

    @property
    def changes(self) -> pd.DataFrame:
        return pd.concat([self.inserts, self.updates], ignore_index=True)

    @property
    def is_empty(self) -> bool:
        return self.inserts.empty and self.updates.empty


def plan_upsert(incoming: pd.DataFrame, stored: pd.DataFrame | None) -> UpsertPlan:
    """Compare one-row-per-record ``incoming`` with the stored records (same columns).

    Stale: both have a test date and the incoming one is older (the store keeps the newer
    test). Unchanged: every value equal. Otherwise a stored record is updated, a new one inserted.
    """
    if stored is None or stored.empty:
        return UpsertPlan(incoming.reset_index(drop=True), incoming.iloc[:0], 0, 0)
    ids = incoming[RECORD_ID].to_numpy()
    known = np.asarray(incoming[RECORD_ID].isin(stored[RECORD_ID]), dtype=bool)
    aligned = stored.set_index(RECORD_ID).reindex(ids)
    same = known.copy()
    for column in _VALUE_COLUMNS:
        mine = incoming[column].reset_index(drop=True)
        theirs = aligned[column].reset_index(drop=True)
        equal = mine.eq(theirs).fillna(False) | (mine.isna() & theirs.isna())
        same &= np.asarray(equal, dtype=bool)
    new_date = incoming[FECHA].to_numpy(dtype="datetime64[ns]")
    old_date = aligned[FECHA].to_numpy(dtype="datetime64[ns]")
    stale = known & ~np.isnat(new_date) & ~np.isnat(old_date) & (new_date < old_date)
    updates = known & ~same & ~stale
    return UpsertPlan(
        inserts=incoming[~known].reset_index(drop=True),
        updates=incoming[updates].reset_index(drop=True),
        unchanged=int(np.count_nonzero(same & ~stale)),
        stale=int(np.count_nonzero(stale)),
    )
