"""Property-based: requests generated from the inference app's own OpenAPI schema never get a 5xx.

Schemathesis reads ``/openapi.json`` from the app in process (ASGI, no network) and, for every
operation, generates schema-valid (positive) and schema-breaking (negative) requests. The
service is fully started with a tiny model as champion, so generated requests reach the real
scoring code. (Driven through schemathesis' Python API with Hypothesis: its pytest plugin's
``from_fixture`` does not work with the installed pytest 9.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from permeability.api.inference import create_inference_app
from permeability.settings import Settings
from tests.unit.api.inference_support import Champion, patch_registry, publish_version, tiny_model

EXAMPLES_PER_OPERATION = 50


@pytest.fixture
def inference_schema(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    champion = Champion()
    patch_registry(monkeypatch, champion)
    publish_version(settings, "0.1", tiny_model())
    champion.label = "0.1"
    app = create_inference_app(settings)
    with TestClient(app):  # runs the lifespan: model loaded, log and refresher started
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def test_the_schema_documents_every_endpoint(inference_schema: Any) -> None:
    labels = {op.label for op in _operations(inference_schema)}
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
def test_no_generated_request_gets_a_server_error(inference_schema: Any, mode: Any) -> None:
    failures: list[str] = []
    for operation in _operations(inference_schema):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any) -> None:
            response = case.call()
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.body!r:.300} -> "
                    f"{response.status_code}: {response.text[:300]}"
                )

        try:
            call()
        except Unsatisfiable:
            # Nothing to break: an operation without parameters or body (GET /health).
            assert mode == schemathesis.GenerationMode.NEGATIVE
            assert operation.method.upper() == "GET"
    assert failures == []
