"""Builders shared by tests: a home with data in it, as production makes one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from permeability.record.schema import RECORD_COLUMNS
from permeability.settings import Settings

#: The seed layout's header, as a lab file spells it.
SEED_HEADER: tuple[str, ...] = tuple(RECORD_COLUMNS)


def fill_feature_store(
    settings: Settings, folder: Path, *, rows: int, seed: int, **options: Any
) -> int:
    """Acquire a tidy generated export (``options`` go to the generator): a new feature-set
    version, through the real acquisition; returns that version."""
    from permeability.io.exports import write_lab_export
    from permeability.pipelines.acquisition import acquire
    from permeability.synthetic.generator import generate_lab_data
    from permeability.synthetic.mess import MessSpec

    folder.mkdir(parents=True, exist_ok=True)
    source = write_lab_export(
        generate_lab_data(rows, seed, mess=MessSpec.none(), **options), folder / f"lab_{seed}.csv"
    )
    report = acquire(settings, str(source))
    assert report.feature_set_version is not None
    return int(report.feature_set_version)


def reference_export_rows(
    template: pd.DataFrame,
    values: Sequence[float],
    *,
    structure: str = "NIST-ROJA",
    referencia: str = "NIST-ROJA",
    first_id: int,
    start: date,
    every_days: int = 7,
    replicates: int = 2,
) -> pd.DataFrame:
    """Reference-film tests in the lab's real export layout (one test per value, dated
    ``every_days`` apart from ``start``, ``replicates`` rows each 1 % apart), their calipers
    and conditions copied from ``template``'s first row: results to put on the control chart."""
    rows = []
    record = first_id
    for position, value in enumerate(values):
        day = start + timedelta(days=every_days * position)
        for replicate in range(1, replicates + 1):
            row = template.iloc[0].to_dict()
            row.update(
                {
                    "CONSECUTIVO": record,
                    "Año": day.year,
                    "Mes": day.month,
                    "Día": day.day,
                    "Referencia": referencia,
                    "Estructura": structure,
                    "Muestra": replicate,
                    "Grados_C": 38.0,
                    "Porc_Humedad": 90.0,
                    "Permeabilidad": round(value * (1 + 0.01 * (replicate - 1)), 4),
                }
            )
            rows.append(row)
            record += 1
    return pd.DataFrame(rows, columns=template.columns)
