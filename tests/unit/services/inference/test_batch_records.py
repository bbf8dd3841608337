"""Issue 11 on the inference service: record fields in and out, non-products refused, the
detection limit said, for the single route, its lean path and the batch endpoint."""

from __future__ import annotations

import copy
import datetime
import io
import json
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from permeability.io.predictions.reader import read_predictions
from permeability.modelling.predictor import PermeabilityModel
from permeability.services.inference.app import create_inference_app
from permeability.services.inference.fast import InferenceApp
from permeability.services.inference.responses import InferenceResponse
from permeability.settings import Settings
from tests.unit.services.inference_support import (
    SEED_SAMPLE,
    Champion,
    patch_registry,
    publish_version,
    tiny_model,
)

RECORD = {**SEED_SAMPLE, "CONSECUTIVO": 10234, "Referencia": " REF-1187 ", "Fecha": "2026-03-02"}


def _variant(*, detection_limit: float | None, non_product: tuple[str, ...]) -> PermeabilityModel:
    """The tiny test model as a version trained after issue 11 (attributes set at training)."""
    model = copy.copy(tiny_model())
    model.detection_limit = detection_limit
    model.non_product = non_product
    return model


@pytest.fixture
def batch_service(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """0.1: a version from before issue 11 (no detection limit, no non-product patterns);
    0.2: one with a detection limit above every guide value and non-product patterns; 0.3: a
    detection limit below every guide value, and BOPP itself declared a non-product (a
    version that knows a name it must refuse)."""
    champion = Champion()
    patch_registry(monkeypatch, champion)
    publish_version(settings, "0.1", _variant(detection_limit=None, non_product=()))
    publish_version(
        settings,
        "0.2",
        _variant(detection_limit=1e6, non_product=("CALIBRACION*", "MATERIAL-REF*")),
    )
    publish_version(settings, "0.3", _variant(detection_limit=1e-9, non_product=("BOPP",)))
    champion.label = "0.1"
    app = create_inference_app(settings)
    with TestClient(app) as client:
        yield app, client


def _post(client: TestClient, version: str, sample: dict[str, Any]) -> Any:
    return client.post("/inference", json={"version": version, "data_test": sample})


def _both_ways(app: InferenceApp, client: TestClient, body: dict[str, Any]) -> tuple[Any, Any]:
    answers = []
    for fast in (True, False):
        app.fast_path = fast
        answers.append(client.post("/inference", content=json.dumps(body).encode()))
    app.fast_path = True
    return answers[0], answers[1]


def _without_id(response: Any) -> Any:
    body = response.json()
    if isinstance(body, dict):
        body.pop("request_id", None)
    return body


# -- single: record fields ------------------------------------------------------------------


def test_the_seed_body_answers_without_any_new_key(batch_service: tuple[Any, Any]) -> None:
    """Nothing new sent to a version from before issue 11: the answer has the old keys only."""
    _, client = batch_service
    body = _post(client, "0.1", SEED_SAMPLE).json()
    assert list(body) == [
        "version",
        "champion",
        "model",
        "request_id",
        "Muestra",
        "structure",
        "prediction",
        "interval",
        "specification",
        "decision",
        "p_exceed",
        "decision_reason",
    ]


def test_record_fields_are_accepted_echoed_as_text_and_logged(
    settings: Settings, batch_service: tuple[Any, Any]
) -> None:
    app, client = batch_service
    response = _post(client, "0.1", RECORD)
    assert response.status_code == 200, response.text
    body = response.json()
    InferenceResponse.model_validate(body)
    assert body["CONSECUTIVO"] == "10234"  # an integer is echoed as text
    assert body["Referencia"] == "REF-1187"  # trimmed
    assert body["Fecha"] == "2026-03-02"
    assert list(body)[4:8] == ["Muestra", "CONSECUTIVO", "Referencia", "Fecha"]
    text = _post(client, "0.1", {**RECORD, "CONSECUTIVO": " C-77 "}).json()
    assert text["CONSECUTIVO"] == "C-77"
    app.state.inference.log.flush()
    logged = read_predictions(settings.resolved_feature_store_uri).sort_values("timestamp")
    assert logged["CONSECUTIVO"].tolist() == ["10234", "C-77"]
    assert logged["Referencia"].tolist() == ["REF-1187", "REF-1187"]
    assert logged["Fecha"].tolist() == [datetime.date(2026, 3, 2)] * 2


def test_a_request_without_record_fields_logs_them_as_null(
    settings: Settings, batch_service: tuple[Any, Any]
) -> None:
    app, client = batch_service
    assert _post(client, "0.1", SEED_SAMPLE).status_code == 200
    app.state.inference.log.flush()
    logged = read_predictions(settings.resolved_feature_store_uri)
    assert logged[["CONSECUTIVO", "Referencia", "Fecha"]].isna().all().all()


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("CONSECUTIVO", True, "must be text or a whole number"),
        ("CONSECUTIVO", 17.5, "must be text or a whole number"),
        ("CONSECUTIVO", -3, "must not be negative"),
        ("CONSECUTIVO", "   ", "must not be blank"),
        ("CONSECUTIVO", "x" * 121, "longer than 120 characters"),
        ("CONSECUTIVO", ["1"], "must be text or a whole number"),
        ("Referencia", 1187, "must be text"),
        ("Referencia", "", "must not be blank"),
        ("Fecha", "02/03/2026", "must be a date written YYYY-MM-DD"),
        ("Fecha", 20260302, "must be a date written YYYY-MM-DD"),
        ("Fecha", "2026-02-30", "is not a calendar date"),
    ],
)
def test_bad_record_fields_get_422_naming_the_field(
    batch_service: tuple[Any, Any], field: str, value: Any, words: str
) -> None:
    app, client = batch_service
    fast, route = _both_ways(app, client, {"data_test": {**SEED_SAMPLE, field: value}})
    assert fast.status_code == route.status_code == 422
    assert _without_id(fast) == _without_id(route)
    (error,) = fast.json()["detail"]
    assert error["loc"] == ["body", "data_test", field]
    assert words in error["msg"]


