"""Missing caliper readings in a batch: filled as acquisition fills them, or the row's error.

Checked through :func:`permeability.scoring.batch.score_frame`, which gets its rows from
:mod:`permeability.scoring.rows`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.io.specs import load_specs
from permeability.modelling.served import LoadedModel
from permeability.pipelines.predict_tables import read_table, records_frame
from permeability.record.cleaning import SOURCE_ROW, clean_records
from permeability.record.rules import IMPUTED_COLUMN
from permeability.record.schema import CALIBRES
from permeability.record.structures import build_alias_map
from permeability.scoring.batch import score_frame
from tests.unit.scoring.batch_support import POLICY, loaded_model, sample_with_readings


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    return loaded_model()


def _score(frame: pd.DataFrame, loaded: LoadedModel, **kwargs: Any) -> pd.DataFrame:
    return score_frame(frame, loaded, load_specs(None), POLICY, **kwargs).frame


def _as_csv(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a lab file is read: every cell text, None as an empty cell."""
    text = pd.DataFrame(rows).to_csv(index=False)
    return read_table(text.encode(), "lab.csv")


def test_a_missing_reading_is_filled_with_the_mean_of_the_others_and_said(
    loaded: LoadedModel,
) -> None:
    frame = _as_csv(
        [sample_with_readings(1), sample_with_readings(2, Calibre3=None, CalibreProm=16.6)]
    )
    scored = score_frame(frame, loaded, load_specs(None), POLICY)
    out = scored.frame
    assert out["error"].tolist() == ["", ""]
    assert out["filled"].tolist() == [
        "",
        "Calibre3 filled with the mean of Calibre1, Calibre2, Calibre4, Calibre5",
    ]
    assert scored.filled_rows == 1
    assert scored.predicted == 2
    assert out.loc[1, "Calibre3"] == ""  # the input stays as it was typed
    columns, _ = scored.log_columns()
    assert columns["Calibre3"][1] == pytest.approx(16.6)  # what the model saw


def test_the_filled_prediction_equals_the_row_with_the_mean_typed_in(
    loaded: LoadedModel,
) -> None:
    mean = (16.0 + 16.8 + 17.2) / 3
    gaps = sample_with_readings(1, Calibre3=None, Calibre5=None, CalibreProm=None)
    typed = sample_with_readings(2, Calibre3=mean, Calibre5=mean, CalibreProm=mean)
    scored = _score(_as_csv([gaps, typed]), loaded)
    assert scored["error"].tolist() == ["", ""]
    assert scored.loc[0, "filled"] == (
        "Calibre3, Calibre5, CalibreProm filled with the mean of Calibre1, Calibre2, Calibre4"
    )
    for column in ("prediction", "lower", "upper"):
        assert scored.loc[0, column] == pytest.approx(scored.loc[1, column], rel=1e-12)
    assert str(scored.loc[0, "decision_reason"]) == str(scored.loc[1, "decision_reason"])


def test_a_missing_caliper_mean_is_computed_from_the_readings(loaded: LoadedModel) -> None:
    scored = _score(
        _as_csv(
            [sample_with_readings(1, CalibreProm=None), sample_with_readings(2, CalibreProm=16.52)]
        ),
        loaded,
    )
    assert scored["error"].tolist() == ["", ""]
    assert scored.loc[0, "filled"] == (
        "CalibreProm filled with the mean of Calibre1, Calibre2, Calibre3, Calibre4, Calibre5"
    )
    assert scored.loc[0, "prediction"] == pytest.approx(scored.loc[1, "prediction"], rel=1e-12)


def test_fewer_readings_than_needed_is_an_error_naming_them(loaded: LoadedModel) -> None:
    frame = _as_csv([sample_with_readings(1, Calibre1=None, Calibre2="n/a", Calibre4=None)])
    scored = score_frame(frame, loaded, load_specs(None), POLICY)
    assert scored.frame.loc[0, "error"] == (
        "only 2 of 5 caliper readings present "
        "(Calibre1, Calibre2, Calibre4 missing; at least 3 needed)"
    )
    assert scored.frame["prediction"].isna().all()
    assert scored.frame.loc[0, "filled"] == ""
    assert (scored.failed, scored.filled_rows) == (1, 0)


