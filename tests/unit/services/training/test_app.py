"""The training service's factory: the token it is created with guards every state-changing
endpoint and leaves the others open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from permeability.services.training.app import create_training_app
from permeability.settings import Settings
from tests.unit.services.training_support import SEED_BODY, RunningService, running_service


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with running_service(tmp_path_factory.mktemp("training-app"), rows=300, seed=21) as running:
        yield running


def test_state_changing_endpoints_need_the_token_when_set(service: RunningService) -> None:
    settings = Settings(home=service.settings.home, api_token=SecretStr("s3cret-token"))
    body = {**SEED_BODY, "version": "guarded"}
    with TestClient(create_training_app(settings)) as client:
        before = service.snapshot()
        refusals = [
            client.post("/train", json=body),
            client.post("/train", json=body, headers={"Authorization": "Bearer wrong"}),
            client.post("/train", json=body, headers={"Authorization": "Basic s3cret-token"}),
            client.post("/train", json=body, headers={"Authorization": "Bearer "}),
            client.post("/versions/0.1/promote"),
            client.post("/versions/0.1/promote", headers={"Authorization": "Bearer nope"}),
        ]
        assert [r.status_code for r in refusals] == [401] * 6
        assert all(r.headers["www-authenticate"] == "Bearer" for r in refusals)
        assert "Bearer" in refusals[0].json()["detail"]
        assert service.snapshot() == before
        assert client.get("/models").status_code == 200
        assert client.get("/versions").status_code == 200
        assert client.get("/health").json()["auth_required"] is True
        authorised = client.post(
            "/train", json=body, headers={"Authorization": "Bearer s3cret-token"}
        )
    assert authorised.status_code == 201, authorised.text
    assert "guarded" in service.snapshot()["folders"]
