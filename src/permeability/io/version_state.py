"""What ``GET /versions`` shows for one version, read from the metadata its training stored.

The metadata may come from any earlier release: a field it lacks (or holds with an unexpected
type) is shown as empty. Whether a version can serve, and why not, is the model cache's
question (:mod:`permeability.io.model_cache`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["available", "unavailable"]


@dataclass(frozen=True)
class VersionState:
    """What ``GET /versions`` shows for one version."""

    version: str
    status: Status
    loaded: bool
    champion: bool
    reason: str | None = None
    model_name: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    n_train: int | None = None
    run_id: str | None = None
    known_structures: tuple[str, ...] = ()
    interval_level: float | None = None
    #: Recorded at training (None for versions trained before the record rules existed).
    non_product: tuple[str, ...] | None = None
    detection_limit: float | None = None


def state_of(
    label: str,
    status: Status,
    loaded: bool,
    champion: bool,
    reason: str | None,
    metadata: Mapping[str, Any],
) -> VersionState:
    """The state of version ``label`` from its stored metadata (fields it lacks stay empty)."""
    metrics = metadata.get("metrics")
    return VersionState(
        version=label,
        status=status,
        loaded=loaded,
        champion=champion,
        reason=reason,
        model_name=_text_or_none(metadata.get("chosen_model") or metadata.get("model")),
        metrics=dict(metrics) if isinstance(metrics, Mapping) else {},
        created_at=_text_or_none(metadata.get("created_at")),
        n_train=_int_or_none(metadata.get("n_train")),
        run_id=_text_or_none(_lineage(metadata).get("run_id")),
        known_structures=tuple(sorted(map(str, metadata.get("known_structures") or ()))),
        interval_level=_float_or_none(metadata.get("interval_level")),
        non_product=_texts_or_none(metadata.get("non_product")),
        detection_limit=_float_or_none(metadata.get("detection_limit")),
    )


def _texts_or_none(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _lineage(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    lineage = metadata.get("lineage")
    return lineage if isinstance(lineage, Mapping) else {}


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float_or_none(value: Any) -> float | None:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if is_number else None


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
