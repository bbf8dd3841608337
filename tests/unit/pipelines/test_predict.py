"""Batch scoring: every row back in order with its outputs; bad rows explained, never fatal."""

from __future__ import annotations

import codecs
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from permeability.cli.main import app
from permeability.config import InferenceParams
from permeability.errors import InvalidInputError
from permeability.io.model_cache import NoChampionError
from permeability.io.predictions.log import read_predictions
from permeability.io.specs import load_specs
from permeability.modelling.served import LoadedModel
from permeability.pipelines.predict import (
    OUTPUT_COLUMNS,
    predict_file,
    read_table,
    records_frame,
    score_frame,
)
from permeability.record.cleaning import SOURCE_ROW, clean_records
from permeability.record.rules import IMPUTED_COLUMN
from permeability.record.schema import CALIBRES
from permeability.record.structures import build_alias_map
from permeability.scoring.decisions import (
    DecisionPolicy,
    decide,
    decision_reason,
    no_decision_reason,
)
from permeability.scoring.specs import SpecificationSet, SpecLimit
from permeability.settings import Settings
from tests.unit.services.inference_support import (
    AT_LIMIT_CONDITIONS,
    SEED_SAMPLE,
    Champion,
    lab_frame,
    patch_registry,
    publish_version,
    tiny_model,
    without_row_numbers,
)

POLICY = DecisionPolicy(level=0.9, approve_below=0.05, reject_above=0.95)


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    model = tiny_model()
    return LoadedModel("0.1", model, {}, frozenset(model.known_structures), 0.0, (0, 0))


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
    assert "Porc_Humedad must be in (0, 100]" in errors[1]
    assert "Calibre2 abc is not a number" in errors[1]
    assert "Unobtainium" in errors[2]
    assert f"known structures: {', '.join(sorted(loaded.known_structures))}" in errors[2]
    assert "CalibreProm 164 is inconsistent" in errors[3]
    assert "Grados_C is missing" in errors[4]
    assert "Estructura is missing" in errors[4]
    assert "Muestra x15 is not a number" in errors[5]
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
    assert "Calibre1 must be in (0, 2000] µm, got inf" in errors[4]
    assert "Estructura is missing" in errors[5]
    assert "Muestra is missing" in errors[6]
    assert "Estructura is missing or not text" in errors[7]
    assert "Estructura is missing or not text" in errors[8]
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


def test_csv_with_semicolons_and_latin1_is_read(tmp_path: Path) -> None:
    text = "Muestra;Grados_C;Estructura\n1;25,6;Polipropileno orientado ñ\n"
    frame = read_table(text.encode("latin-1"), "lab.csv")
    assert frame.loc[0, "Grados_C"] == "25,6"
    assert str(frame.loc[0, "Estructura"]).endswith("ñ")