def test_the_reading_count_needed_is_acquisitions_parameter(loaded: LoadedModel) -> None:
    frame = _as_csv([sample_with_readings(1, Calibre1=None, Calibre2=None)])
    strict = score_frame(frame, loaded, load_specs(None), POLICY, min_caliper_readings=4)
    error = str(strict.frame.loc[0, "error"])
    assert "only 3 of 5 caliper readings present" in error
    assert "at least 4 needed" in error
    relaxed = score_frame(frame, loaded, load_specs(None), POLICY, min_caliper_readings=3)
    assert relaxed.frame.loc[0, "error"] == ""
    with pytest.raises(InvalidInputError, match="min_caliper_readings must be between 1 and 5"):
        score_frame(frame, loaded, load_specs(None), POLICY, min_caliper_readings=0)


def test_the_caliper_mean_is_checked_against_the_readings_present(loaded: LoadedModel) -> None:
    rows = [
        sample_with_readings(1, Calibre3=None, CalibreProm=16.6),  # the mean of the four readings
        sample_with_readings(2, Calibre3=None, CalibreProm=166),  # a typo
        sample_with_readings(
            3, Calibre3=None, Calibre1=-1, CalibreProm=166
        ),  # one reason: the reading
    ]
    errors = _score(_as_csv(rows), loaded)["error"].tolist()
    assert errors[0] == ""
    assert errors[1] == (
        "CalibreProm '166.0' does not match the mean of the readings (16.60 µm, tolerance ± 0.50 µm)"
    )
    assert errors[2] == "Calibre1 '-1.0' is outside (0, 2000] µm"


def test_json_records_with_null_or_absent_readings_are_filled(loaded: LoadedModel) -> None:
    absent = {
        k: v for k, v in sample_with_readings(2).items() if k not in ("Calibre5", "CalibreProm")
    }
    frame, _ = records_frame([sample_with_readings(1, Calibre2=None), absent])
    scored = score_frame(frame, loaded, load_specs(None), POLICY, missing_columns="rows")
    assert scored.frame["error"].tolist() == ["", ""]
    assert scored.frame["filled"].tolist() == [
        "Calibre2 filled with the mean of Calibre1, Calibre3, Calibre4, Calibre5",
        "Calibre5, CalibreProm filled with the mean of Calibre1, Calibre2, Calibre3, Calibre4",
    ]
    assert scored.filled_rows == 2


def test_a_file_without_some_caliper_columns_is_scored_like_acquisition_takes_it(
    loaded: LoadedModel,
) -> None:
    frame = _as_csv([sample_with_readings(1), sample_with_readings(2)]).drop(
        columns=["Calibre5", "CalibreProm"]
    )
    scored = score_frame(frame, loaded, load_specs(None), POLICY)
    assert scored.frame["error"].tolist() == ["", ""]
    assert scored.filled_rows == 2
    too_few = _as_csv([sample_with_readings(1)]).drop(columns=["Calibre3", "Calibre4", "Calibre5"])
    with pytest.raises(
        InvalidInputError,
        match=r"lacks column\(s\) Calibre3, Calibre4, Calibre5 \(at least 3 of Calibre1",
    ):
        score_frame(too_few, loaded, load_specs(None), POLICY)


