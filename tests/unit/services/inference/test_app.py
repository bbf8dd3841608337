"""The inference service over HTTP: every endpoint, and every failure the issue names."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from permeability.io.model_file import MODEL_FILE, SERVED_FILE
from permeability.io.predictions.reader import read_predictions
from permeability.record.schema import CALIBRES
from permeability.services.inference.app import create_inference_app
from permeability.services.inference.responses import InferenceResponse
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

SEED_BODY = {"version": "0.1", "data_test": SEED_SAMPLE}


@pytest.fixture
def champion(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Champion:
    champion = Champion()
    patch_registry(monkeypatch, champion)
    monkeypatch.setattr("permeability.services.inference.app.REFRESH_SECONDS", 0.05)
    publish_version(settings, "0.1", tiny_model())
    publish_version(settings, "0.2", tiny_model("Ridge"))
    champion.label = "0.1"
    return champion


@pytest.fixture
def client(settings: Settings, champion: Champion) -> Iterator[TestClient]:
    with TestClient(create_inference_app(settings)) as test_client:
        yield test_client


def _errors(response: Any) -> dict[str, str]:
    """``field -> message`` of a 422 body (the last element of each ``loc``)."""
    return {str(e["loc"][-1]): e["msg"] for e in response.json()["detail"]}


def _wait_for(condition: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


# -- POST /inference ------------------------------------------------------------------------


def test_the_seed_body_gets_a_guide_value_with_its_interval(client: TestClient) -> None:
    response = client.post("/inference", json=SEED_BODY)
    assert response.status_code == 200, response.text
    body = response.json()
    InferenceResponse.model_validate(body)  # the documented response model, exactly
    assert body["version"] == "0.1"
    assert body["champion"] is True
    assert body["Muestra"] == 1
    assert body["structure"] == "BOPP"
    assert body["prediction"]["unit"] == "g/m²·day"
    value = body["prediction"]["value"]
    assert value > 0
    interval = body["interval"]
    assert interval["level"] == 0.9
    assert interval["lower"] < value < interval["upper"]
    assert interval["calibration"] == "structure"
    assert interval["method"] == "cross-conformal"  # the tiny test model trained on 3,000 rows
    # 25.6 °C / 23 % RH is not the condition any BOPP limit is stated at: no decision, and why.
    assert body["specification"] is None
    assert body["decision"] is None
    assert body["p_exceed"] is None
    assert "25.6 °C / 23 % RH" in body["decision_reason"]


def test_a_sample_at_the_limit_conditions_gets_a_decision(client: TestClient) -> None:
    body = client.post("/inference", json={"data_test": AT_LIMIT_CONDITIONS}).json()
    InferenceResponse.model_validate(body)
    assert body["version"] == "0.1"  # the champion
    assert body["specification"]["limit"] == 6.0
    assert body["specification"]["conditions"]["temperature_c"] == 38.0
    assert body["specification"]["min_thickness_um"] == 20.0
    assert body["decision"] in {"approve", "reject", "retest"}
    assert 0.0 < body["p_exceed"] < 1.0
    assert body["decision_reason"].startswith(body["decision"])


def test_the_decision_follows_the_probability(client: TestClient) -> None:
    """Thin films exceed the 6 g/m²·day limit, thick ones do not, in between is a retest."""
    decisions = {}
    for thickness in (20.0, 21.0, 22.0):
        sample = {**AT_LIMIT_CONDITIONS, **{c: thickness for c in CALIBRES}}
        sample["CalibreProm"] = thickness
        body = client.post("/inference", json={"data_test": sample}).json()
        decisions[thickness] = (body["p_exceed"], body["decision"])
    assert decisions[20.0][0] >= decisions[21.0][0] >= decisions[22.0][0]
    for p, decision in decisions.values():
        expected = "approve" if p < 0.05 else "reject" if p > 0.95 else "retest"
        assert decision == expected


def test_the_level_is_selectable(client: TestClient) -> None:
    narrow = client.post("/inference", json={**SEED_BODY, "level": 0.5}).json()["interval"]
    wide = client.post("/inference", json={**SEED_BODY, "level": 0.98}).json()["interval"]
    assert narrow["level"] == 0.5
    assert wide["upper"] - wide["lower"] > narrow["upper"] - narrow["lower"]


def test_structure_spellings_are_normalised(client: TestClient) -> None:
    reference = client.post("/inference", json=SEED_BODY).json()["prediction"]["value"]
    for spelling in ("bopp ", " Bopp", "OPP"):
        body = client.post(
            "/inference", json={"data_test": {**SEED_SAMPLE, "Estructura": spelling}}
        ).json()
        assert body["structure"] == "BOPP"
        assert body["prediction"]["value"] == pytest.approx(reference, rel=1e-12)


def test_integers_in_float_fields_are_fine(client: TestClient) -> None:
    sample = {**SEED_SAMPLE, "Grados_C": 25, **{c: 16 for c in CALIBRES}, "CalibreProm": 16}
    assert client.post("/inference", json={"data_test": sample}).status_code == 200


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"Porc_Humedad": 150}, "Porc_Humedad", "less than or equal to 100"),
        ({"Porc_Humedad": 0}, "Porc_Humedad", "greater than 0"),
        ({"Grados_C": -5}, "Grados_C", "greater than or equal to 0"),
        ({"Calibre3": 0}, "Calibre3", "greater than 0"),
        ({"Grados_C": "25.6"}, "Grados_C", "must be a JSON number"),
        ({"Grados_C": True}, "Grados_C", "must be a JSON number"),
        ({"Muestra": 1.5}, "Muestra", "fractional part"),
        ({"Muestra": "1"}, "Muestra", "whole JSON number"),
        ({"CalibreProm": 164}, "CalibreProm", "164 does not match the mean of the readings"),
        ({"Estructura": "  "}, "Estructura", "must not be blank"),
        ({"Estructura": 3}, "Estructura", "valid string"),
        ({"Color": "red"}, "Color", "Extra inputs are not permitted"),
    ],
)
def test_bad_fields_get_422_naming_the_field(
    client: TestClient, change: dict[str, Any], field: str, words: str
) -> None:
    response = client.post("/inference", json={**SEED_BODY, "data_test": {**SEED_SAMPLE, **change}})
    assert response.status_code == 422
    errors = _errors(response)
    assert field in errors, errors
    assert words in errors[field]
    locs = [e["loc"] for e in response.json()["detail"]]
    assert ["body", "data_test", field] in locs


def test_a_missing_field_is_named(client: TestClient) -> None:
    sample = {k: v for k, v in SEED_SAMPLE.items() if k != "Calibre4"}
    response = client.post("/inference", json={"data_test": sample})
    assert response.status_code == 422
    assert _errors(response)["Calibre4"] == "Field required"


@pytest.mark.parametrize("body", [{"version": "0.1"}, {"data_test": SEED_SAMPLE, "level": 1.5}, []])
def test_malformed_bodies_get_422(client: TestClient, body: Any) -> None:
    assert client.post("/inference", json=body).status_code == 422


def test_a_body_that_is_not_json_gets_422(client: TestClient) -> None:
    for raw in (b"\x80\xff", b"", b'{"data_test": '):
        response = client.post(
            "/inference", content=raw, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][0] == "body"


def test_an_unknown_structure_gets_422_listing_the_known_ones(client: TestClient) -> None:
    response = client.post("/inference", json={"data_test": {**SEED_SAMPLE, "Estructura": "EVOH"}})
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "data_test", "Estructura"]
    assert error["type"] == "unknown_structure"
    assert "BOPP" in error["ctx"]["known"]
    # The list follows the structure names of the training data (the names' canonical
    # spelling belongs to record/structures.py), sorted.
    assert f"known structures: {', '.join(sorted(error['ctx']['known']))}" in error["msg"]


def test_an_unknown_version_gets_404_with_the_available_ones(client: TestClient) -> None:
    for version in ("9.9", "../0.1"):
        response = client.post("/inference", json={**SEED_BODY, "version": version})
        assert response.status_code == 404
        assert response.json()["available"] == ["0.1", "0.2"]
        assert "0.1, 0.2" in response.json()["detail"]


def test_without_a_champion_an_unversioned_request_gets_404(
    settings: Settings, champion: Champion
) -> None:
    champion.label = None
    with TestClient(create_inference_app(settings)) as client:
        response = client.post("/inference", json={"data_test": SEED_SAMPLE})
        assert response.status_code == 404
        assert "no champion" in response.json()["detail"]
        assert client.post("/inference", json=SEED_BODY).status_code == 200


def test_a_corrupt_version_is_503_while_the_others_serve(
    settings: Settings, champion: Champion
) -> None:
    (settings.paths.models / "0.2" / MODEL_FILE).write_bytes(b"corrupt")
    (settings.paths.models / "0.2" / SERVED_FILE).write_bytes(b"corrupt")
    with TestClient(create_inference_app(settings)) as client:
        broken = client.post("/inference", json={**SEED_BODY, "version": "0.2"})
        assert broken.status_code == 503
        assert "0.2" in broken.json()["detail"]
        assert "cannot be loaded" in broken.json()["detail"]
        assert client.post("/inference", json=SEED_BODY).status_code == 200
        versions = {v["version"]: v for v in client.get("/versions").json()["versions"]}
        assert versions["0.2"]["status"] == "unavailable"
        assert "cannot be loaded" in versions["0.2"]["reason"]
        assert versions["0.1"]["status"] == "available"
        metrics = client.get("/metrics").text
        assert 'permeability_inference_model_load_errors_total{version="0.2"} 1.0' in metrics


def test_a_corrupt_full_model_fails_batches_only(settings: Settings, champion: Champion) -> None:
    """Single samples need only the served file; a batch needs the full model, and says why."""
    (settings.paths.models / "0.2" / MODEL_FILE).write_bytes(b"corrupt")
    with TestClient(create_inference_app(settings)) as client:
        single = client.post("/inference", json={**SEED_BODY, "version": "0.2"})
        assert single.status_code == 200
        batch = client.post("/inference/batch", json={"version": "0.2", "records": [SEED_SAMPLE]})
        assert batch.status_code == 503
        assert "cannot be loaded" in batch.json()["detail"]
        assert client.post("/inference/batch", json={"records": [SEED_SAMPLE]}).status_code == 200


def test_a_promotion_takes_effect_without_a_restart(client: TestClient, champion: Champion) -> None:
    assert client.post("/inference", json={"data_test": SEED_SAMPLE}).json()["version"] == "0.1"
    champion.label = "0.2"
    _wait_for(lambda: client.get("/versions").json()["champion"] == "0.2")
    body = client.post("/inference", json={"data_test": SEED_SAMPLE}).json()
    assert body["version"] == "0.2"
    assert body["model"] == "Ridge"
    assert body["champion"] is True


# -- POST /inference/batch ------------------------------------------------------------------


def _batch_records() -> list[dict[str, Any]]:
    return [SEED_SAMPLE, AT_LIMIT_CONDITIONS, {**SEED_SAMPLE, "Muestra": 3, "Porc_Humedad": 150}]


def test_json_batch_keeps_every_row_in_order(client: TestClient) -> None:
    response = client.post("/inference/batch", json={"version": "0.1", "records": _batch_records()})
    assert response.status_code == 200
    body = response.json()
    assert (body["rows"], body["predicted"], body["failed"]) == (3, 2, 1)
    records = body["records"]
    assert [r["Muestra"] for r in records] == [1, 2, 3]
    for column in ("prediction", "lower", "upper", "p_exceed", "decision", "error"):
        assert all(column in r for r in records)
    assert records[0]["error"] == ""
    assert records[0]["decision"] is None
    assert records[1]["decision"] in {"approve", "reject", "retest"}
    assert "Porc_Humedad 150 is outside (0, 100] % RH" in records[2]["error"]
    assert records[2]["prediction"] is None
    single = client.post("/inference", json=SEED_BODY).json()["prediction"]["value"]
    assert records[0]["prediction"] == pytest.approx(single, rel=1e-9)


def test_json_batch_rows_of_any_shape_never_fail_the_request(client: TestClient) -> None:
    response = client.post("/inference/batch", json={"records": [SEED_SAMPLE, 5, "x", {}]})
    assert response.status_code == 200
    errors = [r["error"] for r in response.json()["records"]]
    assert errors[0] == ""
    assert errors[1] == errors[2] == "record is not a JSON object with the sample's fields"
    assert "Muestra is missing" in errors[3]


def test_empty_batch_is_fine(client: TestClient) -> None:
    body = client.post("/inference/batch", json={"records": []}).json()
    assert body["rows"] == 0
    assert body["records"] == []


def test_batch_answers_csv_when_asked(client: TestClient) -> None:
    for kwargs in ({"params": {"format": "csv"}}, {"headers": {"Accept": "text/csv"}}):
        response = client.post("/inference/batch", json={"records": _batch_records()}, **kwargs)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        frame = pd.read_csv(io.StringIO(response.text), keep_default_na=False)
        assert frame["Muestra"].tolist() == [1, 2, 3]
        assert frame.columns[-12:].tolist()[:6] == [
            "prediction",
            "lower",
            "upper",
            "p_exceed",
            "decision",
            "error",
        ]


def test_csv_upload_comes_back_as_csv_with_every_row(client: TestClient) -> None:
    frame = lab_frame().head(50).copy()
    frame["Grados_C"] = frame["Grados_C"].map(lambda v: f"{v}".replace(".", ","))  # lab style
    frame.loc[7, "Estructura"] = "Unobtainium"
    payload = frame.to_csv(index=False, sep=";").encode("utf-8")
    response = client.post(
        "/inference/batch",
        files={"file": ("lab.csv", payload, "text/csv")},
        data={"version": "0.2", "level": "0.8"},
    )
    assert response.status_code == 200, response.text
    out = pd.read_csv(io.StringIO(response.text), keep_default_na=False)
    assert out["Muestra"].tolist() == frame["Muestra"].tolist()
    assert (out["error"] != "").sum() == 1
    assert "Unobtainium" in str(out.loc[7, "error"])
    assert str(out.loc[0, "Grados_C"]) == str(frame.loc[0, "Grados_C"])  # kept as typed


def test_xlsx_upload_and_json_answer(client: TestClient) -> None:
    buffer = io.BytesIO()
    lab_frame().head(10).to_excel(buffer, index=False)
    response = client.post(
        "/inference/batch?format=json",
        files={"file": ("lab.xlsx", buffer.getvalue(), "application/octet-stream")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["predicted"] == 10


def test_plain_csv_body_is_accepted(client: TestClient) -> None:
    payload = pd.DataFrame([SEED_SAMPLE]).to_csv(index=False)
    response = client.post(
        "/inference/batch", content=payload, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200
    assert "prediction" in response.text.splitlines()[0]


@pytest.mark.parametrize(
    ("kwargs", "code", "words"),
    [
        (
            {"files": {"file": ("lab.csv", b"Muestra,Grados_C\n1,2\n", "text/csv")}},
            422,
            "lacks column",
        ),
        ({"files": {"file": ("lab.txt", b"a,b\n", "text/plain")}}, 422, "must be one of"),
        ({"files": {"file": ("lab.csv", b"", "text/csv")}}, 422, "is empty"),
        (
            {"data": {"version": "0.1"}, "files": {"other": ("x.csv", b"a", "text/csv")}},
            422,
            "'file'",
        ),
        (
            {"content": b"<xml/>", "headers": {"Content-Type": "application/xml"}},
            415,
            "not accepted",
        ),
        (
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            422,
            "not valid JSON",
        ),
    ],
)
def test_unreadable_batches_are_refused_with_a_reason(
    client: TestClient, kwargs: dict[str, Any], code: int, words: str
) -> None:
    response = client.post("/inference/batch", **kwargs)
    assert response.status_code == code, response.text
    assert words in response.text


def test_batch_unknown_version_is_404(client: TestClient) -> None:
    response = client.post("/inference/batch", json={"version": "3", "records": [SEED_SAMPLE]})
    assert response.status_code == 404
    assert response.json()["available"] == ["0.1", "0.2"]


# -- service endpoints ----------------------------------------------------------------------


def test_without_its_start_up_the_service_answers_503(settings: Settings) -> None:
    client = TestClient(create_inference_app(settings))  # no `with`: the lifespan never runs
    response = client.post("/inference", json=SEED_BODY)
    assert response.status_code == 503
    assert "has not started" in response.json()["detail"]


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "pid": os.getpid()}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["champion"] == "0.1"
    assert ready.json()["loaded_versions"] == ["0.1"]


def test_not_ready_without_a_loadable_model_says_why(
    settings: Settings, champion: Champion
) -> None:
    champion.label = None
    with TestClient(create_inference_app(settings)) as client:
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.json()["reason"] == "no version is promoted as champion"
    champion.label = "0.2"
    (settings.paths.models / "0.2" / MODEL_FILE).unlink()
    with TestClient(create_inference_app(settings)) as client:
        response = client.get("/ready")
        assert response.status_code == 503
        assert "champion 0.2 is not loaded" in response.json()["reason"]
        assert "missing" in response.json()["reason"]


def test_versions_lists_status_and_champion(client: TestClient) -> None:
    body = client.get("/versions").json()
    assert body["champion"] == "0.1"
    versions = {v["version"]: v for v in body["versions"]}
    assert versions["0.1"]["champion"] is True
    assert versions["0.1"]["loaded"] is True
    assert versions["0.2"]["status"] == "available"
    assert versions["0.2"]["model"] == "Ridge"


def test_specs_shows_what_is_in_force_and_follows_edits(
    settings: Settings, champion: Champion, tmp_path: Path
) -> None:
    specs_file = tmp_path / "specs.yaml"
    specs_file.write_text(
        "limits:\n  - {structure: bopp, max_permeability: 1.5, temperature_c: 25, "
        "humidity_pct: 23, temperature_tolerance_c: 1, humidity_tolerance_pct: 2}\n",
        encoding="utf-8",
    )
    custom = settings.model_copy(update={"specs_file": specs_file})
    with TestClient(create_inference_app(custom)) as client:
        specs = client.get("/specs").json()
        assert specs["source"] == str(specs_file.resolve())
        assert specs["limits"][0]["structure"] == "BOPP"
        body = client.post("/inference", json=SEED_BODY).json()
        assert body["specification"]["limit"] == 1.5
        assert body["decision"] in {"approve", "reject", "retest"}
        specs_file.write_text(
            "limits:\n  - {structure: BOPP, max_permeability: 0.2, temperature_c: 25, "
            "humidity_pct: 23, temperature_tolerance_c: 1, humidity_tolerance_pct: 2}\n",
            encoding="utf-8",
        )
        _wait_for(lambda: client.get("/specs").json()["limits"][0]["max_permeability"] == 0.2)
        assert client.post("/inference", json=SEED_BODY).json()["specification"]["limit"] == 0.2
        specs_file.write_text("limits:\n  - {structure: BOPP}\n", encoding="utf-8")
        _wait_for(lambda: client.get("/specs").json()["reload_error"] is not None)
        specs = client.get("/specs").json()
        assert "max_permeability" in specs["reload_error"]
        assert specs["limits"][0]["max_permeability"] == 0.2  # the last good limits stay


def test_an_invalid_specs_file_stops_the_service_from_starting(
    settings: Settings, champion: Champion, tmp_path: Path
) -> None:
    specs_file = tmp_path / "specs.yaml"
    specs_file.write_text("limits: [{structure: BOPP}]\n", encoding="utf-8")
    app = create_inference_app(settings.model_copy(update={"specs_file": specs_file}))
    with pytest.raises(Exception, match="entry 1 \\(BOPP\\)"), TestClient(app):
        pass


def test_metrics_count_requests_latency_and_decisions(client: TestClient) -> None:
    client.post("/inference", json=SEED_BODY)
    client.post("/inference", json={"data_test": AT_LIMIT_CONDITIONS})
    client.post("/inference", json={"data_test": {**SEED_SAMPLE, "Porc_Humedad": 500}})
    client.get("/nowhere")
    text = client.get("/metrics").text
    assert 'permeability_inference_requests_total{endpoint="/inference",status="200"} 2.0' in text
    assert 'permeability_inference_requests_total{endpoint="/inference",status="422"} 1.0' in text
    assert 'permeability_inference_requests_total{endpoint="other",status="404"} 1.0' in text
    assert 'permeability_inference_request_seconds_count{endpoint="/inference"} 3.0' in text
    assert 'permeability_inference_predictions_total{decision="none"} 1.0' in text
    decided = [
        line
        for line in text.splitlines()
        if line.startswith("permeability_inference_predictions_total{decision=")
        and not line.endswith(" 0.0")
    ]
    assert len(decided) == 2


def test_every_prediction_is_logged_for_evaluation(settings: Settings, champion: Champion) -> None:
    with TestClient(create_inference_app(settings)) as client:
        client.post(
            "/inference", json={**SEED_BODY, "data_test": {**SEED_SAMPLE, "Estructura": "bopp "}}
        )
        client.post("/inference", json={"data_test": AT_LIMIT_CONDITIONS})
        client.post("/inference/batch", json={"version": "0.2", "records": _batch_records()})
        client.post("/inference", json={"data_test": {**SEED_SAMPLE, "Porc_Humedad": 500}})
    logged = read_predictions(settings.resolved_feature_store_uri).sort_values("timestamp")
    assert len(logged) == 4  # 2 single + 2 scored batch rows; refused requests are not predictions
    first = logged.iloc[0]
    assert first["endpoint"] == "single"
    assert first["Estructura"] == "bopp "
    assert first["structure"] == "BOPP"
    assert first["version"] == "0.1"
    assert first["Muestra"] == 1
    assert first["Porc_Humedad"] == 23.0
    assert first["latency_ms"] > 0
    assert first["level"] == 0.9
    assert first["lower"] < first["prediction"] < first["upper"]
    batch = logged[logged["endpoint"] == "batch"]
    assert sorted(batch["Muestra"]) == [1, 2]
    assert set(batch["version"]) == {"0.2"}
    assert logged["request_id"].nunique() == 3


def test_single_and_batch_agree_over_http(client: TestClient) -> None:
    frame = lab_frame().head(60)
    records = frame[["Muestra", "Grados_C", "Porc_Humedad", "Estructura", *CALIBRES, "CalibreProm"]]
    rows = records.to_dict(orient="records")
    batch = client.post("/inference/batch", json={"records": rows}).json()["records"]
    for row, scored in zip(rows, batch, strict=True):
        single = client.post("/inference", json={"data_test": row}).json()
        assert single["prediction"]["value"] == pytest.approx(scored["prediction"], rel=1e-9)
        assert single["interval"]["upper"] == pytest.approx(scored["upper"], rel=1e-9)
        assert single["decision"] == scored["decision"]
        assert without_row_numbers(single["decision_reason"]) == scored["decision_reason"]
        if single["p_exceed"] is not None:
            assert single["p_exceed"] == pytest.approx(scored["p_exceed"], rel=1e-12)


# -- batch: missing caliper readings filled as acquisition fills them ------------------------
# (the batch scoring engineer's block: rows with a gap are scored, the fill is said and counted)

_UNEVEN = {"Calibre1": 16.0, "Calibre2": 16.8, "Calibre3": 16.2, "Calibre4": 17.2, "Calibre5": 16.4}


def test_json_batch_fills_a_missing_reading_says_it_and_counts_it(client: TestClient) -> None:
    gap = {**SEED_SAMPLE, **_UNEVEN, "Muestra": 1, "Calibre3": None, "CalibreProm": 16.6}
    typed = {**gap, "Muestra": 2, "Calibre3": 16.6}
    too_few = {**gap, "Muestra": 3, "Calibre1": None, "Calibre2": None}
    response = client.post("/inference/batch", json={"records": [gap, typed, too_few]})
    assert response.status_code == 200
    body = response.json()
    assert (body["rows"], body["predicted"], body["failed"], body["filled_rows"]) == (3, 2, 1, 1)
    records = body["records"]
    assert records[0]["filled"] == (
        "Calibre3 filled with the mean of Calibre1, Calibre2, Calibre4, Calibre5"
    )
    assert records[1]["filled"] == ""
    assert records[0]["prediction"] == pytest.approx(records[1]["prediction"], rel=1e-12)
    assert records[2]["error"] == (
        "only 2 of 5 caliper readings present "
        "(Calibre1, Calibre2, Calibre3 missing; at least 3 needed)"
    )
    assert records[2]["prediction"] is None


def test_uploaded_file_with_an_empty_reading_is_scored_with_the_filled_column(
    client: TestClient,
) -> None:
    rows = [{**SEED_SAMPLE, **_UNEVEN, "CalibreProm": 16.52}]
    rows.append({**rows[0], "Muestra": 2, "Calibre2": "", "CalibreProm": ""})
    payload = pd.DataFrame(rows).to_csv(index=False).encode()
    response = client.post(
        "/inference/batch",
        files={"file": ("lab.csv", payload, "text/csv")},
        data={"version": "0.1"},
    )
    assert response.status_code == 200
    frame = pd.read_csv(io.StringIO(response.text), keep_default_na=False)
    assert frame["error"].tolist() == ["", ""]
    assert frame["filled"].tolist() == [
        "",
        "Calibre2, CalibreProm filled with the mean of Calibre1, Calibre3, Calibre4, Calibre5",
    ]


def test_batch_response_schema_documents_the_filled_count(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert "filled_rows" in schema["BatchResponse"]["properties"]


def test_batch_follows_the_configured_number_of_readings(
    settings: Settings, champion: Champion, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("acquisition:\n  min_caliper_readings: 5\n", encoding="utf-8")
    configured = settings.model_copy(update={"config_file": config})
    gap = {**SEED_SAMPLE, **_UNEVEN, "Calibre3": None, "CalibreProm": 16.6}
    with TestClient(create_inference_app(configured)) as strict_client:
        body = strict_client.post("/inference/batch", json={"records": [gap]}).json()
    assert (body["predicted"], body["failed"], body["filled_rows"]) == (0, 1, 0)
    assert "at least 5 needed" in body["records"][0]["error"]
