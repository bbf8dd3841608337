"""The last line of every prediction: predicted log WVTR clipped to what training showed.

Every prediction path (frame, record, batch of records, and the calibration and
cross-validation predictions inside training) clips the predicted log WVTR to the range of log
WVTR over the fitting rows widened by :data:`LOG_CLIP_MARGIN` (ln 20) on each side, i.e. at
most 20× below the lowest and 20× above the highest measured value (:func:`log_bounds`), and
within that to its structure family's fitted range widened by :data:`FAMILY_LOG_MARGIN` (ln 3,
:func:`category_bounds`). On data like the training data this never binds; it stops a far
extrapolation (conditions, thickness or a structure the fit barely covered) from returning
1e33 g/m²·day. The structure hierarchy of :mod:`permeability.features.hierarchy` is the
actual fix for small data; the clip is the last line.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numpy.typing import NDArray

from permeability.features.engineering import FeatureBuilder

FloatArray = NDArray[np.float64]

#: Predicted log WVTR is clipped to [min, max] of the fitting rows' log WVTR ± this (ln 20).
LOG_CLIP_MARGIN: Final = math.log(20.0)
#: How far beyond what a structure's family showed in training a guide value may go: a rare
#: structure or a condition outside the fitted range never gets a value more than 3× above
#: the family's highest or below its lowest measured WVTR (features/hierarchy.py, families).
FAMILY_EXTRAPOLATION_FACTOR: Final = 3.0
FAMILY_LOG_MARGIN: Final = math.log(FAMILY_EXTRAPOLATION_FACTOR)


def log_bounds(log_target: FloatArray, margin: float = LOG_CLIP_MARGIN) -> tuple[float, float]:
    """The clip range of predicted log WVTR: the fitted range widened by ``margin`` each side."""
    return float(np.min(log_target)) - margin, float(np.max(log_target)) + margin


def category_bounds(builder: FeatureBuilder, bounds: tuple[float, float]) -> FloatArray:
    """(n_categories, 2) clip range of log WVTR per category: its family's fitted range
    widened by :data:`FAMILY_LOG_MARGIN`, never beyond the overall ``bounds`` (which is all a
    category without a family, ``OTHER``, or a model pickled before families, gets)."""
    low, high = bounds
    ranges = getattr(builder, "category_log_range", ()) or ()
    table = np.tile(np.array([low, high], dtype=np.float64), (len(builder.categories), 1))
    for index, found in enumerate(ranges):
        if found is not None:
            family_low, family_high = found
            table[index, 0] = max(low, family_low - FAMILY_LOG_MARGIN)
            table[index, 1] = min(high, family_high + FAMILY_LOG_MARGIN)
    return table
