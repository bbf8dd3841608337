"""Lab records as a source holds them: the seed's header, rows to write, chunks read back."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from permeability.io.sources.base import RawSource
from permeability.record.schema import CALIBRES
from tests.builders import SEED_HEADER

HEADER = list(SEED_HEADER)
SEED_COLUMNS = {h: h for h in HEADER}


def read_all(source: RawSource) -> tuple[pd.DataFrame, pd.DataFrame]:
    chunks = list(source.chunks(SEED_COLUMNS))
    records = pd.concat([c.records for c in chunks], ignore_index=True)
    malformed = pd.concat([c.malformed for c in chunks], ignore_index=True)
    return records, malformed


def write_text(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def row(muestra: int, sep: str = ",", **values: str) -> str:
    cells = {
        "Muestra": str(muestra),
        "Grados_C": "38",
        "Porc_Humedad": "90",
        "Estructura": "BOPP",
        **dict.fromkeys(CALIBRES, "20"),
        "CalibreProm": "20",
        "Permeabilidad": "5",
        "Fecha": "2024-01-01",
    }
    cells.update(values)
    return sep.join(cells[h] for h in HEADER)
