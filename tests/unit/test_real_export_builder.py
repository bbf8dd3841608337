"""The real-format export builder (tests/real_export.py): its invariants on the real data."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from permeability.record.structures import build_alias_map, parse_structure
from tests.real_export import (
    CALIPER_COLUMNS,
    DROPPED_STRUCTURE,
    EXPORT_COLUMNS,
    HUMIDITY_MIN_PCT,
    HUMIDITY_SPAN_PCT,
    NON_PRODUCT_NAMES,
    ONE_HOT_PREFIX,
    OTHER_SPELLINGS,
    REAL_SPELLINGS,
    TEMPERATURE_MIN_C,
    TEMPERATURE_SPAN_C,
    UNNAMED_COLUMNS,
    RealExport,
    build_real_export,
    drop_consecutivo,
    load_processed,
    replicate_numbers,
    require_seed_lab_data,
    respell,
    shuffle_rows,
    single_date_column,
    structure_names,
    with_permeability,
)

TEST_COLUMNS = ["Año", "Mes", "Día", "Referencia", "Estructura", "Grados_C", "Porc_Humedad"]


@pytest.fixture(scope="module")
def processed() -> pd.DataFrame:
    return load_processed()


@pytest.fixture(scope="module")
def export(processed: pd.DataFrame) -> RealExport:
    return build_real_export(processed)


def canonical(name: str) -> str:
    return parse_structure(name, build_alias_map()).name


def numbers(cells: pd.DataFrame) -> pd.DataFrame:
    return cells.apply(pd.to_numeric, errors="coerce")


def test_columns_are_the_lab_exports_in_order_with_three_empty_ones(export: RealExport) -> None:
    frame = export.frame
    assert tuple(frame.columns) == EXPORT_COLUMNS
    assert list(frame.columns[-3:]) == list(UNNAMED_COLUMNS)
    assert frame[list(UNNAMED_COLUMNS)].isna().all().all()


def test_one_row_per_processed_row_with_a_unique_running_number(
    processed: pd.DataFrame, export: RealExport
) -> None:
    frame = export.frame
    assert len(frame) == len(processed)
    assert frame["CONSECUTIVO"].tolist() == list(range(1, len(processed) + 1))


def test_permeability_is_the_real_value_untouched(
    processed: pd.DataFrame, export: RealExport
) -> None:
    built = export.frame["Permeabilidad"].to_numpy(dtype=np.float64)
    assert np.array_equal(built, processed["Permeabilidad"].to_numpy(dtype=np.float64))
    assert (built == 0).sum() == (processed["Permeabilidad"] == 0).sum() > 0


def test_building_does_not_change_the_processed_frame(processed: pd.DataFrame) -> None:
    before = processed.copy()
    build_real_export(processed)
    pd.testing.assert_frame_equal(processed, before)


def test_replicate_numbers_come_from_the_scaled_values_by_an_affine_map() -> None:
    scaled = pd.Series([0.0, 1 / 6, 1 / 3, 2 / 3, 1.0])
    assert replicate_numbers(scaled).tolist() == [1, 1, 2, 3, 4]


def test_replicates_of_a_test_share_date_reference_structure_conditions_and_analyst(
    export: RealExport,
) -> None:
    frame = export.frame.assign(test=export.test.to_numpy())
    groups = frame.groupby("test")
    assert (groups[[*TEST_COLUMNS, "Instrumentista"]].nunique() == 1).all().all()
    for _, rows in groups:
        replicates = rows["Muestra"].tolist()
        assert replicates == list(range(replicates[0], replicates[0] + len(replicates)))
    sizes = groups.size()
    assert (sizes >= 2).sum() > 0.6 * len(sizes)  # the data comes mostly in replicate pairs
    assert set(frame["Muestra"]) == {1, 2, 3, 4}


def test_two_tests_never_share_a_date_and_a_reference(export: RealExport) -> None:
    per_test = export.frame.assign(test=export.test.to_numpy()).groupby("test").first()
    assert not per_test.duplicated(["Año", "Mes", "Día", "Referencia"]).any()
    days = [
        date(int(y), int(m), int(d))
        for y, m, d in zip(per_test["Año"], per_test["Mes"], per_test["Día"], strict=True)
    ]
    assert days == sorted(days)
    assert all(d.weekday() < 5 for d in days)


def test_conditions_are_plausible_lab_values_that_keep_the_scaled_ones(
    processed: pd.DataFrame, export: RealExport
) -> None:
    for column, low, span in (
        ("Grados_C", TEMPERATURE_MIN_C, TEMPERATURE_SPAN_C),
        ("Porc_Humedad", HUMIDITY_MIN_PCT, HUMIDITY_SPAN_PCT),
    ):
        values = export.frame[column].to_numpy(dtype=np.float64)
        assert np.array_equal(values, np.round(values, 1))
        assert values.min() == low
        assert values.max() == pytest.approx(low + span)
        back = (values - low) / span
        scaled = processed[column].to_numpy(dtype=np.float64)
        assert np.abs(back - scaled).max() <= 0.05 / span + 1e-9
    assert 0 < export.frame["Porc_Humedad"].max() <= 100


def test_calipers_have_at_least_three_readings_whose_mean_is_calibre_prom(
    export: RealExport,
) -> None:
    cells = export.frame[list(CALIPER_COLUMNS)]
    readings = numbers(cells)
    present = readings.notna().sum(axis=1)
    assert present.min() >= 3
    assert (present < 5).sum() > 0
    typed_missing = cells.isin(["s.d."]) & readings.isna()
    assert typed_missing.sum().sum() == (5 - present).sum()
    mean = readings.mean(axis=1)
    prom = export.frame["Calibre_Prom"]
    assert ((prom - mean).abs() <= np.maximum(0.2, 0.03 * mean)).all()
    assert readings.min().min() > 0
    assert prom.min() >= 11.5
    assert prom.max() <= 121


def test_thickness_grows_with_the_first_caliper_component(
    processed: pd.DataFrame, export: RealExport
) -> None:
    comp1 = processed["comp1_calibre"].rank().to_numpy(dtype=np.float64)
    prom = export.frame["Calibre_Prom"].rank().to_numpy(dtype=np.float64)
    assert float(np.corrcoef(comp1, prom)[0, 1]) > 0.99


def test_structures_are_the_one_hot_names_and_the_dropped_one(processed: pd.DataFrame) -> None:
    names = structure_names(processed)
    one_hot = [
        c.removeprefix(ONE_HOT_PREFIX) for c in map(str, processed) if c.startswith(ONE_HOT_PREFIX)
    ]
    none_set = processed[[ONE_HOT_PREFIX + n for n in one_hot]].sum(axis=1) == 0
    assert (names[none_set] == DROPPED_STRUCTURE).all()
    assert 0 < none_set.sum() < 10
    # drop_first drops the first category in sorted order, and the name has no column left.
    assert DROPPED_STRUCTURE not in one_hot
    assert min(one_hot) > DROPPED_STRUCTURE
    for name in one_hot:
        flagged = processed[ONE_HOT_PREFIX + name] > 0.5
        assert (names[flagged] == name).all()


def test_spelling_variants_are_mixed_in_per_test_and_mean_the_same_film(
    export: RealExport,
) -> None:
    typed = export.frame["Estructura"]
    for original, variants in REAL_SPELLINGS.items():
        rows = typed[export.structure == original]
        assert set(rows) == set(variants)
        if original not in NON_PRODUCT_NAMES:
            assert {canonical(v) for v in variants} == {canonical(original)}
    assert typed.isin(["PET / AL / PE"]).sum() > 0
    per_test = export.frame.assign(test=export.test.to_numpy()).groupby("test")["Estructura"]
    assert (per_test.nunique() == 1).all()


def test_non_products_are_about_one_row_in_nine(export: RealExport) -> None:
    share = 1 - export.product_rows / len(export.frame)
    assert 0.08 < share < 0.14
    assert set(export.structure[~export.is_product]) <= NON_PRODUCT_NAMES


def test_built_differently_the_rows_are_the_same(export: RealExport) -> None:
    shuffled = shuffle_rows(drop_consecutivo(export), seed=3)
    assert "CONSECUTIVO" not in shuffled.frame.columns
    assert shuffled.frame.index.tolist() == list(range(len(export.frame)))
    assert shuffled.frame["Muestra"].tolist() != export.frame["Muestra"].tolist()
    original = export.frame.drop(columns="CONSECUTIVO")
    key = [*original.columns[:5], "Muestra", "Permeabilidad"]
    pd.testing.assert_frame_equal(
        shuffled.frame.sort_values(key).reset_index(drop=True).astype(str),
        original.sort_values(key).reset_index(drop=True).astype(str),
    )
    again = shuffle_rows(drop_consecutivo(export), seed=3)
    pd.testing.assert_frame_equal(again.frame, shuffled.frame)
    # The row-by-row knowledge travels with its row.
    moved = shuffled.frame.assign(structure=shuffled.structure.to_numpy())
    assert moved.groupby("Estructura")["structure"].nunique().max() == 1


def test_one_fecha_column_replaces_the_three_date_columns(export: RealExport) -> None:
    built = single_date_column(export, "%d/%m/%Y")
    columns = list(built.frame.columns)
    assert columns[1] == "Fecha"
    assert not {"Año", "Mes", "Día"} & set(columns)
    first = export.frame.iloc[0]
    assert built.frame["Fecha"].iat[0] == f"{first['Día']:02d}/{first['Mes']:02d}/{first['Año']}"
    as_dates = single_date_column(export, None).frame["Fecha"]
    assert as_dates.iat[0] == date(int(first["Año"]), int(first["Mes"]), int(first["Día"]))


def test_other_spellings_keep_one_spelling_per_test_and_the_same_film(
    export: RealExport,
) -> None:
    built = respell(export, OTHER_SPELLINGS)
    typed = built.frame["Estructura"]
    for original, variants in OTHER_SPELLINGS.items():
        assert set(typed[export.structure == original]) == set(variants)
        assert {canonical(v) for v in variants} == {canonical(original)}
    per_test = built.frame.assign(test=built.test.to_numpy()).groupby("test")["Estructura"]
    assert (per_test.nunique() == 1).all()
    untouched = ~export.structure.isin(list(OTHER_SPELLINGS))
    assert (typed[untouched] == export.frame["Estructura"][untouched]).all()


def test_a_corrected_value_changes_one_cell(export: RealExport) -> None:
    changed = with_permeability(export, 10, 9.99).frame
    differs = changed.ne(export.frame) & ~(changed.isna() & export.frame.isna())
    assert differs.sum().sum() == 1
    assert changed.loc[changed["CONSECUTIVO"] == 10, "Permeabilidad"].item() == 9.99
    with pytest.raises(ValueError, match="CONSECUTIVO"):
        with_permeability(export, 0, 1.0)


def test_missing_real_data_skips_but_fails_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "seed_lab_processed.csv"
    monkeypatch.delenv("PERMEABILITY_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="missing"):
        require_seed_lab_data(missing)
    monkeypatch.setenv("PERMEABILITY_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="forbids skipping"):
        require_seed_lab_data(missing)
