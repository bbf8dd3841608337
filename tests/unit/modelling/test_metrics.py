from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from permeability.errors import InvalidInputError
from permeability.modelling import metrics as m

MEASURED = np.array([1.0, 2.0, 4.0, 8.0])
PREDICTED = np.array([1.5, 2.0, 3.0, 10.0])


def test_regression_metrics_match_hand_computed_values() -> None:
    scores = m.regression_metrics(MEASURED, PREDICTED)
    assert scores["mae"] == pytest.approx((0.5 + 0 + 1 + 2) / 4)
    assert scores["mse"] == pytest.approx((0.25 + 0 + 1 + 4) / 4)
    assert scores["rmse"] == pytest.approx(math.sqrt(5.25 / 4))
    assert scores["mape"] == pytest.approx((50 + 0 + 25 + 25) / 4)
    total = float(np.sum((MEASURED - MEASURED.mean()) ** 2))
    assert scores["r2"] == pytest.approx(1 - 5.25 / total)
    log_total = float(np.sum((np.log(MEASURED) - np.log(MEASURED).mean()) ** 2))
    log_error = float(np.sum((np.log(MEASURED) - np.log(PREDICTED)) ** 2))
    assert scores["r2_log"] == pytest.approx(1 - log_error / log_total)


def test_perfect_predictions_score_perfectly() -> None:
    scores = m.regression_metrics(MEASURED, MEASURED)
    assert scores == {"r2": 1.0, "mae": 0.0, "mse": 0.0, "rmse": 0.0, "mape": 0.0, "r2_log": 1.0}


def test_r2_of_a_constant_target_is_undefined() -> None:
    assert math.isnan(m.r2([2.0, 2.0], [1.0, 3.0]))
    assert math.isnan(m.r2([2.0, 2.0], [2.0, 2.0]))  # scikit-learn would say 1.0
    assert math.isnan(m.r2([0.1, 0.1, 0.1], [0.2, 0.2, 0.2]))  # mean 0.1 + 2e-17, not 0.1
    assert math.isnan(m.r2([5.0], [4.0]))


def test_nan_and_inf_propagate_instead_of_raising() -> None:
    """scikit-learn refuses non-finite input; the metrics give nan or inf, as numpy does."""
    assert math.isnan(m.mae([1.0, np.nan], [1.0, 1.0]))
    assert math.isnan(m.mape([1.0, np.nan], [1.0, 1.0]))
    assert m.rmse([1.0, 2.0], [1.0, np.inf]) == np.inf
    assert m.r2([1.0, 2.0], [1.0, np.inf]) == -np.inf
    scores = m.regression_metrics(MEASURED, np.array([1.0, np.nan, 3.0, 10.0]))
    assert set(scores) == {"r2", "mae", "mse", "rmse", "mape"}  # no r2_log of a nan
    assert all(math.isnan(v) for v in scores.values())


def test_mape_needs_positive_measurements() -> None:
    with pytest.raises(InvalidInputError, match="positive"):
        m.mape([0.0, 1.0], [1.0, 1.0])


@pytest.mark.parametrize(
    ("measured", "predicted"),
    [([1.0, 2.0], [1.0]), ([], []), ([[1.0, 2.0]], [[1.0, 2.0]])],
)
@pytest.mark.parametrize("metric", [m.mae, m.rmse, m.mape, m.r2, m.regression_metrics])
def test_mismatched_or_empty_inputs_are_refused(
    measured: list[float], predicted: list[float], metric: Callable[..., object]
) -> None:
    with pytest.raises(InvalidInputError):
        metric(measured, predicted)


def test_coverage_and_width() -> None:
    lower = np.array([0.5, 2.5, 3.0, 7.0])
    upper = np.array([1.5, 3.0, 5.0, 8.0])
    assert m.coverage(MEASURED, lower, upper) == pytest.approx(3 / 4)  # bounds are inclusive
    assert m.mean_interval_width(lower, upper) == pytest.approx((1 + 0.5 + 2 + 1) / 4)


def test_per_structure_table() -> None:
    table = m.per_structure(
        MEASURED,
        PREDICTED,
        ["B", "A", "B", "A"],
        lower=np.array([0.0, 0.0, 5.0, 0.0]),
        upper=np.array([9.0, 9.0, 9.0, 9.0]),
    )
    assert table["Estructura"].tolist() == ["A", "B"]
    assert table["n"].tolist() == [2, 2]
    assert table["mae"].tolist() == pytest.approx([(0 + 2) / 2, (0.5 + 1) / 2])
    assert table["mape"].tolist() == pytest.approx([(0 + 25) / 2, (50 + 25) / 2])
    assert table["coverage"].tolist() == pytest.approx([1.0, 0.5])
    assert "mean_width" in table.columns
