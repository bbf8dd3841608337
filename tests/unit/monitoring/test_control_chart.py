"""The control chart of reference films: which rows, one point per test, limits, rules, events."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.monitoring.control_chart import (
    control_charts,
    points_table,
    reference_rows,
)
from permeability.monitoring.control_chart_events import EVENT_KIND, chart_events
from permeability.monitoring.reports import ChartSeries
from permeability.record.schema import FECHA, PERMEABILIDAD, REFERENCIA
from tests.unit.monitoring.control_chart_support import (
    STEADY,
    params,
    reference_tests,
)

LINEAR = {"scale": "linear", "baseline_points": 8, "min_points": 8}


def only(frame: pd.DataFrame, **changes: object) -> ChartSeries:
    charts = control_charts(frame, params(**changes))
    assert len(charts) == 1
    return charts[0]


def at_z(chart: ChartSeries, *z: float) -> list[float]:
    """Results (g/m²·day) ``z`` σ from the chart's centre, in its log10 scale."""
    assert chart.center is not None
    assert chart.sigma is not None
    return [10.0 ** (chart.center + k * chart.sigma) for k in z]


def steady_chart() -> ChartSeries:
    chart = only(reference_tests(STEADY), baseline_points=10)
    assert chart.status == "in_control"
    assert not any(p.violations for p in chart.points)
    return chart


# -- which rows, which points -------------------------------------------------------------------


def test_reference_rows_are_the_configured_names_and_patterns_only() -> None:
    frame = pd.concat(
        [
            reference_tests([2.4], structure="NIST-ROJA"),
            reference_tests([0.5], structure="CALIBRACION", first_record=10),
            reference_tests([3.0], structure="BOPP-MET", first_record=20, product=True),
            reference_tests([1.0], structure="EN-ESTUDIO", first_record=30),
        ],
        ignore_index=True,
    )
    assert reference_rows(frame, params()).Estructura.tolist() == ["NIST-ROJA", "CALIBRACION"]
    assert reference_rows(frame, params(references=["NIST-*"])).Estructura.tolist() == ["NIST-ROJA"]


def test_one_point_per_test_is_the_mean_of_its_replicates_in_the_chart_scale() -> None:
    frame = reference_tests([(1.0, 4.0), 2.0] * 4)

    log_chart = only(frame)
    linear_chart = only(frame, scale="linear")

    assert len(log_chart.points) == 8
    first = log_chart.points[0]
    assert (first.replicates, first.record) == (2, "1")
    assert first.value == pytest.approx(math.log10(2.0))
    assert first.measured == pytest.approx(2.0)  # the geometric mean
    assert linear_chart.points[0].measured == pytest.approx(2.5)


def test_points_are_in_test_date_order_then_record_order_and_undated_tests_last() -> None:
    frame = reference_tests([2.40, 2.41, 2.42, 2.43])
    frame.loc[0, FECHA] = pd.NaT
    frame[FECHA] = frame[FECHA].where(frame.index != 3, frame[FECHA].iloc[1])  # record 2's day
    shuffled = frame.sample(frac=1.0, random_state=3)

    chart = only(shuffled)

    assert [p.record for p in chart.points] == ["2", "4", "3", "1"]
    assert chart.points[-1].when == ""


def test_a_reference_name_splits_into_series_by_referencia_and_blank_is_one_series() -> None:
    low = reference_tests(np.resize(np.array([0.050, 0.052, 0.049]), 8).tolist(), referencia="C1")
    high = reference_tests(
        np.resize(np.array([2.0, 2.1, 1.9]), 8).tolist(), referencia="C2", first_record=100
    )
    blank = reference_tests([0.5] * 3, referencia=None, first_record=200)
    for part in (low, high, blank):
        part["Estructura"] = "CALIBRACION"

    charts = control_charts(pd.concat([low, high, blank], ignore_index=True), params())

    assert [(c.series, len(c.points)) for c in charts] == [("", 3), ("C1", 8), ("C2", 8)]
    assert charts[0].title == "CALIBRACION"
    assert charts[1].title == "CALIBRACION · C1"
    centres = [10.0 ** float(c.center or 0.0) for c in charts[1:]]
    assert centres == [pytest.approx(0.05, rel=0.03), pytest.approx(2.0, rel=0.03)]


# -- limits ---------------------------------------------------------------------------------


