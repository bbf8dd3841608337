"""The trained model as one picklable object, and the training procedure that produces it.

:class:`PermeabilityModel` carries everything inference needs: the fitted
:class:`~permeability.features.engineering.FeatureBuilder` (with the caliper PCA of the feature-set
version it was trained on), the fitted estimator, the conformal calibration and the training
counts per structure. It is plain Python, numpy arrays and scikit-learn estimators (no lambdas,
no closures), so joblib/cloudpickle can store it inside an MLflow pyfunc.

Predictions are medians: the estimator learns log WVTR, and exp of the predicted log is the
median of a log-symmetric noise distribution (the mean would be biased up by the noise).

Safety net: every prediction path (frame, record, batch of records, and the calibration and
cross-validation predictions inside training) clips the predicted log WVTR to the range of log
WVTR over the fitting rows widened by :data:`LOG_CLIP_MARGIN` (ln 20) on each side, i.e. at
most 20× below the lowest and 20× above the highest measured value. On data like the training
data this never binds; it stops a far extrapolation (conditions, thickness or a structure the
fit barely covered) from returning 1e33 g/m²·day. The structure hierarchy of
:mod:`permeability.features.engineering` is the actual fix for small data; the clip is the last line.

Unseen structures: :meth:`PermeabilityModel.predict_frame` defaults to ``strict=False`` (held-out
metrics, evaluation) and routes a structure never seen in training to the pooled ``OTHER``
category; :meth:`PermeabilityModel.predict_record` defaults to ``strict=True`` (the inference
API) and raises :class:`~permeability.features.engineering.UnknownStructureError` instead.

Training (:func:`train_model`) splits the rows into fit / calibration / test parts, stratified
by structure. The estimator is fitted on the fit part only; the calibration part gives the
conformal residuals and is never used to refit (that would void the interval guarantee); the
test part gives the held-out metrics. ``auto`` and ``cv`` cross-validate on the fit part only,
so calibration residuals stay untouched by model selection.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
import sklearn
from numpy.typing import NDArray
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import ThreadpoolController, threadpool_limits

from permeability.errors import EmptyFeatureStoreError, InvalidInputError
from permeability.features.engineering import (
    DEFAULT_MIN_INTERACTION_SAMPLES,
    DEFAULT_MIN_INTERACTION_SPREAD,
    DEFAULT_MIN_STRUCTURE_SAMPLES,
    OTHER,
    FeatureBuilder,
    UnknownStructureError,
)
from permeability.features.pca import CaliperPCA
from permeability.modelling import metrics as m
from permeability.modelling.catalogue import (
    AUTO,
    AUTO_CANDIDATES,
    AUTO_TIME_BUDGET_S,
    Regressor,
    UnknownModelError,
    build_estimator,
    max_rows,
    model_names,
    resolve_params,
    uses_interactions,
    uses_levels,
)
from permeability.modelling.conformal import (
    CROSS_CONFORMAL,
    DEFAULT_MIN_CALIBRATION,
    SPLIT_CONFORMAL,
    ConformalCalibration,
)
from permeability.modelling.noise_floor import NoiseFloor, replicate_noise_floor
from permeability.modelling.splits import (
    distinct_groups,
    grouped_folds,
    grouped_split,
    row_groups,
    split_grouping,
    stratified_split,
)
from permeability.modelling.trees import CompiledEnsemble, compile_ensemble
from permeability.record.identity import DEFAULT_NON_PRODUCT, product_rows
from permeability.record.schema import (
    ESTRUCTURA,
    INPUT_COLUMNS,
    MUESTRA,
    PERMEABILIDAD,
    PERMEABILITY_RANGE,
)

logger = logging.getLogger("permeability.model")

__all__ = [
    "LOG_CLIP_MARGIN",
    "MIN_TRAINING_ROWS",
    "PermeabilityModel",
    "TrainingOutcome",
    "UnknownModelError",
    "UnknownStructureError",
    "log_bounds",
    "stratified_split",
    "train_model",
]

FloatArray = NDArray[np.float64]

#: Fewer labelled rows than this cannot give a fit, a calibration and a test part.
MIN_TRAINING_ROWS: Final = 30
#: Folds for ``auto`` when ``cv`` is not given: fewer on large data to keep within the budget.
AUTO_FOLDS_SMALL: Final = 5
AUTO_FOLDS_LARGE: Final = 3
AUTO_LARGE_ROWS: Final = 20_000
_LINEAR_TYPES: Final = (LinearRegression, Ridge, Lasso, ElasticNet)
#: ``calibration="auto"`` calibrates by cross-conformal up to this many training-split rows.
CROSS_CALIBRATION_MAX_ROWS: Final = 20_000
CALIBRATION_METHODS: Final = ("auto", "split", "cross")
#: Predicted log WVTR is clipped to [min, max] of the fitting rows' log WVTR ± this (ln 20).
LOG_CLIP_MARGIN: Final = math.log(20.0)
#: How far beyond what a structure's family showed in training a guide value may go: a rare
#: structure or a condition outside the fitted range never gets a value more than 3× above
#: the family's highest or below its lowest measured WVTR (features/engineering.py, families).
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


@dataclass(frozen=True)
class _Hierarchy:
    """How much data a structure needs for its own intercept and for its own slopes."""

    min_structure_samples: int
    min_interaction_samples: int
    min_interaction_spread: float

    def builder(self, pca: CaliperPCA, *, interactions: bool, levels: bool) -> FeatureBuilder:
        return FeatureBuilder(
            pca,
            interactions=interactions,
            levels=levels,
            min_structure_samples=self.min_structure_samples,
            min_interaction_samples=self.min_interaction_samples,
            min_interaction_spread=self.min_interaction_spread,
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

    ``log_bounds`` is the (low, high) clip range of predicted log WVTR (see :func:`log_bounds`):
    every prediction method applies it, the same way, so the paths stay identical.

    Single records take a fast path (:attr:`fast_path`): a dot product for linear models, the
    compiled trees of :mod:`permeability.modelling.trees` for tree ensembles. The compiled trees
    are derived state: they are left out of the pickle and rebuilt when it is loaded, so
    models pickled before they existed load and serve through them, and pickles do not
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
        self._set_category_bounds()
        folded = _folded_linear(estimator)
        self._weights: FloatArray | None = None if folded is None else folded[0]
        self._intercept = 0.0 if folded is None else folded[1]
        self._compiled = self._compile_trees()

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

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_compiled", None)
        state.pop("_category_bounds", None)
        state.pop("_bounds_by_category", None)
        return state

    def _set_category_bounds(self) -> None:
        """Derived state (left out of the pickle): the clip range of each category, as an array
        for frames and as Python floats for the single-record path."""
        self._category_bounds = category_bounds(self.features, self.log_bounds)
        self._bounds_by_category = tuple((float(lo), float(hi)) for lo, hi in self._category_bounds)

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("detection_limit", None)
        state.setdefault("non_product", ())
        self.__dict__.update(state)
        self._set_category_bounds()
        self._compiled = self._compile_trees()

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
        if self._weights is not None:
            return "linear"
        return "tree" if self._compiled is not None else "estimator"

    def canonical_structures(self, frame: pd.DataFrame) -> NDArray[np.object_]:
        """The frame's structures as the model names them (and calibrates them)."""
        return self.features.canonical_structures(frame)

    # -- predictions -----------------------------------------------------------------------

    def predict_log_frame(self, frame: pd.DataFrame, strict: bool = False) -> FloatArray:
        """Predicted log WVTR per row, clipped to its family's bounds (:func:`category_bounds`)."""
        return self.predict_log_detail(frame, strict=strict)[0]

    def predict_log_detail(
        self, frame: pd.DataFrame, strict: bool = False
    ) -> tuple[FloatArray, NDArray[np.bool_]]:
        """Clipped log WVTR per row and whether the clip changed it (an extrapolation)."""
        matrix = self.features.transform_frame(frame, strict=strict)
        raw = self._raw_log_matrix(matrix)
        bounds = self._category_bounds[self.features.categories_of_frame(frame, strict=strict)]
        clipped = np.clip(raw, bounds[:, 0], bounds[:, 1])
        return clipped, np.asarray(clipped != raw, dtype=bool)

    def _raw_log_matrix(self, matrix: FloatArray) -> FloatArray:
        if self._weights is not None:
            return np.asarray(self.estimator.predict(matrix), dtype=np.float64)
        with _one_openmp_thread():
            return np.asarray(self.estimator.predict(matrix), dtype=np.float64)

    def _clipped(self, log_value: float, category: int) -> float:
        low, high = self._bounds_by_category[category]
        return min(max(log_value, low), high)

    def predict_frame(self, frame: pd.DataFrame, strict: bool = False) -> FloatArray:
        """Median WVTR per row: the reference path (feature matrix, estimator, clip, exp)."""
        return np.exp(self.predict_log_frame(frame, strict=strict))

    def predict_record(self, record: Mapping[str, Any], strict: bool = True) -> float:
        """Median WVTR of one record through the fast path (:attr:`fast_path`), clipped to its
        family's bounds exactly as :meth:`predict_frame` clips."""
        return self.predict_record_detail(record, strict=strict)[0]

    def predict_record_detail(
        self, record: Mapping[str, Any], strict: bool = True
    ) -> tuple[float, bool]:
        """:meth:`predict_record` and whether the clip changed it (an extrapolation)."""
        row, category = self.features.transform_record_with_category(record, strict=strict)
        if self._weights is not None:
            raw = float(row @ self._weights) + self._intercept
        elif self._compiled is not None:
            raw = self._compiled.predict_row(row)
        else:
            raw = float(self._raw_log_matrix(row.reshape(1, -1))[0])
        clipped = self._clipped(raw, category)
        return math.exp(clipped), clipped != raw

    def predict_records(
        self, records: Sequence[Mapping[str, Any]], strict: bool = True
    ) -> FloatArray:
        """Median WVTR of a batch of records through the fast path (one matrix product),
        clipped to :attr:`log_bounds` like the other paths."""
        if len(records) == 0:
            return np.empty(0, dtype=np.float64)
        pairs = [self.features.transform_record_with_category(r, strict=strict) for r in records]
        rows = np.vstack([row for row, _ in pairs])
        bounds = self._category_bounds[np.array([c for _, c in pairs], dtype=np.intp)]
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
        chosen = self.interval_level if level is None else level
        return self.calibration.interval(prediction, structure, chosen)

    def p_exceed(self, prediction: float, structure: str, limit: float) -> float:
        """Conformal probability that the measured WVTR will exceed ``limit``."""
        return self.calibration.p_exceed(prediction, structure, limit)

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