@pytest.mark.parametrize(
    ("encoding", "sep"), [("utf-16", "\t"), ("utf-16-be", "\t"), ("utf-8-sig", ";")]
)
def test_a_unicode_text_export_is_decoded_by_its_byte_order_mark(encoding: str, sep: str) -> None:
    """Excel's "Unicode text" export (UTF-16 with a BOM, tabs) reads as acquisition reads it."""
    text = (
        sep.join(["Muestra", "Grados_C", "Estructura"]) + "\n" + sep.join(["1", "25,6", "BOPP ñ"])
    )
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    frame = read_table(data, "lab.csv")
    assert list(frame.columns) == ["Muestra", "Grados_C", "Estructura"]
    assert frame.loc[0, "Grados_C"] == "25,6"
    assert frame.loc[0, "Estructura"] == "BOPP ñ"


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "x.csv", "is empty"),
        (b"a,b\n1,2\n", "x.json", "must be one of .csv, .xlsx"),
        (b"not a zip", "x.xlsx", r"x.xlsx is not an Excel workbook \(.xlsx\): it is a text file"),
        (b"<html><body>report</body></html>", "x.xlsx", "it is an HTML page"),
        (b"\xff\xfeM\x00\x00\xd8", "x.csv", "UTF-16 byte-order mark but is not valid UTF-16"),
    ],
)
def test_unreadable_inputs_are_clear_errors(data: bytes, name: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        read_table(data, name)


# -- the file job and the CLI ---------------------------------------------------------------


@pytest.fixture
def served(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Champion:
    champion = Champion()
    patch_registry(monkeypatch, champion)
    publish_version(settings, "0.1", tiny_model())
    return champion


def _lab_csv(path: Path, rows: int = 300) -> Path:
    frame = lab_frame().head(rows).copy()
    frame.loc[3, "Porc_Humedad"] = 140.0
    frame.to_csv(path, index=False)
    return path


def test_predict_file_writes_every_row_and_logs_the_predictions(
    settings: Settings, served: Champion, tmp_path: Path
) -> None:
    source = _lab_csv(tmp_path / "in.csv")
    out = tmp_path / "out" / "scored.csv"
    result = predict_file(settings, input_path=source, output_path=out, version="0.1")
    written = pd.read_csv(out, keep_default_na=False)
    original = pd.read_csv(source)
    assert written["Muestra"].tolist() == original["Muestra"].tolist()
    assert result.rows == 300
    assert result.failed == 1
    assert result.predicted == 299
    assert "Porc_Humedad must be in" in str(written.loc[3, "error"])
    assert written.loc[3, "prediction"] == ""
    logged = read_predictions(settings.resolved_feature_store_uri)
    assert len(logged) == 299
    assert set(logged["endpoint"]) == {"cli"}
    assert set(logged["version"]) == {"0.1"}


def test_predict_file_uses_the_champion_by_default(
    settings: Settings, served: Champion, tmp_path: Path
) -> None:
    source = _lab_csv(tmp_path / "in.csv", rows=20)
    with pytest.raises(NoChampionError):
        predict_file(settings, input_path=source, output_path=tmp_path / "o.csv")
    served.label = "0.1"
    assert (
        predict_file(settings, input_path=source, output_path=tmp_path / "o.csv").version == "0.1"
    )


def test_predict_file_xlsx_round_trip(settings: Settings, served: Champion, tmp_path: Path) -> None:
    source = tmp_path / "in.xlsx"
    lab_frame().head(15).to_excel(source, index=False)
    out = tmp_path / "out.xlsx"
    result = predict_file(settings, input_path=source, output_path=out, version="0.1")
    assert result.rows == 15
    assert result.failed == 0
    assert len(pd.read_excel(out)) == 15


def test_predict_file_refuses_to_overwrite_its_input(
    settings: Settings, served: Champion, tmp_path: Path
) -> None:
    source = _lab_csv(tmp_path / "in.csv", rows=5)
    with pytest.raises(InvalidInputError, match="overwrite"):
        predict_file(settings, input_path=source, output_path=source, version="0.1")


def test_cli_predict_json(settings: Settings, served: Champion, tmp_path: Path) -> None:
    source = _lab_csv(tmp_path / "in.csv", rows=40)
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        app,
        ["predict", "--version", "0.1", "--input", str(source), "--output", str(out), "--json"],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["rows"] == 40
    assert payload["failed"] == 1
    assert payload["version"] == "0.1"
    assert out.is_file()


def test_cli_predict_unknown_version_fails_with_one_line(
    settings: Settings, served: Champion, tmp_path: Path
) -> None:
    source = _lab_csv(tmp_path / "in.csv", rows=5)
    result = CliRunner().invoke(
        app,
        ["predict", "--version", "7", "--input", str(source), "--output", str(tmp_path / "o.csv")],
    )
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == "error: version '7' does not exist; available versions: 0.1"


# -- missing caliper readings: filled as acquisition fills them ------------------------------

#: Readings that differ, so a wrong fill (or none) changes the prediction.
READINGS = {
    "Calibre1": 16.0,
    "Calibre2": 16.8,
    "Calibre3": 16.2,
    "Calibre4": 17.2,
    "Calibre5": 16.4,
}


def _sample(muestra: int, **changes: Any) -> dict[str, Any]:
    row = {**SEED_SAMPLE, **READINGS, "CalibreProm": 16.52, "Muestra": muestra}
    row.update(changes)
    return row


def _as_csv(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a lab file is read: every cell text, None as an empty cell."""
    text = pd.DataFrame(rows).to_csv(index=False)
    return read_table(text.encode(), "lab.csv")


def test_a_missing_reading_is_filled_with_the_mean_of_the_others_and_said(
    loaded: LoadedModel,
) -> None:
    frame = _as_csv([_sample(1), _sample(2, Calibre3=None, CalibreProm=16.6)])
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
    gaps = _sample(1, Calibre3=None, Calibre5=None, CalibreProm=None)
    typed = _sample(2, Calibre3=mean, Calibre5=mean, CalibreProm=mean)
    scored = _score(_as_csv([gaps, typed]), loaded)
    assert scored["error"].tolist() == ["", ""]
    assert scored.loc[0, "filled"] == (
        "Calibre3, Calibre5, CalibreProm filled with the mean of Calibre1, Calibre2, Calibre4"
    )
    for column in ("prediction", "lower", "upper"):
        assert scored.loc[0, column] == pytest.approx(scored.loc[1, column], rel=1e-12)
    assert str(scored.loc[0, "decision_reason"]) == str(scored.loc[1, "decision_reason"])


def test_a_missing_caliper_mean_is_computed_from_the_readings(loaded: LoadedModel) -> None:
    scored = _score(_as_csv([_sample(1, CalibreProm=None), _sample(2, CalibreProm=16.52)]), loaded)
    assert scored["error"].tolist() == ["", ""]
    assert scored.loc[0, "filled"] == (
        "CalibreProm filled with the mean of Calibre1, Calibre2, Calibre3, Calibre4, Calibre5"
    )
    assert scored.loc[0, "prediction"] == pytest.approx(scored.loc[1, "prediction"], rel=1e-12)


def test_fewer_readings_than_needed_is_an_error_naming_them(loaded: LoadedModel) -> None:
    frame = _as_csv([_sample(1, Calibre1=None, Calibre2="n/a", Calibre4=None)])
    scored = score_frame(frame, loaded, load_specs(None), POLICY)
    assert scored.frame.loc[0, "error"] == (
        "only 2 of 5 caliper readings present "
        "(Calibre1, Calibre2, Calibre4 missing; at least 3 needed)"
    )
    assert scored.frame["prediction"].isna().all()
    assert scored.frame.loc[0, "filled"] == ""
    assert (scored.failed, scored.filled_rows) == (1, 0)


def test_the_reading_count_needed_is_acquisitions_parameter(loaded: LoadedModel) -> None:
    frame = _as_csv([_sample(1, Calibre1=None, Calibre2=None)])
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
        _sample(1, Calibre3=None, CalibreProm=16.6),  # the mean of the four readings
        _sample(2, Calibre3=None, CalibreProm=166),  # a typo
        _sample(3, Calibre3=None, Calibre1=-1, CalibreProm=166),  # one reason: the reading
    ]
    errors = _score(_as_csv(rows), loaded)["error"].tolist()
    assert errors[0] == ""
    assert errors[1] == (
        "CalibreProm 166 is inconsistent with the mean of the readings 16.60 (tolerance ± 0.50 µm)"
    )
    assert errors[2] == "Calibre1 must be in (0, 2000] µm, got -1"


def test_json_records_with_null_or_absent_readings_are_filled(loaded: LoadedModel) -> None:
    absent = {k: v for k, v in _sample(2).items() if k not in ("Calibre5", "CalibreProm")}
    frame, _ = records_frame([_sample(1, Calibre2=None), absent])
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
    frame = _as_csv([_sample(1), _sample(2)]).drop(columns=["Calibre5", "CalibreProm"])
    scored = score_frame(frame, loaded, load_specs(None), POLICY)
    assert scored.frame["error"].tolist() == ["", ""]
    assert scored.filled_rows == 2
    too_few = _as_csv([_sample(1)]).drop(columns=["Calibre3", "Calibre4", "Calibre5"])
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
        {k: (None if v is None else str(v)) for k, v in _sample(i + 1, **v).items()}
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


def test_predict_file_and_the_cli_report_the_filled_rows(
    settings: Settings, served: Champion, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    pd.DataFrame([_sample(1), _sample(2, Calibre4=None, CalibreProm=16.35)]).to_csv(
        source, index=False
    )
    out = tmp_path / "out.csv"
    result = predict_file(settings, input_path=source, output_path=out, version="0.1")
    assert (result.rows, result.failed, result.filled_rows) == (2, 0, 1)
    written = pd.read_csv(out, keep_default_na=False)
    assert written["filled"].tolist() == [
        "",
        "Calibre4 filled with the mean of Calibre1, Calibre2, Calibre3, Calibre5",
    ]
    cli = CliRunner().invoke(
        app,
        ["predict", "--version", "0.1", "--input", str(source), "--output", str(out), "--json"],
    )
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout.strip().splitlines()[-1])["filled_rows"] == 1
