"""The optional inference token (``PERMEABILITY_INFERENCE_TOKEN``): POST endpoints need it when
it is set, GET endpoints and the lab page never do, and without it nothing changes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from permeability.services.common.deps import bearer_credentials, token_matches
from permeability.services.inference.app import create_inference_app
from permeability.services.training.app import create_training_app
from permeability.settings import Settings
from tests.unit.services.inference_support import (
    SEED_SAMPLE,
    Champion,
    patch_registry,
    publish_version,
    tiny_model,
)

TOKEN = "lab-bench-7f3a"
SEED_BODY = {"version": "0.1", "data_test": SEED_SAMPLE}
WRONG_CREDENTIALS: list[dict[str, str]] = [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": "Bearer "},
    {"Authorization": TOKEN},
    {"Authorization": f"Bearer {TOKEN}x"},
]


@pytest.fixture
def champion(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Champion:
    champion = Champion()
    patch_registry(monkeypatch, champion)
    publish_version(settings, "0.1", tiny_model())
    champion.label = "0.1"
    return champion


def _client(settings: Settings, token: str | None, *, fast_path: bool) -> Iterator[TestClient]:
    guarded = settings.model_copy(update={"inference_token": SecretStr(token) if token else None})
    app = create_inference_app(guarded)
    with TestClient(app) as client:
        app.fast_path = fast_path  # type: ignore[attr-defined]
        yield client


@pytest.fixture(params=[True, False], ids=["lean-path", "route"])
def guarded(request: Any, settings: Settings, champion: Champion) -> Iterator[TestClient]:
    yield from _client(settings, TOKEN, fast_path=request.param)


@pytest.fixture
def open_service(settings: Settings, champion: Champion) -> Iterator[TestClient]:
    yield from _client(settings, None, fast_path=True)


def _predictions_counted(client: TestClient) -> float:
    """Predictions made so far, as ``GET /metrics`` counts them (single and batch alike)."""
    lines = client.get("/metrics").text.splitlines()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("permeability_inference_predictions_total")
    )


def _batch_requests() -> list[dict[str, Any]]:
    csv_text = pd.DataFrame([SEED_SAMPLE]).to_csv(index=False)
    return [
        {"json": {"version": "0.1", "records": [SEED_SAMPLE]}},
        {"files": {"file": ("lab.csv", csv_text.encode(), "text/csv")}},
        {"content": csv_text, "headers": {"Content-Type": "text/csv"}},
    ]


@pytest.mark.parametrize("credentials", WRONG_CREDENTIALS, ids=lambda h: repr(h)[:30])
def test_posts_without_the_right_token_get_401_and_predict_nothing(
    guarded: TestClient, credentials: dict[str, str]
) -> None:
    before = _predictions_counted(guarded)
    single = guarded.post("/inference", json=SEED_BODY, headers=credentials)
    batches = [
        guarded.post(
            "/inference/batch", **{**kw, "headers": {**kw.get("headers", {}), **credentials}}
        )
        for kw in _batch_requests()
    ]
    for response in (single, *batches):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert "Bearer <token>" in response.json()["detail"]
    assert _predictions_counted(guarded) == before


def test_posts_with_the_token_are_answered(guarded: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    before = _predictions_counted(guarded)
    single = guarded.post("/inference", json=SEED_BODY, headers=auth)
    assert single.status_code == 200, single.text
    assert single.json()["prediction"]["value"] > 0
    lower_case_scheme = guarded.post(
        "/inference", json=SEED_BODY, headers={"Authorization": f"bearer {TOKEN}"}
    )
    assert lower_case_scheme.status_code == 200  # the scheme is case-insensitive (RFC 7235)
    for kwargs in _batch_requests():
        headers = {**kwargs.pop("headers", {}), **auth}
        response = guarded.post("/inference/batch?format=json", headers=headers, **kwargs)
        assert response.status_code == 200, response.text
        assert response.json()["predicted"] == 1
    assert _predictions_counted(guarded) == before + 5  # two single, three batches of one


def test_reading_stays_open_with_the_token_set(guarded: TestClient) -> None:
    for path in ("/", "/static/app.js", "/health", "/ready", "/versions", "/specs", "/metrics"):
        assert guarded.get(path).status_code == 200, path
    schema = guarded.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path in ("/inference", "/inference/batch"):
        operation = schema["paths"][path]["post"]
        assert operation["security"] == [{"HTTPBearer": []}]
        assert "401" in operation["responses"]
    assert "security" not in schema["paths"]["/versions"]["get"]


def test_without_the_token_nothing_changes(open_service: TestClient) -> None:
    assert open_service.post("/inference", json=SEED_BODY).status_code == 200
    for kwargs in _batch_requests():
        assert open_service.post("/inference/batch", **kwargs).status_code == 200
    # A client that sends a token anyway is not refused.
    sent_anyway = open_service.post(
        "/inference", json=SEED_BODY, headers={"Authorization": "Bearer anything"}
    )
    assert sent_anyway.status_code == 200
    schema = open_service.get("/openapi.json").json()
    assert "securitySchemes" not in schema["components"]
    for path in ("/inference", "/inference/batch"):
        assert "security" not in schema["paths"][path]["post"]
        assert "401" not in schema["paths"][path]["post"]["responses"]


def test_an_empty_token_counts_as_unset(settings: Settings, champion: Champion) -> None:
    for client in _client(settings, "", fast_path=True):
        assert client.post("/inference", json=SEED_BODY).status_code == 200


def test_each_service_reads_its_own_token(settings: Settings, champion: Champion) -> None:
    """The training token does not guard inference, nor the inference token training."""
    both = settings.model_copy(update={"api_token": SecretStr("training-only")})
    with TestClient(create_inference_app(both)) as inference:
        assert inference.post("/inference", json=SEED_BODY).status_code == 200
    inference_only = settings.model_copy(update={"inference_token": SecretStr(TOKEN)})
    with TestClient(create_training_app(inference_only)) as training:
        refused = training.post("/train", json={"model": "nope", "version": "x", "test_size": 0.2})
        assert refused.status_code == 422  # read and judged: no token needed
        assert training.get("/health").json()["auth_required"] is False


def test_the_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERMEABILITY_INFERENCE_TOKEN", TOKEN)
    secret = Settings().inference_token
    assert secret is not None
    assert secret.get_secret_value() == TOKEN
    assert TOKEN not in repr(Settings())  # a SecretStr: never printed


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {TOKEN}", TOKEN),
        (f"bearer {TOKEN}", TOKEN),
        (f"BEARER   {TOKEN} ", TOKEN),
        (f"Basic {TOKEN}", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_the_lean_path_reads_the_header_as_the_route_does(
    header: str | None, token: str | None
) -> None:
    assert bearer_credentials(header) == token
    assert token_matches(bearer_credentials(header), TOKEN) is (token == TOKEN)
