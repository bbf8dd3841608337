"""What every command prints: its result (a summary, or one JSON object with ``--json``), or a
one-line reason on stderr and exit status 1 when it fails."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from pydantic import BaseModel

from permeability.errors import PermeabilityError

P = ParamSpec("P")
R = TypeVar("R")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, PermeabilityError) else f"{type(exc).__name__}: {text}"


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn any failure into exit status 1 and a one-line reason on stderr (details go to the log)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            typer.echo(f"error: {_one_line(exc)}", err=True)
            raise typer.Exit(1) from exc

    return wrapper


def emit(result: BaseModel | dict[str, Any], as_json: bool, summary: str) -> None:
    """The human summary, or the result as one JSON line."""
    payload = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    if as_json:
        typer.echo(json.dumps(payload, ensure_ascii=False, default=str))
    else:
        typer.echo(summary)
