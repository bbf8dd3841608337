from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.record.cleaning import (
    CLEAN_COLUMNS,
    SOURCE_ROW,
    clean_records,
    header_key,
    resolve_columns,
)
from permeability.record.parsing import UNITS, parse_dates, parse_number_text, parse_numbers
from permeability.record.schema import CALIBRES
from permeability.record.structures import build_alias_map
from tests.builders import SEED_HEADER

ALIASES = build_alias_map()
HEADER = SEED_HEADER


def raw_frame(*rows: tuple[object, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(HEADER), dtype=object)
    frame[SOURCE_ROW] = np.arange(1, len(rows) + 1)
    return frame


def good_row(muestra: object = "1", **changes: object) -> tuple[object, ...]:
    row: dict[str, object] = {
        "Muestra": muestra,
        "Grados_C": "38",
        "Porc_Humedad": "90",
        "Estructura": "BOPP",
        **dict.fromkeys(CALIBRES, "20.0"),
        "CalibreProm": "20.0",
        "Permeabilidad": "5.1",
        "Fecha": "2024-01-10",
    }
    row.update(changes)
    return tuple(row[c] for c in HEADER)


def clean(*rows: tuple[object, ...], min_readings: int = 3):  # type: ignore[no-untyped-def]
    return clean_records(raw_frame(*rows), aliases=ALIASES, min_caliper_readings=min_readings)


def caliper_units() -> dict[str, tuple[float, float]]:
    return dict(UNITS["Calibre1"])


# --------------------------------------------------------------------------- numbers


def test_plain_and_messy_numbers_are_read() -> None:
    text = pd.Series(
        ["16.4", "16,4", " 25,6 ", "16.4 µm", "16,4µm", "0.02 mm", "+5", "-3,5", "1.234,5", ".5"],
        dtype="str",
    )
    parsed = parse_numbers(text, caliper_units())
    assert parsed.values.tolist() == pytest.approx(
        [16.4, 16.4, 25.6, 16.4, 16.4, 20.0, 5.0, -3.5, 1234.5, 0.5]
    )
    assert not parsed.invalid.any()
    assert not parsed.missing.any()


def test_placeholders_are_missing_and_garbage_is_unreadable() -> None:
    text = pd.Series(["", "  ", "n/a", "N/A", "-", None, "abc", "16.4 kg", "1,2,3"], dtype="str")
    parsed = parse_numbers(text, caliper_units())
    assert parsed.missing.tolist() == [True] * 6 + [False] * 3
    assert parsed.problem.tolist()[6:] == [
        "is not a number",
        "has an unknown unit 'kg'",
        "is not a number",
    ]
    assert np.isnan(parsed.values).all()


@pytest.mark.parametrize(
    ("column", "text", "expected"),
    [
        ("Grados_C", "38 °C", 38.0),
        ("Grados_C", "100.4 °F", 38.0),
        ("Grados_C", "311.15 K", 38.0),
        ("Porc_Humedad", "90 %HR", 90.0),
        ("Permeabilidad", "5,1 g/m²·día", 5.1),
        ("Permeabilidad", "1 g/100in2/day", 15.500031),
        ("Muestra", "1.234.567", 1234567.0),
        ("Muestra", "1,234,567", 1234567.0),
        ("Muestra", "1e3", 1000.0),
    ],
)
def test_units_and_separators_per_column(column: str, text: str, expected: float) -> None:
    value, problem = parse_number_text(text, UNITS[column])
    assert problem is None
    assert value == pytest.approx(expected, rel=1e-6)


def test_a_sample_id_refuses_units() -> None:
    assert parse_number_text("12 µm", UNITS["Muestra"])[1] == "is not a number"


def test_unicode_digits_fall_back_without_crashing() -> None:
    parsed = parse_numbers(pd.Series(["²", "12"], dtype="str"), caliper_units())
    assert parsed.invalid.tolist() == [True, False]
    assert parsed.values[1] == 12.0


# --------------------------------------------------------------------------- dates


def test_dates_in_iso_and_day_first_forms() -> None:
    text = pd.Series(
        ["2024-03-05", "05/03/2024", "05-03-2024", "2024-03-05 10:30:00", "", "n/a", "soon"],
        dtype="str",
    )
    parsed = parse_dates(text)
    days = pd.to_datetime(parsed.values[:4])
    assert all(d == pd.Timestamp("2024-03-05") for d in days)
    assert parsed.with_time.tolist() == [False, False, False, True, False, False, False]
    assert parsed.missing.tolist() == [False] * 4 + [True, True, False]
    assert parsed.invalid.tolist() == [False] * 6 + [True]


# --------------------------------------------------------------------------- columns


def test_header_key_ignores_case_accents_spaces_and_underscores() -> None:
    assert header_key(" Grados C ") == header_key("GRADOS_C") == header_key("grados-c")
    assert header_key("Calibre Promedio") != header_key("CalibreProm")


def test_resolve_columns_matches_loosely_and_through_the_map() -> None:
    headers = ["muestra", "GRADOS C", "Humedad (%)", "estructura", *CALIBRES, "WVTR", "notes"]
    resolved = resolve_columns(
        headers,
        {"Humedad (%)": "Porc_Humedad", "wvtr": "Permeabilidad"},
        min_caliper_readings=3,
        source_label="lab.csv",
    )
    assert resolved["GRADOS C"] == "Grados_C"
    assert resolved["Humedad (%)"] == "Porc_Humedad"
    assert resolved["WVTR"] == "Permeabilidad"
    assert "notes" not in resolved


def test_missing_required_columns_are_listed_with_what_was_found() -> None:
    with pytest.raises(InvalidInputError) as caught:
        resolve_columns(
            ["Muestra", "Estructura", "Calibre1", "Calibre2"],
            {},
            min_caliper_readings=3,
            source_label="lab.csv",
        )
    message = str(caught.value)
    for expected in ("Grados_C", "Porc_Humedad", "Permeabilidad", "Calibre3", "'Calibre1'"):
        assert expected in message
    assert "lab.csv" in message


def test_two_headers_for_one_column_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="both map to Muestra"):
        resolve_columns([*HEADER, "MUESTRA "], {}, min_caliper_readings=3, source_label="x")


