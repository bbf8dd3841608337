"""The physics columns of a row: the permeation law linearised around the reference condition.

The law the features linearise (docs/data.md, features/physics.py):

    log WVTR = a_s − n_s·log L − (Ep_s/R)·(1/T) + log(RH·p_sat(T)) + h_s·f(RH)

so a linear model on these columns can represent it exactly, with per-structure slopes coming
from structure × (log L, 1/T, RH) interaction columns (:data:`INTERACTED_FEATURES`). log RH has
no per-structure slope: its exponent is the driving force's, 1 for every film (Δp = RH·p_sat),
and within one structure's few rows log RH and RH are nearly collinear, so a slope on each
fitted opposite giant coefficients that exploded at a test RH outside the fitted range. Every
continuous feature is centred on the tropical reference condition (38 °C, 90 % RH, 25 µm): the
structure one-hot coefficients of a linear model are then the log WVTR of each film at the
data-sheet condition, and the columns are well conditioned without a fitted scaler.

:func:`base_columns` is written once for scalars (a record) and arrays (a frame) alike, so both
paths evaluate the same formulas in the same order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np

from permeability.features.physics import (
    KELVIN_OFFSET,
    MAGNUS_B,
    MAGNUS_C_C,
    REFERENCE_HUMIDITY_PCT,
    REFERENCE_TEMPERATURE_C,
    REFERENCE_THICKNESS_UM,
)
from permeability.record.schema import CALIBRE_PROM, CALIBRES, GRADOS_C, PORC_HUMEDAD

_INVERSE_T_REF: Final = 1000.0 / (REFERENCE_TEMPERATURE_C + KELVIN_OFFSET)
_MAGNUS_EXPONENT_REF: Final = (
    MAGNUS_B * REFERENCE_TEMPERATURE_C / (MAGNUS_C_C + REFERENCE_TEMPERATURE_C)
)

#: Continuous physics columns, in matrix order. INTERACTED_FEATURES get structure interactions.
PHYSICS_FEATURES: Final = (
    "log_thickness",  # log(L / 25 µm): thickness exponent n_s
    "inverse_temperature",  # 1000/T − 1000/T_ref (1/kK): activation energy Ep_s / R
    "log_humidity",  # log(RH / 90 %): driving force RH (exponent 1 for every film: shared)
    "humidity",  # RH/100 − 0.9: swelling of hygroscopic films, h_s · f(RH)
    "log_saturation_pressure",  # log(p_sat(T) / p_sat(38 °C)): driving force p_sat(T)
)
INTERACTED_FEATURES: Final = ("log_thickness", "inverse_temperature", "humidity")
#: Position of each of :data:`INTERACTED_FEATURES` among :data:`PHYSICS_FEATURES`.
INTERACTED_POSITIONS: Final = tuple(PHYSICS_FEATURES.index(f) for f in INTERACTED_FEATURES)


def base_columns(
    inputs: Mapping[str, Any],
    pca_mean: Sequence[float],
    pca_components: Sequence[Sequence[float]],
) -> list[Any]:
    """Physics columns then caliper components, for scalars or arrays alike.

    Written once with operations that numpy and Python evaluate identically (elementwise
    IEEE arithmetic, log), so the record path and the frame path cannot drift apart.
    """
    log = _log_scalar if isinstance(inputs[GRADOS_C], float) else np.log
    temperature = inputs[GRADOS_C]
    humidity = inputs[PORC_HUMEDAD]
    columns = [
        log(inputs[CALIBRE_PROM] / REFERENCE_THICKNESS_UM),
        1000.0 / (temperature + KELVIN_OFFSET) - _INVERSE_T_REF,
        log(humidity / REFERENCE_HUMIDITY_PCT),
        humidity / 100.0 - REFERENCE_HUMIDITY_PCT / 100.0,
        MAGNUS_B * temperature / (MAGNUS_C_C + temperature) - _MAGNUS_EXPONENT_REF,
    ]
    for component in pca_components:
        total = (inputs[CALIBRES[0]] - pca_mean[0]) * component[0]
        for i in range(1, len(CALIBRES)):
            total = total + (inputs[CALIBRES[i]] - pca_mean[i]) * component[i]
        columns.append(total)
    return columns


def _log_scalar(value: float) -> float:
    """``math.log`` that gives what ``np.log`` gives at 0 (-inf): a positive input so tiny that
    its ratio to the reference underflows must not raise where the frame path clips."""
    return math.log(value) if value > 0.0 else -math.inf
