"""The lean path in front of ``POST /inference`` answers exactly as the FastAPI route does.

Every body is sent twice to the same running service, once with the lean path and once with
it switched off (the route alone): status, headers that matter and JSON must be identical
(except the per-request id). Valid requests must not reach FastAPI's stack at all; every
error must (so its shape is always the route's).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from permeability.io.predictions.reader import read_predictions
from permeability.services.inference.app import create_inference_app
from permeability.services.inference.fast import MAX_FAST_BODY_BYTES, InferenceApp
from permeability.settings import Settings
from tests.unit.services.inference_support import (
    AT_LIMIT_CONDITIONS,
    SEED_SAMPLE,
    Champion,
    patch_registry,
    publish_version,
    tiny_model,
)


@pytest.fixture
def fast_service(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[InferenceApp, TestClient]]:
    champion = Champion()
    patch_registry(monkeypatch, champion)
    publish_version(settings, "0.1", tiny_model())
    publish_version(settings, "0.2", tiny_model("Ridge"))
    champion.label = "0.1"
    app = create_inference_app(settings)
    assert isinstance(app, InferenceApp)
    with TestClient(app) as client:
        yield app, client


def _both_ways(app: InferenceApp, client: TestClient, content: bytes) -> tuple[Any, Any]:
    answers = []
    for fast in (True, False):
        app.fast_path = fast
        answers.append(
            client.post("/inference", content=content, headers={"Content-Type": "application/json"})
        )
    app.fast_path = True
    return answers[0], answers[1]


def _comparable(response: Any) -> Any:
    body = response.json()
    if isinstance(body, dict):
        body.pop("request_id", None)
    return body


BODIES: dict[str, Any] = {
    "seed body": {"version": "0.1", "data_test": SEED_SAMPLE},
    "champion (no version)": {"data_test": SEED_SAMPLE},
    "another loaded version": {"version": "0.2", "data_test": SEED_SAMPLE},
    "at the limit's conditions": {"data_test": AT_LIMIT_CONDITIONS},
    "level chosen": {"data_test": SEED_SAMPLE, "level": 0.8},
    "spelling of the structure": {"data_test": {**SEED_SAMPLE, "Estructura": " bopp "}},
    "unknown structure": {"data_test": {**SEED_SAMPLE, "Estructura": "Unobtainium"}},
    "unknown version": {"version": "9.9", "data_test": SEED_SAMPLE},
    "bad label": {"version": "../x", "data_test": SEED_SAMPLE},
    "text in a number": {"data_test": {**SEED_SAMPLE, "Grados_C": "hot"}},
    "impossible humidity": {"data_test": {**SEED_SAMPLE, "Porc_Humedad": 140}},
    "mean disagrees": {"data_test": {**SEED_SAMPLE, "CalibreProm": 30.0}},
    "humidity just above 0": {"data_test": {**SEED_SAMPLE, "Porc_Humedad": 5e-324}},
    "missing field": {"data_test": {k: v for k, v in SEED_SAMPLE.items() if k != "Calibre3"}},
    "no data_test": {"version": "0.1"},
    "level out of range": {"data_test": SEED_SAMPLE, "level": 1.5},
    "a list": [SEED_SAMPLE],
    "null": None,
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_the_lean_path_answers_like_the_route(
    fast_service: tuple[InferenceApp, TestClient], name: str
) -> None:
    app, client = fast_service
    fast, route = _both_ways(app, client, json.dumps(BODIES[name]).encode())
    assert fast.status_code < 500, fast.text
    assert fast.status_code == route.status_code, (fast.text, route.text)
    assert fast.headers["content-type"] == route.headers["content-type"]
    assert _comparable(fast) == _comparable(route)


@pytest.mark.parametrize(
    "content", [b"", b"{", b"not json", b"\xff\xfe\x00", b'{"data_test": {"Muestra": 1}'], ids=repr
)
def test_unreadable_bodies_get_the_routes_422(
    fast_service: tuple[InferenceApp, TestClient], content: bytes
) -> None:
    app, client = fast_service
    fast, route = _both_ways(app, client, content)
    assert fast.status_code == route.status_code == 422
    assert _comparable(fast) == _comparable(route)


def test_a_body_larger_than_any_sample_goes_the_documented_way(
    fast_service: tuple[InferenceApp, TestClient],
) -> None:
    app, client = fast_service
    padded = {"data_test": SEED_SAMPLE, "padding": "x" * (MAX_FAST_BODY_BYTES * 2)}
    fast, route = _both_ways(app, client, json.dumps(padded).encode())
    assert fast.status_code == route.status_code
    assert _comparable(fast) == _comparable(route)


def test_a_version_not_yet_in_memory_is_loaded_by_the_route_then_served(
    settings: Settings, fast_service: tuple[InferenceApp, TestClient]
) -> None:
    _app, client = fast_service
    publish_version(settings, "0.3", tiny_model("Lasso"))
    body = {"version": "0.3", "data_test": SEED_SAMPLE}
    first = client.post("/inference", json=body)
    again = client.post("/inference", json=body)
    assert first.status_code == again.status_code == 200
    assert first.json()["version"] == again.json()["version"] == "0.3"
    assert first.json()["prediction"] == again.json()["prediction"]


def _record_fastapi_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the HTTP requests that reach FastAPI's own stack, from now on."""
    reached: list[str] = []
    original = FastAPI.__call__

    async def recording(self: FastAPI, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            reached.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(FastAPI, "__call__", recording)
    return reached


def test_valid_requests_skip_fastapis_stack_and_errors_take_it(
    fast_service: tuple[InferenceApp, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    _app, client = fast_service
    reached = _record_fastapi_requests(monkeypatch)
    assert client.post("/inference", json={"data_test": SEED_SAMPLE}).status_code == 200
    assert reached == []
    bad = client.post("/inference", json={"data_test": {**SEED_SAMPLE, "Grados_C": "hot"}})
    assert bad.status_code == 422
    assert reached == ["/inference"]


def test_the_lean_path_can_be_switched_off_in_the_config(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    champion = Champion()
    patch_registry(monkeypatch, champion)
    publish_version(settings, "0.1", tiny_model())
    champion.label = "0.1"
    config = tmp_path / "config.yaml"
    config.write_text("inference:\n  fast_path: false\n", encoding="utf-8")
    reached = _record_fastapi_requests(monkeypatch)
    configured = settings.model_copy(update={"config_file": config})
    with TestClient(create_inference_app(configured)) as client:
        answer = client.post("/inference", json={"data_test": SEED_SAMPLE})
    assert answer.status_code == 200
    assert reached == ["/inference"]


def test_lean_answers_are_counted(fast_service: tuple[InferenceApp, TestClient]) -> None:
    _app, client = fast_service
    for _ in range(3):
        assert client.post("/inference", json={"data_test": SEED_SAMPLE}).status_code == 200
    client.post("/inference", json={"data_test": {**SEED_SAMPLE, "Porc_Humedad": 500}})
    text = client.get("/metrics").text
    assert 'permeability_inference_requests_total{endpoint="/inference",status="200"} 3.0' in text
    assert 'permeability_inference_requests_total{endpoint="/inference",status="422"} 1.0' in text
    assert 'permeability_inference_request_seconds_count{endpoint="/inference"} 4.0' in text


def test_lean_answers_land_in_the_prediction_log(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    champion = Champion()
    patch_registry(monkeypatch, champion)
    publish_version(settings, "0.1", tiny_model())
    champion.label = "0.1"
    with TestClient(create_inference_app(settings)) as client:
        answers = [client.post("/inference", json={"data_test": SEED_SAMPLE}) for _ in range(3)]
    logged = read_predictions(settings.resolved_feature_store_uri)
    assert len(logged) == 3
    assert set(logged["endpoint"]) == {"single"}
    assert sorted(logged["request_id"]) == sorted(a.json()["request_id"] for a in answers)
    assert (logged["latency_ms"] > 0).all()


def test_a_body_in_several_chunks_is_read_whole(
    fast_service: tuple[InferenceApp, TestClient],
) -> None:
    app, client = fast_service
    content = json.dumps({"data_test": SEED_SAMPLE}).encode()
    chunks = [content[:10], content[10:50], content[50:]]
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return messages.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/inference", "headers": []}
    assert client.portal is not None  # the running service's event loop
    client.portal.call(app, scope, receive, send)
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"])["structure"] == "BOPP"
