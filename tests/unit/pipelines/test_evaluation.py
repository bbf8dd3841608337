"""The evaluation job: what lands in MLflow, what a refusal leaves, compare and promote.

One storage home serves most tests (a realistic loop, built once): a feature store at v0,
versions 0.1 (KNN, the champion: a deliberately weaker model) and 0.2 (linear, physics
features) trained on it, predictions of 0.1 logged for the next batch of samples, that batch's
lab results acquired (v1), and version 0.3 trained on v1 (so it has nothing newer to be
evaluated on). A second small home gets drifted data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path

import pytest

from permeability.config import ProjectConfig, ScheduledJob, ScheduleParams, load_config
from permeability.errors import InvalidInputError, NotFoundError
from permeability.io.evaluation_runs import EVALUATION_EXPERIMENT
from permeability.io.exports import write_lab_export
from permeability.io.model_store import ModelStore
from permeability.io.registry import Registry
from permeability.io.tracking import RegistryConfig
from permeability.pipelines.evaluation import NothingToEvaluateError, evaluate
from permeability.pipelines.evaluation_request import EvaluationReport, evaluation_request_from_args
from permeability.settings import Settings
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec
from permeability.synthetic.sampling import DriftSpec

FIRST_ROWS = 900
NEXT_ROWS = 500


@dataclass(frozen=True)
class Home:
    settings: Settings
    exports: Path

    @property
    def evaluation_registry(self) -> Registry:
        config = RegistryConfig.from_settings(self.settings)
        return Registry(replace(config, experiment_name=EVALUATION_EXPERIMENT))

    def evaluation_runs(self) -> int:
        registry = self.evaluation_registry
        if not registry.has_store():
            return 0
        registry.setup()
        return registry.count_runs()

    def champion(self) -> str | None:
        found = Registry.from_settings(self.settings).champion()
        return None if found is None else found.label


def _acquire(settings: Settings, path: Path) -> None:
    from permeability.pipelines.acquisition import acquire

    report = acquire(settings, str(path))
    assert report.feature_set_version is not None


def _train(
    settings: Settings, label: str, model: str, params: dict[str, object] | None = None
) -> None:
    from permeability.pipelines.training import train
    from permeability.pipelines.training_spec import TrainingSpec

    train(settings, TrainingSpec.parse(model=model, version=label, test_size=0.25, params=params))


def _export(folder: Path, name: str, rows: int, seed: int, **options: object) -> Path:
    frame = generate_lab_data(rows, seed, mess=MessSpec.none(), **options)  # type: ignore[arg-type]
    return write_lab_export(frame, folder / name)


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Home:
    from permeability.pipelines.predict import predict_file
    from permeability.pipelines.promotion import promote

    root = tmp_path_factory.mktemp("evaluation-job")
    settings = Settings(home=root / "storage")
    exports = root / "exports"
    _acquire(settings, _export(exports, "first.csv", FIRST_ROWS, 41))
    # A deliberately blunt champion (100 neighbours, unweighted), so that the linear
    # challenger beats it by more than the 5 % margin whatever the seed.
    _train(settings, "0.1", "KNeighborsRegressor", {"n_neighbors": 100, "weights": "uniform"})
    _train(settings, "0.2", "LinearRegression")
    promote(settings, "0.1", reason="first version")
    later = _export(
        exports, "next.csv", NEXT_ROWS, 42, start_id=FIRST_ROWS + 1, start_date=date(2026, 3, 1)
    )
    predict_file(settings, input_path=later, output_path=root / "scored.csv", version="0.1")
    _acquire(settings, later)
    _train(settings, "0.3", "LinearRegression")
    return Home(settings, exports)


def test_the_champion_is_evaluated_in_one_linked_run_with_every_metric(loop: Home) -> None:
    before = loop.evaluation_runs()
    report = evaluate(loop.settings)
    assert [e.version for e in report.evaluated] == ["0.1"]
    item = report.evaluated[0]
    assert item.is_champion
    assert item.recent_rows == NEXT_ROWS
    assert item.served_rows == NEXT_ROWS  # every logged prediction got its lab result
    assert item.recent is not None
    assert item.served is not None
    assert loop.evaluation_runs() == before + 1

    run = loop.evaluation_registry.get_run(str(item.run_id))
    assert run.status == "FINISHED"
    for name in (
        "r2",
        "mae",
        "mse",
        "rmse",
        "mape",
        "coverage",
        "wrong_approvals",
        "wrong_rejections",
        "decisions_approve",
        "decisions_reject",
        "decisions_retest",
        "served_mae",
        "served_coverage",
        "drift_flagged",
    ):
        assert name in run.metrics, name
    for structure in item.recent.per_structure:
        safe = structure.structure.replace(" ", "_").replace("/", "_")
        assert run.metrics[f"coverage_{safe}"] == pytest.approx(structure.coverage)
        assert run.metrics[f"mae_{safe}"] == pytest.approx(structure.mae)
    assert run.metrics["mae"] == pytest.approx(item.recent.metrics["mae"])
    # The logged guide values are scored as served: the same model on the same samples.
    assert item.served.n == item.recent.n
    assert run.metrics["served_mae"] == pytest.approx(item.recent.metrics["mae"], rel=1e-6)
    metadata = ModelStore(loop.settings.paths.models).read_metadata("0.1")
    assert run.tags["training_run_id"] == metadata["lineage"]["run_id"]
    assert run.tags["version_label"] == "0.1"
    assert run.tags["evaluated_feature_set_version"] == "1"
    assert run.tags["training_feature_set_version"] == "0"
    artifacts = set(loop.evaluation_registry.list_artifacts(str(item.run_id)))
    assert {
        "plots/error_over_time.png",
        "plots/coverage_per_structure.png",
        "plots/residuals.png",
        "plots/served_error_over_time.png",
        "tables/per_structure.csv",
        "tables/drift.csv",
        "evaluation.json",
    } <= artifacts


def test_all_versions_evaluates_each_and_skips_one_with_nothing_new(loop: Home) -> None:
    report = evaluate(loop.settings, all_versions=True)
    assert sorted(e.version for e in report.evaluated) == ["0.1", "0.2"]
    assert set(report.skipped) == {"0.3"}
    assert "no labelled data" in report.skipped["0.3"]
    assert len({e.run_id for e in report.evaluated}) == 2
    for item in report.evaluated:  # unshifted newer data: no alarm, in the run too
        assert item.drift is not None
        assert not item.drift.drifted, item.drift.summary()
        assert loop.evaluation_registry.get_run(str(item.run_id)).tags["drift"] == "none"


def test_since_keeps_only_recent_rows(loop: Home) -> None:
    report = evaluate(loop.settings, version="0.2", since=date(2027, 1, 1))
    item = report.evaluated[0]
    assert 0 < item.recent_rows < NEXT_ROWS
    assert item.recent is not None
    assert item.recent.first is not None
    assert item.recent.first >= "2027-01-01"


def test_compare_scores_versions_on_the_same_rows_without_promoting(loop: Home) -> None:
    report = evaluate(loop.settings, compare=True)
    assert report.comparison is not None
    assert report.comparison.champion == "0.1"
    assert report.comparison.best_challenger == "0.2"
    assert report.comparison.challenger_wins
    assert "0.3" in report.skipped  # trained on the newest data: nothing to compare it on
    assert len({e.recent_rows for e in report.evaluated}) == 1
    assert report.promoted is None
    assert loop.champion() == "0.1"
    run = loop.evaluation_registry.get_run(str(report.evaluated[0].run_id))
    assert run.tags["comparison_winner"] == "0.2"


def test_promote_if_better_moves_the_champion_and_records_why(loop: Home) -> None:
    from permeability.pipelines.promotion import promote

    try:
        report = evaluate(loop.settings, promote_if_better=0.05)
        assert report.promoted == "0.2"
        assert loop.champion() == "0.2"
        promoted = Registry.from_settings(loop.settings).find_label("0.2")
        assert promoted is not None
        assert "beats champion 0.1" in promoted.tags["promotion_reason"]
        assert promoted.tags["promoted_by"] == "evaluate"
        assert "promoted 0.2" in report.summary()
    finally:
        promote(loop.settings, "0.1", reason="restore the test's champion")


def test_a_margin_the_challenger_does_not_reach_promotes_nothing(loop: Home) -> None:
    report = evaluate(loop.settings, promote_if_better=0.99)
    assert report.promoted is None
    assert report.comparison is not None
    assert not report.comparison.challenger_wins
    assert loop.champion() == "0.1"


# -- refusals write nothing -----------------------------------------------------------------


def test_an_unknown_version_is_refused_listing_the_known_ones(loop: Home) -> None:
    before = loop.evaluation_runs()
    with pytest.raises(NotFoundError, match=r"'9\.9' does not exist; available versions: 0\.1"):
        evaluate(loop.settings, version="9.9")
    assert loop.evaluation_runs() == before


def test_an_empty_time_window_is_refused_and_writes_nothing(loop: Home) -> None:
    before = loop.evaluation_runs()
    with pytest.raises(NothingToEvaluateError, match="since 2030-01-01"):
        evaluate(loop.settings, since=date(2030, 1, 1))
    assert loop.evaluation_runs() == before


def test_a_version_without_newer_labelled_data_is_refused_and_writes_nothing(loop: Home) -> None:
    before = loop.evaluation_runs()
    with pytest.raises(NothingToEvaluateError, match="no labelled data arrived after its training"):
        evaluate(loop.settings, version="0.3")
    assert loop.evaluation_runs() == before


def test_contradictory_or_bad_arguments_are_refused() -> None:
    settings = Settings(home=Path("/nonexistent-never-created"))
    with pytest.raises(InvalidInputError, match="either a version or all versions"):
        evaluate(settings, version="0.1", all_versions=True)
    with pytest.raises(InvalidInputError, match="promote_if_better"):
        evaluate(settings, promote_if_better=1.5)
    with pytest.raises(InvalidInputError, match=r"\.\."):
        evaluate(settings, version="../x")
    assert not Path("/nonexistent-never-created").exists()


def test_a_home_without_versions_says_to_train_first(settings: Settings) -> None:
    with pytest.raises(NotFoundError, match="train one first"):
        evaluate(settings, all_versions=True)
    with pytest.raises(NotFoundError, match="no champion"):
        evaluate(settings)
    assert not settings.paths.mlflow_db.exists()


# -- drift flagged in the run and the log ------------------------------------------------------


def test_drifted_recent_data_is_flagged_in_the_run_and_the_log(tmp_path: Path) -> None:
    from permeability.pipelines.promotion import promote

    settings = Settings(home=tmp_path / "drift-home")
    drifted = Home(settings, tmp_path / "exports")
    _acquire(settings, _export(drifted.exports, "first.csv", 600, 51))
    _train(settings, "0.1", "LinearRegression")
    promote(settings, "0.1")
    shifted = _export(
        drifted.exports,
        "shifted.csv",
        300,
        52,
        start_id=601,
        start_date=date(2026, 6, 1),
        drift=DriftSpec(humidity_shift_pct=-10.0),
    )
    _acquire(settings, shifted)
    report: EvaluationReport = evaluate(settings)
    assert report.drift_flagged
    item = report.evaluated[0]
    assert item.drift is not None
    assert any(t.feature == "Porc_Humedad" for t in item.drift.flagged)
    run = drifted.evaluation_registry.get_run(str(item.run_id))
    assert run.tags["drift"] == "flagged"
    assert "Porc_Humedad" in run.tags["drift_summary"]
    assert run.metrics["drift_flagged"] == 1.0
    log = (settings.paths.logs / "evaluate.log").read_text(encoding="utf-8")
    assert "WARNING" in log
    assert "drift: Porc_Humedad" in log


# -- scheduled evaluations --------------------------------------------------------------------


def test_schedule_args_become_a_request() -> None:
    request = evaluation_request_from_args(
        {"all": True, "since_days": 30}, now=datetime(2026, 5, 31, 12, 0)
    )
    assert request.all_versions
    assert request.since == datetime(2026, 5, 1, 12, 0)
    compare = evaluation_request_from_args({"promote_if_better": 0.1})
    assert compare.comparing
    with pytest.raises(InvalidInputError, match="unknown args"):
        evaluation_request_from_args({"versions": "0.1"})
    with pytest.raises(InvalidInputError, match="since_days"):
        evaluation_request_from_args({"since_days": 0})
    with pytest.raises(InvalidInputError, match="not both"):
        evaluation_request_from_args({"since": "2026-01-01", "since_days": 3})


def test_config_accepts_several_evaluation_jobs_each_with_its_cron(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "schedule:\n"
        "  jobs:\n"
        "    - {name: acquire, kind: acquire, cron: '0 2 * * *'}\n"
        "    - {name: nightly, kind: evaluate, cron: '30 2 * * *', args: {since_days: 7}}\n"
        "    - {name: weekly, kind: evaluate, cron: '0 3 * * 1', args: {compare: true,"
        " promote_if_better: 0.05}}\n",
        encoding="utf-8",
    )
    config: ProjectConfig = load_config(path)
    kinds = [(job.name, job.kind) for job in config.schedule.jobs]
    assert kinds == [("acquire", "acquire"), ("nightly", "evaluate"), ("weekly", "evaluate")]


def test_scheduled_evaluation_runs_and_a_quiet_night_is_not_a_failure(loop: Home) -> None:
    from permeability.pipelines.base import job_context
    from permeability.runtime.scheduler import JOB_KINDS, run_job

    assert "evaluate" in JOB_KINDS
    config = ProjectConfig(
        schedule=ScheduleParams(
            jobs=(
                ScheduledJob(name="nightly", kind="evaluate", cron="30 2 * * *"),
                ScheduledJob(
                    name="quiet",
                    kind="evaluate",
                    cron="0 3 * * *",
                    args={"since": "2031-01-01"},
                ),
            )
        )
    )
    before = loop.evaluation_runs()
    with job_context("schedule", loop.settings, config=config) as ctx:
        assert all(run_job(ctx, job) for job in config.schedule.jobs)
    assert loop.evaluation_runs() == before + 1
    log = (loop.settings.paths.logs / "schedule.log").read_text(encoding="utf-8")
    assert "job quiet done: nothing to evaluate" in log


# -- the command line -------------------------------------------------------------------------


def test_cli_prints_the_report_as_json_on_the_last_line(
    loop: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from permeability.cli.main import app

    monkeypatch.setenv("PERMEABILITY_HOME", str(loop.settings.home))
    result = CliRunner().invoke(app, ["evaluate", "--version", "0.2", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["evaluated"][0]["version"] == "0.2"
    assert report["evaluated"][0]["recent_rows"] == NEXT_ROWS


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--version", "9.9"], "error: version '9.9' does not exist; available versions: 0.1"),
        (["--version", "0.1", "--all"], "error: request: give either a version or all versions"),
        (["--since", "2030-01-01"], "error: nothing to evaluate: version 0.1: no labelled data"),
        (["--promote-if-better", "2"], "error: promote_if_better: Input should be less than 1"),
    ],
)
def test_cli_refusals_exit_non_zero_with_a_one_line_reason(
    loop: Home, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    from typer.testing import CliRunner

    from permeability.cli.main import app

    monkeypatch.setenv("PERMEABILITY_HOME", str(loop.settings.home))
    before = loop.evaluation_runs()
    result = CliRunner().invoke(app, ["evaluate", *args])
    assert result.exit_code == 1
    reason = result.stderr.strip().splitlines()[-1]  # earlier lines are the job's log events
    assert reason.startswith(message), result.stderr
    assert loop.evaluation_runs() == before
