"""The instrument's own control chart: reference films measured over time.

A lab measures reference films (``CALIBRACION``, ``NIST-ROJA``, ``MATERIAL-REF``) to check its
instrument. Their results are loaded and flagged as non-products; this module charts them:

* **Which rows**: those whose canonical structure name matches a configured pattern
  (:func:`reference_rows`), split into **series** by the configured record columns
  (``Referencia`` by default): one reference name may cover several films (the seed lab's
  ``CALIBRACION`` spans four decades of WVTR in one name). Rows whose series columns are all
  blank form one series of their name (series ``""``).
* **One point per test**: the individuals chart assumes independent results, and the
  replicates of one test (same film, day and conditions) are not; the usual lab practice is one
  point per test, the mean of its replicates in the chart's scale (log10 by default: WVTR
  scatter is multiplicative, so the geometric mean). ``measured`` is that mean back in g/m²·day.
* **Order**: test date (undated tests last), then the record (``record_id``, natural order).
* **Limits** (Shewhart individuals chart): centre = mean of the first ``baseline_points``
  usable results (phase I), σ = mean moving range / d₂ (d₂ = 2/√π ≈ 1.128, the expected range
  of two normal results), limits ±3σ. Limits are provisional while the series has fewer results
  than ``baseline_points`` and frozen after. Fewer than ``min_points`` usable results: no
  limits (``too_few_points``, with a note saying how many are needed).
* **Censored results** (below the detection limit, stored at it): a test with one such replicate
  is an upper bound. It is shown, kept out of the limits, and judged only where its bound is
  conclusive (:mod:`permeability.monitoring.run_rules`).
* **Status**: ``out_of_control`` when the latest result breaks a rule, else ``in_control``.

What is worth telling someone is :mod:`permeability.monitoring.control_chart_events`'s.
Pure: pandas and numpy, no plotting, no tracking.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from permeability.errors import InvalidInputError
from permeability.monitoring.reports import ChartPoint, ChartScale, ChartSeries, to_measured
from permeability.monitoring.run_rules import RULE_TEXT, rule_violations
from permeability.record.identity import KEY_SEPARATOR, join_key, non_product_mask
from permeability.record.schema import (
    BELOW_DETECTION_LIMIT,
    ESTRUCTURA,
    FECHA,
    PERMEABILIDAD,
    RECORD_ID,
    TEST_ID,
)

#: d₂ for moving ranges of two results: the mean range of two standard normal draws, 2/√π.
D2_TWO: Final = 2.0 / math.sqrt(math.pi)
#: Control limits sit this many σ from the centre.
LIMIT_SIGMAS: Final = 3.0
#: Columns every charted frame needs (the feature store holds them all).
REQUIRED_COLUMNS: Final = (ESTRUCTURA, PERMEABILIDAD, FECHA, RECORD_ID, TEST_ID)


class ChartSettings(Protocol):
    """What the chart reads of its parameters (``config.ControlChartParams`` provides it)."""

    @property
    def references(self) -> tuple[str, ...]: ...
    @property
    def series_by(self) -> tuple[str, ...]: ...
    @property
    def scale(self) -> ChartScale: ...
    @property
    def baseline_points(self) -> int: ...
    @property
    def min_points(self) -> int: ...
    @property
    def rules(self) -> Sequence[str]: ...


def reference_rows(frame: pd.DataFrame, params: ChartSettings) -> pd.DataFrame:
    """The rows of reference films: canonical structure names matching ``params.references``
    (shell patterns, matched as ``acquisition.non_product`` is)."""
    if ESTRUCTURA not in frame.columns:
        raise InvalidInputError(f"the frame has no {ESTRUCTURA} column to find reference films in")
    if frame.empty or not params.references:
        return frame.iloc[0:0]
    mask = non_product_mask(list(frame[ESTRUCTURA]), params.references)
    return frame.loc[mask]


def control_charts(frame: pd.DataFrame, params: ChartSettings) -> list[ChartSeries]:
    """One chart per reference film and series, sorted by reference then series."""
    rows = reference_rows(frame, params)
    missing = [c for c in (*REQUIRED_COLUMNS, *params.series_by) if c not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"the control chart needs column(s) {', '.join(missing)}, absent from the frame "
            f"(control_chart.series_by names record columns: {', '.join(params.series_by)})"
        )
    if rows.empty:
        return []
    tests = _test_results(rows, params)
    return [
        _chart(str(reference), str(series), points.reset_index(drop=True), params)
        for (reference, series), points in tests.groupby(["reference", "series"], sort=True)
    ]


# -- one point per test ---------------------------------------------------------------------


def _chart_values(rows: pd.DataFrame, scale: ChartScale) -> NDArray[np.float64]:
    """Permeabilidad in the chart's scale; a value it cannot show is refused, naming records."""
    values = pd.to_numeric(rows[PERMEABILIDAD], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | ((values <= 0.0) if scale == "log10" else False)
    if bad.any():
        records = ", ".join(rows[RECORD_ID].astype(str).to_numpy()[bad][:5])
        need = "a positive number (the chart is on log10)" if scale == "log10" else "a number"
        raise InvalidInputError(f"{PERMEABILIDAD} of reference record(s) {records} is not {need}")
    return np.log10(values) if scale == "log10" else values


def _series_labels(rows: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """The series of each row: its ``columns`` joined; "" when all of them are blank."""
    if not columns:
        return pd.Series([""] * len(rows), dtype="str")
    joined = join_key(rows, columns)
    blank = joined.str.replace(KEY_SEPARATOR, "", regex=False).str.strip() == ""
    return joined.where(~blank, "")


def _test_results(rows: pd.DataFrame, params: ChartSettings) -> pd.DataFrame:
    """One row per test, in chart order: reference, series, test, record, when, replicates,
    value (mean in the chart's scale), censored (any replicate below the detection limit)."""
    records = rows[RECORD_ID].astype(str).to_numpy()
    dates = pd.to_datetime(rows[FECHA], errors="coerce").to_numpy(dtype="datetime64[ns]")
    undated = np.isnat(dates)
    order = np.lexsort(
        (
            records,
            np.array([len(r) for r in records]),
            np.where(undated, np.datetime64(0, "ns"), dates),
            undated,
        )
    )
    censored = (
        rows[BELOW_DETECTION_LIMIT].astype("boolean").fillna(False).to_numpy(dtype=bool)
        if BELOW_DETECTION_LIMIT in rows.columns
        else np.zeros(len(rows), dtype=bool)
    )
    table = pd.DataFrame(
        {
            "reference": rows[ESTRUCTURA].astype(str).to_numpy(),
            "series": _series_labels(rows, params.series_by).to_numpy(),
            "test": rows[TEST_ID].astype(str).to_numpy(),
            "record": records,
            "when": dates,
            "value": _chart_values(rows, params.scale),
            "censored": censored,
        }
    ).iloc[order]
    grouped = table.groupby(["reference", "series", "test"], sort=False, dropna=False)
    return grouped.agg(
        record=("record", "first"),
        when=("when", "first"),
        replicates=("value", "size"),
        value=("value", "mean"),
        censored=("censored", "any"),
    ).reset_index()


# -- limits and rules -----------------------------------------------------------------------


def _chart(reference: str, series: str, tests: pd.DataFrame, params: ChartSettings) -> ChartSeries:
    values = tests["value"].to_numpy(dtype=np.float64)
    censored = tests["censored"].to_numpy(dtype=bool)
    usable = np.flatnonzero(~censored)
    shape = {"reference": reference, "series": series, "scale": params.scale}
    baseline = usable[: params.baseline_points]
    sigma = float(np.mean(np.abs(np.diff(values[baseline]))) / D2_TWO) if len(baseline) > 1 else 0.0
    problem = _too_few(len(usable), int(censored.sum()), params.min_points, sigma)
    if problem is not None:
        points = _points(tests, params.scale, np.zeros(len(tests), dtype=bool), None)
        return ChartSeries(
            **shape,
            center=None,
            sigma=None,
            lower_limit=None,
            upper_limit=None,
            baseline_points=0,
            points=points,
            status="too_few_points",
            note=problem,
        )
    center = float(np.mean(values[baseline]))
    violations = rule_violations((values - center) / sigma, censored, params.rules)
    in_baseline = np.isin(np.arange(len(tests)), baseline)
    points = _points(tests, params.scale, in_baseline, violations)
    latest = points[-1]
    return ChartSeries(
        **shape,
        center=center,
        sigma=sigma,
        lower_limit=center - LIMIT_SIGMAS * sigma,
        upper_limit=center + LIMIT_SIGMAS * sigma,
        baseline_points=len(baseline),
        points=points,
        status="out_of_control" if latest.violations else "in_control",
        note=_note(len(baseline), len(points), params.baseline_points, latest),
    )


def _too_few(usable: int, censored: int, needed: int, sigma: float) -> str | None:
    """Why the series gets no limits (None: it gets them)."""
    below = (
        f" ({censored} more below the detection limit, kept out of the limits)" if censored else ""
    )
    if usable < needed:
        return f"{usable} usable result(s){below}; {needed} are needed before limits are set"
    if not sigma > 0.0:
        return f"the {usable} baseline results are all equal: no spread to set limits from"
    return None


def _points(
    tests: pd.DataFrame,
    scale: ChartScale,
    in_baseline: NDArray[np.bool_],
    violations: list[list[str]] | None,
) -> list[ChartPoint]:
    dates = pd.to_datetime(tests["when"]).dt.strftime("%Y-%m-%d").fillna("").tolist()
    values = tests["value"].to_numpy(dtype=np.float64)
    censored = tests["censored"].to_numpy(dtype=bool)
    replicates = tests["replicates"].to_numpy(dtype=np.int64)
    records, test_ids = tests["record"].astype(str).tolist(), tests["test"].astype(str).tolist()
    return [
        ChartPoint(
            when=dates[i],
            record=records[i],
            measured=to_measured(float(values[i]), scale),
            value=float(values[i]),
            censored=bool(censored[i]),
            baseline=bool(in_baseline[i]),
            violations=violations[i] if violations is not None else [],
            test=test_ids[i],
            replicates=int(replicates[i]),
        )
        for i in range(len(tests))
    ]


def _note(used: int, total: int, wanted: int, latest: ChartPoint) -> str:
    limits = f"limits from the first {used} of {total} results"
    if used < wanted:
        limits += f" (provisional until {wanted})"
    if not latest.violations:
        return f"{limits}; the latest result breaks no rule"
    broken = "; ".join(f"rule {r}: {RULE_TEXT[r]}" for r in latest.violations)
    return f"{limits}; the latest result ({latest.when or 'undated'}) breaks {broken}"


def points_table(series: Sequence[ChartSeries]) -> pd.DataFrame:
    """Every point of every series as a table (limits in g/m²·day), for people and MLflow."""
    rows = [
        {
            "reference": chart.reference,
            "series": chart.series,
            "position": i + 1,
            "when": point.when,
            "record": point.record,
            "test": point.test,
            "replicates": point.replicates,
            "measured": point.measured,
            "value": point.value,
            "scale": chart.scale,
            "censored": point.censored,
            "baseline": point.baseline,
            "violations": ",".join(point.violations),
            "center": chart.measured(chart.center),
            "lower_limit": chart.measured(chart.lower_limit),
            "upper_limit": chart.measured(chart.upper_limit),
            "status": chart.status,
        }
        for chart in series
        for i, point in enumerate(chart.points)
    ]
    return pd.DataFrame(rows, columns=list(_TABLE_COLUMNS))


_TABLE_COLUMNS: Final = (
    "reference",
    "series",
    "position",
    "when",
    "record",
    "test",
    "replicates",
    "measured",
    "value",
    "scale",
    "censored",
    "baseline",
    "violations",
    "center",
    "lower_limit",
    "upper_limit",
    "status",
)
