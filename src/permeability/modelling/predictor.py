"""The trained model as one picklable object: what inference needs, and its predict paths.

:class:`PermeabilityModel` carries everything inference needs: the fitted
:class:`~permeability.features.engineering.FeatureBuilder` (with the caliper PCA of the feature-set
version it was trained on), the fitted estimator, the conformal calibration and the training
counts per structure. It is plain Python, numpy arrays and scikit-learn estimators (no lambdas,
no closures), so joblib/cloudpickle can store it inside an MLflow pyfunc.
:func:`permeability.modelling.training.train_model` produces it.

Predictions are medians: the estimator learns log WVTR, and exp of the predicted log is the
median of a log-symmetric noise distribution (the mean would be biased up by the noise). Every
prediction path clips the predicted log WVTR the same way (:mod:`permeability.modelling.bounds`).

Single records go through the model's :attr:`PermeabilityModel.record_scorer` (a
:class:`~permeability.modelling.record_scorer.RecordScorer`): the one place that predicts and
clips a record, and, for linear and compiled tree models, the served form a replica loads
without scikit-learn or pandas.

Unseen structures: :meth:`PermeabilityModel.predict_frame` defaults to ``strict=False`` (held-out
metrics, evaluation) and routes a structure never seen in training to its family's category or
the pooled ``OTHER`` one; :meth:`PermeabilityModel.predict_record` defaults to ``strict=True``
(the inference API) and raises :class:`~permeability.features.inputs.UnknownStructureError`
instead.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final

import numpy as np
import pandas as pd
import sklearn
from numpy.typing import NDArray
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import ThreadpoolController

from permeability.errors import InvalidInputError
from permeability.features.engineering import FeatureBuilder
from permeability.features.hierarchy import OTHER
from permeability.features.pca import CaliperPCA
from permeability.modelling.catalogue import Regressor
from permeability.modelling.compiled_trees import CompiledEnsemble
from permeability.modelling.conformal import ConformalCalibration
from permeability.modelling.record_scorer import RecordScorer, RowPredictor
from permeability.modelling.trees import compile_ensemble
from permeability.record.schema import ESTRUCTURA

logger = logging.getLogger("permeability.model")

__all__ = ["PermeabilityModel"]

FloatArray = NDArray[np.float64]

_LINEAR_TYPES: Final = (LinearRegression, Ridge, Lasso, ElasticNet)
#: Attributes :attr:`PermeabilityModel.record_scorer` is built from.
_SCORER_INPUTS: Final = frozenset(
    {
        "model_name",
        "estimator",
        "features",
        "calibration",
        "log_bounds",
        "interval_level",
        "detection_limit",
        "non_product",
        "_weights",
        "_intercept",
    }
)


@functools.cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()


def _one_openmp_thread() -> AbstractContextManager[Any]:
    """Run a tree/neighbour prediction on one OpenMP thread (≈ 40 µs to enter).

    On 2 shared cores, OpenMP threads busy-wait for each other: a single-record
    HistGradientBoosting prediction took ~0.3 s instead of ~1 ms under load. The limit is
    per calling thread for OpenMP, so concurrent requests do not interfere.
    """
    return _threadpools().limit(limits=1, user_api="openmp")


def _folded_linear(estimator: Regressor) -> tuple[FloatArray, float] | None:
    """(weights, intercept) of a linear model, scaler folded in; None for other estimators.

    Folding ((x − μ)/σ)·β + b into x·(β/σ) + (b − μ·β/σ) turns a single-record prediction
    into one numpy dot product instead of a pipeline call.
    """
    scaler: StandardScaler | None = None
    final = estimator
    if isinstance(estimator, Pipeline):
        steps = [step for _, step in estimator.steps]
        if len(steps) != 2 or not isinstance(steps[0], StandardScaler):
            return None
        scaler, final = steps
    if not isinstance(final, _LINEAR_TYPES):
        return None
    coef = np.asarray(final.coef_, dtype=np.float64).ravel()
    intercept = float(np.ravel(np.asarray(final.intercept_, dtype=np.float64))[0])
    if scaler is None:
        return coef, intercept
    scale = np.ones_like(coef) if scaler.scale_ is None else np.asarray(scaler.scale_)
    mean = np.zeros_like(coef) if scaler.mean_ is None else np.asarray(scaler.mean_)
    weights = coef / scale
    return weights, intercept - float(mean @ weights)


class PermeabilityModel:
    """A trained guide-value model: features, estimator, calibration, training counts.

    ``log_bounds`` is the (low, high) clip range of predicted log WVTR (see
    :func:`~permeability.modelling.bounds.log_bounds`): every prediction method applies it, the
    same way, so the paths stay identical.

    Single records take a fast path (:attr:`fast_path`): a dot product for linear models, the
    compiled trees of :mod:`permeability.modelling.trees` for tree ensembles, both held by
    :attr:`record_scorer`, to which the single-record methods delegate. The scorer (with the
    compiled trees) is derived state: it is left out of the pickle and rebuilt when it is
    loaded, so models pickled before it existed load and serve through it, and pickles do not
    depend on the compiled layout.
    """

    def __init__(
        self,
        model_name: str,
        estimator: Regressor,
        features: FeatureBuilder,
        calibration: ConformalCalibration,
        *,
        params: Mapping[str, Any],
        n_train: int,
        log_bounds: tuple[float, float],
        interval_level: float = 0.9,
        detection_limit: float | None = None,
        non_product: tuple[str, ...] = (),
    ) -> None:
        low, high = log_bounds
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise InvalidInputError(f"log_bounds must be finite with low < high, got {log_bounds}")
        self.log_bounds = (float(low), float(high))
        self.model_name = model_name
        self.estimator = estimator
        self.features = features
        self.calibration = calibration
        self.params = dict(params)
        self.n_train = n_train
        self.interval_level = interval_level
        #: WVTR under which the instrument reads nothing (training data's limit); a guide
        #: value below it is reported as "< limit". None for models trained before it existed.
        self.detection_limit = detection_limit
        #: Shell patterns of structure names that are not products (calibration and reference
        #: films, unreported materials): the model refuses them (record/identity.py).
        self.non_product = tuple(non_product)
        self.sklearn_version = sklearn.__version__
        folded = _folded_linear(estimator)
        self._weights: FloatArray | None = None if folded is None else folded[0]
        self._intercept = 0.0 if folded is None else folded[1]
        self.record_scorer = self._build_record_scorer()

    def _build_record_scorer(self) -> RecordScorer:
        """The single-record scorer (derived state): the folded linear model, else the compiled
        trees, else a one-row call of the estimator."""
        predictor: RowPredictor
        if self._weights is not None:
            predictor = (self._weights, self._intercept)
        else:
            compiled = self._compile_trees()
            predictor = self._estimator_row if compiled is None else compiled
        return RecordScorer(
            self.model_name,
            self.features,
            self.calibration,
            predictor,
            log_bounds=self.log_bounds,
            interval_level=self.interval_level,
            detection_limit=self.detection_limit,
            non_product=self.non_product,
        )

    def _compile_trees(self) -> CompiledEnsemble | None:
        """The compiled trees, or None: then single records go through the estimator.

        Compiling reads scikit-learn's fitted attributes, some of them private; should a
        future scikit-learn rename one, the model must still load and serve (slower), not fail.
        """
        if self._weights is not None:
            return None
        try:
            return compile_ensemble(self.estimator)
        except Exception as exc:
            logger.warning(
                "%s cannot be compiled for single records (%s: %s); using the estimator",
                type(self.estimator).__name__,
                type(exc).__name__,
                exc,
            )
            return None

    def __setattr__(self, name: str, value: Any) -> None:
        """Setting what the scorer is built from rebuilds it (it never serves stale values)."""
        super().__setattr__(name, value)
        if name in _SCORER_INPUTS and "record_scorer" in self.__dict__:
            self.record_scorer = self._build_record_scorer()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("record_scorer", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("detection_limit", None)
        state.setdefault("non_product", ())
        # Derived state pickled by older versions is rebuilt, never trusted.
        for derived in ("_compiled", "_category_bounds", "_bounds_by_category"):
            state.pop(derived, None)
        self.__dict__.update(state)
        self.record_scorer = self._build_record_scorer()

    # -- what it knows ---------------------------------------------------------------------

    @property
    def pca(self) -> CaliperPCA:
        """The caliper PCA of the feature-set version the model was trained on."""
        return self.features.pca

    @property
    def known_structures(self) -> list[str]:
        """Structures seen in training (strict inference accepts exactly these)."""
        return self.features.known_structures

    @property
    def structure_counts(self) -> dict[str, int]:
        """Training (fit) rows per structure."""
        return dict(self.features.structure_counts)

    @property
    def feature_names(self) -> list[str]:
        return self.features.feature_names

    @property
    def fast_path(self) -> str:
        """How single records are predicted: ``"linear"`` (a dot product), ``"tree"``
        (compiled trees) or ``"estimator"`` (the scikit-learn estimator on one row)."""
        return self.record_scorer.fast_path

    def canonical_structures(self, frame: pd.DataFrame) -> NDArray[np.object_]:
        """The frame's structures as the model names them (and calibrates them)."""
        return self.features.canonical_structures(frame)

    # -- predictions -----------------------------------------------------------------------

    def predict_log_frame(self, frame: pd.DataFrame, strict: bool = False) -> FloatArray:
        """Predicted log WVTR per row, clipped to its family's bounds
        (:func:`~permeability.modelling.bounds.category_bounds`)."""
        return self.predict_log_detail(frame, strict=strict)[0]

    def predict_log_detail(
        self, frame: pd.DataFrame, strict: bool = False
    ) -> tuple[FloatArray, NDArray[np.bool_]]:
        """Clipped log WVTR per row and whether the clip changed it (an extrapolation)."""
        matrix = self.features.transform_frame(frame, strict=strict)
        raw = self._raw_log_matrix(matrix)
        categories = self.features.categories_of_frame(frame, strict=strict)
        bounds = self.record_scorer.category_bounds[categories]
        clipped = np.clip(raw, bounds[:, 0], bounds[:, 1])
        return clipped, np.asarray(clipped != raw, dtype=bool)

    def _raw_log_matrix(self, matrix: FloatArray) -> FloatArray:
        if self._weights is not None:
            return np.asarray(self.estimator.predict(matrix), dtype=np.float64)
        with _one_openmp_thread():
            return np.asarray(self.estimator.predict(matrix), dtype=np.float64)

    def _estimator_row(self, row: FloatArray) -> float:
        """The estimator's raw log WVTR of one feature row (when the trees do not compile)."""
        return float(self._raw_log_matrix(row.reshape(1, -1))[0])

    def predict_frame(self, frame: pd.DataFrame, strict: bool = False) -> FloatArray:
        """Median WVTR per row: the reference path (feature matrix, estimator, clip, exp)."""
        return np.exp(self.predict_log_frame(frame, strict=strict))

    def predict_record(self, record: Mapping[str, Any], strict: bool = True) -> float:
        """Median WVTR of one record through the fast path (:attr:`fast_path`), clipped to its
        family's bounds exactly as :meth:`predict_frame` clips (:attr:`record_scorer`)."""
        return self.record_scorer.predict_record(record, strict=strict)

    def predict_record_detail(
        self, record: Mapping[str, Any], strict: bool = True
    ) -> tuple[float, bool]:
        """:meth:`predict_record` and whether the clip changed it (an extrapolation)."""
        return self.record_scorer.predict_record_detail(record, strict=strict)

    def predict_records(
        self, records: Sequence[Mapping[str, Any]], strict: bool = True
    ) -> FloatArray:
        """Median WVTR of a batch of records through the fast path (one matrix product),
        clipped to :attr:`log_bounds` like the other paths."""
        if len(records) == 0:
            return np.empty(0, dtype=np.float64)
        pairs = [self.features.transform_record_with_category(r, strict=strict) for r in records]
        rows = np.vstack([row for row, _ in pairs])
        bounds = self.record_scorer.category_bounds[np.array([c for _, c in pairs], dtype=np.intp)]
        if self._weights is not None:
            raw = rows @ self._weights + self._intercept
        else:
            raw = self._raw_log_matrix(rows)
        return np.exp(np.clip(raw, bounds[:, 0], bounds[:, 1]))

    # -- uncertainty -----------------------------------------------------------------------

    def interval(
        self, prediction: float, structure: str, level: float | None = None
    ) -> tuple[float, float]:
        """Conformal interval around a prediction for a canonical structure name."""
        return self.record_scorer.interval(prediction, structure, level)

    def p_exceed(self, prediction: float, structure: str, limit: float) -> float:
        """Conformal probability that the measured WVTR will exceed ``limit``."""
        return self.record_scorer.p_exceed(prediction, structure, limit)

    def predict_interval_frame(
        self, frame: pd.DataFrame, level: float | None = None, strict: bool = False
    ) -> pd.DataFrame:
        """Columns Estructura (canonical), predicted, lower, upper; one row per input row."""
        predicted = self.predict_frame(frame, strict=strict)
        names = self.canonical_structures(frame)
        chosen = self.interval_level if level is None else level
        lower, upper = self.calibration.intervals(predicted, names, chosen)
        return pd.DataFrame(
            {ESTRUCTURA: names, "predicted": predicted, "lower": lower, "upper": upper},
            index=frame.index,
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary for metadata files, logs and GET endpoints."""
        pooled = set(self.features.pooled_structures)
        slopes = self.features.own_slopes
        category = {name: name if name not in pooled else OTHER for name in self.structure_counts}
        return {
            "model_name": self.model_name,
            "params": {k: _jsonable(v) for k, v in self.params.items()},
            "n_train": self.n_train,
            "n_features": self.features.n_features,
            "feature_names": self.feature_names,
            "fast_path": self.fast_path,
            "structures": {
                name: {
                    "n_train": count,
                    "pooled": name in pooled,
                    "own_slopes": slopes.get(category[name], []),
                }
                for name, count in self.structure_counts.items()
            },
            "min_structure_samples": self.features.min_structure_samples,
            "min_interaction_samples": self.features.min_interaction_samples,
            "min_interaction_spread": self.features.min_interaction_spread,
            "log_bounds": list(self.log_bounds),
            "interval_level": self.interval_level,
            "calibration": self.calibration.describe(),
            "pca": {
                "n_components": self.pca.n_components,
                "explained_variance_ratio": list(self.pca.explained_variance_ratio),
            },
            "sklearn_version": self.sklearn_version,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)
