"""Batch scoring: every row back in order with its outputs; bad rows explained, never fatal."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from permeability.config import InferenceParams
from permeability.errors import InvalidInputError
from permeability.io.specs import load_specs
from permeability.modelling.served import LoadedModel
from permeability.pipelines.predict_tables import records_frame
from permeability.record.schema import CALIBRES
from permeability.scoring.batch import OUTPUT_COLUMNS, score_frame
from permeability.scoring.decisions import (
    DecisionPolicy,
    decide,
    decision_reason,
    no_decision_reason,
)
from permeability.scoring.specs import SpecificationSet, SpecLimit
from tests.unit.scoring.batch_support import POLICY, loaded_model
from tests.unit.services.inference_support import (
    AT_LIMIT_CONDITIONS,
    SEED_SAMPLE,
    lab_frame,
    without_row_numbers,
)


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    return loaded_model()


def _score(frame: pd.DataFrame, loaded: LoadedModel, **kwargs: Any) -> pd.DataFrame:
    return score_frame(frame, loaded, load_specs(None), POLICY, **kwargs).frame


def test_every_row_comes_back_in_order_with_the_outputs(loaded: LoadedModel) -> None:
    frame = lab_frame().head(500).iloc[::-1].reset_index(drop=True)
    scored = _score(frame, loaded)
    assert len(scored) == len(frame)
    assert scored["Muestra"].tolist() == frame["Muestra"].tolist()
    assert list(scored.columns) == [*frame.columns, *OUTPUT_COLUMNS]
    assert (scored["error"] == "").all()
    assert (scored["lower"] < scored["prediction"]).all()
    assert (scored["prediction"] < scored["upper"]).all()
    np.testing.assert_allclose(scored["prediction"], loaded.model.predict_frame(frame), rtol=1e-12)


def test_batch_answers_equal_the_single_sample_path(loaded: LoadedModel) -> None:
    """Same prediction, interval, P(exceed) and decision as the one-record fast path, and the
    same reason without the row's own numbers."""
    specs = load_specs(None)
    frame = lab_frame().head(800)
    scored = _score(frame, loaded)
    decided = 0
    for row in scored.to_dict(orient="records"):
        record = {c: row[c] for c in ("Grados_C", "Porc_Humedad", *CALIBRES, "CalibreProm")}
        record["Estructura"] = row["structure"]
        single = loaded.model.predict_record(record)
        assert math.isclose(row["prediction"], single, rel_tol=1e-9)
        lower, upper = loaded.model.interval(single, row["structure"], 0.9)
        assert math.isclose(row["lower"], lower, rel_tol=1e-9)
        assert math.isclose(row["upper"], upper, rel_tol=1e-9)
        match = specs.match(
            row["structure"], row["Grados_C"], row["Porc_Humedad"], row["CalibreProm"]
        )
        if match.limit is None:
            assert pd.isna(row["decision"])
            assert math.isnan(row["p_exceed"])
            assert math.isnan(row["limit"])
            single_reason = no_decision_reason(match.reason)
            assert row["decision_reason"] == without_row_numbers(single_reason)
            continue
        decided += 1
        p = loaded.model.p_exceed(single, row["structure"], match.limit.max_permeability)
        assert row["limit"] == match.limit.max_permeability
        assert math.isclose(row["p_exceed"], p, rel_tol=1e-12)
        assert row["decision"] == decide(p, 0.05, 0.95)
        assert str(row["decision_reason"]).startswith(str(row["decision"]))
        single_reason = decision_reason(row["decision"], match.limit, POLICY, p)
        assert row["decision_reason"] == without_row_numbers(single_reason)
    assert decided > 100


