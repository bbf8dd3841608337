"""Everything single-record inference needs, without scikit-learn, SciPy, pandas or joblib.

A replica answers one record per request: features (numpy on the record path,
:meth:`~permeability.features.engineering.FeatureBuilder.transform_record_with_category`), one
row predictor, the clip to the category's bounds (:mod:`permeability.modelling.bounds`) and the
conformal calibration (numpy on its interval and exceedance paths). :class:`RecordScorer` holds
exactly that. Its row predictor is one of:

- ``(weights, intercept)``: a linear model with its scaler folded in (one dot product);
- a :class:`~permeability.modelling.compiled_trees.CompiledEnsemble` (a tree ensemble);
- in memory only, when the trees cannot be compiled: a callable predicting one row through the
  scikit-learn estimator. Such a scorer is not :attr:`RecordScorer.lean` and refuses to be
  pickled: its served form would be the estimator again.

:class:`~permeability.modelling.predictor.PermeabilityModel` builds one (derived state, rebuilt
when the model is unpickled) and delegates its single-record methods to it, so the clip and
predict logic exists once. A lean scorer is also written beside the full model at training
(:func:`permeability.io.model_file.save_served_file`): unpickling it imports this module, the
feature builder, the calibration and the compiled trees, none of which imports pandas,
scikit-learn, SciPy or joblib, so a replica serving it starts without them (docs/deploy.md,
"Replicas that start fast").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from permeability.errors import InvalidInputError
from permeability.features.engineering import FeatureBuilder
from permeability.modelling.bounds import category_bounds
from permeability.modelling.compiled_trees import CompiledEnsemble
from permeability.modelling.conformal import ConformalCalibration

__all__ = ["FAST_PATHS", "RecordScorer", "RowPredictor"]

FloatArray = NDArray[np.float64]
#: How a :class:`RecordScorer` predicts one feature row's raw log WVTR.
RowPredictor = tuple[FloatArray, float] | CompiledEnsemble | Callable[[FloatArray], float]
#: The values of :attr:`RecordScorer.fast_path`.
FAST_PATHS: Final = ("linear", "tree", "estimator")


class RecordScorer:
    """One record -> its clipped median guide value, its interval and P(exceed a limit).

    Same names and meaning as on :class:`~permeability.modelling.predictor.PermeabilityModel`
    (which delegates to its own scorer): ``model_name``, ``features``, ``calibration``,
    ``non_product``, ``detection_limit``, ``interval_level``, ``log_bounds``,
    :attr:`known_structures`, :attr:`fast_path` and the prediction methods.
    The clip ranges per category are derived state: left out of the pickle, recomputed on load.
    """

    def __init__(
        self,
        model_name: str,
        features: FeatureBuilder,
        calibration: ConformalCalibration,
        row_predictor: RowPredictor,
        *,
        log_bounds: tuple[float, float],
        interval_level: float = 0.9,
        detection_limit: float | None = None,
        non_product: tuple[str, ...] = (),
    ) -> None:
        self.model_name = model_name
        self.features = features
        self.calibration = calibration
        self.log_bounds = (float(log_bounds[0]), float(log_bounds[1]))
        self.interval_level = interval_level
        self.detection_limit = detection_limit
        self.non_product = tuple(non_product)
        self._weights: FloatArray | None = None
        self._intercept = 0.0
        self._compiled: CompiledEnsemble | None = None
        self._estimator_row: Callable[[FloatArray], float] | None = None
        if isinstance(row_predictor, tuple):
            weights, intercept = row_predictor
            self._weights = np.asarray(weights, dtype=np.float64)
            self._intercept = float(intercept)
        elif isinstance(row_predictor, CompiledEnsemble):
            self._compiled = row_predictor
        elif callable(row_predictor):
            self._estimator_row = row_predictor
        else:
            raise InvalidInputError(
                "a row predictor is (weights, intercept), a CompiledEnsemble or a callable, "
                f"got {type(row_predictor).__name__}"
            )
        self._set_category_bounds()

    def _set_category_bounds(self) -> None:
        """The clip range of each category: an array for frames and batches
        (:attr:`category_bounds`), Python floats for the single-record path."""
        self._category_bounds = category_bounds(self.features, self.log_bounds)
        self._bounds_by_category = tuple((float(lo), float(hi)) for lo, hi in self._category_bounds)

    # -- pickling: the served form ------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        if not self.lean:
            raise InvalidInputError(
                f"the record scorer of {self.model_name} predicts through its scikit-learn "
                "estimator and is not pickled: pickle the PermeabilityModel instead"
            )
        state = dict(self.__dict__)
        state.pop("_category_bounds", None)
        state.pop("_bounds_by_category", None)
        state.pop("_estimator_row", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._estimator_row = None
        self._set_category_bounds()

    # -- what it knows -------------------------------------------------------------------------

    @property
    def lean(self) -> bool:
        """True when it holds no estimator (a linear model or compiled trees): it can be stored
        and loaded without scikit-learn."""
        return self._weights is not None or self._compiled is not None

    @property
    def fast_path(self) -> str:
        """How single records are predicted: ``"linear"`` (a dot product), ``"tree"``
        (compiled trees) or ``"estimator"`` (the scikit-learn estimator on one row)."""
        if self._weights is not None:
            return "linear"
        return "tree" if self._compiled is not None else "estimator"

    @property
    def known_structures(self) -> list[str]:
        """Structures seen in training (strict inference accepts exactly these)."""
        return self.features.known_structures

    @property
    def category_bounds(self) -> FloatArray:
        """(n_categories, 2) clip range of log WVTR per category
        (:func:`~permeability.modelling.bounds.category_bounds`)."""
        return self._category_bounds

    @property
    def linear(self) -> tuple[FloatArray, float] | None:
        """The folded (weights, intercept) of a linear model, else None."""
        return None if self._weights is None else (self._weights, self._intercept)

    # -- predictions ---------------------------------------------------------------------------

    def clipped(self, log_value: float, category: int) -> float:
        """``log_value`` clipped to the category's bounds (the single-record clip)."""
        low, high = self._bounds_by_category[category]
        return min(max(log_value, low), high)

    def raw_log(self, row: FloatArray) -> float:
        """The row predictor's raw (unclipped) log WVTR of one feature row."""
        if self._weights is not None:
            return float(row @ self._weights) + self._intercept
        if self._compiled is not None:
            return self._compiled.predict_row(row)
        if self._estimator_row is None:
            raise RuntimeError(f"the record scorer of {self.model_name} has no row predictor")
        return self._estimator_row(row)

    def predict_record(self, record: Mapping[str, Any], strict: bool = True) -> float:
        """Median WVTR of one record through the fast path (:attr:`fast_path`), clipped to its
        family's bounds exactly as the frame path clips."""
        return self.predict_record_detail(record, strict=strict)[0]

    def predict_record_detail(
        self, record: Mapping[str, Any], strict: bool = True
    ) -> tuple[float, bool]:
        """:meth:`predict_record` and whether the clip changed it (an extrapolation)."""
        row, category = self.features.transform_record_with_category(record, strict=strict)
        raw = self.raw_log(row)
        clipped = self.clipped(raw, category)
        return math.exp(clipped), clipped != raw

    # -- uncertainty ---------------------------------------------------------------------------

    def interval(
        self, prediction: float, structure: str, level: float | None = None
    ) -> tuple[float, float]:
        """Conformal interval around a prediction for a canonical structure name."""
        chosen = self.interval_level if level is None else level
        return self.calibration.interval(prediction, structure, chosen)

    def p_exceed(self, prediction: float, structure: str, limit: float) -> float:
        """Conformal probability that the measured WVTR will exceed ``limit``."""
        return self.calibration.p_exceed(prediction, structure, limit)
