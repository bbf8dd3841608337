"""Run the CLI in process for the command tests."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from permeability.cli.main import app


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def last_json(output: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return parsed
