"""What an evaluation reads from storage: the versions with what their training saw, and the
served predictions.

The job decides which versions and rows to evaluate (:mod:`permeability.pipelines.evaluation`);
this module only reads them: each version from the model store (a broken one is reported,
not fatal), the feature-set version it trained on from the feature store (read once when
several versions share it), and the prediction log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from permeability.errors import NotFoundError
from permeability.io.feature_store import FeatureStore
from permeability.io.model_cache import ModelCache, VersionUnavailableError
from permeability.io.model_store import ModelStore
from permeability.modelling.predictor import PermeabilityModel


@dataclass(frozen=True)
class LoadedVersion:
    """A loaded version and what its training saw (``training_frame`` None without lineage)."""

    label: str
    model: PermeabilityModel
    metadata: Mapping[str, Any]
    training_frame: pd.DataFrame | None
    training_feature_set: int | None
    is_champion: bool

    @property
    def lineage(self) -> Mapping[str, Any]:
        return dict(self.metadata.get("lineage") or {})


def load_versions(
    models: Path, labels: list[str], champion: str | None, feature_store: FeatureStore
) -> tuple[list[LoadedVersion], dict[str, str]]:
    """The versions of ``labels`` that load, and for each one that does not, why."""
    cache = ModelCache(ModelStore(models), lambda: champion)
    training_sets: dict[int, pd.DataFrame] = {}
    loaded: list[LoadedVersion] = []
    skipped: dict[str, str] = {}
    for label in labels:
        try:
            model = cache.get(label)
        except VersionUnavailableError as exc:
            skipped[label] = exc.reason
            continue
        fsv = _feature_set_version(model.metadata)
        frame = None
        if fsv is not None:
            if fsv not in training_sets:
                training_sets[fsv] = _training_frame(feature_store, fsv, label)
            frame = training_sets[fsv]
        loaded.append(
            LoadedVersion(label, model.model, model.metadata, frame, fsv, label == champion)
        )
    return loaded, skipped


def _feature_set_version(metadata: Mapping[str, Any]) -> int | None:
    """The lineage's feature-set version; an unreadable one counts as unknown."""
    value = (metadata.get("lineage") or {}).get("feature_set_version")
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _training_frame(feature_store: FeatureStore, version: int, label: str) -> pd.DataFrame:
    try:
        return feature_store.read(version).frame
    except NotFoundError as exc:
        raise NotFoundError(
            f"version '{label}' was trained on feature-set version {version}, which the "
            f"feature store no longer has ({exc})"
        ) from exc


def read_served_predictions(feature_store_uri: str, since: datetime | None) -> pd.DataFrame:
    """The prediction log, only requests made at or after ``since`` (naive UTC) when given:
    only the log's day partitions from ``since``'s day on are opened."""
    from permeability.io.predictions.reader import read_predictions

    return read_predictions(feature_store_uri, since=since)