def test_muestra_is_described_as_the_replicate_number(batch_service: tuple[Any, Any]) -> None:
    _, client = batch_service
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert "Replicate number" in schema["SampleInput"]["properties"]["Muestra"]["description"]
    assert "Replicate number" in schema["InferenceResponse"]["properties"]["Muestra"]["description"]
    assert "CONSECUTIVO" in schema["SampleInput"]["properties"]


# -- single: non-products -------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["CALIBRACION", "calibracion ", "Material-Ref"])
def test_a_non_product_gets_422_saying_why_before_the_unknown_check(
    batch_service: tuple[Any, Any], spelling: str
) -> None:
    app, client = batch_service
    body = {"version": "0.2", "data_test": {**SEED_SAMPLE, "Estructura": spelling}}
    fast, route = _both_ways(app, client, body)
    assert fast.status_code == route.status_code == 422
    assert _without_id(fast) == _without_id(route)
    (error,) = fast.json()["detail"]
    assert error["loc"] == ["body", "data_test", "Estructura"]
    assert error["type"] == "non_product"
    assert (
        "is a calibration/reference film or an unreported material, not a product" in (error["msg"])
    )
    assert "gives no guide value" in error["msg"]


def test_a_known_structure_declared_non_product_is_refused_too(
    batch_service: tuple[Any, Any],
) -> None:
    _, client = batch_service
    response = _post(client, "0.3", SEED_SAMPLE)  # BOPP: known to the model, yet not a product
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "non_product"


