"""The error contract of both services (issue 13, item 9): what the OpenAPI document says about
errors is what the services answer.

Every 422 is ``{"detail": [{"loc", "msg", "type", ...}]}`` whatever raised it (pydantic, a
route's own check, an ``InvalidInputError`` from deeper down); every other error is
``{"detail": "<sentence>"}``; both are documented on every operation that can give them, and
the 400 of a body that cannot be read is documented too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from permeability.errors import InvalidInputError
from permeability.io.model_store import MAX_LABEL_LENGTH, validate_label
from permeability.services.common.errors import ErrorResponse, ValidationErrorResponse
from permeability.services.inference.app import create_inference_app
from permeability.services.training.app import create_training_app
from permeability.services.training.schemas import VERSION_LABEL_PATTERN
from permeability.settings import Settings
from tests.unit.services.inference_support import (
    SEED_SAMPLE,
    Champion,
    patch_registry,
    publish_version,
    tiny_model,
)

ERROR_MODELS = {"ErrorResponse", "ValidationErrorResponse"}


def _apps(token: str | None) -> dict[str, FastAPI]:
    secret = SecretStr(token) if token else None
    settings = Settings(home="unused", api_token=secret, inference_token=secret)
    return {
        "training": create_training_app(settings),
        "inference": create_inference_app(settings),
    }


def _operations(app: FastAPI) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            yield f"{method.upper()} {path}", operation


def _schema_name(response: dict[str, Any]) -> str | None:
    ref = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
    return None if ref is None else str(ref).rsplit("/", 1)[-1]


@pytest.mark.parametrize("token", [None, "s3cret"], ids=["open", "token"])
def test_every_documented_error_has_the_shared_body(token: str | None) -> None:
    for service, app in _apps(token).items():
        schema = app.openapi()
        assert "HTTPValidationError" not in schema["components"]["schemas"], service
        for label, operation in _operations(app):
            for code, response in operation["responses"].items():
                if not code.startswith(("4", "5")) or label == "GET /ready":
                    continue  # /ready's 503 is its own ReadyResponse, documented as such
                expected = "ValidationErrorResponse" if code == "422" else "ErrorResponse"
                assert _schema_name(response) == expected, (service, label, code)


@pytest.mark.parametrize("token", [None, "s3cret"], ids=["open", "token"])
def test_every_body_documents_the_400_the_413_and_the_422(token: str | None) -> None:
    for service, app in _apps(token).items():
        for label, operation in _operations(app):
            if "requestBody" in operation:
                assert {"400", "413", "422"} <= set(operation["responses"]), (service, label)
            if operation.get("parameters"):
                assert "422" in operation["responses"], (service, label)
            if label.startswith("POST"):
                assert ("security" in operation) is (token is not None), (service, label)
                assert ("401" in operation["responses"]) is (token is not None), (service, label)


@pytest.fixture
def inference(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    champion = Champion()
    patch_registry(monkeypatch, champion)
    publish_version(settings, "0.1", tiny_model())
    champion.label = "0.1"
    with TestClient(create_inference_app(settings)) as client:
        yield client


@pytest.fixture
def training(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_training_app(settings)) as client:
        yield client


def test_every_422_of_the_inference_service_has_one_shape(inference: TestClient) -> None:
    answers = {
        "field": inference.post("/inference", json={"data_test": {**SEED_SAMPLE, "Muestra": -1}}),
        "structure": inference.post(
            "/inference", json={"data_test": {**SEED_SAMPLE, "Estructura": "Unobtainium"}}
        ),
        "not json": inference.post(
            "/inference", content=b"{oops", headers={"Content-Type": "application/json"}
        ),
        "query": inference.post("/inference/batch?level=2", json={"records": []}),
        # raised as InvalidInputError deep in the batch reader (a file without the columns)
        "file": inference.post(
            "/inference/batch", files={"file": ("lab.csv", b"a,b\n1,2\n", "text/csv")}
        ),
    }
    for what, response in answers.items():
        assert response.status_code == 422, (what, response.text)
        body = ValidationErrorResponse.model_validate(response.json())
        assert body.detail, what
        assert all(issue.msg for issue in body.detail), what
    file_issue = answers["file"].json()
    assert file_issue["error"] == "InvalidInputError"
    assert file_issue["detail"][0]["loc"] == []  # the request as a whole
    assert "lacks column" in file_issue["detail"][0]["msg"]


def test_an_upload_field_the_schema_does_not_know_is_a_422_naming_it(
    inference: TestClient,
) -> None:
    """The multipart schema declares no other field (schemathesis sent a dozen unknown ones and
    got starlette's bare 400 for too many fields); an unknown one is refused as JSON refuses it."""
    schema = inference.app.openapi()  # type: ignore[attr-defined]
    body = schema["paths"]["/inference/batch"]["post"]["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["additionalProperties"] is False
    response = inference.post(
        "/inference/batch",
        files={"file": ("lab.csv", b"a,b\n1,2\n", "text/csv")},
        data={"lot": "7", "level": "0.9"},
    )
    assert response.status_code == 422, response.text
    (issue,) = ValidationErrorResponse.model_validate(response.json()).detail
    assert issue.loc == ["body", "lot"]
    assert issue.type == "extra_forbidden"


def test_other_errors_are_one_sentence(inference: TestClient, training: TestClient) -> None:
    answers = {
        404: inference.post("/inference", json={"version": "9.9", "data_test": SEED_SAMPLE}),
        415: inference.post(
            "/inference/batch", content=b"<x/>", headers={"Content-Type": "application/xml"}
        ),
        400: training.post(
            "/train", content=b"{\xff}", headers={"Content-Type": "application/json"}
        ),
    }
    for code, response in answers.items():
        assert response.status_code == code, response.text
        assert isinstance(ErrorResponse.model_validate(response.json()).detail, str)


def test_a_bad_label_in_a_path_is_a_422_in_the_shared_shape(training: TestClient) -> None:
    response = training.get("/versions/a..b")
    assert response.status_code == 422, response.text
    (issue,) = ValidationErrorResponse.model_validate(response.json()).detail
    assert "'..'" in issue.msg
    assert issue.type == "invalid_input"


# -- the documented label pattern says what validate_label accepts ---------------------------

_LABEL_CHARS = st.sampled_from("aZ09._-/\\ \x00é")


@settings(max_examples=500, deadline=None)
@given(st.text(_LABEL_CHARS, max_size=MAX_LABEL_LENGTH + 2))
def test_the_documented_label_pattern_agrees_with_validate_label(label: str) -> None:
    documented = (
        re.search(VERSION_LABEL_PATTERN, label) is not None and 1 <= len(label) <= MAX_LABEL_LENGTH
    )
    try:
        validate_label(label)
        valid = True
    except InvalidInputError:
        valid = False
    assert documented is valid, label
