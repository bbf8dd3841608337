"""The synthetic lab data: reproducible, physically sane, as messy as asked, and drift on demand."""

from __future__ import annotations

import math
import re
from datetime import date

import numpy as np
import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    ESTRUCTURA,
    FECHA,
    GRADOS_C,
    MUESTRA,
    PERMEABILIDAD,
    PORC_HUMEDAD,
    RECORD_COLUMNS,
    caliper_mean_consistent,
)
from permeability.record.structures import build_alias_map, normalise_structure
from permeability.synthetic.generator import (
    PHYSICS_PERMEABILITY,
    QUIRKS,
    TRUE_PERMEABILITY,
    DriftSpec,
    MessSpec,
    base_mix,
    generate_lab_data,
    noise_floor_log_sigma,
    noise_floor_mae,
    reference_wvtr,
    spelling_variants,
    structure_catalogue,
)

NUMERIC_COLUMNS = (GRADOS_C, PORC_HUMEDAD, *CALIBRES, CALIBRE_PROM, PERMEABILIDAD)
MESSY_ROWS = 20_000


@pytest.fixture(scope="module")
def messy() -> pd.DataFrame:
    return generate_lab_data(MESSY_ROWS, 7, with_truth=True)


@pytest.fixture(scope="module")
def tidy() -> pd.DataFrame:
    return generate_lab_data(MESSY_ROWS, 7, mess=MessSpec.none(), with_truth=True)


def _number(cell: object) -> float:
    """What a careful reader makes of a cell: decimal commas, units and spaces removed."""
    if isinstance(cell, str):
        text = re.sub(r"(µm|°C|%)", "", cell).strip().replace(",", ".")
        try:
            return float(text)
        except ValueError:
            return math.nan
    return float(cell)  # type: ignore[arg-type]


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    return np.array([_number(v) for v in frame[column]], dtype=np.float64)


# --- reproducibility ----------------------------------------------------------------------


def test_same_seed_gives_the_same_frame() -> None:
    first = generate_lab_data(3_000, 11, with_truth=True)
    second = generate_lab_data(3_000, 11, with_truth=True)
    pd.testing.assert_frame_equal(first, second)


def test_another_seed_gives_other_data() -> None:
    first = generate_lab_data(500, 1, mess=MessSpec.none())
    second = generate_lab_data(500, 2, mess=MessSpec.none())
    assert not first[PERMEABILIDAD].equals(second[PERMEABILIDAD])
    assert not first[ESTRUCTURA].equals(second[ESTRUCTURA])


def test_tidy_and_messy_exports_of_a_seed_describe_the_same_samples(
    messy: pd.DataFrame, tidy: pd.DataFrame
) -> None:
    untouched = messy[messy[QUIRKS] == ""].set_index(MUESTRA)
    same = tidy.set_index(MUESTRA).loc[untouched.index]
    assert len(untouched) > MESSY_ROWS * 0.4
    pd.testing.assert_frame_equal(
        untouched[list(NUMERIC_COLUMNS)].astype(float), same[list(NUMERIC_COLUMNS)]
    )
    assert (untouched[ESTRUCTURA] == same[ESTRUCTURA]).all()


# --- shape of a tidy export ---------------------------------------------------------------


def test_tidy_export_has_the_seed_columns_with_numeric_types(tidy: pd.DataFrame) -> None:
    plain = generate_lab_data(200, 3, mess=MessSpec.none())
    assert list(plain.columns) == list(RECORD_COLUMNS)
    assert plain[MUESTRA].dtype == np.int64
    for column in NUMERIC_COLUMNS:
        assert plain[column].dtype == np.float64, column
    assert not tidy[list(RECORD_COLUMNS)].isna().any().any()
    assert set(tidy[ESTRUCTURA]) <= set(base_mix())


def test_tidy_values_are_physical_and_calipers_agree(tidy: pd.DataFrame) -> None:
    assert (tidy[PERMEABILIDAD] > 0).all()
    assert tidy[PORC_HUMEDAD].between(1, 100).all()
    assert tidy[GRADOS_C].between(14, 46).all()
    readings = tidy[list(CALIBRES)].to_numpy()
    assert (readings > 0).all()
    assert np.allclose(tidy[CALIBRE_PROM], np.round(readings.mean(axis=1), 2))
    spread = readings.std(axis=1) / readings.mean(axis=1)
    assert 0.005 < float(np.median(spread)) < 0.06