@dataclass(frozen=True)
class TrainingOutcome:
    """What one training produced: the model, its held-out scores and the split sizes."""

    model: PermeabilityModel
    model_name: str
    params: dict[str, Any]
    metrics: dict[str, float]
    per_structure: pd.DataFrame
    cv_scores: dict[str, float] | None
    test_predictions: pd.DataFrame
    n_train: int
    n_calibration: int
    n_test: int
    seconds: float
    #: ``test_id`` when every split kept each test's replicates together, ``row`` otherwise.
    split_grouping: str = "row"
    n_test_groups: int = 0
    #: The replicate disagreement of the training data (None without replicated tests).
    noise_floor: NoiseFloor | None = None


# -- validation -----------------------------------------------------------------------------


def _check_arguments(
    test_size: float, cv: int | None, calibration_fraction: float, interval_level: float
) -> None:
    if not 0.0 < test_size < 1.0:
        raise InvalidInputError(f"test_size must be between 0 and 1 (exclusive), got {test_size}")
    if not 0.0 < calibration_fraction < 1.0:
        raise InvalidInputError(
            f"calibration_fraction must be between 0 and 1 (exclusive), got {calibration_fraction}"
        )
    if not 0.0 < interval_level < 1.0:
        raise InvalidInputError(
            f"interval_level must be between 0 and 1 (exclusive), got {interval_level}"
        )
    if cv is not None and (isinstance(cv, bool) or not 2 <= cv <= 20):
        raise InvalidInputError(f"cv must be a number of folds from 2 to 20, got {cv}")


