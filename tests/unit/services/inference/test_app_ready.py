"""``GET /ready``: ready means the champion is loaded; a registry that cannot be reached at
start is said, in the log and in the 503, and asked again until it answers."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from permeability.io.model_file import MODEL_FILE
from permeability.services.inference.app import create_inference_app
from permeability.services.inference.schemas import SEED_SAMPLE
from permeability.settings import Settings
from tests.unit.services.inference_support import (
    Champion,
    patch_registry,
    publish_version,
    tiny_model,
)


@pytest.fixture
def champion(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Champion:
    champion = Champion()
    patch_registry(monkeypatch, champion)
    monkeypatch.setattr("permeability.services.inference.app.REFRESH_SECONDS", 0.05)
    publish_version(settings, "0.1", tiny_model())
    publish_version(settings, "0.2", tiny_model("Ridge"))
    return champion


def _ready_within(client: TestClient, seconds: float) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = client.get("/ready")
        if response.status_code == 200:
            return dict(response.json())
        time.sleep(0.02)
    pytest.fail(f"not ready within {seconds} s: {client.get('/ready').json()}")


def test_another_loaded_version_does_not_make_it_ready(
    settings: Settings, champion: Champion
) -> None:
    champion.label = "0.2"
    (settings.paths.models / "0.2" / MODEL_FILE).unlink()
    with TestClient(create_inference_app(settings)) as client:
        asked = client.post("/inference", json={"version": "0.1", "data_test": SEED_SAMPLE})
        assert asked.status_code == 200
        response = client.get("/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["loaded_versions"] == ["0.1"]
        assert body["champion"] == "0.2"
        assert "champion 0.2 is not loaded" in body["reason"]


def test_ready_once_the_champion_is_loaded(settings: Settings, champion: Champion) -> None:
    champion.label = "0.2"
    with TestClient(create_inference_app(settings)) as client:
        body = client.get("/ready").json()
        assert body["ready"] is True
        assert body["champion"] == "0.2"
        assert "0.2" in body["loaded_versions"]


def test_an_unreachable_registry_at_start_is_a_503_with_the_reason_until_it_answers(
    settings: Settings, champion: Champion
) -> None:
    champion.fail = ConnectionError("connection refused by registry.example")
    with TestClient(create_inference_app(settings)) as client:
        response = client.get("/ready")
        assert response.status_code == 503
        reason = response.json()["reason"]
        assert reason.startswith("the champion is not known yet: registry unreachable")
        assert "connection refused by registry.example" in reason
        champion.fail = None
        champion.label = "0.1"
        assert _ready_within(client, 5.0)["champion"] == "0.1"
    log = (settings.paths.logs / "inference-api.log").read_text(encoding="utf-8")
    assert "champion lookup failed" in log
    assert "connection refused by registry.example" in log
    assert "started but not ready" in log
