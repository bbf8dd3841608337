"""Builders shared by tests: a home with data in it, as production makes one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
