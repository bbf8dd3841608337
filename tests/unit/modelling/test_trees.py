"""Compiled tree ensembles give exactly the estimator's ``predict``, row by row.

Rows come from three places: random rows over and beyond the training range, rows sitting
exactly on (and one float step either side of) the trees' own thresholds (where a float32
casting mistake shows), and rows with missing or infinite values. Both walks (``levels`` and
``table``) are checked on every ensemble.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor
from threadpoolctl import threadpool_limits

from permeability.errors import InvalidInputError
from permeability.features.engineering import FeatureBuilder
from permeability.features.pca import fit_caliper_pca
from permeability.modelling.catalogue import build_estimator
from permeability.modelling.compiled_trees import CompiledEnsemble, Walk
from permeability.modelling.trees import compile_ensemble
from permeability.record.schema import CALIBRES, PERMEABILIDAD
from permeability.synthetic.generator import generate_lab_data

FloatArray = NDArray[np.float64]
WALKS: tuple[Walk, ...] = ("levels", "table")


@cache
def _lab_data() -> tuple[FloatArray, FloatArray]:
    """The feature matrix and log WVTR the catalogue's tree models are trained on."""
    frame = generate_lab_data(1500, 5, mess=None)
    pca = fit_caliper_pca(frame[list(CALIBRES)].to_numpy(), 0.99)
    matrix = FeatureBuilder(pca, interactions=False).fit(frame).transform_frame(frame)
    return matrix, np.log(frame[PERMEABILIDAD].to_numpy(dtype=np.float64))


@cache
def _random_data(missing: bool = False) -> tuple[FloatArray, FloatArray]:
    """Six noisy features with interactions; ``missing`` blanks 10 % of the entries."""
    rng = np.random.default_rng(8)
    matrix = rng.normal(size=(800, 6)) * [1.0, 3.0, 0.01, 100.0, 1.0, 1.0]
    target = 2.0 + np.sin(matrix[:, 0]) + matrix[:, 1] * matrix[:, 2] + rng.normal(0, 0.1, 800)
    if missing:
        matrix = np.where(rng.random(matrix.shape) < 0.1, np.nan, matrix)
    return matrix, target


Case = tuple[Callable[[], Any], Callable[[], tuple[FloatArray, FloatArray]]]

CASES: dict[str, Case] = {
    "random forest, deep trees": (
        lambda: RandomForestRegressor(n_estimators=25, min_samples_leaf=1, random_state=0),
        _lab_data,
    ),
    "random forest, catalogue": (lambda: build_estimator("RandomForestRegressor"), _lab_data),
    "extra trees": (lambda: ExtraTreesRegressor(n_estimators=20, random_state=0), _random_data),
    "decision tree": (lambda: DecisionTreeRegressor(random_state=0), _random_data),
    "gradient boosting, catalogue": (
        lambda: build_estimator("GradientBoostingRegressor"),
        _lab_data,
    ),
    "gradient boosting, rate 0.37, huber": (
        lambda: GradientBoostingRegressor(
            learning_rate=0.37, loss="huber", n_estimators=60, max_depth=6, random_state=0
        ),
        _random_data,
    ),
    "gradient boosting, rate 0.05, quantile": (
        lambda: GradientBoostingRegressor(
            learning_rate=0.05, loss="quantile", alpha=0.7, n_estimators=80, random_state=0
        ),
        _lab_data,
    ),
    "gradient boosting, zero init, absolute error": (
        lambda: GradientBoostingRegressor(
            init="zero", loss="absolute_error", n_estimators=40, random_state=0
        ),
        _random_data,
    ),
    "hist gradient boosting, catalogue": (
        lambda: build_estimator("HistGradientBoostingRegressor"),
        _lab_data,
    ),
    "hist gradient boosting, early stopping, rate 0.3": (
        lambda: HistGradientBoostingRegressor(
            max_iter=500, early_stopping=True, learning_rate=0.3, random_state=0
        ),
        _lab_data,
    ),
    "hist gradient boosting, absolute error, depth 3": (
        lambda: HistGradientBoostingRegressor(
            loss="absolute_error", max_depth=3, max_iter=80, random_state=0
        ),
        _random_data,
    ),
    "hist gradient boosting, trained with NaN": (
        lambda: HistGradientBoostingRegressor(max_iter=100, random_state=0),
        lambda: _random_data(missing=True),
    ),
    "random forest, trained with NaN": (
        lambda: RandomForestRegressor(n_estimators=15, random_state=0),
        lambda: _random_data(missing=True),
    ),
}
ACCEPTS_MISSING = [name for name in CASES if not name.startswith("gradient boosting")]


