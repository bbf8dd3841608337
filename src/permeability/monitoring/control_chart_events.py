"""What a control chart tells people: one ``reference_out_of_control`` event per series.

Which violations count (the window):

* only results **after the baseline** (phase II): the baseline estimates the limits, and a
  result that helped set them is shown on the chart but is not news;
* with ``since`` (the evaluation's lower date bound): every such result dated on or after it
  (undated results cannot be shown to be newer and are left out). A result out of control and
  then a good one still make an event: the lab should know about that result;
* without ``since``: the series' **latest** result only, i.e. its status. A violation that the
  chart has since moved past is history, not an alarm, and a nightly evaluation repeats itself.

Of the violating results in the window, the event reports the most severe (rule 1 before the
run rules), the latest among equals. Severity: ``critical`` for rule 1 (one result beyond 3σ:
the instrument read this film wrong), ``warning`` for the run rules (a drift or a shift building
up). The event's ``key`` is the kind, the series and the reported result's record: the same
violation found by tomorrow's evaluation has the same key, so the notifier sends it once.

Figures (g/m²·day): reference, series, rules ("1,4"), value (the result), center, lower and
upper (the limits), when (test date, "" undated), record, points (violating results in the
window).

Pure: no delivery, no storage.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Final

import numpy as np
import pandas as pd

from permeability.monitoring.events import Event, Severity
from permeability.monitoring.reports import ChartPoint, ChartSeries
from permeability.monitoring.windows import on_or_after

EVENT_KIND: Final = "reference_out_of_control"
#: Events say the subject in this many characters at most (``Event.subject``'s limit).
_SUBJECT_LIMIT: Final = 200


def chart_events(
    series: Sequence[ChartSeries],
    *,
    since: date | datetime | pd.Timestamp | None = None,
    run_id: str | None = None,
    experiment_id: str | None = None,
) -> list[Event]:
    """One event per series with a violation in the window (see the module docstring)."""
    bound = _naive(since)
    events = []
    for chart in series:
        window = _window(chart, bound)
        if not window:
            continue
        point = max(enumerate(window), key=lambda item: ("1" in item[1].violations, item[0]))[1]
        events.append(_event(chart, point, len(window), run_id, experiment_id))
    return events


def _window(chart: ChartSeries, since: pd.Timestamp | None) -> list[ChartPoint]:
    """The chart's violating phase-II results that are news (see the module docstring)."""
    if chart.status == "too_few_points" or not chart.points:
        return []
    if since is None:
        latest = chart.points[-1]
        return [latest] if latest.violations and not latest.baseline else []
    dated = on_or_after(pd.Series([p.when or None for p in chart.points], dtype=object), since)
    return [
        p
        for p, newer in zip(chart.points, dated, strict=True)
        if newer and p.violations and not p.baseline
    ]


def _naive(since: date | datetime | pd.Timestamp | None) -> pd.Timestamp | None:
    """``since`` as a naive timestamp (UTC when it had a zone), as test dates are."""
    if since is None:
        return None
    stamp = pd.Timestamp(since)
    return stamp.tz_convert(None) if stamp.tzinfo is not None else stamp


def severity_of(point: ChartPoint) -> Severity:
    """``critical`` for rule 1, ``warning`` for a run rule."""
    return "critical" if "1" in point.violations else "warning"


def _event(
    chart: ChartSeries,
    point: ChartPoint,
    violating: int,
    run_id: str | None,
    experiment_id: str | None,
) -> Event:
    figures: dict[str, float | int | str | None] = {
        "reference": chart.reference,
        "series": chart.series,
        "rules": ",".join(point.violations),
        "value": _rounded(point.measured),
        "center": _rounded(chart.measured(chart.center)),
        "lower": _rounded(chart.measured(chart.lower_limit)),
        "upper": _rounded(chart.measured(chart.upper_limit)),
        "when": point.when,
        "record": point.record,
        "points": violating,
    }
    return Event(
        kind=EVENT_KIND,
        severity=severity_of(point),
        subject=chart.title[:_SUBJECT_LIMIT],
        figures=figures,
        run_id=run_id,
        experiment_id=experiment_id,
        key=f"{EVENT_KIND}:{chart.reference}:{chart.series}:{point.record or point.test}",
    )


def _rounded(value: float | None) -> float | None:
    """Four significant figures: what a message shows, and stable across float noise."""
    if value is None or not np.isfinite(value):
        return None
    return float(f"{value:.4g}")
