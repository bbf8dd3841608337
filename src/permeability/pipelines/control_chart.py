"""The instrument's control chart inside an evaluation: chart the reference films, record it.

An evaluation (:mod:`permeability.pipelines.evaluation`) calls :func:`chart_reference_films` on
the feature-store frame it reads (the reference films are in it, flagged as non-products) and
gets the charts and the events they raise (:mod:`permeability.monitoring.control_chart`,
:mod:`permeability.monitoring.control_chart_events`); it puts the charts in the monitoring
snapshot and hands the events to the notifier. :func:`log_control_chart` then writes the chart
into the evaluation's MLflow run, under ``control_chart/``:

* ``chart.png``: a panel per series (:mod:`permeability.plots.control_chart`);
* ``points.csv``: every point, its rules and the limits in g/m²·day (spreadsheet-safe cells);
* ``series.json``: the charts as the page receives them;

with metrics ``control_chart_series``, ``control_chart_out_of_control_series`` and, per
reference, ``control_chart_violations_<reference>`` (its results that break a rule) and, when
the parameters are given, params ``control_chart_*`` (how the limits were set). Everything is
drawn before anything is logged: a drawing error writes nothing to the run.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd

from permeability.io.cells import write_csv
from permeability.io.tracking import Tracking, safe_metric_name
from permeability.monitoring.control_chart import (
    ChartSettings,
    control_charts,
    points_table,
)
from permeability.monitoring.control_chart_events import chart_events
from permeability.monitoring.events import Event
from permeability.monitoring.reports import ChartSeries
from permeability.pipelines.base import JobContext

#: The run's artifact folder of the chart, and its files.
ARTIFACT_DIR: Final = "control_chart"
CHART_FILE: Final = "chart.png"
POINTS_FILE: Final = "points.csv"
SERIES_FILE: Final = "series.json"


@dataclass(frozen=True)
class ControlChartOutcome:
    """The charts of the reference films and the events they raise (no run ids yet)."""

    series: list[ChartSeries] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def for_run(self, run_id: str, experiment_id: str | None = None) -> ControlChartOutcome:
        """The same outcome, its events pointing at the run that recorded the chart."""
        linked = [
            e.model_copy(update={"run_id": run_id, "experiment_id": experiment_id})
            for e in self.events
        ]
        return ControlChartOutcome(self.series, linked)


def chart_reference_films(
    context: JobContext,
    frame: pd.DataFrame,
    *,
    since: date | datetime | pd.Timestamp | None = None,
) -> ControlChartOutcome:
    """The configured reference films' charts on ``frame`` (a feature-store frame) and their
    events; ``since``: the evaluation's lower date bound (see ``chart_events``)."""
    params = context.config.control_chart
    series = control_charts(frame, params)
    events = chart_events(series, since=since)
    log = context.logger
    if not series:
        log.info("control chart: no reference-film results (%s)", ", ".join(params.references))
    for chart in series:
        level = log.warning if chart.status == "out_of_control" else log.info
        level("control chart %s: %s, %s", chart.title, chart.status, chart.note)
    return ControlChartOutcome(series, events)


def log_control_chart(
    tracking: Tracking,
    run_id: str,
    series: Sequence[ChartSeries],
    *,
    params: ChartSettings | None = None,
) -> list[str]:
    """Write the chart into run ``run_id`` (see the module docstring); returns the artifact
    paths written. No series (a lab without reference films): nothing is written."""
    from permeability.plots.control_chart import control_chart_figure

    if not series:
        return []
    with tempfile.TemporaryDirectory(prefix="permeability-control-chart-") as scratch:
        folder = Path(scratch) / ARTIFACT_DIR
        control_chart_figure(
            series, folder / CHART_FILE, title="Instrument control chart: reference films"
        )
        write_csv(points_table(series), folder / POINTS_FILE)
        (folder / SERIES_FILE).write_text(
            json.dumps([s.model_dump(mode="json") for s in series], indent=2, ensure_ascii=False),
            encoding="utf-8",
        )
        tracking.log_run_data(
            run_id,
            params=_chart_params(params) if params is not None else {},
            metrics=control_chart_metrics(series),
        )
        tracking.log_artifacts(run_id, folder, ARTIFACT_DIR)
        return sorted(f"{ARTIFACT_DIR}/{p.name}" for p in folder.iterdir())


def control_chart_metrics(series: Sequence[ChartSeries]) -> dict[str, float]:
    """Series charted, series out of control, and per reference its results breaking a rule."""
    values = {
        "control_chart_series": float(len(series)),
        "control_chart_out_of_control_series": float(
            sum(s.status == "out_of_control" for s in series)
        ),
    }
    violations: dict[str, int] = {}
    for chart in series:
        broken = sum(bool(p.violations) for p in chart.points)
        violations[chart.reference] = violations.get(chart.reference, 0) + broken
    taken = set(values)
    for reference, count in sorted(violations.items()):
        values[safe_metric_name("control_chart_violations", reference, taken)] = float(count)
    return values


def _chart_params(params: ChartSettings) -> dict[str, Any]:
    return {
        "control_chart_references": ",".join(params.references),
        "control_chart_series_by": ",".join(params.series_by),
        "control_chart_scale": params.scale,
        "control_chart_baseline_points": params.baseline_points,
        "control_chart_min_points": params.min_points,
        "control_chart_rules": ",".join(params.rules),
    }