def test_muestra_and_fecha_increase_from_the_given_start() -> None:
    frame = generate_lab_data(
        1_000, 5, start_id=5_001, start_date=date(2026, 3, 1), mess=MessSpec.none()
    )
    assert frame[MUESTRA].tolist() == list(range(5_001, 6_001))
    dates = pd.to_datetime(frame[FECHA], format="%Y-%m-%d")
    assert dates.is_monotonic_increasing
    assert dates.iloc[0] == pd.Timestamp("2026-03-01")
    assert 600 <= (dates.iloc[-1] - dates.iloc[0]).days <= 730


def test_most_tests_run_at_standard_conditions(tidy: pd.DataFrame) -> None:
    tropical = tidy[GRADOS_C].between(37.5, 38.5) & tidy[PORC_HUMEDAD].between(89, 91)
    cool_dry = tidy[GRADOS_C].between(22.5, 23.5) & tidy[PORC_HUMEDAD].between(49, 51)
    assert 0.35 < tropical.mean() < 0.45
    assert 0.09 < cool_dry.mean() < 0.15
    assert (tidy[GRADOS_C] != 38.0).mean() > 0.6  # chamber jitter and arbitrary conditions


# --- physics ------------------------------------------------------------------------------


def test_wvtr_rises_with_temperature_and_humidity() -> None:
    for name in base_mix():
        cold, warm = reference_wvtr(name, [23.0, 38.0], 90.0, 50.0)
        dry, wet = reference_wvtr(name, 38.0, [50.0, 90.0], 50.0)
        assert warm > cold, name
        assert wet > dry, name


def test_thickness_matters_for_bopp_but_barely_for_metallized_bopp() -> None:
    thin, thick = reference_wvtr("BOPP", 38.0, 90.0, [20.0, 40.0])
    assert thin / thick > 1.7
    thin_met, thick_met = reference_wvtr("BOPP/MET", 38.0, 90.0, [20.0, 40.0])
    assert 1.0 < thin_met / thick_met < 1.15


def test_a_laminate_transmits_less_than_each_of_its_layers() -> None:
    for spec in structure_catalogue().values():
        if not spec.is_laminate:
            continue
        total = 60.0
        laminate = reference_wvtr(spec.name, 38.0, 90.0, total)[()]
        for layer in spec.layers:
            alone = reference_wvtr(layer.material.name, 38.0, 90.0, total * layer.share)[()]
            assert laminate < alone, (spec.name, layer.material.name)


def test_bopa_is_far_more_humidity_sensitive_than_bopp() -> None:
    bopa_50, bopa_90 = reference_wvtr("NY", 23.0, [50.0, 90.0], 25.0)
    bopp_50, bopp_90 = reference_wvtr("BOPP", 23.0, [50.0, 90.0], 25.0)
    assert bopp_90 / bopp_50 == pytest.approx(90 / 50, rel=1e-6)  # driving force only
    assert bopa_90 / bopa_50 > 2.0 * (90 / 50)


def test_reference_values_match_the_data_sheets() -> None:
    assert reference_wvtr("BOPP", 38.0, 90.0, 25.0)[()] == pytest.approx(5.0)
    assert 15 <= reference_wvtr("PET", 38.0, 90.0, 25.0)[()] <= 31
    assert 0.1 <= reference_wvtr("BOPP/MET", 38.0, 90.0, 25.0)[()] <= 0.6
    assert 155 <= reference_wvtr("NY", 38.0, 90.0, 25.0)[()] <= 410


def test_generated_bopp_at_38_90_and_25_um_has_median_about_5(tidy: pd.DataFrame) -> None:
    rows = tidy[
        (tidy[ESTRUCTURA] == "BOPP")
        & tidy[GRADOS_C].between(37.6, 38.4)
        & tidy[PORC_HUMEDAD].between(89, 91)
        & tidy[CALIBRE_PROM].between(23.5, 26.5)
    ]
    assert len(rows) > 100
    assert 4.5 < rows[PERMEABILIDAD].median() < 5.5


