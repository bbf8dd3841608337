"""What one acquisition reports: counts that reconcile, what was skipped and why, what was
flagged, and a human summary (``permeability acquire`` prints it; ``--json`` prints the model)."""

from __future__ import annotations

from pydantic import BaseModel


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
