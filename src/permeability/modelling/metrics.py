"""Error and interval metrics on the original scale (g/m²·day) unless named ``_log``.

The seed reported R², MAE and MSE; RMSE and MAPE (in %) are added because WVTR spans orders of
magnitude: an absolute error dominated by the most permeable films says little about barrier
films, which MAPE and the per-structure table show.

The error metrics are scikit-learn's (issue 14): the formulas the hand-written numpy ones
used, and equal to them to the last bit on 10,000 and 1,000,000 rows (``bench/drift_metrics.py``
measures both in one run). scikit-learn validates its inputs, which costs about 0.3 ms a call
(0.25-0.36 ms against 0.01-0.03 ms on 10,000 rows; all six of :func:`regression_metrics` about
2 ms against 0.15 ms) and 1.3-2.8x on a million rows (2-7.5 ms against 1.7-3.7 ms). Metrics are
computed in training and evaluation, never per request, so the library is kept. Added here:
the domain's error for inputs of different lengths, not 1-D or empty; nan and inf propagating
as they did with numpy (scikit-learn refuses them unless told ``assume_finite``); MAPE in %
and only of positive measurements; R² undefined (nan) for a constant target, where
scikit-learn says 1.0 or 0.0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn import config_context
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    r2_score,
    root_mean_squared_error,
)

from permeability.errors import InvalidInputError

FloatArray = NDArray[np.float64]
StructureLabels = Sequence[str] | NDArray[np.object_]


def _pair(measured: ArrayLike, predicted: ArrayLike) -> tuple[FloatArray, FloatArray]:
    y = np.asarray(measured, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise InvalidInputError(
            f"measured and predicted must be 1-D of one length, got {y.shape} and {p.shape}"
        )
    if len(y) == 0:
        raise InvalidInputError("metrics need at least one measured value")
    return y, p


def _score(
    metric: Callable[[FloatArray, FloatArray], float], measured: ArrayLike, predicted: ArrayLike
) -> float:
    """``metric(measured, predicted)`` of a checked pair; a nan or inf gives nan or inf, as
    numpy does, where scikit-learn would raise its own ValueError."""
    y, p = _pair(measured, predicted)
    with config_context(assume_finite=True):
        return float(metric(y, p))


def mae(measured: ArrayLike, predicted: ArrayLike) -> float:
    return _score(mean_absolute_error, measured, predicted)


def rmse(measured: ArrayLike, predicted: ArrayLike) -> float:
    return _score(root_mean_squared_error, measured, predicted)


def mape(measured: ArrayLike, predicted: ArrayLike) -> float:
    """Mean absolute percentage error, in %; the target is strictly positive.

    (scikit-learn gives a fraction and divides by max(|y|, machine epsilon), which for a
    positive target is y.)
    """
    y, p = _pair(measured, predicted)
    if np.any(y <= 0.0):
        raise InvalidInputError("MAPE needs strictly positive measured values")
    return _score(mean_absolute_percentage_error, y, p) * 100.0


def r2(measured: ArrayLike, predicted: ArrayLike) -> float:
    """Coefficient of determination; nan for a constant target (undefined, not 0 or 1)."""
    y, p = _pair(measured, predicted)
    if np.ptp(y) == 0.0:
        return float("nan")
    return _score(r2_score, y, p)


def regression_metrics(measured: ArrayLike, predicted: ArrayLike) -> dict[str, float]:
    """The seed's R², MAE, MSE plus RMSE, MAPE and R² of the logs (scale-free)."""
    y, p = _pair(measured, predicted)
    result = {
        "r2": r2(y, p),
        "mae": mae(y, p),
        "mse": _score(mean_squared_error, y, p),
        "rmse": rmse(y, p),
        "mape": mape(y, p),
    }
    if np.all(y > 0.0) and np.all(p > 0.0):
        result["r2_log"] = r2(np.log(y), np.log(p))
    return result


def coverage(measured: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> float:
    """Share of measured values inside their [lower, upper] interval."""
    y, lo = _pair(measured, lower)
    _, hi = _pair(measured, upper)
    return float(np.mean((y >= lo) & (y <= hi)))


def mean_interval_width(lower: ArrayLike, upper: ArrayLike) -> float:
    lo, hi = _pair(lower, upper)
    return float(np.mean(hi - lo))


def per_structure(
    measured: ArrayLike,
    predicted: ArrayLike,
    structures: StructureLabels,
    lower: ArrayLike | None = None,
    upper: ArrayLike | None = None,
) -> pd.DataFrame:
    """One row per structure: count, MAE, MAPE and, given intervals, coverage and mean width."""
    y, p = _pair(measured, predicted)
    names = np.asarray(structures, dtype=object).astype(str)
    if names.shape != y.shape:
        raise InvalidInputError(f"need one structure per value, got {names.shape} and {y.shape}")
    table = pd.DataFrame({"Estructura": names, "measured": y, "predicted": p})
    table["abs_error"] = np.abs(y - p)
    table["pct_error"] = np.abs(y - p) / y * 100.0
    aggregations: dict[str, tuple[str, str]] = {
        "n": ("abs_error", "size"),
        "mae": ("abs_error", "mean"),
        "mape": ("pct_error", "mean"),
        "mean_measured": ("measured", "mean"),
    }
    if lower is not None and upper is not None:
        lo = np.asarray(lower, dtype=np.float64)
        hi = np.asarray(upper, dtype=np.float64)
        table["covered"] = ((y >= lo) & (y <= hi)).astype(np.float64)
        table["width"] = hi - lo
        aggregations["coverage"] = ("covered", "mean")
        aggregations["mean_width"] = ("width", "mean")
    grouped = table.groupby("Estructura", sort=True).agg(**aggregations).reset_index()
    grouped["n"] = grouped["n"].astype(np.int64)
    return grouped
