"""Run the CLI in process, the way the end-to-end tests drive it."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from permeability.cli.main import app


def cli_json(*args: str) -> dict[str, Any]:
    """Run a CLI command with ``--json``; it must succeed, and its last stdout line is the result."""
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed
