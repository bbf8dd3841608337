"""The command line's app: every command is registered."""

from __future__ import annotations

from tests.unit.cli.cli_support import invoke


def test_help_lists_the_training_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("train", "promote", "versions", "serve", "ui"):
        assert command in result.stdout
