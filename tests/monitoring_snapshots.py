"""A realistic monitoring snapshot, as an evaluation of a champion three months into production
writes it: errors a little worse than at training, coverage under its level, a few wrong
decisions, drift in the mean caliper and in the residuals, one new structure, two reference
films on the control chart (one out of control, one with a censored result) and the events
those raise.

The numbers are consistent with one another (decision counts add up, a flagged comparison
passes both thresholds, chart points beyond the limits carry rule 1), so the lab page's
monitoring view, its tests and the documentation's screenshots show what a lab would see.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

from permeability.monitoring.events import Event
from permeability.monitoring.reports import (
    ChartPoint,
    ChartSeries,
    DriftReport,
    DriftTest,
    DriftThresholds,
    EvaluationMetrics,
    StructureScore,
)
from permeability.monitoring.snapshot import FigureWindow, MonitoringSnapshot

GENERATED_AT = datetime(2024, 3, 28, 6, 0, tzinfo=UTC)
SINCE = "2024-01-01"
FIRST = "2024-01-08"
LAST = "2024-03-27"
RECENT_ROWS = 142
RECENT_TESTS = 48
SERVED_ROWS = 57
NEW_STRUCTURE = "BOPP/MET/PE"
FLAGGED_FEATURE = "CalibreProm"
OUT_OF_CONTROL = ("NIST-ROJA", "R-2023-07")
IN_CONTROL = ("MATERIAL-REF", "MR-12")
#: Index of the out-of-control series' point beyond its upper limit (rule 1); the run rules
#: flag it and its neighbours (VIOLATIONS points in all).
VIOLATION_INDEX = 27
VIOLATIONS = 5
#: Index of the in-control series' censored point (below the detection limit).
CENSORED_INDEX = 11


def _metrics(n: int, tests: int, first: str, **figures: float) -> EvaluationMetrics:
    structures = [
        StructureScore(
            structure="BOPP",
            n=64,
            mae=0.91,
            mape=14.2,
            rmse=1.31,
            bias_log=-0.03,
            coverage=0.891,
            mean_width=3.2,
            wrong_approvals=0,
            wrong_rejections=1,
        ),
        StructureScore(
            structure="PET/PE",
            n=38,
            mae=1.64,
            mape=21.7,
            rmse=2.48,
            bias_log=0.11,
            coverage=0.789,
            mean_width=7.4,
            wrong_approvals=2,
            wrong_rejections=0,
        ),
        StructureScore(
            structure="PE/EVOH/PE",
            n=40,
            mae=2.15,
            mape=22.9,
            rmse=3.02,
            bias_log=0.08,
            coverage=0.8,
            mean_width=9.1,
            wrong_approvals=0,
            wrong_rejections=0,
        ),
    ]
    decisions = {
        "n": n,
        "no_limit": 18 * n // RECENT_ROWS,
        "approve": 81 * n // RECENT_ROWS,
        "reject": 22 * n // RECENT_ROWS,
        "retest": n - (18 + 81 + 22) * n // RECENT_ROWS,
        "wrong_approvals": 2 if n == RECENT_ROWS else 1,
        "wrong_rejections": 1 if n == RECENT_ROWS else 0,
        "exceeding": 25 * n // RECENT_ROWS,
    }
    return EvaluationMetrics(
        n=n,
        tests=tests,
        level=0.9,
        metrics=dict(figures),
        per_structure=structures if n == RECENT_ROWS else [],
        decisions=decisions,
        first=first,
        last=LAST,
    )


def _drift() -> DriftReport:
    thresholds = DriftThresholds()
    tests = [
        DriftTest(
            feature="Grados_C",
            structure="ALL",
            kind="numeric",
            test="ks",
            n_reference=450,
            n_current=RECENT_ROWS,
            psi=0.04,
            statistic=0.07,
            p_value=0.61,
        ),
        DriftTest(
            feature="Porc_Humedad",
            structure="ALL",
            kind="numeric",
            test="ks",
            n_reference=450,
            n_current=RECENT_ROWS,
            psi=0.06,
            statistic=0.09,
            p_value=0.33,
        ),
        DriftTest(
            feature=FLAGGED_FEATURE,
            structure="ALL",
            kind="numeric",
            test="ks",
            n_reference=450,
            n_current=RECENT_ROWS,
            psi=0.41,
            statistic=0.29,
            p_value=2.4e-8,
            drifted=True,
        ),
        DriftTest(
            feature="Estructura",
            structure="ALL",
            kind="categorical",
            test="chi2",
            n_reference=450,
            n_current=RECENT_ROWS,
            psi=0.17,
            statistic=21.3,
            p_value=0.0031,
        ),
        DriftTest(
            feature="log_Permeabilidad",
            structure="ALL",
            kind="target",
            test="ks",
            n_reference=450,
            n_current=RECENT_ROWS,
            psi=0.09,
            statistic=0.11,
            p_value=0.14,
        ),
        DriftTest(
            feature="log_residual",
            structure="PET/PE",
            kind="target",
            test="ks",
            n_reference=96,
            n_current=38,
            psi=0.52,
            statistic=0.44,
            p_value=1.9e-5,
            drifted=True,
        ),
    ]
    return DriftReport(
        thresholds=thresholds,
        n_reference=450,
        n_current=RECENT_ROWS,
        tests=tests,
        new_structures={NEW_STRUCTURE: 9},
        missing_structures=["PVC"],
        corrected_alpha=thresholds.alpha / len(tests),
    )


def _days(count: int) -> list[str]:
    start = date.fromisoformat(FIRST)
    return [(start + timedelta(days=round(i * 79 / (count - 1)))).isoformat() for i in range(count)]


def _series(
    reference: str,
    series: str,
    centre_measured: float,
    sigma: float,
    offsets: list[float],
    *,
    violations: dict[int, list[str]],
    censored: int | None = None,
) -> ChartSeries:
    """A log10 chart whose i-th result is ``offsets[i]`` σ from the centre."""
    centre = math.log10(centre_measured)
    baseline = 20
    points = []
    for i, (when, offset) in enumerate(zip(_days(len(offsets)), offsets, strict=True)):
        value = centre + offset * sigma
        points.append(
            ChartPoint(
                when=when,
                record=f"24-{100 + i:04d}",
                measured=float(f"{10**value:.4g}"),
                value=value,
                censored=i == censored,
                baseline=i < baseline,
                violations=violations.get(i, []),
                test=f"T{i + 1}",
                replicates=3,
            )
        )
    out = bool(points[-1].violations)  # the chart's status follows its latest result
    broken = sum(1 for p in points if p.violations)
    note = (
        f"{broken} results break a rule, the latest among them: check the instrument"
        if out
        else f"no rule broken in {len(points)} results"
    )
    return ChartSeries(
        reference=reference,
        series=series,
        scale="log10",
        center=centre,
        sigma=sigma,
        lower_limit=centre - 3 * sigma,
        upper_limit=centre + 3 * sigma,
        baseline_points=baseline,
        points=points,
        status="out_of_control" if out else "in_control",
        note=note,
    )


#: Results in σ from the centre: a quiet baseline, then a climb that ends beyond +3σ.
_DRIFTING = [
    0.3, -0.8, 1.1, -0.2, 0.6, -1.3, 0.1, 0.9, -0.5, 0.2,
    -0.9, 1.4, -0.1, 0.4, -0.6, 0.8, -1.0, 0.3, 0.0, -0.4,
    0.7, 1.2, 1.6, 2.2, 2.4, 2.1, 2.6, 3.4, 2.3,
]  # fmt: skip
_STEADY = [
    -0.2, 0.5, -0.9, 0.8, 0.1, -0.4, 1.2, -0.7, 0.3, -1.1,
    0.6, -2.2, 0.2, 0.9, -0.3, -0.6, 1.0, 0.4, -0.8, 0.1,
    0.5, -0.2, 0.7, -0.5, 0.3,
]  # fmt: skip


def _charts() -> list[ChartSeries]:
    drifting = _series(
        *OUT_OF_CONTROL,
        4.2,
        0.021,
        _DRIFTING,
        violations={
            24: ["2", "3"],
            25: ["2", "3"],
            26: ["2", "3"],
            VIOLATION_INDEX: ["1", "2", "3"],
            28: ["2", "3"],
        },
    )
    steady = _series(*IN_CONTROL, 11.8, 0.018, _STEADY, violations={}, censored=CENSORED_INDEX)
    return [drifting, steady]


def _events(champion: str, run_id: str | None) -> list[Event]:
    common = {"run_id": run_id, "experiment_id": "1", "occurred_at": GENERATED_AT}
    chart = _charts()[0]
    point = chart.points[VIOLATION_INDEX]
    return [
        Event(
            kind="reference_out_of_control",
            severity="critical",
            subject=f"{OUT_OF_CONTROL[0]} · {OUT_OF_CONTROL[1]}",
            figures={
                "reference": OUT_OF_CONTROL[0],
                "series": OUT_OF_CONTROL[1],
                "rules": "1,2,3",
                "value": point.measured,
                "upper": float(f"{10 ** (chart.upper_limit or 0):.4g}"),
                "when": point.when,
            },
            **common,
        ),
        Event(
            kind="drift",
            severity="warning",
            subject=champion,
            figures={
                "features": f"{FLAGGED_FEATURE}, log_residual [PET/PE]",
                "rows": RECENT_ROWS,
                "reference_rows": 450,
                "largest_psi": 0.52,
            },
            **common,
        ),
        Event(
            kind="coverage",
            severity="warning",
            subject=champion,
            figures={"coverage": 0.838, "level": 0.9, "rows": RECENT_ROWS, "tests": RECENT_TESTS},
            **common,
        ),
        Event(
            kind="new_structure",
            severity="info",
            subject=NEW_STRUCTURE,
            figures={"structures": f"{NEW_STRUCTURE} (9)", "rows": 9},
            **common,
        ),
    ]


def realistic_snapshot(champion: str = "0.1", run_id: str | None = None) -> MonitoringSnapshot:
    """The snapshot of champion ``champion``, its evaluation run ``run_id`` (for the links)."""
    recent = _metrics(
        RECENT_ROWS,
        RECENT_TESTS,
        FIRST,
        r2=0.87,
        mae=1.42,
        mse=5.34,
        rmse=2.31,
        mape=18.6,
        median_ape=11.2,
        coverage=0.838,
        mean_width=6.1,
    )
    served = _metrics(
        SERVED_ROWS,
        19,
        "2024-02-02",
        r2=0.85,
        mae=1.51,
        mse=6.1,
        rmse=2.47,
        mape=19.4,
        median_ape=12.0,
        coverage=0.825,
        mean_width=6.0,
    )
    return MonitoringSnapshot(
        generated_at=GENERATED_AT,
        evaluation_id="eval-20240328-0600",
        feature_set_version=3,
        champion=champion,
        run_id=run_id,
        experiment_id="1",
        window=FigureWindow(
            since=SINCE, first=FIRST, last=LAST, rows=RECENT_ROWS, tests=RECENT_TESTS
        ),
        recent=recent,
        served=served,
        trained={
            "r2": 0.91,
            "mae": 1.12,
            "rmse": 1.85,
            "mape": 14.9,
            "coverage": 0.902,
            "mean_interval_width": 5.4,
        },
        drift=_drift(),
        control_chart=_charts(),
        events=_events(champion, run_id),
    )


def bare_snapshot(
    champion: str | None,
    events: list[Event] | None = None,
    *,
    evaluation_id: str = "ev1",
    feature_set_version: int = 1,
    generated_at: datetime = GENERATED_AT,
    control_chart: list[ChartSeries] | None = None,
) -> MonitoringSnapshot:
    """A snapshot with no figures: what an evaluation writes about a champion that had nothing
    recent to be scored on, with the ``events`` (and chart) given."""
    return MonitoringSnapshot(
        generated_at=generated_at,
        evaluation_id=evaluation_id,
        feature_set_version=feature_set_version,
        champion=champion,
        run_id=None,
        window=None,
        recent=None,
        served=None,
        drift=None,
        control_chart=control_chart or [],
        events=events or [],
    )
