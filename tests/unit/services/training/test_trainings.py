"""``POST /train`` and ``GET /trainings``: every model trains; refusals change nothing;
concurrency; the queue's place in the training service's contract."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from permeability.io.model_store import ModelStore
from permeability.io.training_slots import SlotHolder, TrainingSlots
from permeability.services.training.app import create_training_app
from permeability.settings import Settings
from tests.unit.services.training_support import (
    SEED_BODY,
    RunningService,
    running_service,
    sample_inputs,
    train_the_seed,
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with running_service(tmp_path_factory.mktemp("training-api"), rows=400, seed=21) as running:
        yield running


@pytest.fixture(scope="module")
def seeded(service: RunningService) -> dict[str, Any]:
    """The seed's own request, answered once for the module."""
    return train_the_seed(service)


def test_the_seed_body_trains_and_reports_version_run_lineage_metrics(
    service: RunningService, seeded: dict[str, Any]
) -> None:
    assert seeded["version"] == "0.1"
    assert seeded["model"] == seeded["chosen_model"] == "LinearRegression"
    assert len(seeded["run_id"]) == 32
    assert isinstance(seeded["feature_set_version"], int)
    assert seeded["data_hash"]
    assert {"r2", "mae", "mse", "rmse", "mape", "coverage"} <= set(seeded["metrics"])
    assert seeded["per_structure"]
    assert seeded["n_train"] > 0
    assert seeded["n_test"] > 0
    run = service.registry.get_run(seeded["run_id"])
    assert run.status == "FINISHED"
    assert run.tags["version_label"] == "0.1"
    registered = service.registry.find_label("0.1")
    assert registered is not None
    assert registered.version == seeded["registry_version"]


def test_every_catalogue_model_trains_and_reports_metrics(service: RunningService) -> None:
    names = [m["name"] for m in service.client.get("/models").json()["models"]]
    inputs = sample_inputs(service.settings)

    for index, name in enumerate(names):
        body = {"model": name, "version": f"cat-{index}", "test_size": 0.3}
        response = service.client.post("/train", json=body)
        assert response.status_code == 201, f"{name}: {response.text}"
        result = response.json()
        assert result["model"] == name
        assert np.isfinite(result["metrics"]["mae"])
        assert result["metrics"]["mae"] > 0
        if name == "auto":
            assert result["chosen_model"] != "auto"
            assert result["cv_scores"]
        predictions = service.load(f"cat-{index}").predict(inputs)["prediction"]
        assert np.all(np.isfinite(predictions))
        assert np.all(predictions > 0)


def test_optional_extras_reach_the_run(service: RunningService) -> None:
    body = {
        "model": "Ridge",
        "version": "extras",
        "test_size": 0.2,
        "params": {"alpha": 0.5},
        "cv": 3,
        "description": "tuned by hand",
    }
    response = service.client.post("/train", json=body)

    assert response.status_code == 201, response.text
    result = response.json()
    assert result["params"]["alpha"] == 0.5
    assert result["cv_scores"]
    run = service.registry.get_run(result["run_id"])
    assert run.params["hp_alpha"] == "0.5"
    assert run.params["cv"] == "3"
    assert run.params["description"] == "tuned by hand"


