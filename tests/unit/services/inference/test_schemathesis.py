"""Property-based: every schemathesis check passes on the inference service, with and without
its token (``st run --checks all`` equivalent, see ``schemathesis_support.py``).

The service is fully started with a tiny model as champion, so generated requests reach the
real scoring code. With ``PERMEABILITY_INFERENCE_TOKEN`` set the requests carry it, and the
``ignored_auth`` check also sends them without it and with a wrong one (401 expected).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from permeability.services.inference.app import create_inference_app
from permeability.services.inference.schemas import SEED_SAMPLE
from permeability.settings import Settings
from tests.unit.services.inference_support import (
    Champion,
    patch_registry,
    publish_version,
    tiny_model,
)
from tests.unit.services.schemathesis_support import (
    app_schema,
    call_and_validate,
    operations,
    run_every_check,
)

EXAMPLES_PER_OPERATION = 50
TOKEN = "schemathesis-token"
JSON = "application/json"


@pytest.fixture(params=[None, TOKEN], ids=["open", "token"])
def inference_schema(
    request: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    token: str | None = request.param
    champion = Champion()
    patch_registry(monkeypatch, champion)
    publish_version(settings, "0.1", tiny_model())
    champion.label = "0.1"
    guarded = settings.model_copy(update={"inference_token": SecretStr(token) if token else None})
    app = create_inference_app(guarded)
    with TestClient(app):  # runs the lifespan: model loaded, log and refresher started
        yield app_schema(app, token)


def test_the_schema_documents_every_endpoint(inference_schema: Any) -> None:
    labels = {op.label for op in operations(inference_schema)}
    assert labels >= {
        "POST /inference",
        "POST /inference/batch",
        "GET /health",
        "GET /ready",
        "GET /versions",
        "GET /specs",
        "GET /metrics",
    }


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
def test_every_check_passes_on_generated_requests(inference_schema: Any, mode: Any) -> None:
    run = run_every_check(inference_schema, mode, EXAMPLES_PER_OPERATION)
    assert run.failures == []
    if mode == schemathesis.GenerationMode.POSITIVE:
        # Not refused at the door (a token mix-up would pass every check with 401s), and valid
        # samples get guide values through the same schema, token and checks (generated ones
        # are valid only by chance: some runs draw no answerable sample).
        assert not [label for label, seen in run.statuses.items() if 401 in seen], run.statuses
        single = {"data_test": SEED_SAMPLE}
        batch = {"records": [SEED_SAMPLE, SEED_SAMPLE]}
        for label, body in (("POST /inference", single), ("POST /inference/batch", batch)):
            status = call_and_validate(inference_schema, label, body=body, media_type=JSON)
            assert status == 200, label
