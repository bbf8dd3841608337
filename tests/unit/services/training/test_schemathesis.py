"""Property-based: every schemathesis check passes on the training service, with and without
its token (``st run --checks all`` equivalent, see ``schemathesis_support.py``).

The service is started on a small feature store, so generated ``POST /train`` bodies that are
valid really train (and generated labels really get stored, promoted, evaluated).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from permeability.services.training.app import create_training_app
from permeability.settings import Settings
from tests.builders import fill_feature_store
from tests.unit.services.schemathesis_support import app_schema, operations, run_every_check

#: Valid ``POST /train`` bodies train a model each: fewer examples than the inference service.
EXAMPLES_PER_OPERATION = 20
TOKEN = "schemathesis-token"


@pytest.fixture(scope="module")
def stocked(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("training-schemathesis")
    settings = Settings(home=root / "storage")
    fill_feature_store(settings, root / "exports", rows=300, seed=5)
    return settings


@pytest.fixture(params=[None, TOKEN], ids=["open", "token"])
def training_schema(request: Any, stocked: Settings) -> Iterator[Any]:
    token: str | None = request.param
    guarded = stocked.model_copy(update={"api_token": SecretStr(token) if token else None})
    app = create_training_app(guarded)
    with TestClient(app) as client:
        seeded = client.post(
            "/train",
            json={"model": "LinearRegression", "version": "0.1", "test_size": 0.25},
            headers={"Authorization": f"Bearer {token}"} if token else {},
        )
        assert seeded.status_code in (201, 409), seeded.text  # 409: the other token state
        yield app_schema(app, token)


def test_the_schema_documents_every_endpoint(training_schema: Any) -> None:
    labels = {op.label for op in operations(training_schema)}
    assert labels >= {
        "POST /train",
        "GET /models",
        "GET /versions",
        "GET /versions/{version}",
        "POST /versions/{version}/promote",
        "POST /evaluate",
        "GET /trainings",
        "GET /health",
    }


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
def test_every_check_passes_on_generated_requests(training_schema: Any, mode: Any) -> None:
    run = run_every_check(training_schema, mode, EXAMPLES_PER_OPERATION)
    assert run.failures == []
    if mode == schemathesis.GenerationMode.POSITIVE:
        # Answered, not all refused at the door (a token mix-up would pass with 401s).
        assert run.statuses["GET /models"][200] > 0, run.statuses
        assert set(run.statuses["POST /versions/{version}/promote"]) - {401}, run.statuses