def test_column_map_to_an_unknown_column_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="not a column"):
        resolve_columns(list(HEADER), {"a": "Nope"}, min_caliper_readings=3, source_label="x")


# --------------------------------------------------------------------------- records


def test_messy_but_valid_rows_are_normalised() -> None:
    result = clean(
        good_row("1", Grados_C="25,6", Porc_Humedad=" 23 ", Estructura="Bopp metalizado"),
        good_row("2", Calibre1="16.4 µm", Estructura="bopp ", CalibreProm="19.28"),
        good_row("3.0", Estructura="'; DROP TABLE muestras; --", Fecha=None),
    )
    frame = result.clean
    assert frame["Muestra"].tolist() == [1, 2, 3]
    assert frame["Grados_C"].tolist() == [25.6, 38.0, 38.0]
    assert frame["Estructura"].tolist() == ["BOPP/MET", "BOPP", "';-DROP-TABLE-MUESTRAS;"]
    assert frame["layers"].tolist() == ["BOPP/MET", "BOPP", ""]
    assert frame.loc[1, "Calibre1"] == pytest.approx(16.4)
    assert pd.isna(frame.loc[2, "Fecha"])
    assert list(frame.columns) == [*CLEAN_COLUMNS, SOURCE_ROW]
    assert str(frame["Fecha"].dtype) == "datetime64[ns]"
    assert result.rejected.empty