def test_reference_wvtr_accepts_any_spelling_and_vectors_of_structures() -> None:
    values = reference_wvtr(["Bopp metalizado", "BOPP MET", "pet / ldpe"], 38.0, 90.0, 25.0)
    assert values[0] == values[1]
    assert values[2] == reference_wvtr("PET/LDPE", 38.0, 90.0, 25.0)[()]


def test_reference_wvtr_gives_nan_for_impossible_thickness() -> None:
    values = reference_wvtr("BOPP", 38.0, 90.0, [25.0, 0.0, -3.0])
    assert np.isfinite(values[0])
    assert np.isnan(values[1:]).all()


def test_unknown_structure_is_refused_by_name() -> None:
    with pytest.raises(InvalidInputError, match="UNOBTAINIUM"):
        reference_wvtr("UNOBTAINIUM", 38.0, 90.0, 25.0)


# --- noise and truth ----------------------------------------------------------------------


def test_truth_columns_hold_the_noise_free_law(tidy: pd.DataFrame) -> None:
    assert (tidy[TRUE_PERMEABILITY] > 0).all()
    ratio = tidy[PHYSICS_PERMEABILITY] / tidy[TRUE_PERMEABILITY]
    assert float(np.median(np.abs(np.log(ratio)))) < 0.03  # only the caliper error differs
    by_structure = (tidy[PERMEABILIDAD] / tidy[TRUE_PERMEABILITY]).groupby(tidy[ESTRUCTURA])
    assert by_structure.median().between(0.93, 1.07).all()  # noise is median-centred


def test_metallized_films_scatter_more_than_plain_ones(tidy: pd.DataFrame) -> None:
    log_error = pd.Series(np.log(tidy[PERMEABILIDAD] / tidy[PHYSICS_PERMEABILITY]))
    spread = log_error.groupby(tidy[ESTRUCTURA]).std()
    assert spread["BOPP/MET"] > 2 * spread["BOPP"]
    assert 0.06 < spread["BOPP"] < 0.15


def test_truth_columns_only_on_request() -> None:
    frame = generate_lab_data(100, 1)
    assert list(frame.columns) == list(RECORD_COLUMNS)


def test_noise_floor_is_reached_by_the_law_itself(tidy: pd.DataFrame) -> None:
    floor = noise_floor_mae(tidy)
    assert floor > 0
    perfect = tidy.assign(**{PERMEABILIDAD: tidy[PHYSICS_PERMEABILITY]})
    assert noise_floor_mae(perfect) == pytest.approx(0.0, abs=1e-12)
    assert 0.1 < noise_floor_log_sigma(tidy) < 0.3


def test_noise_floor_ignores_rows_a_quirk_touched(messy: pd.DataFrame, tidy: pd.DataFrame) -> None:
    assert noise_floor_mae(messy) == pytest.approx(noise_floor_mae(tidy), rel=0.25)


def test_noise_floor_needs_the_truth_columns() -> None:
    with pytest.raises(InvalidInputError, match=PHYSICS_PERMEABILITY):
        noise_floor_mae(generate_lab_data(50, 1, mess=MessSpec.none()))


# --- the mess -----------------------------------------------------------------------------


def _rate(mask: pd.Series | np.ndarray) -> float:
    return float(np.mean(mask))


def test_about_30_percent_of_rows_use_decimal_commas(messy: pd.DataFrame) -> None:
    comma = re.compile(r"^\s*-?\d+,\d+")
    has_comma = messy[list(NUMERIC_COLUMNS)].map(
        lambda v: isinstance(v, str) and bool(comma.match(v))
    )
    assert _rate(has_comma.any(axis=1)) == pytest.approx(0.30, abs=0.02)


def test_about_25_percent_of_structures_are_misspelt_yet_recognisable(
    messy: pd.DataFrame,
) -> None:
    canonical = set(structure_catalogue())
    misspelt = ~messy[ESTRUCTURA].isin(canonical)
    assert _rate(misspelt) == pytest.approx(0.25, abs=0.02)
    aliases = build_alias_map()
    recognised = {normalise_structure(raw, aliases) for raw in messy[ESTRUCTURA].unique()}
    assert recognised <= set(base_mix())
    assert {"Bopp metalizado", "bopp", "BOPP "} & set(messy[ESTRUCTURA])