@cache
def _fitted(name: str) -> Any:
    make, data = CASES[name]
    matrix, target = data()
    with threadpool_limits(limits=1):  # OpenMP threads busy-wait on 2 shared cores
        return make().fit(matrix, target)


def _expected(name: str, rows: FloatArray) -> FloatArray:
    with threadpool_limits(limits=1):
        return np.asarray(_fitted(name).predict(rows), dtype=np.float64)


def _compiled(name: str, walk: Walk) -> CompiledEnsemble:
    compiled = compile_ensemble(_fitted(name), walk=walk)
    assert compiled is not None
    assert compiled.walk == walk
    return compiled


def _predict_rows(compiled: CompiledEnsemble, rows: FloatArray) -> FloatArray:
    return np.array([compiled.predict_row(row) for row in rows])


def _random_rows(name: str, n: int, seed: int) -> FloatArray:
    """Half training rows (where the thresholds are), half uniform over 2× the training box."""
    matrix = CASES[name][1]()[0]
    rng = np.random.default_rng(seed)
    low, high = np.nanmin(matrix, axis=0), np.nanmax(matrix, axis=0)
    span = high - low
    wide = rng.uniform(low - span / 2, high + span / 2, size=(n - n // 2, matrix.shape[1]))
    seen = np.nan_to_num(matrix[rng.integers(0, len(matrix), n // 2)], nan=0.0)
    return np.vstack([seen, wide])


def _split_points(estimator: Any) -> list[tuple[int, float]]:
    """(feature, threshold) of every split, read from scikit-learn's fitted trees."""
    if isinstance(estimator, HistGradientBoostingRegressor):
        nodes = np.concatenate([p[0].nodes for p in estimator._predictors])
        splits = nodes[nodes["is_leaf"] == 0]
        return list(
            zip(splits["feature_idx"].tolist(), splits["num_threshold"].tolist(), strict=True)
        )
    if isinstance(estimator, GradientBoostingRegressor):
        trees = [tree.tree_ for tree in estimator.estimators_[:, 0]]
    elif isinstance(estimator, DecisionTreeRegressor):
        trees = [estimator.tree_]
    else:
        trees = [tree.tree_ for tree in estimator.estimators_]
    points: list[tuple[int, float]] = []
    for tree in trees:
        inner = tree.children_left >= 0
        points += zip(tree.feature[inner].tolist(), tree.threshold[inner].tolist(), strict=True)
    return points


def _rows_on_thresholds(name: str, count: int, seed: int) -> FloatArray:
    """Training-like rows with one feature exactly on a split threshold, one float64 step and
    one float32 step either side of it. (Trees trained with NaN also split "missing or not"
    at threshold inf; no finite value can sit on those.)"""
    points = [(f, t) for f, t in _split_points(_fitted(name)) if np.isfinite(t)]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(points), size=min(count, len(points)), replace=False)
    base = _random_rows(name, len(chosen), seed)
    rows = []
    for row, index in zip(base, chosen, strict=True):
        feature, threshold = points[index]
        single = np.float32(threshold)
        for value in (
            threshold,
            np.nextafter(threshold, -np.inf),
            np.nextafter(threshold, np.inf),
            float(single),
            float(np.nextafter(single, np.float32(-np.inf))),
            float(np.nextafter(single, np.float32(np.inf))),
        ):
            on_split = row.copy()
            on_split[feature] = value
            rows.append(on_split)
    return np.array(rows)


@pytest.mark.parametrize("walk", WALKS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_random_rows_give_the_estimators_predictions(name: str, walk: Walk) -> None:
    rows = _random_rows(name, 2000, seed=len(name))
    expected = _expected(name, rows)
    np.testing.assert_allclose(
        _predict_rows(_compiled(name, walk), rows), expected, rtol=1e-9, atol=0.0
    )


@pytest.mark.parametrize("walk", WALKS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_rows_on_split_thresholds_go_the_estimators_way(name: str, walk: Walk) -> None:
    rows = _rows_on_thresholds(name, 400, seed=1)
    expected = _expected(name, rows)
    np.testing.assert_allclose(
        _predict_rows(_compiled(name, walk), rows), expected, rtol=1e-9, atol=0.0
    )


@pytest.mark.parametrize("walk", WALKS)
@pytest.mark.parametrize("name", ACCEPTS_MISSING)
def test_missing_values_go_where_the_estimator_sends_them(name: str, walk: Walk) -> None:
    rows = _random_rows(name, 600, seed=4)
    rows[np.random.default_rng(5).random(rows.shape) < 0.2] = np.nan
    expected = _expected(name, rows)
    np.testing.assert_allclose(
        _predict_rows(_compiled(name, walk), rows), expected, rtol=1e-9, atol=0.0
    )


def test_gradient_boosting_refuses_missing_values_like_the_estimator() -> None:
    name = "gradient boosting, catalogue"
    row = _random_rows(name, 1, seed=0)[0]
    row[2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _fitted(name).predict(row.reshape(1, -1))
    with pytest.raises(InvalidInputError, match="feature 2 of the row is missing"):
        _compiled(name, "table").predict_row(row)


@pytest.mark.parametrize("walk", WALKS)
def test_hist_gradient_boosting_compares_infinite_values(walk: Walk) -> None:
    name = "hist gradient boosting, catalogue"
    rows = _random_rows(name, 200, seed=6)
    rows[::2, 0] = np.inf
    rows[1::2, 1] = -np.inf
    expected = _expected(name, rows)
    np.testing.assert_allclose(
        _predict_rows(_compiled(name, walk), rows), expected, rtol=1e-9, atol=0.0
    )


@pytest.mark.parametrize("value", [np.inf, -np.inf, 1e39])
def test_forests_refuse_values_float32_cannot_hold_like_the_estimator(value: float) -> None:
    name = "random forest, catalogue"
    row = _random_rows(name, 1, seed=0)[0]
    row[1] = value
    with pytest.raises(ValueError, match="infinity"), np.errstate(over="ignore"):
        _fitted(name).predict(row.reshape(1, -1))
    with pytest.raises(
        InvalidInputError, match=re.escape(f"feature 1 of the row is {value!r}: infinite")
    ):
        _compiled(name, "levels").predict_row(row)


def test_values_that_round_to_the_largest_float32_are_compared() -> None:
    name = "decision tree"
    row = _random_rows(name, 1, seed=0)[0]
    row[3] = float(np.finfo(np.float32).max) * (1 + 1e-9)
    expected = _expected(name, row.reshape(1, -1))[0]
    assert _compiled(name, "table").predict_row(row) == expected


def test_a_row_of_the_wrong_length_is_refused() -> None:
    compiled = _compiled("decision tree", "levels")
    with pytest.raises(InvalidInputError, match=r"expects a row of 6 features, got .*\(7,\)"):
        compiled.predict_row(np.zeros(7))


def test_an_unfitted_ensemble_cannot_be_compiled() -> None:
    with pytest.raises(NotFittedError):
        compile_ensemble(HistGradientBoostingRegressor())


class _ShiftedForest(RandomForestRegressor):
    """A subclass may predict differently from its parent: it is not compiled."""

    def predict(self, X: Any) -> Any:
        return super().predict(X) + 1.0


def _not_compiled() -> dict[str, Any]:
    matrix, target = _random_data()
    positive = np.exp(target)
    categories = np.column_stack([np.arange(len(matrix)) % 4, matrix[:, 1:]])
    return {
        "linear regression": LinearRegression().fit(matrix, target),
        "catalogue SVR pipeline": build_estimator("SVR").fit(matrix, target),
        "catalogue k-NN pipeline": build_estimator("KNeighborsRegressor").fit(matrix, target),
        "scaled forest pipeline": Pipeline(
            [("scale", StandardScaler()), ("model", RandomForestRegressor(n_estimators=3))]
        ).fit(matrix, target),
        "hist gradient boosting, poisson (log link)": HistGradientBoostingRegressor(
            loss="poisson", max_iter=5
        ).fit(matrix, positive),
        "gradient boosting, linear init": GradientBoostingRegressor(
            init=LinearRegression(), n_estimators=5
        ).fit(matrix, target),
        "hist gradient boosting, categorical split": HistGradientBoostingRegressor(
            categorical_features=[0], max_iter=5
        ).fit(categories, target),
        "forest subclass": _ShiftedForest(n_estimators=3).fit(matrix, target),
        "two-output forest": RandomForestRegressor(n_estimators=3).fit(
            matrix, np.column_stack([target, target])
        ),
    }


def test_estimators_whose_prediction_is_not_a_plain_tree_sum_are_not_compiled() -> None:
    compiled = {name: compile_ensemble(estimator) for name, estimator in _not_compiled().items()}
    assert compiled == dict.fromkeys(compiled)