BAD_BODIES: list[tuple[str, Any, str]] = [
    ("missing model", {"version": "bad", "test_size": 0.25}, "model"),
    ("missing version", {"model": "Ridge", "test_size": 0.25}, "version"),
    ("missing test_size", {"model": "Ridge", "version": "bad"}, "test_size"),
    ("test_size 0", {**SEED_BODY, "version": "bad", "test_size": 0}, "test_size"),
    ("test_size 1", {**SEED_BODY, "version": "bad", "test_size": 1}, "test_size"),
    ("test_size 1.5", {**SEED_BODY, "version": "bad", "test_size": 1.5}, "test_size"),
    ("test_size text", {**SEED_BODY, "version": "bad", "test_size": "abc"}, "test_size"),
    ("test_size numeric text", {**SEED_BODY, "version": "bad", "test_size": "0.25"}, "test_size"),
    ("version number", {**SEED_BODY, "version": 0.2}, "version"),
    ("model number", {**SEED_BODY, "version": "bad", "model": 7}, "model"),
    ("cv too small", {**SEED_BODY, "version": "bad", "cv": 1}, "cv"),
    ("cv too large", {**SEED_BODY, "version": "bad", "cv": 21}, "cv"),
    (
        "description too long",
        {**SEED_BODY, "version": "bad", "description": "x" * 501},
        "description",
    ),
    ("params not a dict", {**SEED_BODY, "version": "bad", "params": [1, 2]}, "params"),
    ("unknown field", {**SEED_BODY, "version": "bad", "test_sise": 0.3}, "test_sise"),
    ("label ../x", {**SEED_BODY, "version": "../x"}, "version"),
    ("label a/b", {**SEED_BODY, "version": "a/b"}, "version"),
    ("label NUL", {**SEED_BODY, "version": "x\u0000y"}, "version"),
    ("label empty", {**SEED_BODY, "version": ""}, "version"),
    ("label ..", {**SEED_BODY, "version": ".."}, "version"),
    ("label too long", {**SEED_BODY, "version": "v" * 65}, "version"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_BODIES, ids=[c for c, _, _ in BAD_BODIES])
def test_bad_bodies_are_422_naming_the_field_and_change_nothing(
    service: RunningService, seeded: dict[str, Any], case: str, body: Any, field: str
) -> None:
    before = service.snapshot()

    response = service.client.post("/train", json=body)

    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(field in [str(part) for part in error["loc"]] for error in errors), errors
    assert all(error["msg"] for error in errors)
    assert service.snapshot() == before


def test_hostile_labels_say_what_is_wrong(service: RunningService) -> None:
    problems = {
        "../x": "must not contain '/'",
        "a/b": "must not contain '/'",
        "x\u0000y": "control characters",
        "": "must not be empty",
        "a..b": "'..'",
    }
    for label, problem in problems.items():
        response = service.client.post("/train", json={**SEED_BODY, "version": label})
        assert response.status_code == 422
        assert problem in response.json()["detail"][0]["msg"]
    assert not (service.settings.paths.models.parent / "x").exists()


@pytest.mark.parametrize(
    ("body", "field", "expected"),
    [
        ({"model": "DeepNet"}, "model", "valid: LinearRegression, Ridge"),
        ({"model": "Ridge", "params": {"alpha": -2}}, "params", "alpha"),
        ({"model": "Ridge", "params": {"colour": 1}}, "params", "colour"),
        ({"model": "auto", "params": {"alpha": 1}}, "params", "auto"),
    ],
)
def test_unknown_models_and_bad_hyperparameters_are_422_listing_what_is_valid(
    service: RunningService, seeded: dict[str, Any], body: dict[str, Any], field: str, expected: str
) -> None:
    before = service.snapshot()

    response = service.client.post("/train", json={**SEED_BODY, "version": "bad", **body})

    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", field]
    assert expected in error["msg"]
    assert service.snapshot() == before


def test_a_label_is_immutable(service: RunningService, seeded: dict[str, Any]) -> None:
    before = service.snapshot()
    metadata = (service.settings.paths.models / "0.1" / "metadata.json").read_bytes()

    response = service.client.post("/train", json={**SEED_BODY, "model": "Ridge"})

    assert response.status_code == 409
    assert response.json() == {
        "detail": response.json()["detail"],
        "error": "ConflictError",
    }
    assert "'0.1' already exists" in response.json()["detail"]
    assert service.snapshot() == before
    assert (service.settings.paths.models / "0.1" / "metadata.json").read_bytes() == metadata


def test_two_concurrent_trainings_both_land_intact(service: RunningService) -> None:
    barrier = threading.Barrier(2)
    responses: dict[str, Any] = {}

    def post(label: str, model: str) -> None:
        barrier.wait()
        responses[label] = service.client.post(
            "/train", json={"model": model, "version": label, "test_size": 0.25}
        )

    threads = [
        threading.Thread(target=post, args=("par-a", "LinearRegression")),
        threading.Thread(target=post, args=("par-b", "RandomForestRegressor")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert {k: r.status_code for k, r in responses.items()} == {"par-a": 201, "par-b": 201}
    results = {k: r.json() for k, r in responses.items()}
    assert results["par-a"]["run_id"] != results["par-b"]["run_id"]
    assert results["par-a"]["registry_version"] != results["par-b"]["registry_version"]
    inputs = sample_inputs(service.settings)
    for label, result in results.items():
        registered = service.registry.find_label(label)
        assert registered is not None
        assert registered.version == result["registry_version"]
        assert registered.run_id == result["run_id"]
        assert service.registry.get_run(result["run_id"]).tags["version_label"] == label
        metadata = ModelStore(service.settings.paths.models).read_metadata(label)
        assert metadata["lineage"]["run_id"] == result["run_id"]
        assert metadata["chosen_model"] == result["chosen_model"]
        predictions = service.load(label).predict(inputs)["prediction"]
        assert np.all(np.isfinite(predictions))
    first = service.load("par-a").predict(inputs)["prediction"].to_numpy()
    second = service.load("par-b").predict(inputs)["prediction"].to_numpy()
    assert not np.allclose(first, second)  # each folder holds its own model


def test_the_same_label_twice_at_once_lands_once(service: RunningService) -> None:
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def post() -> None:
        barrier.wait()
        body = {"model": "LinearRegression", "version": "twice", "test_size": 0.25}
        codes.append(service.client.post("/train", json=body).status_code)

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(codes) == [201, 409]
    assert [v.label for v in service.registry.list_versions()].count("twice") == 1
    assert ModelStore(service.settings.paths.models).inspect("twice").status == "available"


def test_an_empty_feature_store_is_a_clear_409_that_writes_nothing(
    service: RunningService, tmp_path: Path
) -> None:
    # Same home and tracking store as the module's service, but a feature store with no data.
    settings = Settings(home=service.settings.home, feature_store_uri=str(tmp_path / "empty"))
    with TestClient(create_training_app(settings)) as client:
        before = service.snapshot()
        response = client.post("/train", json={**SEED_BODY, "version": "no-data"})
        after = service.snapshot()

    assert response.status_code == 409
    assert response.json()["error"] == "EmptyFeatureStoreError"
    assert "permeability acquire" in response.json()["detail"]
    assert after == before


def test_an_idle_service_shows_its_cap_and_an_empty_line(settings: Settings) -> None:
    with TestClient(create_training_app(settings)) as client:
        response = client.get("/trainings")

    assert response.status_code == 200
    assert response.json() == {"max_concurrent": 1, "max_queued": 8, "running": [], "queued": []}


def test_a_training_running_in_another_process_is_shown(settings: Settings) -> None:
    slots = TrainingSlots.for_models(settings.paths.models, 1)
    with TestClient(create_training_app(settings)) as client:
        slot = slots.try_acquire(SlotHolder.this_process("from-the-cli"))
        assert slot is not None
        try:
            running = client.get("/trainings").json()["running"]
        finally:
            slot.release()
        after = client.get("/trainings").json()["running"]

    assert [(r["version"], r["pid"]) for r in running] == [("from-the-cli", os.getpid())]
    assert after == []


def test_the_configured_cap_and_line_are_the_services(settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("training:\n  max_concurrent: 2\n  max_queued: 3\n", encoding="utf-8")
    configured = Settings(home=settings.home, config_file=config)
    with TestClient(create_training_app(configured)) as client:
        view = client.get("/trainings").json()

    assert (view["max_concurrent"], view["max_queued"]) == (2, 3)


def test_the_openapi_document_tells_clients_about_the_full_line(settings: Settings) -> None:
    with TestClient(create_training_app(settings)) as client:
        paths = client.get("/openapi.json").json()["paths"]

    assert "503" in paths["/train"]["post"]["responses"]
    assert "Retry-After" in paths["/train"]["post"]["responses"]["503"]["description"]
    assert "/trainings" in paths
