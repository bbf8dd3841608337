"""``GET /versions``, ``GET /versions/{version}`` and promotion over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.services.training_support import RunningService, running_service, train_the_seed


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with running_service(tmp_path_factory.mktemp("versions-api"), rows=400, seed=21) as running:
        yield running


@pytest.fixture(scope="module")
def seeded(service: RunningService) -> dict[str, Any]:
    """The seed's own request, answered once for the module."""
    return train_the_seed(service)


def test_versions_list_metrics_lineage_and_status(
    service: RunningService, seeded: dict[str, Any]
) -> None:
    response = service.client.get("/versions")

    assert response.status_code == 200
    listed = {v["version"]: v for v in response.json()["versions"]}
    first = listed["0.1"]
    assert first["status"] in {"available", "champion"}
    assert first["metrics"]["mae"] == pytest.approx(seeded["metrics"]["mae"])
    assert first["lineage"]["feature_set_version"] == seeded["feature_set_version"]
    assert first["lineage"]["data_hash"] == seeded["data_hash"]
    assert first["run_id"] == seeded["run_id"]
    assert first["registry_version"] == seeded["registry_version"]
    assert first["created_at"]
    single = service.client.get("/versions/0.1")
    assert single.status_code == 200
    assert single.json()["version"] == "0.1"
    assert service.client.get("/versions/missing").status_code == 404


def test_promotion_moves_the_champion_alias(
    service: RunningService, seeded: dict[str, Any]
) -> None:
    response = service.client.post(
        "/versions/0.1/promote", json={"reason": "seed model", "promoted_by": "lab lead"}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["alias"] == "champion"
    assert body["registry_version"] == seeded["registry_version"]
    champion = service.registry.client.get_model_version_by_alias("permeability", "champion")
    assert str(champion.version) == seeded["registry_version"]
    assert champion.tags["promoted_by"] == "lab lead"
    assert champion.tags["promotion_reason"] == "seed model"
    statuses = {
        v["version"]: v["status"] for v in service.client.get("/versions").json()["versions"]
    }
    assert statuses["0.1"] == "champion"


def test_promoting_without_a_body_works_and_unknown_versions_are_404(
    service: RunningService, seeded: dict[str, Any]
) -> None:
    assert service.client.post("/versions/0.1/promote").status_code == 200
    missing = service.client.post("/versions/never/promote")
    assert missing.status_code == 404
    assert "'never'" in missing.json()["detail"]
    bad = service.client.post("/versions/0.1/promote", json={"reason": "x", "extra": 1})
    assert bad.status_code == 422