def test_batch_reasons_state_the_limits_in_band_as_the_single_answer_does(
    loaded: LoadedModel,
) -> None:
    """A batch words each case once, yet a row whose test conditions match no limit states the
    conditions of the limits whose band holds its mean caliper, as its single answer does."""
    band = {"structure": "BOPP", "max_permeability": 6.0}
    specs = SpecificationSet.from_limits(
        [
            SpecLimit(
                **band, temperature_c=38, humidity_pct=90, min_thickness_um=15, max_thickness_um=22
            ),
            SpecLimit(
                **band,
                temperature_c=23,
                humidity_pct=85,
                min_thickness_um=22.01,
                max_thickness_um=40,
            ),
        ],
        "test",
    )
    calipers = [16.0, 18.0, 30.0, 35.0, 50.0]
    rows = [
        {**SEED_SAMPLE, "Muestra": i, **dict.fromkeys(CALIBRES, t), "CalibreProm": t}
        for i, t in enumerate(calipers, start=1)
    ]
    rows.append({**SEED_SAMPLE, "Muestra": 9, "Estructura": "PET"})  # no limit for PET
    scored = score_frame(pd.DataFrame(rows), loaded, specs, POLICY).frame
    reasons = scored["decision_reason"].astype(str).tolist()
    for row, reason in zip(rows, reasons, strict=True):
        match = specs.match(
            str(row["Estructura"]), row["Grados_C"], row["Porc_Humedad"], row["CalibreProm"]
        )
        assert match.limit is None
        assert reason == without_row_numbers(no_decision_reason(match.reason))
    assert reasons[0] == reasons[1] != reasons[2] == reasons[3]
    assert "(38 ± 1 °C / 90 ± 2 % RH)" in reasons[0]
    assert "(23 ± 1 °C / 85 ± 2 % RH)" in reasons[2]
    assert reasons[4].startswith("no decision: mean caliper is outside every thickness band")
    assert reasons[5] == "no decision: no specification limit is defined for structure PET"


def test_bad_rows_say_every_problem_and_the_rest_is_scored(loaded: LoadedModel) -> None:
    rows = [
        {**SEED_SAMPLE, "Muestra": "10"},
        {**SEED_SAMPLE, "Muestra": "11", "Porc_Humedad": "150", "Calibre2": "abc"},
        {**SEED_SAMPLE, "Muestra": "12", "Estructura": "Unobtainium"},
        {**SEED_SAMPLE, "Muestra": "13", "CalibreProm": "164"},
        {**SEED_SAMPLE, "Muestra": "14", "Grados_C": "", "Estructura": ""},
        {**SEED_SAMPLE, "Muestra": "x15"},
        {
            **SEED_SAMPLE,
            "Muestra": "16",
            "Grados_C": "25,6",
            "Calibre1": "16.4 µm",
            "Estructura": " bopp ",
        },
    ]
    frame = pd.DataFrame(rows).astype(str)
    scored = _score(frame, loaded)
    errors = scored["error"].tolist()
    assert errors[0] == ""
    assert "Porc_Humedad '150' is outside (0, 100] % RH" in errors[1]
    assert "Calibre2 'abc' is not a number" in errors[1]
    assert "Unobtainium" in errors[2]
    assert f"known structures: {', '.join(sorted(loaded.known_structures))}" in errors[2]
    assert "CalibreProm '164' does not match the mean of the readings (16.40 µm" in errors[3]
    assert "Grados_C is missing" in errors[4]
    assert "Estructura is missing" in errors[4]
    assert "Muestra 'x15' is not a number" in errors[5]
    assert errors[6] == ""
    assert scored.loc[6, "structure"] == "BOPP"
    assert scored.loc[6, "prediction"] == pytest.approx(scored.loc[0, "prediction"], rel=1e-12)
    failed = scored["error"] != ""
    assert scored.loc[failed, "prediction"].isna().all()
    assert scored.loc[~failed, "prediction"].notna().all()