def test_sigma_is_the_mean_moving_range_over_d2_and_limits_are_three_sigma() -> None:
    values = [10.0, 12.0, 11.0, 13.0, 12.0, 10.0, 11.0, 12.0]
    chart = only(reference_tests(values), **LINEAR)

    mean_moving_range = (2 + 1 + 2 + 1 + 2 + 1 + 1) / 7
    assert chart.center is not None
    assert chart.sigma is not None
    assert chart.sigma == pytest.approx(mean_moving_range / 1.128, rel=1e-3)
    assert chart.center == pytest.approx(sum(values) / 8)
    assert chart.lower_limit == pytest.approx(chart.center - 3 * chart.sigma)
    assert chart.upper_limit == pytest.approx(chart.center + 3 * chart.sigma)
    assert chart.baseline_points == 8
    assert chart.status == "in_control"


def test_limits_come_from_the_first_baseline_results_and_stay_put_after() -> None:
    values = [10.0, 12.0, 11.0, 13.0, 12.0, 10.0, 11.0, 12.0]
    with_more = only(reference_tests([*values, 30.0, 31.0, 29.0]), **LINEAR)
    alone = only(reference_tests(values), **LINEAR)

    assert (with_more.center, with_more.sigma) == (alone.center, alone.sigma)
    assert [p.baseline for p in with_more.points] == [True] * 8 + [False] * 3


def test_limits_are_provisional_below_the_baseline_size() -> None:
    chart = only(reference_tests(STEADY), baseline_points=20)

    assert chart.baseline_points == 10
    assert "provisional until 20" in chart.note


def test_censored_results_are_shown_but_kept_out_of_the_limits() -> None:
    values = [10.0, 12.0, 0.1, 11.0, 13.0, 12.0, 10.0, 11.0, 12.0]
    chart = only(reference_tests(values, censored={2}), **LINEAR)
    uncensored = only(reference_tests([v for v in values if v != 0.1]), **LINEAR)

    assert len(chart.points) == 9
    assert chart.points[2].censored
    assert not chart.points[2].baseline
    assert (chart.center, chart.sigma) == (uncensored.center, uncensored.sigma)


def test_too_few_results_give_no_limits_and_say_how_many_are_needed() -> None:
    chart = only(reference_tests([2.4, 2.5, 2.3, 2.4, 0.0004], censored={4}), min_points=8)

    assert chart.status == "too_few_points"
    assert (chart.center, chart.lower_limit, chart.upper_limit) == (None, None, None)
    assert "4 usable result(s)" in chart.note
    assert "1 more below the detection limit" in chart.note
    assert "8 are needed" in chart.note
    assert all(not p.violations and not p.baseline for p in chart.points)


def test_a_baseline_without_spread_gives_no_limits_and_says_why() -> None:
    chart = only(reference_tests([2.4] * 8))

    assert chart.status == "too_few_points"
    assert "all equal" in chart.note


# -- rules and status -----------------------------------------------------------------------


def test_a_result_pushed_out_of_the_limits_breaks_rule_1_and_the_chart_is_out_of_control() -> None:
    base = steady_chart()
    chart = only(reference_tests([*STEADY, *at_z(base, 3.5)]), baseline_points=10)

    assert chart.points[-1].violations == ["1"]
    assert chart.status == "out_of_control"
    assert "rule 1" in chart.note


def test_each_run_rule_fires_through_the_chart_and_not_on_its_near_miss() -> None:
    base = steady_chart()
    cases = {
        "2": ((-0.5, 2.5, 0.5, 2.5), (2.5, 0.5, 0.5, 2.5)),
        "3": ((1.5, 1.5, 0.5, 1.5, 1.5), (1.5, 0.5, 0.5, 1.5, 1.5)),
        "4": ((0.5,) * 8, (0.5,) * 7 + (-0.5,)),
    }
    for rule, (pattern, near_miss) in cases.items():
        hit = only(reference_tests([*STEADY, *at_z(base, *pattern)]), baseline_points=10)
        miss = only(reference_tests([*STEADY, *at_z(base, *near_miss)]), baseline_points=10)
        assert hit.points[-1].violations == [rule], rule
        assert [p.violations for p in miss.points[10:]] == [[]] * len(near_miss), rule


def test_the_status_follows_the_latest_result() -> None:
    base = steady_chart()
    chart = only(reference_tests([*STEADY, *at_z(base, 4.0, -0.5)]), baseline_points=10)

    assert chart.points[-2].violations == ["1"]
    assert chart.status == "in_control"


def test_a_reference_film_reading_under_the_detection_limit_breaks_rule_1() -> None:
    chart = only(reference_tests([*STEADY, 0.0005], censored={10}), baseline_points=10)

    assert chart.points[-1].censored
    assert chart.points[-1].violations == ["1"]


# -- bad input ----------------------------------------------------------------------------------


def test_a_value_the_log_scale_cannot_show_is_refused_naming_the_record() -> None:
    frame = reference_tests(STEADY)
    frame.loc[3, PERMEABILIDAD] = 0.0
    with pytest.raises(InvalidInputError, match=r"Permeabilidad of reference record\(s\) 4 "):
        control_charts(frame, params())


