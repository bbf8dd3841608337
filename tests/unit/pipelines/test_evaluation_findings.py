"""What an evaluation tells people: events, the reference films' chart run, the page's snapshot.

One home: a linear champion trained on a real-layout export with a steady reference film;
then a batch where every product reads three times its old WVTR (a process change) and the
reference film reads far above its limits; then a batch holding only one more reference test.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from permeability.config import ControlChartParams, ProjectConfig
from permeability.io.evaluation_runs import EVALUATION_EXPERIMENT
from permeability.io.exports import write_lab_export
from permeability.io.monitoring_snapshot import read_snapshot
from permeability.io.notifications.history import History
from permeability.io.registry import Registry
from permeability.io.tracking import RegistryConfig, RunRecord
from permeability.pipelines.evaluation import NothingToEvaluateError, evaluate
from permeability.settings import Settings
from permeability.synthetic.export import generate_lab_export
from tests.builders import reference_export_rows

FIRST_ROWS = 900
NEXT_ROWS = 300
STEADY = (2.40, 2.43, 2.38, 2.41, 2.39, 2.44, 2.37, 2.40, 2.42, 2.38)
#: A short baseline: the test's reference film has ten results before the shifted batch.
CONFIG = ProjectConfig(control_chart=ControlChartParams(baseline_points=8, min_points=6))


@dataclass(frozen=True)
class Home:
    settings: Settings
    root: Path

    def chart_run(self, run_id: str | None) -> RunRecord:
        config = RegistryConfig.from_settings(self.settings)
        registry = Registry(replace(config, experiment_name=EVALUATION_EXPERIMENT))
        registry.setup()
        [run] = [r for r in registry.runs_tagged("kind", "control_chart") if r.run_id == run_id]
        assert "control_chart/chart.png" in registry.list_artifacts(run.run_id)
        return run


def _acquire(settings: Settings, frame: pd.DataFrame, path: Path) -> None:
    from permeability.pipelines.acquisition import acquire

    acquire(settings, str(write_lab_export(frame, path)))


def _products(frame: pd.DataFrame) -> pd.Series:
    return ~frame["Estructura"].astype(str).str.contains(
        "CALIB|NIST|MATERIAL|ESTUDIO|REPORT|ANALISIS|MUESTRA"
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    from permeability.pipelines.promotion import promote
    from permeability.pipelines.training import train
    from permeability.pipelines.training_spec import TrainingSpec

    root = tmp_path_factory.mktemp("findings")
    settings = Settings(home=root / "storage")
    first = generate_lab_export(FIRST_ROWS, 21, messy=False)
    steady = reference_export_rows(
        first, STEADY, referencia="NIST-RED-7", first_id=50_001, start=date(2024, 2, 1)
    )
    _acquire(settings, pd.concat([first, steady], ignore_index=True), root / "first.csv")
    train(settings, TrainingSpec(model="LinearRegression", version="1.0", test_size=0.25))
    promote(settings, "1.0", reason="first")
    later = generate_lab_export(
        NEXT_ROWS, 22, messy=False, start_id=FIRST_ROWS + 1, start_date=date(2026, 6, 1)
    )
    products = _products(later)
    later.loc[products, "Permeabilidad"] = later.loc[products, "Permeabilidad"] * 3.0
    jump = reference_export_rows(
        first, (4.0,), referencia="NIST-RED-7", first_id=50_101, start=date(2026, 6, 2)
    )
    _acquire(settings, pd.concat([later, jump], ignore_index=True), root / "later.csv")
    return Home(settings, root)


def test_a_shifted_batch_raises_drift_and_degradation_of_the_champion(home: Home) -> None:
    report = evaluate(home.settings, config=CONFIG)
    kinds = {e.kind for e in report.events}
    assert {"drift", "degradation", "reference_out_of_control"} <= kinds
    degradation = next(e for e in report.events if e.kind == "degradation")
    assert degradation.subject == "1.0"
    assert float(degradation.figures["recent"] or 0) > float(degradation.figures["trained"] or 0)
    assert degradation.run_id == report.evaluated[0].run_id
    # Every event was recorded for the page and the channels (none configured here).
    recorded = [entry.event.kind for entry in History(home.settings.paths.notifications).entries()]
    assert set(recorded) >= kinds


def test_the_reference_film_above_its_limits_is_an_event_linking_the_chart_run(home: Home) -> None:
    report = evaluate(home.settings, config=CONFIG)
    [event] = [e for e in report.events if e.kind == "reference_out_of_control"]
    assert event.severity == "critical"  # beyond 3 sigma: rule 1
    assert event.figures["series"] == "NIST-RED-7"
    assert event.figures["value"] == pytest.approx(4.02, rel=0.01)
    assert event.run_id == report.control_chart_run_id
    run = home.chart_run(report.control_chart_run_id)
    assert run.status == "FINISHED"
    assert run.tags["evaluation_id"] == report.evaluation_id
    assert "NIST-RED-7" in run.tags["out_of_control"]


def test_the_snapshot_holds_the_champion_figures_with_their_window(home: Home) -> None:
    report = evaluate(home.settings, config=CONFIG)
    snapshot = read_snapshot(home.settings.paths.monitoring)
    assert snapshot.evaluation_id == report.evaluation_id
    assert snapshot.champion == "1.0"
    assert snapshot.run_id == report.evaluated[0].run_id
    recent = report.evaluated[0].recent
    assert recent is not None
    assert snapshot.window is not None
    assert snapshot.window.rows == recent.n
    assert 0 < snapshot.window.tests < snapshot.window.rows  # replicates: fewer tests than rows
    assert snapshot.trained["mae"] < snapshot.recent.metrics["mae"]  # type: ignore[union-attr]
    assert snapshot.drift is not None
    assert snapshot.drift.drifted
    [series] = [s for s in snapshot.control_chart if s.series == "NIST-RED-7"]
    assert series.status == "out_of_control"
    assert {e.kind for e in snapshot.events} == {e.kind for e in report.events}


def test_with_nothing_new_to_judge_the_instrument_is_still_checked(home: Home) -> None:
    template = generate_lab_export(5, 23, messy=False)
    low = reference_export_rows(
        template, (1.2,), referencia="NIST-RED-7", first_id=50_201, start=date(2029, 1, 8)
    )
    _acquire(home.settings, low, home.root / "reference-only.csv")
    with pytest.raises(NothingToEvaluateError):
        evaluate(home.settings, since=date(2029, 1, 1), config=CONFIG)
    snapshot = read_snapshot(home.settings.paths.monitoring)
    assert snapshot.champion == "1.0"  # the champion's figures are kept
    assert snapshot.recent is not None
    [event] = snapshot.events
    assert event.kind == "reference_out_of_control"
    assert float(event.figures["value"] or 0) < 2.0
