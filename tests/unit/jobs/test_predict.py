"""Batch scoring: every row back in order with its outputs; bad rows explained, never fatal."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from permeability.cli import app
from permeability.config import InferenceParams
from permeability.domain.intervals import decide
from permeability.domain.schema import CALIBRES
from permeability.errors import InvalidInputError
from permeability.io.model_cache import LoadedModel, NoChampionError
from permeability.io.prediction_log import read_predictions
from permeability.io.specs import load_specs
from permeability.jobs.predict import (
    OUTPUT_COLUMNS,
    DecisionPolicy,
    predict_file,
    read_table,
    records_frame,
    score_frame,
)
from permeability.settings import Settings
from tests.unit.api.inference_support import (
    AT_LIMIT_CONDITIONS,
    SEED_SAMPLE,
    Champion,
    lab_frame,
    patch_registry,
    publish_version,
    tiny_model,
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
    """Same prediction, interval, P(exceed) and decision as the one-record fast path."""
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
            continue
        decided += 1
        p = loaded.model.p_exceed(single, row["structure"], match.limit.max_permeability)
        assert row["limit"] == match.limit.max_permeability
        assert math.isclose(row["p_exceed"], p, rel_tol=1e-12)
        assert row["decision"] == decide(p, 0.05, 0.95)
        assert str(row["decision_reason"]).startswith(str(row["decision"]))
    assert decided > 100


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
    assert "known structures: BOPA" in errors[2]
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
        DecisionPolicy.from_params(InferenceParams(), level=1.5)
    assert DecisionPolicy.from_params(InferenceParams()).level == 0.9


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
    ("data", "name", "message"),
    [
        (b"", "x.csv", "is empty"),
        (b"a,b\n1,2\n", "x.json", "must be one of .csv, .xlsx"),
        (b"not a zip", "x.xlsx", "not a readable .xlsx"),
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