def test_a_version_without_patterns_calls_the_name_unknown(batch_service: tuple[Any, Any]) -> None:
    _, client = batch_service
    response = _post(client, "0.1", {**SEED_SAMPLE, "Estructura": "CALIBRACION"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "unknown_structure"


def test_versions_never_offer_a_non_product(batch_service: tuple[Any, Any]) -> None:
    _, client = batch_service
    for version in ("0.2", "0.3"):
        assert _post(client, version, {**SEED_SAMPLE, "Estructura": "PET"}).status_code == 200
    listed = {v["version"]: v for v in client.get("/versions").json()["versions"]}
    assert "BOPP" in listed["0.2"]["known_structures"]
    assert "BOPP" not in listed["0.3"]["known_structures"]
    assert listed["0.3"]["non_product"] == ["BOPP"]
    assert listed["0.2"]["detection_limit"] == 1e6
    assert listed["0.1"]["detection_limit"] is None


# -- single: the detection limit ------------------------------------------------------------


def test_a_guide_value_below_the_detection_limit_says_so(batch_service: tuple[Any, Any]) -> None:
    app, client = batch_service
    fast, route = _both_ways(app, client, {"version": "0.2", "data_test": SEED_SAMPLE})
    assert _without_id(fast) == _without_id(route)
    body = fast.json()
    InferenceResponse.model_validate(body)
    assert body["below_detection_limit"] is True
    assert body["detection_limit"] == 1e6
    above = _post(client, "0.3", {**SEED_SAMPLE, "Estructura": "PET"}).json()
    assert above["below_detection_limit"] is False
    assert above["detection_limit"] == 1e-9


def test_a_version_without_a_detection_limit_omits_the_flag(batch_service: tuple[Any, Any]) -> None:
    _, client = batch_service
    body = _post(client, "0.1", SEED_SAMPLE).json()
    assert "below_detection_limit" not in body
    assert InferenceResponse.model_validate(body).below_detection_limit is False


# -- batch ----------------------------------------------------------------------------------


def test_json_batch_accepts_echoes_and_logs_record_fields(
    settings: Settings, batch_service: tuple[Any, Any]
) -> None:
    app, client = batch_service
    records = [
        {**RECORD, "Muestra": 1},
        {**SEED_SAMPLE, "Muestra": 2, "CONSECUTIVO": "C-2", "Fecha": "2026-03-03"},
        {**SEED_SAMPLE, "Muestra": 1},
    ]
    body = client.post("/inference/batch", json={"version": "0.2", "records": records}).json()
    assert body["failed"] == 0, body
    rows = body["records"]
    assert [r["CONSECUTIVO"] for r in rows] == [10234, "C-2", None]  # inputs come back as sent
    assert all(r["below_detection_limit"] is True for r in rows)
    app.state.inference.log.flush()
    logged = read_predictions(settings.resolved_feature_store_uri)
    logged = logged.assign(order=logged["CONSECUTIVO"].fillna("~")).sort_values("order")
    assert logged["CONSECUTIVO"].tolist()[:2] == ["10234", "C-2"]
    assert pd.isna(logged["CONSECUTIVO"].iloc[2])
    assert logged["Fecha"].tolist()[:2] == [datetime.date(2026, 3, 2), datetime.date(2026, 3, 3)]
    assert pd.isna(logged["Fecha"].iloc[2])
    assert set(logged["Referencia"].dropna()) == {"REF-1187"}


def test_batch_rows_with_bad_record_fields_or_non_products_say_why(
    batch_service: tuple[Any, Any],
) -> None:
    _, client = batch_service
    records = [
        {**SEED_SAMPLE, "CONSECUTIVO": True},
        {**SEED_SAMPLE, "Fecha": "not a date"},
        {**SEED_SAMPLE, "Referencia": ["x"]},
        {**SEED_SAMPLE, "Estructura": "CALIBRACION"},
        {**SEED_SAMPLE, "Estructura": "Unobtainium"},
        SEED_SAMPLE,
    ]
    body = client.post("/inference/batch", json={"version": "0.2", "records": records}).json()
    errors = [r["error"] for r in body["records"]]
    assert "CONSECUTIVO True must be text or a whole number" in errors[0]
    assert "Fecha 'not a date' is not a date" in errors[1]
    assert errors[2].startswith("Referencia ")
    assert "must be text" in errors[2]
    assert "Estructura 'CALIBRACION' is a calibration/reference film" in errors[3]
    assert "not known to version" not in errors[3]
    assert "is not known to version 0.2" in errors[4]
    assert errors[5] == ""
    failed = [r["below_detection_limit"] for r in body["records"]]
    assert failed == [None] * 5 + [True]


def test_a_csv_file_with_the_real_exports_date_columns(
    settings: Settings, batch_service: tuple[Any, Any]
) -> None:
    app, client = batch_service
    frame = pd.DataFrame(
        [
            {**SEED_SAMPLE, "CONSECUTIVO": "17.0", "Año": "2025", "Mes": "11", "Día": "4"},
            {**SEED_SAMPLE, "CONSECUTIVO": "18", "Año": "2025", "Mes": "2", "Día": "30"},
            {**SEED_SAMPLE, "CONSECUTIVO": "19", "Año": "2025", "Mes": "", "Día": "4"},
            {**SEED_SAMPLE, "CONSECUTIVO": "20", "Año": "2025", "Mes": "11", "Día": "4"},
        ]
    )
    frame.loc[3, "Fecha"] = "2025-11-05"
    payload = frame.fillna("").to_csv(index=False).encode()
    response = client.post(
        "/inference/batch",
        files={"file": ("lab.csv", payload, "text/csv")},
        data={"version": "0.2"},
    )
    assert response.status_code == 200, response.text
    scored = pd.read_csv(io.StringIO(response.text), keep_default_na=False, dtype=str)
    assert scored.columns[-3:].tolist() == ["below_detection_limit", "basis", "extrapolated"]
    errors = scored["error"].tolist()
    assert errors[0] == ""
    assert "Año/Mes/Día 2025/2/30 is not a calendar date" in errors[1]
    assert "Mes missing" in errors[2]
    assert "Fecha 2025-11-05 disagrees with Año/Mes/Día 2025-11-04" in errors[3]
    assert scored["below_detection_limit"].tolist() == ["True", "", "", ""]
    assert scored["basis"].tolist() == ["structure", "", "", ""]
    assert scored["extrapolated"].tolist() == ["False", "", "", ""]
    app.state.inference.log.flush()
    logged = read_predictions(settings.resolved_feature_store_uri)
    assert logged["CONSECUTIVO"].tolist() == ["17"]
    assert logged["Fecha"].tolist() == [datetime.date(2025, 11, 4)]


def test_an_unseen_laminate_of_known_layers_is_predicted_from_its_family(
    batch_service: tuple[Any, Any],
) -> None:
    """Issue 12: BOPP/PPC was never trained on; its best barrier is polypropylene, whose most
    measured structure (BOPP) stands in, with an interval twice as wide in log terms."""
    _, client = batch_service
    seen = _post(client, "0.2", SEED_SAMPLE).json()
    unseen = _post(client, "0.2", {**SEED_SAMPLE, "Estructura": "BOPP-PPC"})
    assert unseen.status_code == 200, unseen.text
    body = unseen.json()
    assert (body["structure"], body["basis"], body["stand_in"]) == ("BOPP/PPC", "layers", "BOPP")
    assert seen["basis"] == "structure"
    assert seen["stand_in"] is None
    assert body["prediction"]["value"] == pytest.approx(seen["prediction"]["value"])
    value = body["prediction"]["value"]
    _, upper = tiny_model().interval(value, "BOPP/PPC", body["interval"]["level"])
    assert body["interval"]["upper"] / value == pytest.approx((upper / value) ** 2, rel=1e-9)


def test_a_laminate_whose_family_the_version_never_saw_keeps_the_422(
    batch_service: tuple[Any, Any],
) -> None:
    _, client = batch_service
    for name in ("PET-AL-PE", "PET-XYZ-PE"):  # no foil in training; XYZ is no known layer
        response = _post(client, "0.2", {**SEED_SAMPLE, "Estructura": name})
        assert response.status_code == 422, response.text
        error = response.json()["detail"][0]
        assert error["type"] == "unknown_structure"
        assert "not a laminate of known layers (PET, BOPP, PE, PE-MDO" in error["msg"]


def test_a_batch_predicts_an_unseen_laminate_from_its_family_like_the_single_route(
    batch_service: tuple[Any, Any],
) -> None:
    _, client = batch_service
    sample = {**SEED_SAMPLE, "Estructura": "BOPP-PPC"}
    single = _post(client, "0.2", sample).json()
    batch = client.post(
        "/inference/batch", json={"version": "0.2", "records": [sample, SEED_SAMPLE]}
    )
    assert batch.status_code == 200, batch.text
    unseen, seen = batch.json()["records"]
    assert (unseen["basis"], seen["basis"]) == ("layers", "structure")
    assert unseen["extrapolated"] is False
    assert unseen["prediction"] == pytest.approx(single["prediction"]["value"], rel=1e-12)
    assert unseen["lower"] == pytest.approx(single["interval"]["lower"], rel=1e-9)
    assert unseen["upper"] == pytest.approx(single["interval"]["upper"], rel=1e-9)
