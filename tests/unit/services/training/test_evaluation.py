"""``POST /evaluate`` on the training service: the token, refusals that write nothing, a run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from permeability.io.evaluation_runs import EVALUATION_EXPERIMENT
from permeability.io.registry import Registry
from permeability.io.tracking import RegistryConfig
from permeability.services.training.app import create_training_app
from permeability.settings import Settings
from tests.builders import fill_feature_store

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def stocked(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Version 0.1 trained and promoted on 500 samples; 200 newer lab results acquired."""
    from permeability.pipelines.promotion import promote
    from permeability.pipelines.training import train
    from permeability.pipelines.training_spec import TrainingSpec

    root = tmp_path_factory.mktemp("evaluation-api")
    settings = Settings(home=root / "storage", api_token=SecretStr(TOKEN))
    fill_feature_store(settings, root, rows=500, seed=61)
    train(settings, TrainingSpec.parse(model="LinearRegression", version="0.1", test_size=0.25))
    promote(settings, "0.1")
    fill_feature_store(settings, root, rows=200, seed=62, start_id=501, start_date=date(2026, 2, 1))
    return settings


@pytest.fixture(scope="module")
def client(stocked: Settings) -> Iterator[TestClient]:
    with TestClient(create_training_app(stocked)) as test_client:
        yield test_client


def _runs(settings: Settings) -> int:
    config = replace(RegistryConfig.from_settings(settings), experiment_name=EVALUATION_EXPERIMENT)
    registry = Registry(config)
    registry.setup()
    return registry.count_runs()


def test_evaluate_needs_the_token_and_writes_nothing_without_it(
    client: TestClient, stocked: Settings
) -> None:
    before = _runs(stocked)
    assert client.post("/evaluate", json={}).status_code == 401
    wrong = client.post("/evaluate", json={}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert _runs(stocked) == before


def test_an_empty_body_evaluates_the_champion_in_a_new_run(
    client: TestClient, stocked: Settings
) -> None:
    before = _runs(stocked)
    response = client.post("/evaluate", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["experiment"] == EVALUATION_EXPERIMENT
    assert [e["version"] for e in body["evaluated"]] == ["0.1"]
    item = body["evaluated"][0]
    assert item["recent_rows"] == 200
    assert set(item["recent"]["metrics"]) >= {"r2", "mae", "mse", "rmse", "mape", "coverage"}
    decisions = item["recent"]["decisions"]
    assert decisions["n"] == 200
    judged = decisions["approve"] + decisions["retest"] + decisions["reject"]
    assert judged + decisions["no_limit"] == decisions["n"]
    assert decisions["wrong_approvals"] <= decisions["approve"]
    assert decisions["wrong_rejections"] <= decisions["reject"]
    assert _runs(stocked) == before + 1


def test_a_body_with_options_is_understood(client: TestClient) -> None:
    response = client.post("/evaluate", json={"all": True, "since": "2026-06-01"}, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["since"] == "2026-06-01T00:00:00"
    assert 0 < body["evaluated"][0]["recent_rows"] < 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"versions": "0.1"}, "versions"),
        ({"compare": "yes"}, "compare"),
        ({"promote_if_better": 1.5}, "promote_if_better"),
        ({"since": "last tuesday"}, "since"),
    ],
)
def test_bad_bodies_get_422_naming_the_field_and_write_nothing(
    client: TestClient, stocked: Settings, body: dict[str, object], field: str
) -> None:
    before = _runs(stocked)
    response = client.post("/evaluate", json=body, headers=AUTH)
    assert response.status_code == 422
    assert field in response.text
    assert _runs(stocked) == before


def test_contradictory_and_hostile_requests_get_422(client: TestClient) -> None:
    both = client.post("/evaluate", json={"version": "0.1", "all": True}, headers=AUTH)
    assert both.status_code == 422
    # Every 422 has one shape (services/common/errors.py): detail is a list of {loc, msg, type}.
    (problem,) = both.json()["detail"]
    assert "either a version or all versions" in problem["msg"]
    assert problem["type"] == "invalid_input"
    hostile = client.post("/evaluate", json={"version": "../../etc"}, headers=AUTH)
    assert hostile.status_code == 422
    assert ".." in hostile.json()["detail"][0]["msg"]


def test_an_unknown_version_gets_404_listing_the_known_ones(
    client: TestClient, stocked: Settings
) -> None:
    before = _runs(stocked)
    response = client.post("/evaluate", json={"version": "7.7"}, headers=AUTH)
    assert response.status_code == 404
    assert "available versions: 0.1" in response.json()["detail"]
    assert _runs(stocked) == before


def test_an_empty_window_gets_409_and_writes_nothing(client: TestClient, stocked: Settings) -> None:
    before = _runs(stocked)
    response = client.post("/evaluate", json={"since": "2035-01-01"}, headers=AUTH)
    assert response.status_code == 409
    assert response.json()["error"] == "NothingToEvaluateError"
    assert "nothing to evaluate" in response.json()["detail"]
    assert _runs(stocked) == before


def test_evaluate_is_in_the_openapi_schema_as_token_protected(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/evaluate"]["post"]
    assert operation["security"]
    assert {"401", "404", "409", "422"} <= set(operation["responses"])
