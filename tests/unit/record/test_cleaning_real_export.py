"""Cleaning rows in the seed lab's real export layout (docs/acquisition.md, "The real export")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permeability.record.cleaning import SOURCE_ROW, clean_records, resolve_columns
from permeability.record.identity import RecordRules
from permeability.record.schema import CALIBRES, REAL_EXPORT_COLUMNS, REAL_EXPORT_EMPTY_COLUMNS
from permeability.record.structures import build_alias_map

REAL_HEADER = tuple(c for c in REAL_EXPORT_COLUMNS if c not in REAL_EXPORT_EMPTY_COLUMNS)
SEED_NAMES = {
    "Calibre_Prom": "CalibreProm",
}


def real_row(consecutivo: object = "1", **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "CONSECUTIVO": consecutivo,
        "Año": "2021",
        "Mes": "3",
        "Día": "4",
        "Referencia": "REF-12",
        "Estructura": "PET-AL-PE",
        **dict.fromkeys(CALIBRES, "80"),
        "Calibre_Prom": "80",
        "Muestra": "1",
        "Grados_C": "37.8",
        "Porc_Humedad": "89.5",
        "Permeabilidad": "0.05",
        "Instrumentista": "Ana",
    }
    row.update(changes)
    return row


def clean_real(*rows: dict[str, object], rules: RecordRules | None = None):  # type: ignore[no-untyped-def]
    frame = pd.DataFrame(list(rows), columns=list(REAL_HEADER), dtype=object)
    frame = frame.rename(columns=SEED_NAMES)
    frame[SOURCE_ROW] = np.arange(1, len(rows) + 1)
    return clean_records(
        frame, aliases=build_alias_map(), min_caliper_readings=3, rules=rules or RecordRules()
    )


def test_the_real_headers_resolve_without_configuration() -> None:
    headers = [*REAL_HEADER, "Unnamed: 17", "Unnamed: 18", "Unnamed: 19"]
    resolved = resolve_columns(headers, {}, min_caliper_readings=3, source_label="x")
    assert resolved["Calibre_Prom"] == "CalibreProm"
    assert resolved["Año"] == "Año"
    assert resolved["Día"] == "Día"
    assert {"CONSECUTIVO", "Referencia", "Instrumentista"} <= set(resolved.values())
    assert not any(h.startswith("Unnamed") for h in resolved)


def test_the_date_columns_make_the_test_date_and_record_fields_are_kept() -> None:
    result = clean_real(real_row("17.0"), real_row("18", Muestra="2", Día="5"))
    frame = result.clean
    assert result.record_key == ("CONSECUTIVO",)
    assert frame["record_id"].tolist() == ["17", "18"]
    assert frame["CONSECUTIVO"].tolist() == ["17", "18"]
    assert frame["Fecha"].dt.strftime("%Y-%m-%d").tolist() == ["2021-03-04", "2021-03-05"]
    assert frame["Referencia"].tolist() == ["REF-12", "REF-12"]
    assert frame["Instrumentista"].tolist() == ["Ana", "Ana"]
    assert frame["Muestra"].tolist() == [1, 2]
    assert frame["layers"].tolist() == ["PET/AL/PE", "PET/AL/PE"]


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("2021", "2", "30"), "Año/Mes/Día 2021/2/30 is not a calendar date"),
        (("2021", "13", "1"), "Año/Mes/Día 2021/13/1 is not a calendar date"),
        (("1021", "1", "1"), "Año/Mes/Día 1021/1/1 is not a calendar date"),
        (("21.5", "1", "1"), "Año '21.5' is not a whole number"),
    ],
)
def test_an_impossible_date_is_a_row_error_naming_the_columns(
    parts: tuple[str, str, str], expected: str
) -> None:
    year, month, day = parts
    result = clean_real(real_row("1", Año=year, Mes=month, Día=day), real_row("2"))
    assert result.clean["record_id"].tolist() == ["2"]
    assert result.rejected.iloc[0]["reason"] == expected


def test_a_date_with_one_part_missing_is_an_error_and_with_all_missing_is_no_date() -> None:
    result = clean_real(real_row("1", Día=None), real_row("2", Año=None, Mes=None, Día=None))
    assert result.clean["record_id"].tolist() == ["2"]
    assert pd.isna(result.clean["Fecha"].iloc[0])
    assert result.rejected.iloc[0]["reason"] == "Día missing: a date in Año/Mes/Día needs all three"


def test_a_missing_record_number_is_an_error_when_it_is_the_key() -> None:
    result = clean_real(real_row(None), real_row("2"))
    assert result.rejected.iloc[0]["reason"] == "CONSECUTIVO is missing (it is the record key)"


@pytest.mark.parametrize("token", ["s.d.", "S/D", "N.D.", "n.d.", "sin dato", "NR", "—"])
def test_spanish_no_value_tokens_in_a_caliper_cell_read_as_missing(token: str) -> None:
    result = clean_real(real_row("1", Calibre3=token))
    assert result.rejected.empty
    assert result.calipers_imputed == 1
    assert result.clean.loc[0, "Calibre3"] == pytest.approx(80.0)


def test_configured_missing_tokens_are_added() -> None:
    rules = RecordRules(missing_tokens=("pendiente",))
    assert clean_real(real_row("1", Calibre2="Pendiente"), rules=rules).rejected.empty
    assert not clean_real(real_row("1", Calibre2="pendiente")).rejected.empty


def test_zero_and_values_under_the_detection_limit_are_censored_not_rejected() -> None:
    result = clean_real(
        real_row("1", Permeabilidad="0"),
        real_row("2", Permeabilidad="0,0001"),
        real_row("3", Permeabilidad="0.0005"),
        real_row("4", Permeabilidad="-0.2"),
        real_row("5", Permeabilidad="sin dato"),
    )
    frame = result.clean
    assert frame["record_id"].tolist() == ["1", "2", "3"]
    assert frame["Permeabilidad"].tolist() == [0.0005, 0.0005, 0.0005]
    assert frame["below_detection_limit"].tolist() == [True, True, False]
    reasons = result.rejected["reason"].tolist()
    assert reasons[0].startswith("Permeabilidad '-0.2' is outside")
    assert reasons[1] == "Permeabilidad 'sin dato' is missing"


def test_the_detection_limit_is_configurable() -> None:
    result = clean_real(
        real_row("1", Permeabilidad="0.003"), rules=RecordRules(detection_limit=0.005)
    )
    assert result.clean["Permeabilidad"].tolist() == [0.005]
    assert result.clean["below_detection_limit"].tolist() == [True]


def test_non_product_rows_are_kept_and_flagged() -> None:
    names = [
        "CALIBRACION",
        "NIST-ROJA",
        "MATERIAL-REF",
        "NO-REPORTADO",
        "Muestra Azul",
        "PET-AL-PE",
    ]
    result = clean_real(*[real_row(str(i), Estructura=n) for i, n in enumerate(names)])
    assert result.rejected.empty
    assert result.clean["is_product"].tolist() == [False, False, False, False, False, True]
    custom = clean_real(
        real_row("1", Estructura="PET-AL-PE"), rules=RecordRules(non_product=("PET/*",))
    )
    assert custom.clean["is_product"].tolist() == [False]


def test_replicates_share_a_test_and_other_conditions_make_another_test() -> None:
    result = clean_real(
        real_row("1", Muestra="1"),
        real_row("2", Muestra="2"),
        real_row("3", Muestra="1", Grados_C="23"),
        real_row("4", Muestra="1", Referencia="REF-13"),
    )
    tests = result.clean["test_id"].tolist()
    assert tests[0] == tests[1]
    assert len(set(tests)) == 3
    assert all(t.startswith("T-") and len(t) == 14 for t in tests)


def test_without_a_record_number_the_identity_is_date_reference_structure_replicate_conditions() -> (
    None
):
    frame = pd.DataFrame([real_row("1")], dtype=object).drop(columns=["CONSECUTIVO"])
    frame = frame.rename(columns=SEED_NAMES)
    frame[SOURCE_ROW] = [1]
    result = clean_records(frame, aliases=build_alias_map(), min_caliper_readings=3)
    assert result.record_key == (
        "Fecha",
        "Referencia",
        "Estructura",
        "Muestra",
        "Grados_C",
        "Porc_Humedad",
    )
    assert result.clean["record_id"].tolist() == ["2021-03-04|REF-12|PET/AL/PE|1|37.8|89.5"]


def test_control_characters_in_a_record_field_are_refused() -> None:
    result = clean_real(real_row("1", Referencia="REF\x0012"))
    assert (
        result.rejected.iloc[0]["reason"]
        == "Referencia 'REF\\x0012' contains a control character (U+0000) at position 4"
    )


def test_a_result_written_under_a_value_is_censored_at_that_value() -> None:
    result = clean_real(
        real_row("1", Permeabilidad="<0,01"),
        real_row("2", Permeabilidad="≤ 0.0001"),
        real_row("3", Permeabilidad="< -1"),
        real_row("4", Permeabilidad="<abc"),
    )
    frame = result.clean
    assert frame["record_id"].tolist() == ["1", "2"]
    assert frame["Permeabilidad"].tolist() == [0.01, 0.0005]
    assert frame["below_detection_limit"].tolist() == [True, True]
    reasons = result.rejected["reason"].tolist()
    assert reasons[0].startswith("Permeabilidad '< -1' is outside")
    assert reasons[1] == "Permeabilidad '<abc' is not a number"
