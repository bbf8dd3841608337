"""The one command line: parses, dispatches to a job, prints the result. No logic lives here.

Every command that produces a result accepts ``--json`` and then prints it as one JSON object
on the last line of standard output. Failures exit non-zero with a one-line reason on stderr.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from pydantic import BaseModel

from permeability.errors import PermeabilityError
from permeability.settings import get_settings

app = typer.Typer(
    name="permeability",
    help="Guide values for film permeability (WVTR) and the MLOps loop behind them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

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


@app.command("generate-data")
@reports_errors
def generate_data(
    out: Annotated[Path, typer.Option(help="Output file: .csv, .xlsx, or .db/.sqlite (SQLite).")],
    rows: Annotated[int, typer.Option(min=1, help="Number of lab records.")] = 5000,
    seed: Annotated[int, typer.Option(min=0, help="Random seed; same seed, same file.")] = 42,
    clean: Annotated[
        bool, typer.Option(help="Write a tidy export instead of a messy one.")
    ] = False,
    start_id: Annotated[
        int, typer.Option(min=0, help="First Muestra; continue an earlier file's numbering.")
    ] = 1,
    start_date: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"], help="First test date (YYYY-MM-DD); default 2024-01-01."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write a physically grounded synthetic lab export (as messy as a real one)."""
    from permeability.jobs.synthetic import generate_data as run

    result = run(
        get_settings(),
        rows=rows,
        seed=seed,
        out=out,
        messy=not clean,
        start_id=start_id,
        start_date=start_date.date() if start_date else None,
    )
    emit(result, as_json, f"wrote {result.rows} rows to {result.path}")


@app.command()
@reports_errors
def acquire(
    source: Annotated[
        str | None,
        typer.Option(help="CSV or .xlsx path, or a SQLAlchemy URL. Default: PERMEABILITY_SOURCE."),
    ] = None,
    table: Annotated[str | None, typer.Option(help="Table to read from a SQL source.")] = None,
    query: Annotated[str | None, typer.Option(help="SELECT to run on a SQL source.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Extract lab records, clean and validate them, fit the caliper PCA, load the feature store."""
    from permeability.jobs.acquisition import acquire as run

    settings = get_settings()
    chosen = source or settings.source
    if not chosen:
        raise typer.BadParameter("give --source or set PERMEABILITY_SOURCE", param_hint="--source")
    report = run(settings, chosen, table=table or settings.source_table, query=query)
    emit(report, as_json, report.summary())


@app.command()
@reports_errors
def schedule(
    once: Annotated[
        bool, typer.Option(help="Run every configured job once now, then exit.")
    ] = False,
) -> None:
    """Run the configured jobs (acquisition, evaluation) on their cron expressions."""
    from permeability.jobs.scheduler import run_scheduler

    run_scheduler(get_settings(), once=once)


@app.command()
@reports_errors
def predict(
    input_path: Annotated[
        Path, typer.Option("--input", help="Lab file to score: .csv or .xlsx (seed's columns).")
    ],
    output_path: Annotated[
        Path,
        typer.Option("--output", help="Where to write every row plus its outputs (.csv/.xlsx)."),
    ],
    version: Annotated[
        str | None, typer.Option(help="Version label (default: the champion).")
    ] = None,
    level: Annotated[
        float | None, typer.Option(help="Prediction-interval level (default from config).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Score a whole file: prediction, interval, decision (and an error per bad row)."""
    from permeability.jobs.predict import predict_file

    result = predict_file(
        get_settings(), input_path=input_path, output_path=output_path, version=version, level=level
    )
    decisions = ", ".join(f"{k}={v}" for k, v in sorted(result.decisions.items())) or "none"
    emit(
        result,
        as_json,
        f"scored {result.rows} rows with version {result.version} ({result.failed} failed; "
        f"decisions: {decisions}) -> {result.output}",
    )


if __name__ == "__main__":  # pragma: no cover
    app()