def test_batch_accepts_and_fills_exactly_the_rows_acquisition_accepts(
    loaded: LoadedModel,
) -> None:
    """The same raw lab rows through acquisition's cleaning and through batch scoring."""
    variants: list[dict[str, Any]] = [
        {},
        {"Calibre3": None},
        {"Calibre2": "n/a", "Calibre4": ""},
        {"Calibre1": None, "Calibre2": None, "Calibre3": None},
        {"CalibreProm": None},
        {"Calibre5": None, "CalibreProm": "166"},
        {"Calibre5": None, "CalibreProm": "16,4"},
        {"Calibre1": "16,1 µm", "Calibre2": None},
        {"Calibre2": "abc", "Calibre3": None},
        {"Calibre4": "-2", "Calibre5": None},
    ]
    rows = [
        {k: (None if v is None else str(v)) for k, v in sample_with_readings(i + 1, **v).items()}
        for i, v in enumerate(variants)
    ]
    batch = score_frame(_as_csv(rows), loaded, load_specs(None), POLICY)
    raw = pd.DataFrame([{**r, "Permeabilidad": "5", "Fecha": ""} for r in rows], dtype=object)
    raw[SOURCE_ROW] = np.arange(len(rows))
    acquired = clean_records(raw, aliases=build_alias_map(), min_caliper_readings=3)
    accepted = (batch.frame["error"] == "").to_numpy()
    assert np.flatnonzero(accepted).tolist() == acquired.clean[SOURCE_ROW].tolist()
    assert accepted.tolist() == [True, True, True, False, True, False, True, True, False, False]
    logged, _ = batch.log_columns()
    for column in (*CALIBRES, "CalibreProm"):
        np.testing.assert_allclose(logged[column], acquired.clean[column], rtol=1e-12)
    filled_here = (batch.frame["filled"] != "").to_numpy()[accepted]
    assert (
        filled_here.tolist()
        == (
            (acquired.clean[IMPUTED_COLUMN] > 0).to_numpy()
            | raw["CalibreProm"].isna().to_numpy()[accepted]
        ).tolist()
    )


def test_acquisition_and_batch_word_a_rows_problems_alike(loaded: LoadedModel) -> None:
    """One declaration of the record rules, one wording: the reason acquisition gives for a
    rejected row is the batch's error for the same row of the same file."""
    variants: list[dict[str, Any]] = [
        {"Porc_Humedad": "150"},
        {"Grados_C": "n/a"},
        {"Muestra": "1.5"},
        {"Calibre2": "abc", "Grados_C": "81"},
        {"Calibre4": "-2", "Calibre5": None},
        {"Calibre5": None, "CalibreProm": "166"},
        {"Calibre1": None, "Calibre2": None, "Calibre3": None},
        {"Estructura": "  "},
        {"Estructura": "BO\x01PP"},
        {"Año": "2025", "Mes": "2", "Día": "30"},
        {"Año": "2025", "Mes": "", "Día": "4.5"},
        {"CONSECUTIVO": "x" * 121},
    ]
    rows = [
        {
            "CONSECUTIVO": str(i + 1),
            "Año": "",
            "Mes": "",
            "Día": "",
            **{k: (None if v is None else str(v)) for k, v in sample_with_readings(i + 1).items()},
            **v,
        }
        for i, v in enumerate(variants)
    ]
    batch = score_frame(_as_csv(rows), loaded, load_specs(None), POLICY).frame["error"]
    raw = pd.DataFrame([{**r, "Permeabilidad": "5"} for r in rows], dtype=object)
    raw[SOURCE_ROW] = np.arange(len(rows))
    acquired = clean_records(raw, aliases=build_alias_map(), min_caliper_readings=3)
    assert acquired.clean.empty
    assert acquired.rejected["reason"].tolist() == batch.tolist()
    assert batch.tolist()[:6] == [
        "Porc_Humedad '150' is outside (0, 100] % RH",
        "Grados_C 'n/a' is missing",
        "Muestra '1.5' is not a whole number ≥ 0",
        "Calibre2 'abc' is not a number; Grados_C '81' is outside [0, 80] °C",
        "Calibre4 '-2' is outside (0, 2000] µm",
        "CalibreProm '166' does not match the mean of the readings (16.55 µm, tolerance ± 0.50 µm)",
    ]
