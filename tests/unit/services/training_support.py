"""Helpers for the training service tests: the service running on a stocked home, the seed's
request, and what a refused request must leave unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient

from permeability.io.model_store import ModelStore
from permeability.io.registry import Registry
from permeability.services.training.app import create_training_app
from permeability.settings import Settings
from tests.builders import fill_feature_store

SEED_BODY = {"model": "LinearRegression", "version": "0.1", "test_size": 0.25}


class RunningService:
    """A running app, its settings and a registry view for assertions."""

    def __init__(self, settings: Settings, client: TestClient) -> None:
        self.settings = settings
        self.client = client
        self.registry = Registry.from_settings(settings)

    def snapshot(self) -> dict[str, Any]:
        models = self.settings.paths.models
        hidden = [
            p.name for name in (".staging", ".reservations") for p in (models / name).glob("*")
        ]
        return {
            "folders": ModelStore(models).labels(),
            "hidden": sorted(hidden),
            "versions": [v.version for v in self.registry.list_versions()],
            "runs": self.registry.count_runs() if self.registry.has_store() else 0,
        }

    def load(self, label: str) -> Any:
        from permeability.io import pyfunc

        return pyfunc.load_pyfunc_model(self.settings.paths.models / label)


@contextmanager
def running_service(root: Path, *, rows: int, seed: int) -> Iterator[RunningService]:
    """The training service on a home under ``root`` whose feature store holds ``rows``."""
    settings = Settings(home=root / "storage")
    fill_feature_store(settings, root / "exports", rows=rows, seed=seed)
    with TestClient(create_training_app(settings)) as client:
        yield RunningService(settings, client)


def train_the_seed(service: RunningService) -> dict[str, Any]:
    """The seed's own request, answered."""
    response = service.client.post("/train", json=SEED_BODY)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def sample_inputs(settings: Settings, rows: int = 10) -> pd.DataFrame:
    from permeability.io import pyfunc
    from permeability.io.feature_store import FeatureStore

    frame = FeatureStore(settings.resolved_feature_store_uri).read().frame.head(rows)
    return pyfunc.input_example(frame, rows=rows)
