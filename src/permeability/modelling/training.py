"""The training procedure: split, fit, calibrate and score one model (:func:`train_model`).

Training splits the rows into fit / calibration / test parts, stratified by structure. The
estimator is fitted on the fit part only; the calibration part gives the conformal residuals
and is never used to refit (that would void the interval guarantee); the test part gives the
held-out metrics. ``auto`` and ``cv`` cross-validate on the fit part only
(:mod:`permeability.modelling.selection`), so calibration residuals stay untouched by model
selection. The product is a :class:`~permeability.modelling.predictor.PermeabilityModel` and its
held-out scores (:class:`TrainingOutcome`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from permeability.errors import EmptyFeatureStoreError, InvalidInputError
from permeability.features.hierarchy import (
    DEFAULT_MIN_INTERACTION_SAMPLES,
    DEFAULT_MIN_INTERACTION_SPREAD,
    DEFAULT_MIN_STRUCTURE_SAMPLES,
)
from permeability.features.pca import CaliperPCA
from permeability.modelling import metrics as m
from permeability.modelling.catalogue import AUTO, UnknownModelError, model_names, resolve_params
from permeability.modelling.conformal import (
    CROSS_CONFORMAL,
    DEFAULT_MIN_CALIBRATION,
    SPLIT_CONFORMAL,
    ConformalCalibration,
)
from permeability.modelling.fitting import (
    Hierarchy,
    fit_candidate,
    measured_wvtr,
    out_of_fold_residuals,
    predict_fitted,
)
from permeability.modelling.noise_floor import NoiseFloor, replicate_noise_floor
from permeability.modelling.predictor import PermeabilityModel
from permeability.modelling.selection import auto_folds, cross_validate, select_auto
from permeability.modelling.splits import distinct_groups, grouped_split, row_groups, split_grouping
from permeability.record.identity import DEFAULT_NON_PRODUCT, product_rows
from permeability.record.schema import (
    ESTRUCTURA,
    INPUT_COLUMNS,
    MUESTRA,
    PERMEABILIDAD,
    PERMEABILITY_RANGE,
)

__all__ = ["MIN_TRAINING_ROWS", "TrainingOutcome", "train_model"]

#: Fewer labelled rows than this cannot give a fit, a calibration and a test part.
MIN_TRAINING_ROWS: Final = 30
#: ``calibration="auto"`` calibrates by cross-conformal up to this many training-split rows.
CROSS_CALIBRATION_MAX_ROWS: Final = 20_000
CALIBRATION_METHODS: Final = ("auto", "split", "cross")


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

    The structure hierarchy (see :mod:`permeability.features.hierarchy`): a structure needs
    ``min_structure_samples`` fitting rows for its own intercept (fewer pool into ``OTHER``),
    and ``min_interaction_samples`` fitting rows plus a within-structure spread of at least
    ``min_interaction_spread`` × the overall spread of a variable, not set by one row, for its
    own slope on that variable (linear models only). Predicted log WVTR is clipped to the
    fitting range ± :data:`~permeability.modelling.bounds.LOG_CLIP_MARGIN` in every prediction
    path.
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
            hierarchy=Hierarchy(
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
    hierarchy: Hierarchy,
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
        folds = cv or auto_folds(len(fit_frame))
        chosen_name, chosen_params, cv_scores = select_auto(
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
            cv_scores = cross_validate(
                model,
                resolved,
                fit_frame,
                pca,
                folds=cv,
                random_state=random_state,
                hierarchy=hierarchy,
            )

    fitted = fit_candidate(
        chosen_name, resolved, fit_frame, pca, random_state=random_state, hierarchy=hierarchy
    )
    estimator, builder, bounds = fitted
    if method == CROSS_CONFORMAL:
        residuals = out_of_fold_residuals(
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
        residuals = np.log(measured_wvtr(calibration_frame)) - np.log(
            predict_fitted(fitted, calibration_frame)
        )
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


# -- scoring --------------------------------------------------------------------------------


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
    measured = measured_wvtr(test)
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