def _checked_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The labelled rows with a fresh positional index; refuses rather than drops bad rows."""
    missing = [c for c in (MUESTRA, *INPUT_COLUMNS, PERMEABILIDAD) if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"training frame is missing column(s) {', '.join(missing)}")
    if len(frame) == 0:
        raise EmptyFeatureStoreError("there are no labelled rows to train on")
    if len(frame) < MIN_TRAINING_ROWS:
        raise InvalidInputError(
            f"training needs at least {MIN_TRAINING_ROWS} labelled rows, got {len(frame)}"
        )
    try:
        target = pd.to_numeric(frame[PERMEABILIDAD], errors="raise").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"column {PERMEABILIDAD} must hold numbers: {exc}") from exc
    low, high = PERMEABILITY_RANGE
    bad = ~np.isfinite(target) | (target <= low) | (target > high)
    if bad.any():
        raise InvalidInputError(
            f"column {PERMEABILIDAD} has {int(bad.sum())} value(s) missing or outside "
            f"({low:g}, {high:g}]; fix or remove them in the feature store"
        )
    return frame.reset_index(drop=True)


def _target(frame: pd.DataFrame) -> FloatArray:
    return frame[PERMEABILIDAD].to_numpy(dtype=np.float64)


# -- fitting --------------------------------------------------------------------------------


def _fit(
    name: str,
    params: Mapping[str, Any] | None,
    frame: pd.DataFrame,
    pca: CaliperPCA,
    *,
    random_state: int,
    hierarchy: _Hierarchy,
) -> tuple[Regressor, FeatureBuilder, tuple[float, float]]:
    """The fitted estimator, its feature builder and its log clip range (:func:`log_bounds`)."""
    limit = max_rows(name)
    if limit is not None and len(frame) > limit:
        raise InvalidInputError(
            f"{name} fits in O(n²) and accepts at most {limit} fitting rows (the training split "
            f"minus its calibration part), got {len(frame)}; choose another model "
            "(e.g. HistGradientBoostingRegressor) or train on a smaller feature set"
        )
    builder = hierarchy.builder(
        pca, interactions=uses_interactions(name), levels=uses_levels(name)
    ).fit(frame)
    matrix = builder.transform_frame(frame, strict=True)
    estimator = build_estimator(name, params, random_state=random_state)
    log_target = np.log(_target(frame))
    try:
        estimator.fit(matrix, log_target)
        estimator.predict(matrix[:1])  # some parameters fail only here (k-NN's n_neighbors)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            f"{name} could not be fitted with params {params or {}}: {exc}"
        ) from exc
    return estimator, builder, log_bounds(log_target)


def _predict(
    fitted: tuple[Regressor, FeatureBuilder, tuple[float, float]], frame: pd.DataFrame
) -> FloatArray:
    """Median WVTR from a :func:`_fit` result, clipped as :class:`PermeabilityModel` clips."""
    estimator, builder, bounds = fitted
    matrix = builder.transform_frame(frame, strict=False)
    table = category_bounds(builder, bounds)[builder.categories_of_frame(frame, strict=False)]
    raw = np.asarray(estimator.predict(matrix), dtype=np.float64)
    return np.exp(np.clip(raw, table[:, 0], table[:, 1]))


def _cross_validate(
    name: str,
    params: Mapping[str, Any] | None,
    frame: pd.DataFrame,
    pca: CaliperPCA,
    *,
    folds: int,
    random_state: int,
    hierarchy: _Hierarchy,
) -> dict[str, float]:
    """K-fold MAE and R² on the original scale; features are refitted inside every fold.

    Folds are whole tests, so a score says what the lab will see on a new test.
    """
    tests = distinct_groups(row_groups(frame))
    if folds > tests:
        raise InvalidInputError(
            f"cv={folds} folds need at least {folds} fitting tests, got {tests}"
        )
    maes: list[float] = []
    r2s: list[float] = []
    for valid_rows, predicted in _out_of_fold(
        name, params, frame, pca, folds=folds, random_state=random_state, hierarchy=hierarchy
    ):
        measured = _target(frame.iloc[valid_rows])
        maes.append(m.mae(measured, predicted))
        r2s.append(m.r2(measured, predicted))
    return {
        "folds": float(folds),
        "mae_mean": float(np.mean(maes)),
        "mae_std": float(np.std(maes)),
        "r2_mean": float(np.mean(r2s)),
        "r2_std": float(np.std(r2s)),
    }


def _select_auto(
    frame: pd.DataFrame,
    pca: CaliperPCA,
    *,
    folds: int,
    random_state: int,
    hierarchy: _Hierarchy,
) -> tuple[str, dict[str, Any], dict[str, float]]:
    """The candidate with the lowest cross-validated MAE, its params and the CV scores.

    Candidates run cheapest first; once the time budget is spent, the rest are skipped (at
    least one is always evaluated). SVR-like row limits also skip a candidate.
    """
    started = time.perf_counter()
    scores: dict[str, dict[str, float]] = {}
    chosen: dict[str, dict[str, Any]] = {}
    for name, params in AUTO_CANDIDATES:
        limit = max_rows(name)
        if scores and time.perf_counter() - started > AUTO_TIME_BUDGET_S:
            break
        if limit is not None and len(frame) > limit:
            continue
        scores[name] = _cross_validate(
            name,
            params,
            frame,
            pca,
            folds=folds,
            random_state=random_state,
            hierarchy=hierarchy,
        )
        chosen[name] = dict(params)
    best = min(scores, key=lambda n: scores[n]["mae_mean"])
    result = dict(scores[best])
    result.update({f"mae_mean_{name}": s["mae_mean"] for name, s in scores.items()})
    result["candidates_evaluated"] = float(len(scores))
    return best, chosen[best], result


def _check_calibration(calibration: str, folds: int) -> None:
    if calibration not in CALIBRATION_METHODS:
        raise InvalidInputError(
            f"calibration must be one of {', '.join(CALIBRATION_METHODS)}, got {calibration!r}"
        )
    if isinstance(folds, bool) or not 2 <= folds <= 20:
        raise InvalidInputError(f"calibration_folds must be from 2 to 20, got {folds}")


def _calibration_method(calibration: str, train_rows: int, train_tests: int, folds: int) -> str:
    """The conformal method a training uses (see :func:`train_model`)."""
    if calibration == "split":
        return SPLIT_CONFORMAL
    if calibration == "cross" or train_rows <= CROSS_CALIBRATION_MAX_ROWS:
        if train_tests < folds:
            raise InvalidInputError(
                f"cross-conformal calibration with {folds} folds needs at least {folds} "
                f"training tests, got {train_tests}"
            )
        return CROSS_CONFORMAL
    return SPLIT_CONFORMAL


def _out_of_fold_residuals(
    name: str,
    params: Mapping[str, Any] | None,
    frame: pd.DataFrame,
    pca: CaliperPCA,
    *,
    folds: int,
    random_state: int,
    hierarchy: _Hierarchy,
) -> FloatArray:
    """log y − log ŷ of every row of ``frame``, each ŷ from a refit that did not see the row.

    The refits use (folds − 1)/folds of the rows, the served model all of them, so these
    residuals are if anything a little larger than the served model's: the intervals err on
    the wide side. Features (structure levels, slopes) are refitted inside every fold.
    """
    residuals = np.empty(len(frame), dtype=np.float64)
    for held_rows, predicted in _out_of_fold(
        name, params, frame, pca, folds=folds, random_state=random_state, hierarchy=hierarchy
    ):
        residuals[held_rows] = np.log(_target(frame.iloc[held_rows])) - np.log(predicted)
    return residuals


def _out_of_fold(
    name: str,
    params: Mapping[str, Any] | None,
    frame: pd.DataFrame,
    pca: CaliperPCA,
    *,
    folds: int,
    random_state: int,
    hierarchy: _Hierarchy,
) -> Iterator[tuple[NDArray[np.intp], FloatArray]]:
    """(held-out positions, their predictions) per K-fold refit; features refitted per fold.

    The folds keep each test's replicates together (:mod:`permeability.modelling.splits`).
    """
    for train_rows, held_rows in grouped_folds(row_groups(frame), folds, random_state):
        fitted = _fit(
            name,
            params,
            frame.iloc[train_rows],
            pca,
            random_state=random_state,
            hierarchy=hierarchy,
        )
        yield held_rows, _predict(fitted, frame.iloc[held_rows])


# -- training -------------------------------------------------------------------------------


def train_model(
    frame: pd.DataFrame,
    pca: CaliperPCA,
    *,
    model: str,
    params: Mapping[str, Any] | None = None,
    test_size: float = 0.25,
    cv: int | None = None,
    random_state: int = 42,
    calibration_fraction: float = 0.2,
    interval_level: float = 0.9,
    min_structure_samples: int = DEFAULT_MIN_STRUCTURE_SAMPLES,
    min_interaction_samples: int = DEFAULT_MIN_INTERACTION_SAMPLES,
    min_interaction_spread: float = DEFAULT_MIN_INTERACTION_SPREAD,
    min_calibration: int = DEFAULT_MIN_CALIBRATION,
    calibration: str = "auto",
    calibration_folds: int = 5,
    detection_limit: float | None = None,
    non_product: Sequence[str] = DEFAULT_NON_PRODUCT,
) -> TrainingOutcome:
    """Split, fit, calibrate and score one model; deterministic for a ``random_state``.

    Only product rows are learnt from (:func:`permeability.record.identity.product_rows` with
    ``non_product``); the model keeps ``non_product`` to refuse such structures when serving,
    and ``detection_limit`` (the data's, values under it are stored at it) to say when a guide
    value is under it.

    ``frame`` holds feature-store rows (the seed's columns; extra columns are ignored) and
    ``pca`` is the caliper PCA of that feature-set version. ``model`` is a catalogue name or
    ``auto``; ``params`` are hyperparameters of that model (not allowed with ``auto``).
    Intervals are calibrated on residuals of rows the predicting model did not train on:
    ``calibration="split"`` keeps ``calibration_fraction`` of the training split aside (the
    model never sees it); ``"cross"`` fits the model on the whole training split and takes the
    out-of-fold residuals of ``calibration_folds`` refits, one residual per training row (five
    times the residuals of a 20 % split, so per-structure coverage is far steadier on small
    data, and the model learns from every row); ``"auto"`` is cross up to
    :data:`CROSS_CALIBRATION_MAX_ROWS` training-split rows, split above (where residuals are
    plentiful and refits cost). ``cv`` folds, when given (always for ``auto``), are
    cross-validated on the fitting rows.

    The structure hierarchy (see :mod:`permeability.features.engineering`): a structure needs
    ``min_structure_samples`` fitting rows for its own intercept (fewer pool into ``OTHER``),
    and ``min_interaction_samples`` fitting rows plus a within-structure spread of at least
    ``min_interaction_spread`` × the overall spread of a variable, not set by one row, for its
    own slope on that variable (linear models only). Predicted log WVTR is clipped to the
    fitting range ± :data:`LOG_CLIP_MARGIN` in every prediction path.
    """
    started = time.perf_counter()
    # One OpenMP/BLAS thread: on 2 shared cores, HistGradientBoosting with a thread per core
    # ran up to 20x slower under load (busy-waiting threads), and the gain when idle is small.
    with threadpool_limits(limits=1):
        outcome = _train(
            frame,
            pca,
            model=model,
            params=params,
            test_size=test_size,
            cv=cv,
            random_state=random_state,
            calibration_fraction=calibration_fraction,
            interval_level=interval_level,
            hierarchy=_Hierarchy(
                min_structure_samples, min_interaction_samples, min_interaction_spread
            ),
            min_calibration=min_calibration,
            calibration=calibration,
            calibration_folds=calibration_folds,
            detection_limit=detection_limit,
            non_product=tuple(non_product),
        )
    return dataclasses.replace(outcome, seconds=time.perf_counter() - started)


def _train(
    frame: pd.DataFrame,
    pca: CaliperPCA,
    *,
    model: str,
    params: Mapping[str, Any] | None,
    test_size: float,
    cv: int | None,
    random_state: int,
    calibration_fraction: float,
    interval_level: float,
    hierarchy: _Hierarchy,
    min_calibration: int,
    calibration: str,
    calibration_folds: int,
    detection_limit: float | None,
    non_product: tuple[str, ...],
) -> TrainingOutcome:
    _check_arguments(test_size, cv, calibration_fraction, interval_level)
    _check_calibration(calibration, calibration_folds)
    if model != AUTO and model not in model_names():
        raise UnknownModelError(model, model_names())
    if model == AUTO and params:
        raise InvalidInputError("params cannot be given with model 'auto'; it tunes its candidates")
    requested_params = resolve_params(model, params) if model != AUTO else {}
    data = _checked_frame(product_rows(frame, non_product))
    probe = hierarchy.builder(pca, interactions=False, levels=False)
    probe.fit(data).transform_frame(data)  # refuses bad inputs before any fitting starts
    names = probe.canonical_structures(data)
    rng = np.random.default_rng(random_state)
    groups = row_groups(data)
    train_rows, test_rows = grouped_split(names, groups, test_size, rng)
    method = _calibration_method(
        calibration, len(train_rows), distinct_groups(groups[train_rows]), calibration_folds
    )
    if method == CROSS_CONFORMAL:
        fit_rows, calibration_rows = train_rows, train_rows
    else:
        fit_pos, calibration_pos = grouped_split(
            names[train_rows], groups[train_rows], calibration_fraction, rng
        )
        fit_rows, calibration_rows = train_rows[fit_pos], train_rows[calibration_pos]
    if min(len(fit_rows), len(calibration_rows), len(test_rows)) < 1:
        raise InvalidInputError(
            f"the split of {len(data)} rows left {len(fit_rows)} fitting, "
            f"{len(calibration_rows)} calibration and {len(test_rows)} test rows; "
            "each needs at least one: adjust test_size or add rows"
        )
    fit_frame = data.iloc[fit_rows]

    cv_scores: dict[str, float] | None = None
    if model == AUTO:
        folds = cv or (AUTO_FOLDS_SMALL if len(fit_frame) <= AUTO_LARGE_ROWS else AUTO_FOLDS_LARGE)
        chosen_name, chosen_params, cv_scores = _select_auto(
            fit_frame,
            pca,
            folds=folds,
            random_state=random_state,
            hierarchy=hierarchy,
        )
        resolved = resolve_params(chosen_name, chosen_params)
    else:
        chosen_name, resolved = model, requested_params
        if cv is not None:
            cv_scores = _cross_validate(
                model,
                resolved,
                fit_frame,
                pca,
                folds=cv,
                random_state=random_state,
                hierarchy=hierarchy,
            )

    fitted = _fit(
        chosen_name, resolved, fit_frame, pca, random_state=random_state, hierarchy=hierarchy
    )
    estimator, builder, bounds = fitted
    if method == CROSS_CONFORMAL:
        residuals = _out_of_fold_residuals(
            chosen_name,
            resolved,
            fit_frame,
            pca,
            folds=calibration_folds,
            random_state=random_state,
            hierarchy=hierarchy,
        )
    else:
        calibration_frame = data.iloc[calibration_rows]
        residuals = np.log(_target(calibration_frame)) - np.log(_predict(fitted, calibration_frame))
    conformal = ConformalCalibration(
        residuals,
        names[calibration_rows],
        min_calibration=min_calibration,
        method=method,
        tests=groups[calibration_rows],
    )
    trained = PermeabilityModel(
        chosen_name,
        estimator,
        builder,
        conformal,
        params=resolved,
        n_train=len(fit_rows),
        log_bounds=bounds,
        interval_level=interval_level,
        detection_limit=detection_limit,
        non_product=non_product,
    )
    test_frame = data.iloc[test_rows]
    scored = _score(trained, test_frame, names[test_rows], interval_level)
    floor = replicate_noise_floor(data)
    metrics = dict(scored.metrics)
    if floor is not None and floor.noise_floor_mae > 0:
        metrics["noise_floor_mae"] = floor.noise_floor_mae
        metrics["mae_over_noise_floor"] = metrics["mae"] / floor.noise_floor_mae
    return TrainingOutcome(
        model=trained,
        model_name=chosen_name,
        params=resolved,
        metrics=metrics,
        per_structure=scored.per_structure,
        cv_scores=cv_scores,
        test_predictions=scored.predictions,
        n_train=len(fit_rows),
        n_calibration=len(calibration_rows),
        n_test=len(test_rows),
        seconds=0.0,
        split_grouping=split_grouping(data),
        n_test_groups=distinct_groups(groups[test_rows]),
        noise_floor=floor,
    )


@dataclass(frozen=True)
class _Scores:
    metrics: dict[str, float]
    per_structure: pd.DataFrame
    predictions: pd.DataFrame


def _score(
    model: PermeabilityModel,
    test: pd.DataFrame,
    names: NDArray[np.object_],
    level: float,
) -> _Scores:
    measured = _target(test)
    predicted = model.predict_frame(test, strict=False)
    lower, upper = model.calibration.intervals(predicted, names, level)
    metrics = m.regression_metrics(measured, predicted)
    metrics["coverage"] = m.coverage(measured, lower, upper)
    metrics["mean_interval_width"] = m.mean_interval_width(lower, upper)
    table = m.per_structure(measured, predicted, names, lower, upper)
    table["calibration_n"] = [model.calibration.counts.get(n, 0) for n in table[ESTRUCTURA]]
    table["interval_source"] = [model.calibration.source(n) for n in table[ESTRUCTURA]]
    predictions = pd.DataFrame(
        {
            MUESTRA: test[MUESTRA].to_numpy(),
            ESTRUCTURA: names,
            "measured": measured,
            "predicted": predicted,
            "lower": lower,
            "upper": upper,
        }
    )
    return _Scores(metrics, table, predictions)
