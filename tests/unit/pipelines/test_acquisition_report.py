from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from permeability.pipelines.acquisition_report import (
    AcquisitionReport,
    Conflicts,
    DuplicateCounts,
    counts,
    flag_counts,
    reconcile,
    write_rejected,
)
from permeability.pipelines.base import job_context
from permeability.record.deduplication import BatchDeduplication, UpsertPlan
from permeability.settings import Settings


def plan(inserts: pd.DataFrame, updates: pd.DataFrame | None = None) -> UpsertPlan:
    return UpsertPlan(inserts, inserts.iloc[:0] if updates is None else updates, 2, 1)


def changes(structures: list[str], products: list[bool], censored: list[bool]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Estructura": structures,
            "is_product": products,
            "below_detection_limit": censored,
            "test_id": [f"T-{i // 2}" for i in range(len(structures))],
        }
    )


def test_counts_reconcile_rows_read_with_loaded_rejected_and_skipped() -> None:
    batch = BatchDeduplication(pd.DataFrame(), exact_repeats=3, superseded=1)
    figures = counts(12, 2, batch, plan(changes(["A"] * 3, [True] * 3, [False] * 3)))
    assert figures == {
        "rows_read": 12,
        "rows_loaded": 3,
        "rows_inserted": 3,
        "rows_updated": 0,
        "rows_rejected": 2,
        "duplicates_skipped": 7,  # 3 repeats + 1 superseded + 2 unchanged + 1 stale
    }
    reconcile(figures)
    with pytest.raises(RuntimeError, match="lost track of rows: read 13, accounted 12"):
        reconcile({**figures, "rows_read": 13})


def test_flag_counts_name_non_products_censored_values_and_tests() -> None:
    loaded = changes(
        ["BOPP", "FOIL", "FOIL", "PET"], [True, False, False, True], [False] * 3 + [True]
    )
    assert flag_counts(plan(loaded)) == {
        "excluded_from_training": 2,
        "excluded_structures": {"FOIL": 2},
        "censored": 1,
        "tests_loaded": 2,
    }
    assert flag_counts(plan(loaded.iloc[:0]))["tests_loaded"] == 0


def test_rejected_rows_are_written_whole_or_not_at_all(settings: Settings) -> None:
    rejected = pd.DataFrame({"source_row": [3], "reason": ["bad"], "Muestra": ["=1+1"]})
    with job_context("acquire", settings) as ctx:
        assert write_rejected(ctx, rejected.iloc[:0]) is None
        path = write_rejected(ctx, rejected)
    assert path is not None
    assert path.parent == settings.paths.rejected
    assert path.name.endswith(f"_{ctx.run_id}.csv")
    assert not list(path.parent.glob("*.partial"))
    written = pd.read_csv(path, dtype=str)
    assert written["reason"].tolist() == ["bad"]
    assert written["Muestra"].tolist() != ["=1+1"]  # neutralised for spreadsheets


def test_the_summary_says_what_was_loaded_skipped_and_flagged(tmp_path: Path) -> None:
    report = AcquisitionReport(
        run_id="r1",
        source="lab.csv",
        feature_store=str(tmp_path),
        record_key=["CONSECUTIVO"],
        rows_read=10,
        rows_loaded=6,
        rows_inserted=5,
        rows_updated=1,
        rows_rejected=1,
        duplicates_skipped=3,
        duplicates=DuplicateCounts(exact_repeats=1, superseded_in_batch=1, unchanged=1, stale=0),
        conflicts=Conflicts(records=1, rows=2, examples=["CONSECUTIVO 7: 2 rows"]),
        excluded_from_training=1,
        excluded_structures={"FOIL": 1},
        censored=1,
        detection_limit=0.05,
        tests_loaded=4,
        ignored_columns=["Notes"],
        calipers_imputed=2,
        new_structures=["EVOH"],
        feature_set_version=3,
        new_version=True,
        pca_components=1,
        pca_dir=None,
        rejected_file="rejected.csv",
        seconds=1.5,
    )
    summary = report.summary()
    assert "loaded 6 (5 new, 1 updated)" in summary
    assert "rejected 1 -> rejected.csv" in summary
    assert "conflicts: 1 record(s) have 2 rows" in summary
    assert "excluded from training (not products): 1 (FOIL 1)" in summary
    assert "stored as < 0.05" in summary
    assert "feature set version 3 (caliper PCA: 1 component(s))" in summary
    assert summary.endswith("run r1 in 1.50s")
