"""The job behind ``permeability generate-data``: generate a synthetic lab export and write it.

The default layout is the lab's real export (replicate rows numbered by ``CONSECUTIVO``, date in
three columns, non-product rows, detection-limit zeros); ``layout="seed"`` writes the seed's
record (``Muestra`` as a sample id, ``Fecha``) exactly as before.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import cast

import pandas as pd
from pydantic import BaseModel

from permeability.errors import InvalidInputError
from permeability.io.exports import export_format, write_lab_export
from permeability.pipelines.base import job_context
from permeability.record.schema import ESTRUCTURA
from permeability.record.structures import build_alias_map, normalise_structure
from permeability.settings import Settings
from permeability.synthetic.export import LAYOUTS, Layout, generate_lab_export

DEFAULT_START_DATE = date(2024, 1, 1)


class GenerateResult(BaseModel):
    """What was written: where, how many rows, from which seed, and the structure mix."""

    path: str
    rows: int
    seed: int
    format: str
    layout: str
    structures: dict[str, int]


def structure_counts(structures: pd.Series) -> dict[str, int]:
    """Rows per canonical structure, however the export spells them (most frequent first)."""
    aliases = build_alias_map()
    spelled = structures.value_counts()
    counts: dict[str, int] = {}
    for raw, count in spelled.items():
        name = normalise_structure(str(raw), aliases)
        counts[name] = counts.get(name, 0) + int(count)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def generate_data(
    settings: Settings,
    *,
    rows: int,
    seed: int,
    out: Path,
    messy: bool = True,
    start_id: int = 1,
    start_date: date | None = None,
    layout: str = "real",
) -> GenerateResult:
    """Generate ``rows`` lab records in ``layout`` (messy like a real export unless ``messy``
    is False); ``start_id`` is the first ``CONSECUTIVO`` (real) or ``Muestra`` (seed).

    The extension of ``out`` and the layout are checked before anything is generated, so a
    typo fails fast.
    """
    kind = export_format(out)
    if layout not in LAYOUTS:
        raise InvalidInputError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    with job_context("generate", settings) as job:
        frame = generate_lab_export(
            rows,
            seed,
            layout=cast(Layout, layout),
            start_id=start_id,
            start_date=start_date or DEFAULT_START_DATE,
            messy=messy,
        )
        written = write_lab_export(frame, out)
        counts = structure_counts(frame[ESTRUCTURA])
        job.logger.info(
            "wrote %d rows (%s, %s layout, seed=%d, messy=%s, first id %d) to %s; structures %s",
            len(frame),
            kind,
            layout,
            seed,
            messy,
            start_id,
            written,
            counts,
        )
        return GenerateResult(
            path=str(written),
            rows=len(frame),
            seed=seed,
            format=kind,
            layout=layout,
            structures=counts,
        )
