"""The real layout: replicate rows of tests, as the seed lab's export holds them."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.record.identity import DEFAULT_NON_PRODUCT, is_non_product
from permeability.record.schema import (
    ANIO,
    CALIBRE_PROM_REAL,
    CALIBRES,
    CONSECUTIVO,
    DATE_PARTS,
    DIA,
    ESTRUCTURA,
    GRADOS_C,
    INSTRUMENTISTA,
    MES,
    MUESTRA,
    PERMEABILIDAD,
    PORC_HUMEDAD,
    REAL_EXPORT_COLUMNS,
    REAL_EXPORT_EMPTY_COLUMNS,
    REFERENCIA,
)
from permeability.record.structures import build_alias_map, normalise_structure, parse_structure
from permeability.synthetic.catalogue import REAL_PRODUCT_ROWS, real_catalogue
from permeability.synthetic.export import ExportSpec, generate_lab_export, generate_real_export
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.lab import FILM, NON_PRODUCT_ROWS, TEST, real_variants
from permeability.synthetic.mess import MessSpec
from permeability.synthetic.truth import PHYSICS_PERMEABILITY

ROWS = 20_000
ALIASES = build_alias_map()
NON_PRODUCT_NAMES = {name for name, _ in NON_PRODUCT_ROWS}
TEST_COLUMNS = (*DATE_PARTS, REFERENCIA, ESTRUCTURA, GRADOS_C, PORC_HUMEDAD, INSTRUMENTISTA)


@pytest.fixture(scope="module")
def export() -> pd.DataFrame:
    return generate_real_export(ROWS, 7, with_truth=True)


def _canonical(names: pd.Series) -> pd.Series:
    return names.map(lambda raw: normalise_structure(str(raw), ALIASES))


def _non_product(canonical: pd.Series) -> pd.Series:
    return canonical.map(lambda name: is_non_product(name, DEFAULT_NON_PRODUCT))


# --- the layout ----------------------------------------------------------------------------


def test_columns_are_the_real_export_s_in_its_order() -> None:
    frame = generate_lab_export(300, 1)
    assert list(frame.columns) == [
        "CONSECUTIVO",
        "Año",
        "Mes",
        "Día",
        "Referencia",
        "Estructura",
        "Calibre1",
        "Calibre2",
        "Calibre3",
        "Calibre4",
        "Calibre5",
        "Calibre_Prom",
        "Muestra",
        "Grados_C",
        "Porc_Humedad",
        "Permeabilidad",
        "Instrumentista",
        "Unnamed: 17",
        "Unnamed: 18",
        "Unnamed: 19",
    ]
    assert list(frame.columns) == list(REAL_EXPORT_COLUMNS)
    assert frame[list(REAL_EXPORT_EMPTY_COLUMNS)].isna().all().all()
    for column in (CONSECUTIVO, ANIO, MES, DIA, MUESTRA):
        assert frame[column].dtype == np.int64, column


def test_consecutivo_is_unique_and_runs_in_date_order_from_start() -> None:
    frame = generate_real_export(3_000, 5, start_id=5_001, start_date=date(2026, 3, 1))
    assert frame[CONSECUTIVO].tolist() == list(range(5_001, 8_001))
    dates = pd.to_datetime(
        pd.DataFrame({"year": frame[ANIO], "month": frame[MES], "day": frame[DIA]})
    )
    assert dates.is_monotonic_increasing
    assert dates.iloc[0] == pd.Timestamp("2026-03-01")
    assert 600 <= (dates.iloc[-1] - dates.iloc[0]).days <= 730
    assert frame[MES].between(1, 12).all()
    assert frame[DIA].between(1, 31).all()


def test_the_requested_row_count_is_exact_and_the_same_seed_gives_the_same_frame() -> None:
    for rows in (1, 2, 3, 999):
        assert len(generate_real_export(rows, 3)) == rows
    first = generate_real_export(2_000, 11, with_truth=True)
    pd.testing.assert_frame_equal(first, generate_real_export(2_000, 11, with_truth=True))
    other = generate_real_export(2_000, 12)
    assert not first[PERMEABILIDAD].equals(other[PERMEABILIDAD])


# --- replicates and tests ------------------------------------------------------------------


def test_replicates_of_a_test_share_date_reference_structure_and_conditions(
    export: pd.DataFrame,
) -> None:
    distinct = export.groupby(TEST)[list(TEST_COLUMNS)].nunique()
    assert (distinct == 1).all().all()
    # ... and those shared values tell one test from another (no two tests collide).
    by_values = export.groupby(list(TEST_COLUMNS), sort=False).ngroups
    assert by_values == export[TEST].nunique()


def test_replicate_numbers_run_1_to_k_in_row_order(export: pd.DataFrame) -> None:
    for _, numbers in export.groupby(TEST)[MUESTRA]:
        assert numbers.tolist() == list(range(1, len(numbers) + 1))
    assert (np.diff(export[TEST]) >= 0).all()  # replicates sit together


def test_replicate_pairs_dominate_with_a_few_threes_and_fours(export: pd.DataFrame) -> None:
    assert export[MUESTRA].isin([1, 2]).mean() == pytest.approx(0.98, abs=0.012)
    assert export[MUESTRA].max() == 4
    assert (export[MUESTRA] == 3).sum() > 0
    assert (export[MUESTRA] == 1).mean() == pytest.approx(0.52, abs=0.03)  # real: 52.6 %


def test_replicates_differ_by_about_nine_percent(export: pd.DataFrame) -> None:
    pairs = export[export[MUESTRA] <= 2].groupby(TEST)[PERMEABILIDAD].agg(["min", "max", "size"])
    pairs = pairs[(pairs["size"] == 2) & (pairs["min"] > 0)]
    relative = (pairs["max"] - pairs["min"]) / ((pairs["max"] + pairs["min"]) / 2)
    assert 0.06 < relative.median() < 0.14
    assert (relative > 0).mean() > 0.9  # a replicate is a new measurement, not a copy


def test_conditions_vary_from_test_to_test_around_38_90() -> None:
    frame = generate_real_export(1_057, 2)
    assert frame[GRADOS_C].nunique() >= 25
    assert frame[PORC_HUMEDAD].nunique() >= 50
    tropical = frame[GRADOS_C].between(36, 40) & frame[PORC_HUMEDAD].between(82, 98)
    assert tropical.mean() > 0.6
    assert frame[PORC_HUMEDAD].between(1, 100).all()


# --- what was tested -----------------------------------------------------------------------


def test_every_structure_written_is_a_known_product_or_non_product(export: pd.DataFrame) -> None:
    canonical = _canonical(export[ESTRUCTURA])
    known = set(real_catalogue())
    unknown = canonical[~canonical.isin(known) & ~_non_product(canonical)]
    assert unknown.empty, unknown.unique()[:5]
    assert set(canonical[canonical.isin(known)]) == known  # the long tail shows up


def test_about_eleven_percent_of_rows_are_non_products(export: pd.DataFrame) -> None:
    canonical = _canonical(export[ESTRUCTURA])
    share = _non_product(canonical).mean()
    assert 0.08 < share < 0.14
    assert set(export[ESTRUCTURA]) >= NON_PRODUCT_NAMES


def test_a_long_tail_of_laminates_led_by_pet_al_pe(export: pd.DataFrame) -> None:
    counts = _canonical(export[ESTRUCTURA]).value_counts(normalize=True)
    assert counts.index[0] == "PET/AL/PE"
    assert 0.10 < counts.iloc[0] < 0.20
    layered = [name for name in counts.index if len(parse_structure(name, ALIASES).layers) > 1]
    assert counts[layered].sum() > 0.6
    assert (counts < 10 / 1_057).sum() >= 15  # rare names, as in the real export


def test_zeros_appear_only_on_foil_laminates(export: pd.DataFrame) -> None:
    zero = export[export[PERMEABILIDAD] == 0]
    assert 0.002 < len(zero) / len(export) < 0.02
    assert all("AL" in parse_structure(film, ALIASES).layers for film in zero[FILM])
    products = zero[~_non_product(_canonical(zero[ESTRUCTURA]))]
    assert len(products) > 0
    assert all("AL" in parse_structure(s, ALIASES).layers for s in products[ESTRUCTURA])
    assert (export[PERMEABILIDAD] >= 0).all()


def test_wvtr_spans_five_orders_of_magnitude(export: pd.DataFrame) -> None:
    wvtr = export[PERMEABILIDAD]
    assert 0.12 < (wvtr < 0.01).mean() < 0.25  # real: 16.7 %
    assert wvtr[wvtr > 0].min() < 1e-3
    assert wvtr.quantile(0.99) > 10
    foil = export[FILM].str.contains("AL")
    assert wvtr[foil].median() < 0.01 < wvtr[~foil].median()


def test_some_caliper_cells_hold_text_and_the_mean_covers_the_readings_left(
    export: pd.DataFrame,
) -> None:
    text = export[list(CALIBRES)].map(lambda v: isinstance(v, str))
    assert 0.01 < text.any(axis=1).mean() < 0.04
    assert "s.d." in set(export[list(CALIBRES)].to_numpy()[text.to_numpy()])
    numbers = export[list(CALIBRES)].apply(pd.to_numeric, errors="coerce")
    assert np.allclose(export[CALIBRE_PROM_REAL], np.round(numbers.mean(axis=1), 2))


def test_spelling_variants_name_the_same_structure(export: pd.DataFrame) -> None:
    lab_spellings = {typed for typed, _ in REAL_PRODUCT_ROWS} | NON_PRODUCT_NAMES
    variants = export[~export[ESTRUCTURA].isin(lab_spellings)]
    assert 0.02 < len(variants) / len(export) < 0.07
    assert {"PET / AL / PE", "BOPP-BOPPMET"} & set(variants[ESTRUCTURA])
    for typed, _ in REAL_PRODUCT_ROWS:
        target = normalise_structure(typed, ALIASES)
        assert {normalise_structure(v, ALIASES) for v in real_variants(typed)} <= {target}
    assert "BOPP-MATE---BOPP-MET" in real_variants("BOPP-MATE-BOPP-MET")


def test_the_law_is_the_median_of_what_is_measured(export: pd.DataFrame) -> None:
    measured = export[PERMEABILIDAD] > 0
    ratio = export.loc[measured, PERMEABILIDAD] / export.loc[measured, PHYSICS_PERMEABILITY]
    plain = ~export.loc[measured, FILM].str.contains("AL|MET")
    assert 0.93 < ratio[plain].median() < 1.07


def test_a_tidy_spec_keeps_the_mix_but_not_the_typing_mess() -> None:
    frame = generate_real_export(5_000, 4, spec=ExportSpec.tidy())
    lab_spellings = {typed for typed, _ in REAL_PRODUCT_ROWS} | NON_PRODUCT_NAMES
    assert set(frame[ESTRUCTURA]) <= lab_spellings
    for column in (*CALIBRES, CALIBRE_PROM_REAL):
        assert frame[column].dtype == np.float64, column
    assert (frame[PERMEABILIDAD] == 0).any()  # zeros are measurements, not mess


# --- the two layouts -----------------------------------------------------------------------


def test_the_seed_layout_is_generate_lab_data_unchanged() -> None:
    pd.testing.assert_frame_equal(
        generate_lab_export(500, 3, layout="seed"), generate_lab_data(500, 3)
    )
    pd.testing.assert_frame_equal(
        generate_lab_export(500, 3, layout="seed", messy=False),
        generate_lab_data(500, 3, mess=MessSpec.none()),
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: generate_lab_export(10, 1, layout="wide"), "layout"),  # type: ignore[arg-type]
        (lambda: generate_real_export(0, 1), "rows"),
        (lambda: generate_real_export(10, -1), "seed"),
        (lambda: ExportSpec(non_product_share=1.0), "non_product_share"),
        (lambda: ExportSpec(replicate_weights=(0.5, 0.5, 0.5, 0.0)), "sum to 1"),
        (lambda: ExportSpec(caliper_text=-0.1), "caliper_text"),
    ],
)
def test_bad_arguments_are_refused(call: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call()  # type: ignore[operator]