def test_every_problem_of_a_rejected_row_is_named_with_its_value() -> None:
    result = clean(
        good_row("7", Porc_Humedad="120", Calibre3="-3", Permeabilidad="n/a", Fecha="someday"),
    )
    assert result.clean.empty
    row = result.rejected.iloc[0]
    assert row[SOURCE_ROW] == 1
    reason = row["reason"]
    for part in (
        "Porc_Humedad '120' is outside (0, 100]",
        "Calibre3 '-3' is outside (0, 2000]",
        "Permeabilidad 'n/a' is missing",
        "Fecha 'someday' is not a date",
    ):
        assert part in reason
    assert row["Porc_Humedad"] == "120"  # the value as typed, not a parsed number


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"Muestra": "abc"}, "Muestra 'abc' is not a number"),
        ({"Muestra": "12.5"}, "Muestra '12.5' is not a whole number"),
        ({"Muestra": "-4"}, "Muestra '-4' is not a whole number"),
        ({"Muestra": None}, "Muestra is missing"),
        ({"Estructura": "  "}, "Estructura is missing"),
        ({"Estructura": "1234"}, "Estructura '1234' is not a structure name"),
        ({"Grados_C": "81"}, "Grados_C '81' is outside [0, 80]"),
        ({"Porc_Humedad": "0"}, "Porc_Humedad '0' is outside (0, 100]"),
        (
            {"CalibreProm": "200"},
            "CalibreProm '200' does not match the mean of the readings (20.00",
        ),
        ({"Calibre2": "16.4 kg"}, "Calibre2 '16.4 kg' has an unknown unit 'kg'"),
    ],
)
def test_impossible_values_are_rejected(changes: dict[str, object], fragment: str) -> None:
    result = clean(good_row("1", **changes))
    assert result.clean.empty
    assert fragment in result.rejected.loc[0, "reason"]


def test_missing_readings_are_filled_from_the_others_and_counted() -> None:
    result = clean(
        good_row(
            "1", Calibre1="18", Calibre2="22", Calibre3=None, Calibre4="n/a", CalibreProm=None
        ),
    )
    row = result.clean.iloc[0]
    assert [row[c] for c in CALIBRES] == pytest.approx([18, 22, 20, 20, 20])
    assert row["n_calibres_imputados"] == 2
    assert row["CalibreProm"] == pytest.approx(20.0)
    assert result.calipers_imputed == 2


def test_too_few_readings_reject_the_row_naming_the_missing_ones() -> None:
    result = clean(good_row("1", Calibre1=None, Calibre2=None, Calibre3=None), min_readings=3)
    assert (
        "only 2 of 5 caliper readings present (Calibre1, Calibre2, Calibre3 missing"
        in (result.rejected.loc[0, "reason"])
    )
    relaxed = clean(good_row("1", Calibre1=None, Calibre2=None, Calibre3=None), min_readings=2)
    assert relaxed.clean.loc[0, "n_calibres_imputados"] == 3


def test_absent_optional_columns_count_as_missing_values() -> None:
    raw = raw_frame(good_row("1")).drop(columns=["Fecha", "CalibreProm", "Calibre5"])
    result = clean_records(raw, aliases=ALIASES, min_caliper_readings=3)
    assert result.clean.loc[0, "CalibreProm"] == pytest.approx(20.0)
    assert result.clean.loc[0, "n_calibres_imputados"] == 1
    assert result.clean["Fecha"].isna().all()


def test_non_text_inputs_are_read_as_their_text() -> None:
    result = clean(good_row(5, Grados_C=38.5, Porc_Humedad=90, Calibre1=20.0))
    assert result.clean.loc[0, "Grados_C"] == 38.5
    assert result.clean.loc[0, "Muestra"] == 5


def test_an_empty_frame_gives_empty_results() -> None:
    result = clean_records(raw_frame(), aliases=ALIASES, min_caliper_readings=3)
    assert result.clean.empty
    assert result.rejected.empty
    assert list(result.clean.columns) == [*CLEAN_COLUMNS, SOURCE_ROW]


def test_configured_aliases_are_applied() -> None:
    aliases = build_alias_map({"polipropileno biorientado": "BOPP"})
    raw = raw_frame(good_row("1", Estructura="Polipropileno  biorientado"))
    result = clean_records(raw, aliases=aliases, min_caliper_readings=3)
    assert result.clean.loc[0, "Estructura"] == "BOPP"
