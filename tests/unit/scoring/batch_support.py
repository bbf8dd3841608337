"""A served model and lab rows for the batch-scoring tests."""

from __future__ import annotations

import functools
from typing import Any

from permeability.modelling.served import LoadedModel
from permeability.scoring.decisions import DecisionPolicy
from tests.unit.services.inference_support import SEED_SAMPLE, tiny_model

POLICY = DecisionPolicy(level=0.9, approve_below=0.05, reject_above=0.95)

#: Readings that differ, so a wrong fill (or none) changes the prediction.
READINGS = {
    "Calibre1": 16.0,
    "Calibre2": 16.8,
    "Calibre3": 16.2,
    "Calibre4": 17.2,
    "Calibre5": 16.4,
}


@functools.cache
def loaded_model() -> LoadedModel:
    """Version 0.1 of the tiny model, as the service holds it; built once."""
    model = tiny_model()
    return LoadedModel.of_model("0.1", model, {})


def sample_with_readings(muestra: int, **changes: Any) -> dict[str, Any]:
    """The seed sample with :data:`READINGS` (mean 16.52), changed as asked."""
    row = {**SEED_SAMPLE, **READINGS, "CalibreProm": 16.52, "Muestra": muestra}
    row.update(changes)
    return row
