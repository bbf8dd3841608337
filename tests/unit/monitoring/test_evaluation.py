"""What scored rows show (errors, coverage, decision quality) and one version's scores.

Which rows are new: test_windows.py; scoring labelled rows: test_scored_rows.py; served
predictions: test_matching.py; the champion/challenger rule: test_comparison.py.
"""

from __future__ import annotations

import pytest

from permeability.errors import InvalidInputError
from permeability.modelling.predictor import PermeabilityModel
from permeability.monitoring.evaluation import evaluate_scored, score_version
from permeability.monitoring.reports import DriftThresholds
from permeability.record.identity import product_rows
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec
from tests.unit.monitoring.evaluation_support import (
    POLICY,
    bopp_limit,
    prediction_log,
    scored_table,
    trained_model,
)


@pytest.fixture(scope="module")
def model() -> PermeabilityModel:
    return trained_model()


def test_evaluate_scored_gives_errors_coverage_and_decision_quality() -> None:
    scored = scored_table(
        structure=["BOPP", "BOPP", "PET", "PET"],
        measured=[4.0, 8.0, 20.0, 10.0],
        predicted=[5.0, 5.0, 20.0, 12.0],
        lower=[3.0, 3.0, 15.0, 11.0],
        upper=[7.0, 7.0, 25.0, 15.0],
        limit=[6.0, 6.0, 15.0, 15.0],
        decision=["approve", "approve", "reject", "reject"],
    )
    result = evaluate_scored(scored)
    assert result.n == 4
    assert result.metrics["mae"] == pytest.approx((1 + 3 + 0 + 2) / 4)
    assert result.metrics["coverage"] == pytest.approx(0.5)
    assert result.decisions["approve"] == 2
    assert result.decisions["reject"] == 2
    assert result.decisions["wrong_approvals"] == 1  # 8 > 6 approved
    assert result.decisions["wrong_rejections"] == 1  # 10 <= 15 rejected
    table = result.structure_table().set_index("structure")
    assert table.loc["BOPP", "coverage"] == pytest.approx(0.5)
    assert table.loc["PET", "coverage"] == pytest.approx(0.5)
    assert table.loc["BOPP", "wrong_approvals"] == 1
    assert table.loc["PET", "mae"] == pytest.approx(1.0)
    assert result.first == "2025-01-01T00:00:00"
    assert result.last == "2025-01-04T00:00:00"


def test_rows_without_a_decision_are_not_judged_against_their_limit() -> None:
    scored = scored_table(
        measured=[9.0, 9.0],
        predicted=[5.0, 5.0],
        lower=[1.0, 1.0],
        upper=[10.0, 10.0],
        limit=[6.0, 6.0],
        decision=["approve", None],
    )
    decisions = evaluate_scored(scored).decisions
    assert decisions["approve"] == 1
    assert decisions["no_limit"] == 1
    assert decisions["wrong_approvals"] == 1


def test_unusable_rows_are_left_out_and_nothing_usable_is_an_error() -> None:
    scored = scored_table(measured=[5.0, -1.0], predicted=[5.0, 5.0], lower=[4, 4], upper=[6, 6])
    assert evaluate_scored(scored).n == 1
    with pytest.raises(InvalidInputError, match="positive"):
        evaluate_scored(scored.iloc[1:])
    with pytest.raises(InvalidInputError, match="lack column"):
        evaluate_scored(scored.drop(columns=["upper"]))


def test_non_product_rows_are_left_out_of_the_evaluation(model: PermeabilityModel) -> None:
    recent = generate_lab_data(200, 29, start_id=2001, mess=MessSpec.none())
    recent["is_product"] = [i % 4 != 0 for i in range(len(recent))]
    assert len(product_rows(recent)) == 150
    assert len(product_rows(recent.drop(columns="is_product"))) == 200
    scores = score_version(
        model,
        "0.1",
        training=None,
        window=recent,
        served_window=recent,
        predictions=prediction_log([]),
        specs=bopp_limit(),
        policy=POLICY,
        thresholds=DriftThresholds(),
    )
    assert len(scores.recent_scored) == 150
