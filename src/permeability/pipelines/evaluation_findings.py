"""After an evaluation: tell what it found (events), chart the instrument, update the page.

The evaluation (:mod:`permeability.pipelines.evaluation`) scores and records versions; this
module turns the result into what people see without opening MLflow:

* **events** (:mod:`permeability.monitoring.alerts`): drift, new structures, degradation and
  coverage of the *champion* against its own training metrics, plus the reference films out of
  control; handed to :func:`permeability.pipelines.notifying.notify` (which never fails or
  blocks the job);
* **the control chart** of the reference films (:mod:`permeability.pipelines.control_chart`),
  recorded as its own run in the evaluation experiment, so the instrument is checked at every
  evaluation even when no version has new product results to be judged on;
* **the monitoring snapshot** the lab page shows (:mod:`permeability.io.monitoring_snapshot`).
  A run that did not evaluate the champion keeps the previous snapshot's champion figures and
  replaces only the chart and the events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from permeability.monitoring.alerts import evaluation_events
from permeability.monitoring.events import Event
from permeability.monitoring.reports import ChartSeries
from permeability.monitoring.snapshot import MonitoringSnapshot, figure_window
from permeability.pipelines.base import JobContext
from permeability.pipelines.evaluation_request import EvaluationReport

if TYPE_CHECKING:
    from permeability.io.registry import Registry
    from permeability.pipelines.control_chart import ControlChartOutcome
    from permeability.pipelines.evaluation_record import ScoredVersion


def chart_references(
    context: JobContext, frame: pd.DataFrame, since: datetime | None
) -> ControlChartOutcome:
    """The reference films' control chart on the current feature set (nothing written);
    ``since``, the evaluation's lower date bound, widens which violations raise events from
    the latest result to every result since then."""
    from permeability.pipelines.control_chart import chart_reference_films

    return chart_reference_films(context, frame, since=since)


def publish_findings(
    context: JobContext,
    registry: Registry,
    report: EvaluationReport,
    scored: Sequence[ScoredVersion],
    chart: ControlChartOutcome,
    champion_label: str | None,
) -> EvaluationReport:
    """Events of the champion's evaluation and of the chart, the chart's run, the snapshot."""
    champion = next((s for s in scored if s.candidate.is_champion), None)
    result = next((e for e in report.evaluated if e.is_champion), None)
    events: list[Event] = []
    trained: dict[str, float] = {}
    if champion is not None and result is not None:
        trained = _trained_metrics(champion.candidate.metadata)
        events.extend(
            evaluation_events(result, trained, context.config.evaluation.alert_thresholds())
        )
    chart_run, chart_events = _record_chart(context, registry, report.feature_set_version, chart)
    events.extend(chart_events)
    snapshot = MonitoringSnapshot(
        generated_at=datetime.now(UTC),
        evaluation_id=report.evaluation_id,
        feature_set_version=report.feature_set_version,
        champion=result.version if result is not None else None,
        run_id=result.run_id if result is not None else None,
        window=figure_window(result.recent if result is not None else None, report.since),
        recent=result.recent if result is not None else None,
        served=result.served if result is not None else None,
        trained=trained,
        drift=result.drift if result is not None else None,
        control_chart=list(chart.series),
        events=events,
    )
    if result is None:
        snapshot = _keep_champion_figures(context, snapshot, champion_label)
    _write(context, snapshot)
    _notify(context, events)
    return report.model_copy(update={"events": events, "control_chart_run_id": chart_run})


def publish_chart_only(
    context: JobContext,
    registry: Registry,
    feature_set_version: int,
    chart: ControlChartOutcome,
    champion_label: str | None,
) -> list[Event]:
    """When no version had anything to be judged on: the instrument is still checked."""
    chart_run, events = _record_chart(context, registry, feature_set_version, chart)
    if chart_run is None:
        return []
    snapshot = MonitoringSnapshot(
        generated_at=datetime.now(UTC),
        evaluation_id=context.run_id,
        feature_set_version=feature_set_version,
        champion=None,
        run_id=None,
        window=None,
        recent=None,
        served=None,
        drift=None,
        control_chart=list(chart.series),
        events=events,
    )
    _write(context, _keep_champion_figures(context, snapshot, champion_label))
    _notify(context, events)
    return events


# -- parts ---------------------------------------------------------------------------------


def _trained_metrics(metadata: Mapping[str, Any]) -> dict[str, float]:
    raw = metadata.get("metrics") or {}
    return {str(k): float(v) for k, v in raw.items() if isinstance(v, int | float)}


def _record_chart(
    context: JobContext, registry: Registry, feature_set_version: int, chart: ControlChartOutcome
) -> tuple[str | None, list[Event]]:
    """The chart's own run in the evaluation experiment; its events point at that run."""
    from permeability.pipelines.control_chart import log_control_chart

    if not chart.series:
        return None, []
    registry.setup()
    now = datetime.now(UTC)
    run_id = str(
        registry.start_run(
            run_name=f"control-chart-{now:%Y%m%d-%H%M%S}",
            tags={
                "kind": "control_chart",
                "evaluation_id": context.run_id,
                "evaluated_feature_set_version": str(feature_set_version),
                "out_of_control": ", ".join(_out_of_control(chart.series))[:5000],
            },
            start_time_ms=int(now.timestamp() * 1000),
        )
    )
    try:
        log_control_chart(registry, run_id, chart.series, params=context.config.control_chart)
    except BaseException:
        registry.finish_run(run_id, failed=True)
        raise
    registry.finish_run(run_id)
    return run_id, chart.for_run(run_id).events


def _out_of_control(series: Sequence[ChartSeries]) -> list[str]:
    return [s.title for s in series if s.status == "out_of_control"]


def _keep_champion_figures(
    context: JobContext, snapshot: MonitoringSnapshot, champion_label: str | None
) -> MonitoringSnapshot:
    """The previous snapshot's champion part under this run's chart and events, when it is
    about the same champion (a new champion's figures are not its predecessor's)."""
    from permeability.io.monitoring_snapshot import NoSnapshotError, read_snapshot

    try:
        previous = read_snapshot(context.paths.monitoring)
    except NoSnapshotError:
        return snapshot
    if previous.champion is None or previous.champion != champion_label:
        return snapshot
    keep = ("champion", "run_id", "window", "recent", "served", "trained", "drift")
    return snapshot.model_copy(update={k: getattr(previous, k) for k in keep})


def _write(context: JobContext, snapshot: MonitoringSnapshot) -> None:
    from permeability.io.monitoring_snapshot import write_snapshot

    path = write_snapshot(context.paths.monitoring, snapshot)
    context.logger.info("monitoring snapshot written to %s", path)


def _notify(context: JobContext, events: list[Event]) -> None:
    from permeability.pipelines.notifying import notify

    if events:
        notify(context, events)
