"""What one acquisition reports: counts that reconcile, what was skipped and why, what was
flagged, and a human summary (``permeability acquire`` prints it; ``--json`` prints the model);
and the rejected rows' CSV the report names, written durably before the load's commit."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from permeability.io.cells import write_csv
from permeability.io.durable import fsync_dir, fsync_file
from permeability.pipelines.base import JobContext
from permeability.record.deduplication import BatchDeduplication, UpsertPlan
from permeability.record.schema import BELOW_DETECTION_LIMIT, ESTRUCTURA, IS_PRODUCT, TEST_ID


class DuplicateCounts(BaseModel):
    """Why rows were skipped: repeats inside the batch, or nothing new compared with the store.

    ``superseded_in_batch``: rows of a record replaced by a row of the same record with a later
    test date (``superseded_examples`` say which by which).
    """

    exact_repeats: int
    superseded_in_batch: int
    unchanged: int
    stale: int
    superseded_examples: list[str] = []


class Conflicts(BaseModel):
    """Rows of one record that differ with no later test date to decide: all kept, listed."""

    records: int
    rows: int
    examples: list[str]


class AcquisitionReport(BaseModel):
    """What one acquisition did; ``rows_read = rows_loaded + rows_rejected + duplicates_skipped``.

    ``excluded_from_training`` (non-product rows) and ``censored`` (WVTR at or under the
    detection limit) are counted inside ``rows_loaded``; so are conflicting rows.
    ``rejected_file`` was written before the version's commit, which names it, so the rows it
    holds survive a crash right after that commit.
    """

    run_id: str
    source: str
    feature_store: str
    record_key: list[str]
    rows_read: int
    rows_loaded: int
    rows_inserted: int
    rows_updated: int
    rows_rejected: int
    duplicates_skipped: int
    duplicates: DuplicateCounts
    conflicts: Conflicts
    excluded_from_training: int
    excluded_structures: dict[str, int]
    censored: int
    detection_limit: float
    tests_loaded: int
    ignored_columns: list[str]
    calipers_imputed: int
    new_structures: list[str]
    feature_set_version: int | None
    new_version: bool
    pca_components: int | None
    pca_dir: str | None
    rejected_file: str | None
    seconds: float

    def summary(self) -> str:
        lines = [
            f"read {self.rows_read} rows from {self.source}",
            f"loaded {self.rows_loaded} ({self.rows_inserted} new, {self.rows_updated} updated)",
            f"rejected {self.rows_rejected}"
            + (f" -> {self.rejected_file}" if self.rejected_file else ""),
            f"skipped {self.duplicates_skipped} duplicates "
            f"({self.duplicates.exact_repeats} exact repeats, "
            f"{self.duplicates.superseded_in_batch} superseded by a later test date of the same "
            f"record, {self.duplicates.unchanged} already stored, "
            f"{self.duplicates.stale} older than stored)",
            f"record key: {', '.join(self.record_key)}; {self.tests_loaded} test(s) loaded",
        ]
        lines += [f"  superseded: {example}" for example in self.duplicates.superseded_examples]
        if self.conflicts.records:
            lines.append(
                f"conflicts: {self.conflicts.records} record(s) have {self.conflicts.rows} rows "
                "with different values and no later test date; all kept, numbered #2, #3..."
            )
            lines += [f"  conflict: {example}" for example in self.conflicts.examples]
        if self.excluded_from_training:
            named = ", ".join(f"{k} {v}" for k, v in self.excluded_structures.items())
            lines.append(
                f"excluded from training (not products): {self.excluded_from_training} ({named})"
            )
        if self.censored:
            lines.append(
                f"censored: {self.censored} WVTR value(s) at or under the detection limit, "
                f"stored as < {self.detection_limit:g}"
            )
        if self.ignored_columns:
            lines.append(f"ignored columns: {', '.join(self.ignored_columns)}")
        if self.calipers_imputed:
            lines.append(f"filled {self.calipers_imputed} missing caliper readings")
        if self.new_structures:
            lines.append(f"new structures: {', '.join(self.new_structures)}")
        if self.feature_set_version is None:
            lines.append("feature store is still empty")
        elif self.new_version:
            lines.append(
                f"feature set version {self.feature_set_version} "
                f"(caliper PCA: {self.pca_components} component(s))"
            )
        else:
            lines.append(f"no new version: the store stays at {self.feature_set_version}")
        lines.append(f"run {self.run_id} in {self.seconds:.2f}s")
        return "\n".join(lines)


def flag_counts(plan: UpsertPlan) -> dict[str, object]:
    """What the loaded rows hold: non-products (by structure), censored values, tests."""
    changes = plan.changes
    if changes.empty:
        return {
            "excluded_from_training": 0,
            "excluded_structures": {},
            "censored": 0,
            "tests_loaded": 0,
        }
    excluded = changes[~changes[IS_PRODUCT].astype(bool)]
    by_structure = excluded[ESTRUCTURA].value_counts()
    return {
        "excluded_from_training": len(excluded),
        "excluded_structures": {str(k): int(v) for k, v in by_structure.items()},
        "censored": int(changes[BELOW_DETECTION_LIMIT].astype(bool).sum()),
        "tests_loaded": int(changes[TEST_ID].nunique()),
    }


def counts(
    rows_read: int, rows_rejected: int, batch: BatchDeduplication, plan: UpsertPlan
) -> dict[str, int]:
    """The counts of a load; :func:`reconcile` checks that they add up."""
    return {
        "rows_read": rows_read,
        "rows_loaded": len(plan.inserts) + len(plan.updates),
        "rows_inserted": len(plan.inserts),
        "rows_updated": len(plan.updates),
        "rows_rejected": rows_rejected,
        "duplicates_skipped": batch.skipped + plan.unchanged + plan.stale,
    }


def write_rejected(ctx: JobContext, rejected: pd.DataFrame) -> Path | None:
    """One CSV per run with the rows as typed, their source row and every reason."""
    if rejected.empty:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = ctx.paths.rejected / f"{stamp}_{ctx.run_id}.csv"
    partial = path.with_suffix(".csv.partial")
    write_csv(rejected, partial)  # neutralised: it is opened in a spreadsheet (io/cells.py)
    fsync_file(partial)  # durable before the commit that counts these rows
    os.replace(partial, path)
    fsync_dir(path.parent)
    ctx.logger.info("wrote %d rejected rows to %s", len(rejected), path)
    return path


def reconcile(counts: Mapping[str, int]) -> None:
    """Refuse, before anything is written, a load whose counts do not add up."""
    accounted = counts["rows_loaded"] + counts["rows_rejected"] + counts["duplicates_skipped"]
    if accounted != counts["rows_read"]:
        raise RuntimeError(
            f"acquisition lost track of rows: read {counts['rows_read']}, accounted {accounted}"
        )
