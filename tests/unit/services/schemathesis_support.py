"""Every schemathesis check, on every operation of a running app's OpenAPI schema.

``st run --checks all`` in process: the schema is read from the app (ASGI, no network) with the
project's ``schemathesis.toml``; for every operation Hypothesis generates schema-valid
(positive) or schema-breaking (negative) requests and ``case.call_and_validate()`` runs every
built-in check on each answer (server errors, status codes, content types, headers and bodies
against the documented schemas, acceptance of valid and rejection of invalid data, ignored
auth, ...). (Driven through schemathesis' Python API: its pytest plugin's ``from_fixture`` does
not work with the installed pytest 9.)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.config import SchemathesisConfig

CONFIG_FILE: Final = Path(__file__).resolve().parents[3] / "schemathesis.toml"


def app_schema(app: Any, token: str | None) -> Any:
    """The app's schema with the project's settings; requests carry ``token`` when given."""
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", app, config=SchemathesisConfig.from_path(CONFIG_FILE)
    )
    if token is not None:
        schema.config.update(headers={"Authorization": f"Bearer {token}"})
    return schema


def operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


@dataclass
class Run:
    """What a run found: failed checks (one line each) and the statuses seen per operation."""

    failures: list[str] = field(default_factory=list)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)


def run_every_check(schema: Any, mode: Any, examples: int) -> Run:
    run = Run()
    for operation in operations(schema):
        _run_operation(run, operation, mode, examples)
    return run


def _run_operation(run: Run, operation: Any, mode: Any, examples: int) -> None:
    seen = run.statuses.setdefault(operation.label, Counter())

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Any) -> None:
        try:
            response = case.call_and_validate()
        except Exception as failure:  # schemathesis raises one group for all failed checks
            run.failures.append(
                f"{case.method} {case.formatted_path} {case.body!r:.200}: {failure!s:.800}"
            )
            return
        seen[response.status_code] += 1

    try:
        call()
    except Unsatisfiable:
        # Nothing to break: an operation without parameters or body (GET /health).
        assert mode == schemathesis.GenerationMode.NEGATIVE
        assert operation.method.upper() == "GET"


def call_and_validate(schema: Any, label: str, **request: Any) -> int:
    """A hand-written request to operation ``label`` through the same schema, configuration and
    token as the generated ones, with every check run on its answer; its status code."""
    (operation,) = [op for op in operations(schema) if op.label == label]
    headers = {**(schema.config.headers or {}), **request.pop("headers", {})}
    return int(operation.Case(headers=headers, **request).call_and_validate().status_code)
