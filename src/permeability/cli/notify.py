"""``permeability notify --test``: check every notification channel from the shell."""

from __future__ import annotations

from typing import Annotated

import typer

from permeability.cli.output import JsonFlag, emit, reports_errors
from permeability.settings import get_settings


@reports_errors
def notify(
    test: Annotated[
        bool, typer.Option("--test", help="Send a test message on every configured channel now.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Check the notification channels (notifications.channels in the YAML).

    Exits 0 when every channel took the test message, 1 with one line per failed channel."""
    from permeability.config import load_config
    from permeability.errors import InvalidInputError
    from permeability.pipelines.notifying import send_test

    if not test:
        raise InvalidInputError(
            "nothing to do: --test sends a test message on every configured channel"
        )
    settings = get_settings()
    results = send_test(settings, load_config(settings.config_file))
    failed = [r for r in results if not r.ok]
    lines = [
        f"{r.channel} ({r.kind}): "
        + (f"delivered in {r.seconds:.2f}s" if r.ok else f"FAILED after {r.seconds:.2f}s")
        for r in results
    ]
    payload = {"ok": not failed, "channels": [r.model_dump(mode="json") for r in results]}
    emit(payload, as_json, "\n".join(lines))
    if failed:
        for result in failed:
            typer.echo(f"error: channel {result.channel}: {result.error}", err=True)
        raise typer.Exit(1)
