"""One candidate fitted on given rows, and its K-fold refits.

A fit is the candidate's :class:`~permeability.features.engineering.FeatureBuilder` (fitted on
the same rows, with the structure hierarchy of :class:`Hierarchy`), its estimator learning log
WVTR, and the clip range of its predictions (:mod:`permeability.modelling.bounds`). The K-fold
refits give every row a prediction from a fit that did not see it: cross-validation
(:mod:`permeability.modelling.selection`) scores them, cross-conformal calibration
(:func:`permeability.modelling.training.train_model`) takes their residuals. The folds keep each
test's replicates together (:mod:`permeability.modelling.splits`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from permeability.errors import InvalidInputError
from permeability.features.engineering import FeatureBuilder
from permeability.features.pca import CaliperPCA
from permeability.modelling.bounds import category_bounds, log_bounds
from permeability.modelling.catalogue import (
    Regressor,
    build_estimator,
    max_rows,
    uses_interactions,
    uses_levels,
)
from permeability.modelling.splits import grouped_folds, row_groups
from permeability.record.schema import PERMEABILIDAD

FloatArray = NDArray[np.float64]
#: A fit: the estimator, its feature builder and its log clip range (:func:`fit_candidate`).
Fitted = tuple[Regressor, FeatureBuilder, tuple[float, float]]


@dataclass(frozen=True)
class Hierarchy:
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


def measured_wvtr(frame: pd.DataFrame) -> FloatArray:
    """The measured WVTR of every row (the target, on the original scale)."""
    return frame[PERMEABILIDAD].to_numpy(dtype=np.float64)


def fit_candidate(
    name: str,
    params: Mapping[str, Any] | None,
    frame: pd.DataFrame,
    pca: CaliperPCA,
    *,
    random_state: int,
    hierarchy: Hierarchy,
) -> Fitted:
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
    log_target = np.log(measured_wvtr(frame))
    try:
        estimator.fit(matrix, log_target)
        estimator.predict(matrix[:1])  # some parameters fail only here (k-NN's n_neighbors)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            f"{name} could not be fitted with params {params or {}}: {exc}"
        ) from exc
    return estimator, builder, log_bounds(log_target)


def predict_fitted(fitted: Fitted, frame: pd.DataFrame) -> FloatArray:
    """Median WVTR from a :func:`fit_candidate` result, clipped as
    :class:`~permeability.modelling.predictor.PermeabilityModel` clips."""
    estimator, builder, bounds = fitted
    matrix = builder.transform_frame(frame, strict=False)
    table = category_bounds(builder, bounds)[builder.categories_of_frame(frame, strict=False)]
    raw = np.asarray(estimator.predict(matrix), dtype=np.float64)
    return np.exp(np.clip(raw, table[:, 0], table[:, 1]))


def out_of_fold(
    name: str,
    params: Mapping[str, Any] | None,
    frame: pd.DataFrame,
    pca: CaliperPCA,
    *,
    folds: int,
    random_state: int,
    hierarchy: Hierarchy,
) -> Iterator[tuple[NDArray[np.intp], FloatArray]]:
    """(held-out positions, their predictions) per K-fold refit; features refitted per fold.

    The folds keep each test's replicates together (:mod:`permeability.modelling.splits`).
    """
    for train_rows, held_rows in grouped_folds(row_groups(frame), folds, random_state):
        fitted = fit_candidate(
            name,
            params,
            frame.iloc[train_rows],
            pca,
            random_state=random_state,
            hierarchy=hierarchy,
        )
        yield held_rows, predict_fitted(fitted, frame.iloc[held_rows])


def out_of_fold_residuals(
    name: str,
    params: Mapping[str, Any] | None,
    frame: pd.DataFrame,
    pca: CaliperPCA,
    *,
    folds: int,
    random_state: int,
    hierarchy: Hierarchy,
) -> FloatArray:
    """log y − log ŷ of every row of ``frame``, each ŷ from a refit that did not see the row.

    The refits use (folds − 1)/folds of the rows, the served model all of them, so these
    residuals are if anything a little larger than the served model's: the intervals err on
    the wide side. Features (structure levels, slopes) are refitted inside every fold.
    """
    residuals = np.empty(len(frame), dtype=np.float64)
    for held_rows, predicted in out_of_fold(
        name, params, frame, pca, folds=folds, random_state=random_state, hierarchy=hierarchy
    ):
        residuals[held_rows] = np.log(measured_wvtr(frame.iloc[held_rows])) - np.log(predicted)
    return residuals