def test_json_records_of_any_type_never_fail_the_batch(loaded: LoadedModel) -> None:
    records: list[Any] = [
        SEED_SAMPLE,
        {**SEED_SAMPLE, "Grados_C": True},
        {**SEED_SAMPLE, "Porc_Humedad": None},
        {**SEED_SAMPLE, "Calibre1": [1, 2]},
        {**SEED_SAMPLE, "Calibre1": 10**400},
        {"Muestra": 5},
        {},
        {**SEED_SAMPLE, "Estructura": []},
        {**SEED_SAMPLE, "Estructura": {"name": "BOPP"}},
        {**SEED_SAMPLE, "Muestra": [1], "CalibreProm": {}},
    ]
    frame, not_objects = records_frame(records)
    assert not not_objects.any()
    scored = _score(frame, loaded, missing_columns="rows")
    errors = scored["error"].tolist()
    assert errors[0] == ""
    assert "Grados_C True is not a number" in errors[1]
    assert "Porc_Humedad is missing" in errors[2]
    assert "Calibre1 [1, 2] is not a number" in errors[3]
    assert errors[4] == f"Calibre1 {'1' + '0' * 59}… is outside (0, 2000] µm"
    assert "Estructura is missing" in errors[5]
    assert "Muestra is missing" in errors[6]
    assert errors[7] == "Estructura [] is not text"
    assert errors[8] == "Estructura {'name': 'BOPP'} is not text"
    assert "Muestra" in errors[9]
    assert "CalibreProm" in errors[9]
    assert scored["prediction"].iloc[7:].isna().all()


def test_non_object_records_are_flagged(loaded: LoadedModel) -> None:
    frame, not_objects = records_frame([SEED_SAMPLE, 5, "text"])
    assert not_objects.tolist() == [False, True, True]
    assert len(_score(frame, loaded, missing_columns="rows")) == 3


def test_a_file_without_required_columns_is_refused(loaded: LoadedModel) -> None:
    frame = pd.DataFrame([{"Muestra": 1, "Grados_C": 25.0}])
    with pytest.raises(InvalidInputError, match="lacks column"):
        _score(frame, loaded)


def test_decisions_follow_the_configured_thresholds(loaded: LoadedModel) -> None:
    frame = pd.DataFrame([AT_LIMIT_CONDITIONS])
    p = score_frame(frame, loaded, load_specs(None), POLICY).frame["p_exceed"].iloc[0]
    assert 0.0 < p < 1.0
    strict = DecisionPolicy(0.9, approve_below=min(p + 0.01, 0.49), reject_above=0.99)
    lenient = DecisionPolicy(0.9, approve_below=0.01, reject_above=max(p - 0.01, 0.51))
    approve = score_frame(frame, loaded, load_specs(None), strict).frame["decision"].iloc[0]
    expected = "approve" if p < strict.approve_below else "retest"
    assert approve == expected
    other = score_frame(frame, loaded, load_specs(None), lenient).frame["decision"].iloc[0]
    assert other == ("reject" if p > lenient.reject_above else "retest")


def test_a_higher_level_gives_wider_intervals(loaded: LoadedModel) -> None:
    frame = lab_frame().head(200)
    narrow = score_frame(frame, loaded, load_specs(None), DecisionPolicy(0.5, 0.05, 0.95)).frame
    wide = score_frame(frame, loaded, load_specs(None), DecisionPolicy(0.95, 0.05, 0.95)).frame
    assert ((wide["upper"] - wide["lower"]) > (narrow["upper"] - narrow["lower"])).all()


def test_policy_level_is_checked() -> None:
    with pytest.raises(InvalidInputError, match="level"):
        InferenceParams().decision_policy(level=1.5)
    assert InferenceParams().decision_policy().level == 0.9


def test_log_rows_cover_only_scored_rows(loaded: LoadedModel) -> None:
    frame = pd.DataFrame([SEED_SAMPLE, {**SEED_SAMPLE, "Calibre1": -1}])
    scored = score_frame(frame, loaded, load_specs(None), POLICY, endpoint="cli", request_id="r1")
    columns, count = scored.log_columns()
    assert count == 1
    assert columns["endpoint"] == "cli"
    assert columns["request_id"] == "r1"
    assert columns["structure"].tolist() == ["BOPP"]
    assert columns["Estructura"].tolist() == ["BOPP"]
