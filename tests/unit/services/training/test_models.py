"""``GET /models``: the catalogue."""

from __future__ import annotations

from fastapi.testclient import TestClient

from permeability.services.training.app import create_training_app
from permeability.settings import Settings


def test_the_catalogue_lists_every_model_with_its_parameters(settings: Settings) -> None:
    with TestClient(create_training_app(settings)) as client:
        response = client.get("/models")

    assert response.status_code == 200
    models = {m["name"]: m for m in response.json()["models"]}
    assert {"LinearRegression", "Ridge", "SVR", "KNeighborsRegressor", "auto"} <= set(models)
    ridge_params = {p["name"]: p for p in models["Ridge"]["params"]}
    assert {"default", "type", "allowed"} <= set(ridge_params["alpha"])
