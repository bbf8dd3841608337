from __future__ import annotations

import math

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from permeability.record.cleaning import CLEAN_COLUMNS, clean_records
from permeability.record.deduplication import deduplicate_batch, plan_upsert
from permeability.record.identity import RecordRules
from permeability.record.schema import MUESTRA, RECORD_ID
from permeability.record.structures import build_alias_map
from tests.unit.record.test_cleaning import good_row, raw_frame

#: Muestra as the record key: the old seed-format identity, handy to name rows in tests.
BY_MUESTRA = RecordRules(record_key=(MUESTRA,))


def batch(*rows: tuple[object, ...], rules: RecordRules = BY_MUESTRA) -> pd.DataFrame:
    result = clean_records(
        raw_frame(*rows), aliases=build_alias_map(), min_caliper_readings=3, rules=rules
    )
    assert result.rejected.empty, result.rejected
    return result.clean


def test_repeats_are_skipped_later_tests_supersede_and_conflicts_are_kept() -> None:
    frame = batch(
        good_row("1", Permeabilidad="5", Fecha="2024-02-01"),
        good_row("1", Permeabilidad="6", Fecha="2024-01-01"),  # older test of record 1
        good_row("2"),
        good_row("2"),  # exact repeat
        good_row("3", Permeabilidad="7", Fecha=None),
        good_row("3", Permeabilidad="8", Fecha=None),  # nothing orders them: a conflict
    )
    result = deduplicate_batch(frame, (MUESTRA,))
    kept = result.rows.set_index(RECORD_ID)["Permeabilidad"].to_dict()
    assert kept == {"1": 5.0, "2": 5.1, "3": 7.0, "3#2": 8.0}
    assert (result.exact_repeats, result.superseded, result.skipped) == (1, 1, 2)
    assert (result.conflict_records, result.conflict_rows) == (1, 2)
    assert result.superseded_examples == [
        "Muestra 1: row 2 (test date 2024-01-01) superseded by row 1 with the later test "
        "date 2024-02-01"
    ]
    (conflict,) = result.conflict_examples
    assert "Muestra 3: rows 5, 6 differ" in conflict
    assert "Permeabilidad '7.0' vs '8.0'" in conflict
    assert conflict.endswith("kept as 3, 3#2")


def test_conflict_ids_are_the_same_on_every_read() -> None:
    rows = [good_row("4", Permeabilidad=p, Fecha="2024-01-01") for p in ("1", "2", "3")]
    first = deduplicate_batch(batch(*rows)).rows[RECORD_ID].tolist()
    again = deduplicate_batch(batch(*rows)).rows[RECORD_ID].tolist()
    assert first == again == ["4", "4#2", "4#3"]


def test_replicates_of_one_test_are_different_records_under_the_default_identity() -> None:
    """Without CONSECUTIVO the identity holds date, structure, replicate number, conditions."""
    frame = batch(
        good_row("1", Permeabilidad="5.0"),
        good_row("2", Permeabilidad="5.4"),  # replicate 2 of the same test
        good_row("1", Permeabilidad="6.0", Fecha="2024-03-01"),  # replicate 1 of another test
        rules=RecordRules(),
    )
    result = deduplicate_batch(frame)
    assert len(result.rows) == 3
    assert result.skipped == 0
    assert result.conflict_rows == 0
    assert result.rows["test_id"].nunique() == 2


rows_strategy = st.lists(
    st.tuples(
        st.integers(1, 6),
        st.sampled_from(["2024-01-01", "2024-02-01", None]),
        st.sampled_from(["1", "2"]),
    ),
    min_size=0,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy)
def test_every_row_is_kept_skipped_or_superseded_and_ids_stay_unique(
    rows: list[tuple[int, str | None, str]],
) -> None:
    if not rows:
        return
    frame = batch(*[good_row(str(m), Fecha=f, Permeabilidad=p) for m, f, p in rows])
    result = deduplicate_batch(frame)
    assert result.rows[RECORD_ID].is_unique
    assert {r.split("#")[0] for r in result.rows[RECORD_ID]} == {str(m) for m, _, _ in rows}
    assert len(result.rows) + result.exact_repeats + result.superseded == len(rows)
    # A record keeps every distinct value of its newest test date (or all, when undated).
    for muestra in {m for m, _, _ in rows}:
        mine = [(f, p) for m, f, p in rows if m == muestra]
        dated = [f for f, _ in mine if f is not None]
        newest = max(dated) if dated else None
        survivors = {(f, p) for f, p in mine if f is None or f == newest}
        held = result.rows[result.rows[MUESTRA] == muestra]
        assert len(held) == len(survivors)


def test_upsert_plan_sorts_incoming_rows_against_the_store() -> None:
    stored = batch(
        good_row("1", Fecha="2024-02-01"),
        good_row("2", Permeabilidad="5"),
        good_row("3", Fecha="2024-03-01"),
    )[list(CLEAN_COLUMNS)]
    incoming = batch(
        good_row("1", Fecha="2024-02-01"),  # unchanged
        good_row("2", Permeabilidad="6"),  # a corrected value of the same record
        good_row("3", Fecha="2024-01-01", Permeabilidad="9"),  # older test: stale
        good_row("4"),  # new
    )[list(CLEAN_COLUMNS)]
    plan = plan_upsert(incoming, stored)
    assert plan.inserts[RECORD_ID].tolist() == ["4"]
    assert plan.updates[RECORD_ID].tolist() == ["2"]
    assert (plan.unchanged, plan.stale) == (1, 1)
    assert plan.changes[RECORD_ID].tolist() == ["4", "2"]
    assert not plan.is_empty


def test_upsert_plan_on_an_empty_store_inserts_everything() -> None:
    incoming = batch(good_row("1"), good_row("2"))[list(CLEAN_COLUMNS)]
    plan = plan_upsert(incoming, None)
    assert len(plan.inserts) == 2
    assert plan.updates.empty
    assert math.isclose(plan.inserts["Permeabilidad"].sum(), 10.2)
