"""``GET /health``."""

from __future__ import annotations

from fastapi.testclient import TestClient

from permeability.services.training.app import create_training_app
from permeability.settings import Settings


def test_health_answers(settings: Settings) -> None:
    with TestClient(create_training_app(settings)) as client:
        response = client.get("/health")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["auth_required"] is False
    assert response.json()["models_dir"] == str(settings.paths.models)
