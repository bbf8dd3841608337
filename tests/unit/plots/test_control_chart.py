"""The control-chart figure: a PNG with a panel per series, without limits when there are none."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.image import imread

from permeability.monitoring.control_chart import control_charts
from permeability.monitoring.reports import ChartSeries
from permeability.plots.control_chart import MAX_PANELS, control_chart_figure, drawn_series
from tests.unit.monitoring.control_chart_support import STEADY, params, reference_tests

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def charts(*names: str, points: int = len(STEADY)) -> list[ChartSeries]:
    frames = [
        reference_tests(list(STEADY[:points]), referencia=name, first_record=100 * i)
        for i, name in enumerate(names)
    ]
    return [c for f in frames for c in control_charts(f, params(baseline_points=10))]


def test_a_png_is_written_with_a_panel_per_series(tmp_path: Path) -> None:
    out_of_control = reference_tests([*STEADY, 3.5], referencia="R9", censored={3})
    series = [*charts("R1", "R2"), *control_charts(out_of_control, params(baseline_points=10))]
    assert series[-1].status == "out_of_control"

    two = control_chart_figure(series[:2], tmp_path / "two.png", title="two")
    three = control_chart_figure(series, tmp_path / "nested" / "three.png", title="three")

    assert two.read_bytes().startswith(PNG_SIGNATURE)
    assert three == tmp_path / "nested" / "three.png"
    assert imread(three).shape[0] > imread(two).shape[0]  # one panel more, a taller figure


def test_a_series_with_too_few_results_is_drawn_without_limits(tmp_path: Path) -> None:
    (few,) = charts("R1", points=3)
    assert few.status == "too_few_points"

    path = control_chart_figure([few], tmp_path / "few.png", title="few")

    assert imread(path).shape[0] > 0


def test_series_without_limits_give_way_once_the_figure_is_full() -> None:
    many_few = charts(*(f"F{i}" for i in range(MAX_PANELS + 3)), points=2)
    with_limits = charts("C1", "C2")
    series = [many_few[0], *with_limits, *many_few[1:]]

    shown, left_out = drawn_series(series)

    assert len(shown) == MAX_PANELS
    assert left_out == 5
    assert shown[:3] == [many_few[0], *with_limits]  # the given order, charted ones kept


def test_nothing_to_draw_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no control-chart series"):
        control_chart_figure([], tmp_path / "none.png", title="none")