def test_about_3_percent_of_rows_miss_caliper_readings(messy: pd.DataFrame) -> None:
    missing = messy[list(CALIBRES)].isna().any(axis=1)
    assert _rate(missing) == pytest.approx(0.03, abs=0.006)
    assert not messy[CALIBRE_PROM].isna().any()


def test_about_1_percent_of_rows_hold_impossible_values(messy: pd.DataFrame) -> None:
    humidity = _numbers(messy, PORC_HUMEDAD)
    readings = np.column_stack([_numbers(messy, c) for c in CALIBRES])
    mean = _numbers(messy, CALIBRE_PROM)
    target = _numbers(messy, PERMEABILIDAD)
    readings_mean = np.nanmean(readings, axis=1)
    inconsistent = np.array(
        [not caliper_mean_consistent(m, r) for m, r in zip(mean, readings_mean, strict=True)]
    )
    impossible = (
        (humidity > 100)
        | (humidity <= 0)
        | (np.nan_to_num(readings, nan=1.0) <= 0).any(axis=1)
        | inconsistent
        | ~(target > 0)
    )
    assert _rate(impossible) == pytest.approx(0.01, abs=0.003)
    assert (humidity > 100).any()
    assert (humidity <= 0).any()
    assert {"n/a", "N/A"} & {v for v in messy[PERMEABILIDAD] if isinstance(v, str)}


def test_exactly_one_percent_of_rows_are_pasted_twice(messy: pd.DataFrame) -> None:
    repeated = messy.drop(columns=[QUIRKS]).duplicated()
    assert repeated.sum() == round(MESSY_ROWS * 0.01)
    positions = np.flatnonzero(repeated)
    previous = messy.drop(columns=[QUIRKS]).iloc[positions - 1].reset_index(drop=True)
    copies = messy.drop(columns=[QUIRKS]).iloc[positions].reset_index(drop=True)
    pd.testing.assert_frame_equal(previous, copies)  # each copy sits right after its original


def test_re_measured_samples_keep_their_id_with_a_later_date(messy: pd.DataFrame) -> None:
    distinct = messy.drop(columns=[QUIRKS]).drop_duplicates()
    again = distinct[distinct[MUESTRA].duplicated(keep=False)]
    assert again[MUESTRA].nunique() == round(MESSY_ROWS * 0.005)
    for _, group in again.groupby(MUESTRA):
        assert len(group) == 2
        first, second = group.iloc[0], group.iloc[1]
        assert second[FECHA] > first[FECHA]
        assert first[TRUE_PERMEABILITY] == second[TRUE_PERMEABILITY]


def test_about_half_a_percent_of_rows_have_units_or_stray_spaces(messy: pd.DataFrame) -> None:
    columns = [GRADOS_C, PORC_HUMEDAD, *CALIBRES, CALIBRE_PROM]
    decorated = messy[columns].map(
        lambda v: isinstance(v, str) and (v != v.strip() or bool(re.search("µm|°C|%", v)))
    )
    assert _rate(decorated.any(axis=1)) == pytest.approx(0.005, abs=0.002)
    with_unit = messy[[*CALIBRES, CALIBRE_PROM]].map(lambda v: str(v).endswith(" µm"))
    assert with_unit.any().any()


def test_messy_export_keeps_the_requested_row_count(messy: pd.DataFrame) -> None:
    assert len(messy) == MESSY_ROWS


def test_a_tidy_export_has_none_of_the_quirks(tidy: pd.DataFrame) -> None:
    assert (tidy[QUIRKS] == "").all()
    assert not tidy.duplicated(subset=[MUESTRA]).any()
    assert set(tidy[ESTRUCTURA]) <= set(structure_catalogue())


def test_every_spelling_variant_normalises_back() -> None:
    aliases = build_alias_map()
    for name in structure_catalogue():
        variants = spelling_variants(name)
        assert len(variants) >= 4, name
        assert name not in variants
        assert {normalise_structure(v, aliases) for v in variants} == {name}


def test_mess_rates_are_validated() -> None:
    with pytest.raises(InvalidInputError, match="decimal_comma"):
        MessSpec(decimal_comma=1.5)
    with pytest.raises(InvalidInputError, match="repeated_row"):
        MessSpec(repeated_row=0.4, remeasured=0.2)


def test_bad_generation_arguments_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="rows"):
        generate_lab_data(0, 1)
    with pytest.raises(InvalidInputError, match="seed"):
        generate_lab_data(10, -1)


