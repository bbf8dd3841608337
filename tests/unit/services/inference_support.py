"""Helpers for the inference tests: a tiny real model, published into a model store.

The model is trained by the project's own ``train_model`` on generated data; the version
folder is written through the real :class:`ModelStore` (reserve, stage, publish) with the
layout the training service uses (``MLmodel``, ``metadata.json``,
``artifacts/permeability_model.joblib`` and, for a lean model, ``artifacts/permeability_served.pkl``)
but without MLflow, so these tests stay fast.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from permeability.features.pca import fit_caliper_pca
from permeability.io.model_file import MODEL_FILE, SERVED_FILE, save_model_file, save_served_file
from permeability.io.model_store import ModelStore
from permeability.modelling.predictor import PermeabilityModel
from permeability.modelling.training import train_model
from permeability.record.schema import CALIBRES
from permeability.services.inference.schemas import SEED_SAMPLE
from permeability.settings import Settings
from permeability.synthetic.generator import generate_lab_data

#: A BOPP 21 µm sample tested at the limit's conditions (38 °C / 90 % RH).
AT_LIMIT_CONDITIONS: dict[str, Any] = {
    **SEED_SAMPLE,
    "Muestra": 2,
    "Grados_C": 38.0,
    "Porc_Humedad": 90.0,
    **{c: 21.0 for c in CALIBRES},
    "CalibreProm": 21.0,
}


def without_row_numbers(reason: str) -> str:
    """A single answer's ``decision_reason`` as a batch words it: the same sentence without
    the sample's own numbers (its P(exceed), mean caliper, test conditions), which a batch
    row has in its columns (``permeability.scoring.decisions``)."""
    reason = re.sub(r"^(\w+: P\(WVTR > [^)]*\)) = \S+", r"\1", reason)
    reason = re.sub(r"^(no decision: mean caliper) \S+ µm", r"\1", reason)
    return re.sub(r"^(no decision: test conditions) \S+ °C / \S+ % RH", r"\1", reason)


@cache
def lab_frame(rows: int = 3000, seed: int = 11) -> pd.DataFrame:
    return generate_lab_data(rows, seed, mess=None)


@cache
def tiny_model(
    name: str = "LinearRegression", rows: int = 3000, seed: int = 11
) -> PermeabilityModel:
    frame = lab_frame(rows, seed)
    pca = fit_caliper_pca(frame[list(CALIBRES)].to_numpy(), 0.99)
    return train_model(frame, pca, model=name, random_state=seed).model


def publish_version(
    settings: Settings,
    label: str,
    model: Any,
    *,
    metrics: dict[str, float] | None = None,
    served: bool = True,
) -> Path:
    """Put ``model`` into the settings' model store as version ``label``; with its served file
    when ``served`` and the model has a lean one (as training writes them)."""
    store = ModelStore(settings.paths.models)
    with store.reserve(label) as reservation:
        staging = reservation.staging_path
        save_model_file(model, staging / MODEL_FILE)
        scorer = getattr(model, "record_scorer", None)
        if served and scorer is not None and scorer.lean:
            save_served_file(scorer, staging / SERVED_FILE)
        (staging / "MLmodel").write_text("flavors: {}\n", encoding="utf-8")
        return reservation.publish(
            {
                "version": label,
                "model": getattr(model, "model_name", "?"),
                "chosen_model": getattr(model, "model_name", "?"),
                "metrics": metrics or {"mae": 1.0},
                "created_at": "2026-01-01T00:00:00+00:00",
                "files": [str(MODEL_FILE)],
                "known_structures": sorted(getattr(model, "known_structures", [])),
            }
        )


class Champion:
    """Stands in for the MLflow registry's ``champion`` alias in unit tests."""

    def __init__(self) -> None:
        self.label: str | None = None
        self.fail: Exception | None = None

    def resolve(self) -> str | None:
        if self.fail is not None:
            raise self.fail
        return self.label


def patch_registry(monkeypatch: pytest.MonkeyPatch, champion: Champion) -> None:
    """Make every ModelCache built from settings ask ``champion`` instead of MLflow."""

    def resolver(_settings: Settings) -> Callable[[], str | None]:
        return champion.resolve

    monkeypatch.setattr("permeability.io.model_cache.registry_champion_resolver", resolver)
