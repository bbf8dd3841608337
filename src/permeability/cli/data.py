"""The data commands: ``generate-data``, ``acquire``, ``compact``."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from permeability.cli.output import JsonFlag, emit, reports_errors
from permeability.settings import get_settings


class ExportLayout(StrEnum):
    """Column layouts ``generate-data`` writes."""

    REAL = "real"
    SEED = "seed"


@reports_errors
def generate_data(
    out: Annotated[Path, typer.Option(help="Output file: .csv, .xlsx, or .db/.sqlite (SQLite).")],
    rows: Annotated[int, typer.Option(min=1, help="Number of lab records.")] = 5000,
    seed: Annotated[int, typer.Option(min=0, help="Random seed; same seed, same file.")] = 42,
    clean: Annotated[
        bool, typer.Option(help="Write a tidy export instead of a messy one.")
    ] = False,
    start_id: Annotated[
        int,
        typer.Option(
            min=0, help="First CONSECUTIVO (seed layout: Muestra); continue an earlier file."
        ),
    ] = 1,
    start_date: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"], help="First test date (YYYY-MM-DD); default 2024-01-01."
        ),
    ] = None,
    layout: Annotated[
        ExportLayout,
        typer.Option(
            help="real: the lab's export (CONSECUTIVO, replicates, Año/Mes/Día); "
            "seed: the seed's record (Muestra as sample id, Fecha)."
        ),
    ] = ExportLayout.REAL,
    as_json: JsonFlag = False,
) -> None:
    """Write a physically grounded synthetic lab export (as messy as a real one)."""
    from permeability.pipelines.synthetic import generate_data as run

    result = run(
        get_settings(),
        rows=rows,
        seed=seed,
        out=out,
        messy=not clean,
        start_id=start_id,
        start_date=start_date.date() if start_date else None,
        layout=layout.value,
    )
    emit(result, as_json, f"wrote {result.rows} rows ({result.layout} layout) to {result.path}")


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
    from permeability.pipelines.acquisition import acquire as run

    settings = get_settings()
    chosen = source or settings.source
    if not chosen:
        raise typer.BadParameter("give --source or set PERMEABILITY_SOURCE", param_hint="--source")
    report = run(settings, chosen, table=table or settings.source_table, query=query)
    emit(report, as_json, report.summary())


@reports_errors
def compact(
    retention_hours: Annotated[
        int,
        typer.Option(
            min=0,
            help="Keep files the compaction replaced this many hours (time travel over them "
            "keeps working); 0 deletes them now.",
        ),
    ] = 168,
    day: Annotated[
        list[datetime] | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="Compact only this UTC day's partition of the log (repeat for several); "
            "default: every day holding more than one file (the days appended since the last "
            "compaction).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Compact the prediction log's small files and delete the ones replaced long enough ago."""
    from permeability.pipelines.compaction import compact as run

    days = [moment.date() for moment in day] if day else None
    report = run(get_settings(), retention_hours=retention_hours, days=days)
    emit(report, as_json, report.summary())
