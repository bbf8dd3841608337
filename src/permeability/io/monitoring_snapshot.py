"""The monitoring snapshot on disk: written whole by each evaluation, read by the lab page.

One JSON file (``monitoring/latest.json`` under the storage root), replaced atomically and
durably (:func:`permeability.io.durable.write_text_durably`), so a reader sees the previous
evaluation or the new one, never half of one. Figures that are not finite (the width of an
unbounded interval, an R² of one row) are written as the strings ``"Infinity"``,
``"-Infinity"`` and ``"NaN"``, which read back as the same floats: pydantic's own JSON would
write them as ``null``, which a float field then refuses.
"""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from permeability.errors import NotFoundError
from permeability.io.durable import write_text_durably
from permeability.monitoring.snapshot import MonitoringSnapshot

SNAPSHOT_FILE: Final = "latest.json"


class NoSnapshotError(NotFoundError):
    """No evaluation has written a snapshot yet (or it cannot be read)."""


def snapshot_path(folder: Path) -> Path:
    return folder / SNAPSHOT_FILE


def write_snapshot(folder: Path, snapshot: MonitoringSnapshot) -> Path:
    """Replace the snapshot in ``folder`` (created if needed); return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = snapshot_path(folder)
    text = json.dumps(_finite(snapshot.model_dump(mode="python")), ensure_ascii=False)
    write_text_durably(path, text)
    return path


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats as their JSON strings and dates in ISO format."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


def read_snapshot(folder: Path) -> MonitoringSnapshot:
    """The latest snapshot; :class:`NoSnapshotError` naming what to do when there is none."""
    path = snapshot_path(folder)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NoSnapshotError(
            "no evaluation has been recorded yet: run `permeability evaluate` (or schedule it)"
        ) from exc
    try:
        return MonitoringSnapshot.model_validate_json(text)
    except ValidationError as exc:
        raise NoSnapshotError(
            f"the monitoring snapshot {path} cannot be read ({exc.error_count()} problems); "
            "the next evaluation replaces it"
        ) from exc