def test_a_series_column_missing_from_the_frame_is_named() -> None:
    frame = reference_tests(STEADY)
    with pytest.raises(InvalidInputError, match="Referncia"):
        control_charts(frame, params(series_by=["Referncia"]))
    with pytest.raises(InvalidInputError, match=REFERENCIA):
        control_charts(frame.drop(columns=REFERENCIA), params())


def test_no_reference_rows_give_no_chart() -> None:
    products = reference_tests([3.0, 3.1], structure="BOPP-MET", product=True)
    assert control_charts(products, params()) == []


def test_the_points_table_has_a_row_per_point_and_limits_in_wvtr() -> None:
    chart = steady_chart()
    table = points_table([chart])

    assert len(table) == len(chart.points)
    assert table["lower_limit"].iloc[0] == pytest.approx(10.0 ** float(chart.lower_limit or 0))
    assert table["measured"].tolist() == pytest.approx(list(STEADY))


# -- events -------------------------------------------------------------------------------------


def out_of_control(*z: float, censored: frozenset[int] = frozenset()) -> ChartSeries:
    values = [*STEADY, *at_z(steady_chart(), *z)]
    return only(reference_tests(values, censored=censored), baseline_points=10)


def test_a_reference_pushed_out_of_its_limits_raises_a_critical_event_with_its_figures() -> None:
    chart = out_of_control(-0.5, 4.0)
    (event,) = chart_events([chart], run_id="run-1")

    assert (event.kind, event.severity, event.subject) == (
        EVENT_KIND,
        "critical",
        "NIST-ROJA · RN-1",
    )
    figures = event.figures
    assert figures["rules"] == "1"
    assert figures["value"] == pytest.approx(chart.points[-1].measured, rel=1e-3)
    assert figures["lower"] == pytest.approx(10.0 ** float(chart.lower_limit or 0), rel=1e-3)
    assert figures["upper"] == pytest.approx(10.0 ** float(chart.upper_limit or 0), rel=1e-3)
    assert float(figures["lower"] or 0) < 2.4 < float(figures["upper"] or 0)
    assert (figures["when"], figures["record"], figures["points"]) == (
        chart.points[-1].when,
        "12",
        1,
    )
    assert event.run_id == "run-1"


def test_a_run_rule_raises_a_warning() -> None:
    (event,) = chart_events([out_of_control(*(0.5,) * 8)])

    assert (event.severity, event.figures["rules"]) == ("warning", "4")


def test_the_same_violation_has_the_same_key_on_every_evaluation_and_a_new_one_a_new_key() -> None:
    chart = out_of_control(4.0)
    first, again = chart_events([chart])[0], chart_events([chart])[0]
    later = chart_events([out_of_control(4.0, 4.2)])[0]

    assert first.key == again.key == "reference_out_of_control:NIST-ROJA:RN-1:11"
    assert later.key != first.key


def test_without_since_only_the_latest_result_counts() -> None:
    assert chart_events([out_of_control(4.0, -0.5)]) == []


def test_with_since_every_newer_violation_counts_and_the_most_severe_is_reported() -> None:
    chart = out_of_control(4.0, -0.5, *(0.5,) * 8)
    since = pd.Timestamp(chart.points[10].when)

    (event,) = chart_events([chart], since=since)
    assert (event.figures["rules"], event.figures["record"], event.figures["points"]) == (
        "1",
        "11",
        2,
    )
    after = pd.Timestamp(chart.points[11].when)
    (later,) = chart_events([chart], since=after)
    assert (later.severity, later.figures["record"]) == ("warning", "20")


def test_violations_before_since_or_in_the_baseline_raise_nothing() -> None:
    chart = out_of_control(4.0, -0.5)
    assert chart_events([chart], since=pd.Timestamp(chart.points[-1].when)) == []

    # Eight high then eight low: both runs break rule 4 inside the baseline that set the limits.
    shifted = [2.50, 2.51, 2.49] * 3 + [2.30, 2.31, 2.29] * 3
    baseline_chart = only(reference_tests(shifted[:8] + shifted[9:17]), baseline_points=16)
    assert baseline_chart.points[-1].violations
    assert all(p.baseline for p in baseline_chart.points)
    assert chart_events([baseline_chart]) == []
    assert chart_events([baseline_chart], since=pd.Timestamp("2000-01-01")) == []


def test_too_few_points_raise_nothing() -> None:
    chart = only(reference_tests([2.4, 9.0]))
    assert chart_events([chart], since=pd.Timestamp("2000-01-01")) == []
