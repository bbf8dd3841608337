"""The truth behind a generated export, and the noise floor it gives.

``generate_lab_data(..., with_truth=True)`` adds three columns a real export never has (every
export drops columns starting with ``_``): the law on the sample's true inputs
(:data:`TRUE_PERMEABILITY`), the law on what the lab recorded (:data:`PHYSICS_PERMEABILITY`)
and the quirks that touched the row (:data:`QUIRKS`). The law on the recorded inputs is the
conditional median of the measured value, so its error on rows no quirk touched is the
best a model can reach (:func:`noise_floor_mae`, :func:`noise_floor_log_sigma`).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from permeability.errors import InvalidInputError
from permeability.record.schema import PERMEABILIDAD

FloatArray = NDArray[np.float64]

#: Truth columns (benchmarks only; exports drop every column starting with ``_``).
TRUE_PERMEABILITY: Final = "_true_permeability"
PHYSICS_PERMEABILITY: Final = "_physics_permeability"
QUIRKS: Final = "_quirks"


def _clean_truth_pairs(frame: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
    """(measured, physics) on rows no quirk touched; the truth columns must be present."""
    absent = [c for c in (PHYSICS_PERMEABILITY,) if c not in frame.columns]
    if absent:
        raise InvalidInputError(
            f"the noise floor needs the column {absent[0]}: generate with with_truth=True"
        )
    measured = pd.to_numeric(frame[PERMEABILIDAD], errors="coerce").to_numpy(dtype=np.float64)
    physics = frame[PHYSICS_PERMEABILITY].to_numpy(dtype=np.float64)
    keep = np.isfinite(measured) & (measured > 0) & np.isfinite(physics) & (physics > 0)
    if QUIRKS in frame.columns:
        keep &= frame[QUIRKS].to_numpy(dtype=object) == ""
    if not keep.any():
        raise InvalidInputError("the noise floor needs at least one clean row, found none")
    return measured[keep], physics[keep]


def noise_floor_mae(frame: pd.DataFrame) -> float:
    """MAE (g/m²·day) of the law on the recorded inputs: the best error a model can reach."""
    measured, physics = _clean_truth_pairs(frame)
    return float(np.mean(np.abs(measured - physics)))


def noise_floor_log_sigma(frame: pd.DataFrame) -> float:
    """σ of log(measured / law on the recorded inputs): the irreducible relative scatter."""
    measured, physics = _clean_truth_pairs(frame)
    return float(np.std(np.log(measured / physics)))
