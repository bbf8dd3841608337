"""What the lab page's monitoring view shows: the latest evaluation, as one document.

Each evaluation writes a :class:`MonitoringSnapshot` (:mod:`permeability.io.monitoring_snapshot`)
and the inference service hands it to the page (``GET /monitoring``), so the page never queries
MLflow on a lab user's click. Every figure carries its window and sample size: the champion's
errors, coverage and decision quality on the lab results that came back (``recent``, with
``window``), what it was trained to (``trained``), the drift report, the control chart and the
events the evaluation raised.

Pure: the models only.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from permeability.monitoring.events import Event
from permeability.monitoring.reports import ChartSeries, DriftReport, EvaluationMetrics


class FigureWindow(BaseModel):
    """Which lab results a figure is computed on: their dates, rows and tests."""

    model_config = ConfigDict(frozen=True)

    since: str | None = Field(description="The evaluation's own lower date bound, if any.")
    first: str | None
    last: str | None
    rows: int
    tests: int


class MonitoringSnapshot(BaseModel):
    """The latest evaluation of the champion, as the page shows it."""

    model_config = ConfigDict(frozen=True)

    generated_at: datetime
    evaluation_id: str
    feature_set_version: int
    champion: str | None
    run_id: str | None = Field(description="The champion's evaluation run in MLflow.")
    experiment_id: str | None = None
    window: FigureWindow | None
    recent: EvaluationMetrics | None = Field(
        description="The champion on lab results that came back after its training."
    )
    served: EvaluationMetrics | None = Field(
        description="Its served guide values matched with the lab's later results."
    )
    trained: dict[str, float] = Field(
        default_factory=dict, description="The champion's held-out metrics at training."
    )
    drift: DriftReport | None
    control_chart: list[ChartSeries] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)


def figure_window(metrics: EvaluationMetrics | None, since: str | None) -> FigureWindow | None:
    """The window of the champion's recent figures (None when it had no recent lab results)."""
    if metrics is None:
        return None
    return FigureWindow(
        since=since,
        first=metrics.first,
        last=metrics.last,
        rows=metrics.n,
        tests=metrics.tests if metrics.tests is not None else metrics.n,
    )
