"""The control chart in a job: reference films through acquisition and the store onto the chart,
their event, and what the chart writes into an MLflow run (embedded SQLite store).

One home for the module: a generated lab export in the real layout (its own scattered
reference tests included), plus eleven weekly ``NIST-ROJA`` tests of one film (``Referencia``
``NIST-1``): ten steady results, then one pushed out of its limits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from permeability.config import ControlChartParams, ProjectConfig
from permeability.io.evaluation_runs import evaluation_registry
from permeability.io.exports import write_lab_export
from permeability.io.feature_store import FeatureStore
from permeability.io.registry import Registry
from permeability.monitoring.reports import ChartSeries
from permeability.pipelines.acquisition import acquire
from permeability.pipelines.base import job_context
from permeability.pipelines.control_chart import (
    ARTIFACT_DIR,
    ControlChartOutcome,
    chart_reference_films,
    log_control_chart,
)
from permeability.record.schema import ANIO, CONSECUTIVO, DIA, MES, MUESTRA
from permeability.settings import Settings
from permeability.synthetic.export import generate_lab_export
from tests.unit.monitoring.control_chart_support import STEADY

CONFIG = ProjectConfig(control_chart=ControlChartParams(baseline_points=10))
PUSHED = 3.1  # g/m²·day: the steady film reads 2.4


@dataclass(frozen=True)
class Home:
    settings: Settings
    frame: pd.DataFrame
    pushed_record: str
    registry: Registry


def with_reference_film(export: pd.DataFrame, values: list[float]) -> pd.DataFrame:
    """``export`` and one weekly test per value of a NIST-ROJA film, numbered after it."""
    rows = pd.concat([export.iloc[[0]]] * len(values), ignore_index=True)
    days = [date(2025, 3, 3) + timedelta(days=7 * i) for i in range(len(values))]
    first = int(export[CONSECUTIVO].max()) + 1
    rows[CONSECUTIVO] = np.arange(first, first + len(values))
    rows[ANIO] = [d.year for d in days]
    rows[MES] = [d.month for d in days]
    rows[DIA] = [d.day for d in days]
    rows["Referencia"] = "NIST-1"
    rows["Estructura"] = "NIST-ROJA"
    rows[MUESTRA] = 1
    rows["Permeabilidad"] = values
    return pd.concat([export, rows], ignore_index=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    folder = tmp_path_factory.mktemp("control_chart")
    settings = Settings(home=folder / "storage")
    export = with_reference_film(generate_lab_export(600, 5, messy=False), [*STEADY, PUSHED])
    acquire(settings, str(write_lab_export(export, folder / "lab.csv")))
    frame = FeatureStore(settings.resolved_feature_store_uri).read().frame
    registry = evaluation_registry(settings)
    registry.setup()
    return Home(settings, frame, str(int(export[CONSECUTIVO].max())), registry)


def outcome_of(home: Home) -> ControlChartOutcome:
    with job_context("evaluate", home.settings, config=CONFIG) as context:
        return chart_reference_films(context, home.frame)


def new_run(registry: Registry, name: str) -> str:
    return registry.start_run(run_name=name, tags={}, start_time_ms=1)


def test_a_reference_film_pushed_out_of_its_limits_raises_its_event(home: Home) -> None:
    outcome = outcome_of(home)

    nist = [s for s in outcome.series if s.title == "NIST-ROJA · NIST-1"]
    assert len(nist) == 1
    assert nist[0].status == "out_of_control"
    assert [p.measured for p in nist[0].points] == pytest.approx([*STEADY, PUSHED])
    (event,) = outcome.events  # the generated reference tests: one result per series, no event
    assert (event.kind, event.severity, event.subject) == (
        "reference_out_of_control",
        "critical",
        "NIST-ROJA · NIST-1",
    )
    assert event.figures["record"] == home.pushed_record
    assert event.figures["value"] == pytest.approx(PUSHED, rel=1e-3)
    assert float(event.figures["upper"] or 0) < PUSHED


def test_every_reference_result_of_the_store_is_on_a_chart_once(home: Home) -> None:
    series = outcome_of(home).series
    references = home.frame[~home.frame["is_product"]]
    charted = references[
        references["Estructura"].isin(["CALIBRACION", "NIST-ROJA", "MATERIAL-REF"])
    ]

    assert sum(p.replicates for s in series for p in s.points) == len(charted)
    assert sum(len(s.points) for s in series) == charted["test_id"].nunique()


def test_the_events_point_at_the_run_that_recorded_them(home: Home) -> None:
    linked = outcome_of(home).for_run("abc", "7")

    assert [(e.run_id, e.experiment_id) for e in linked.events] == [("abc", "7")]


def test_a_run_gets_the_chart_the_points_and_the_series(home: Home, tmp_path: Path) -> None:
    series = outcome_of(home).series
    run_id = new_run(home.registry, "with-chart")

    written = log_control_chart(home.registry, run_id, series, params=CONFIG.control_chart)

    expected = [f"{ARTIFACT_DIR}/{name}" for name in ("chart.png", "points.csv", "series.json")]
    assert written == sorted(expected)
    assert sorted(home.registry.list_artifacts(run_id)) == sorted(expected)
    run = home.registry.get_run(run_id)
    assert run.metrics["control_chart_series"] == len(series)
    assert run.metrics["control_chart_out_of_control_series"] == 1
    assert run.metrics["control_chart_violations_NIST_ROJA"] == 1
    assert run.params["control_chart_baseline_points"] == "10"
    folder = Path(home.registry.client.download_artifacts(run_id, ARTIFACT_DIR, str(tmp_path)))
    stored = json.loads((folder / "series.json").read_text(encoding="utf-8"))
    assert [ChartSeries.model_validate(s) for s in stored] == series
    points = pd.read_csv(folder / "points.csv")
    assert len(points) == sum(len(s.points) for s in series)
    assert (points["violations"].fillna("") != "").sum() == 1


def test_no_series_write_nothing(home: Home) -> None:
    run_id = new_run(home.registry, "no-chart")

    assert log_control_chart(home.registry, run_id, []) == []
    assert home.registry.list_artifacts(run_id) == []
    assert home.registry.get_run(run_id).metrics == {}


def test_a_drawing_error_writes_nothing(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    import permeability.plots.control_chart as plots

    def broken(*args: object, **kwargs: object) -> Path:
        raise RuntimeError("no canvas")

    monkeypatch.setattr(plots, "control_chart_figure", broken)
    run_id = new_run(home.registry, "broken-chart")

    with pytest.raises(RuntimeError, match="no canvas"):
        log_control_chart(home.registry, run_id, outcome_of(home).series)
    assert home.registry.list_artifacts(run_id) == []
    assert home.registry.get_run(run_id).metrics == {}
