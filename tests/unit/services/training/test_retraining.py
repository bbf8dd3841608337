"""``POST /retrain`` on the training service: the token, the body, refusals, a recorded decision."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from permeability.io.registry import Registry
from permeability.io.tracking import RegistryConfig
from permeability.pipelines.retraining_record import RETRAINING_EXPERIMENT, RetrainReport
from permeability.services.training.app import create_training_app
from permeability.settings import Settings
from tests.builders import fill_feature_store
from tests.unit.services.training_support import running_service

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _runs(settings: Settings) -> int:
    config = replace(RegistryConfig.from_settings(settings), experiment_name=RETRAINING_EXPERIMENT)
    registry = Registry(config)
    if not registry.has_store():
        return 0
    registry.setup()
    return registry.count_runs()


@pytest.fixture(scope="module")
def stocked(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Version 0.1 trained on 300 samples and promoted; nothing newer."""
    from permeability.pipelines.promotion import promote
    from permeability.pipelines.training import train
    from permeability.pipelines.training_spec import TrainingSpec

    root = tmp_path_factory.mktemp("retraining-api")
    settings = Settings(home=root / "storage", api_token=SecretStr(TOKEN))
    fill_feature_store(settings, root, rows=300, seed=81)
    train(settings, TrainingSpec.parse(model="LinearRegression", version="0.1", test_size=0.25))
    promote(settings, "0.1")
    return settings


@pytest.fixture(scope="module")
def client(stocked: Settings) -> Iterator[TestClient]:
    with TestClient(create_training_app(stocked)) as test_client:
        yield test_client


def test_retrain_needs_the_token_and_writes_nothing_without_it(
    client: TestClient, stocked: Settings
) -> None:
    before = _runs(stocked)
    assert client.post("/retrain", json={}).status_code == 401
    wrong = client.post("/retrain", json={}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert _runs(stocked) == before


def test_an_empty_body_applies_the_policy_and_answers_the_recorded_decision(
    client: TestClient, stocked: Settings
) -> None:
    before = _runs(stocked)
    response = client.post("/retrain", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    report = RetrainReport.model_validate(body)
    assert report.decision == "no_trigger"  # nothing new since 0.1 was trained
    assert report.champion == "0.1"
    assert report.new_tests == 0
    assert report.challenger is None
    assert body["experiment"] == RETRAINING_EXPERIMENT
    assert {t["name"] for t in body["triggers"]} == {"drift", "degradation", "new_tests"}
    assert _runs(stocked) == before + 1
    openapi = client.get("/openapi.json").json()
    documented = openapi["paths"]["/retrain"]["post"]
    schema = documented["responses"]["200"]["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[1]
    assert set(body) == set(openapi["components"]["schemas"][name]["properties"])
    assert {"401", "404", "409", "422", "503"} <= set(documented["responses"])


def test_force_with_too_few_tests_is_a_decision_not_an_error(client: TestClient) -> None:
    response = client.post("/retrain", json={"force": True}, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision"] == "too_few_tests"
    assert [t["name"] for t in body["triggers"] if t["met"]] == ["force"]


@pytest.mark.parametrize(
    "body",
    [{"forse": True}, {"force": "yes"}, {"force": True, "margin": 0.1}],
)
def test_an_unknown_field_or_a_bad_value_is_422_and_writes_nothing(
    client: TestClient, stocked: Settings, body: dict[str, object]
) -> None:
    before = _runs(stocked)
    response = client.post("/retrain", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert _runs(stocked) == before


def test_without_a_champion_retrain_is_404(tmp_path: Path) -> None:
    with running_service(tmp_path, rows=80, seed=4) as service:
        response = service.client.post("/retrain", json={})
        assert response.status_code == 404, response.text
        assert "no champion version is set" in response.json()["detail"]


def test_a_persons_train_request_may_not_use_the_reserved_prefix(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "storage")
    fill_feature_store(settings, tmp_path, rows=80, seed=5)
    with TestClient(create_training_app(settings)) as client:
        body = {
            "model": "LinearRegression",
            "version": "retrain-20260101-000000",
            "test_size": 0.25,
        }
        response = client.post("/train", json=body)
        assert response.status_code == 422, response.text
        assert "reserved" in response.text
        assert "retrain-" in response.text