# --- drift --------------------------------------------------------------------------------


def test_humidity_shift_moves_every_test_humidity() -> None:
    base = generate_lab_data(2_000, 9, mess=MessSpec.none())
    shifted = generate_lab_data(
        2_000, 9, mess=MessSpec.none(), drift=DriftSpec(humidity_shift_pct=-20.0)
    )
    expected = np.round(np.clip(base[PORC_HUMEDAD] - 20.0, 1.0, 100.0), 1)
    assert np.allclose(shifted[PORC_HUMEDAD], expected)
    assert shifted[PERMEABILIDAD].median() < base[PERMEABILIDAD].median()


def test_barrier_factor_multiplies_one_structure_only() -> None:
    base = generate_lab_data(3_000, 9, mess=MessSpec.none(), with_truth=True)
    drifted = generate_lab_data(
        3_000, 9, mess=MessSpec.none(), with_truth=True, drift=DriftSpec(barrier_factor={"BOPP": 2})
    )
    is_bopp = base[ESTRUCTURA] == "BOPP"
    ratio = drifted[TRUE_PERMEABILITY] / base[TRUE_PERMEABILITY]
    assert np.allclose(ratio[is_bopp], 2.0)
    assert np.allclose(ratio[~is_bopp], 1.0)


def test_new_structures_appear_at_their_share() -> None:
    drift = DriftSpec(new_structures=("PET/EVOH/LDPE", "CPP/LDPE"), new_structure_share=0.2)
    frame = generate_lab_data(10_000, 9, mess=MessSpec.none(), drift=drift)
    share = frame[ESTRUCTURA].isin(["PET/EVOH/LDPE", "PPC/LDPE"]).mean()
    assert share == pytest.approx(0.2, abs=0.015)
    assert (frame[PERMEABILIDAD] > 0).all()
    assert "PET/EVOH/LDPE" not in base_mix()


@pytest.mark.parametrize(
    ("drift", "message"),
    [
        (lambda: DriftSpec(new_structures=("BOPP",)), "already in the base mix"),
        (lambda: DriftSpec(new_structures=("KRYPTONITE",)), "KRYPTONITE"),
        (lambda: DriftSpec(barrier_factor={"PET/EVOH/LDPE": 2.0}), "not among"),
        (lambda: DriftSpec(barrier_factor={"BOPP": 0.0}), "positive"),
    ],
)
def test_bad_drift_specs_are_refused(drift: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        generate_lab_data(100, 1, drift=drift())  # type: ignore[operator]


# --- names under the layer-aware structure parser ------------------------------------------


def test_every_name_the_generator_knows_is_canonical() -> None:
    from permeability.synthetic.generator import real_catalogue
    from permeability.synthetic.physics import MATERIALS

    aliases = build_alias_map()
    names = [*structure_catalogue(), *real_catalogue(), *MATERIALS]
    assert [n for n in names if normalise_structure(n, aliases) != n] == []
    assert {"BOPP/MET", "PPC", "NY", "PET/MET/LDPE"} <= set(structure_catalogue())


def test_any_spelling_resolves_to_its_catalogue_entry() -> None:
    from permeability.synthetic.generator import real_catalogue, resolve_structure

    assert resolve_structure("BOPP MET") is structure_catalogue()["BOPP/MET"]
    assert resolve_structure("cpp").name == "PPC"
    assert resolve_structure("BOPA").name == "NY"
    assert resolve_structure("PET / AL / PE") is real_catalogue()["PET/AL/PE"]
    assert resolve_structure("BOPP-BOPPMET").name == "BOPP/BOPP/MET"  # the seed entry first
    assert resolve_structure("Bopp metalizado / pebd").name == "BOPP/MET/LDPE"  # on the fly


def test_foil_laminates_sit_at_the_detection_limit_and_paper_is_permeable() -> None:
    foil = reference_wvtr("PET-AL-PE", 38.0, 90.0, 80.0)[()]
    paper = reference_wvtr("PAPEL", 38.0, 90.0, 70.0)[()]
    metallized = reference_wvtr("BOPP-BOPP-MET", 38.0, 90.0, 40.0)[()]
    assert foil < 0.01 < metallized < 1.0 < paper
