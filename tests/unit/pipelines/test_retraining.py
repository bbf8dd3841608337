"""The retrain job: each decision recorded, challengers trained apart from their holdout, judged,
kept, promoted or put up for approval.

One storage home (built once): the lab's export layout (tests of several replicates), 800 rows
at v0; version 0.1, a deliberately blunt KNN (100 neighbours, unweighted), is the champion;
400 newer rows acquired (v1), so 0.1 has new tests to be judged on and an ``auto`` challenger
beats it by far more than the default 5 % margin. The tests run in order on it: those that
train nothing first, then a challenger on v1 (kept: a 0.99 margin), one on newer data (v2,
awaiting approval) and one promoted (0.1 is the champion again afterwards).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from permeability.config import ProjectConfig
from permeability.errors import InvalidInputError, NotFoundError
from permeability.io.exports import write_lab_export
from permeability.io.feature_store import FeatureStore
from permeability.io.model_store import ModelStore
from permeability.io.monitoring_snapshot import write_snapshot
from permeability.io.registry import Registry
from permeability.io.tracking import RegistryConfig
from permeability.monitoring.events import Event
from permeability.pipelines.retraining import force_from_args, retrain
from permeability.pipelines.retraining_record import RETRAINING_EXPERIMENT, RetrainReport
from permeability.pipelines.training_spec import TrainingSpec
from permeability.settings import Settings
from permeability.synthetic.export import generate_lab_export
from tests.monitoring_snapshots import bare_snapshot

FIRST_ROWS = 800
NEXT_ROWS = 400


@dataclass(frozen=True)
class Home:
    settings: Settings

    @property
    def runs(self) -> Registry:
        config = RegistryConfig.from_settings(self.settings)
        registry = Registry(replace(config, experiment_name=RETRAINING_EXPERIMENT))
        registry.setup()
        return registry

    @property
    def registry(self) -> Registry:
        return Registry.from_settings(self.settings)

    def labels(self) -> list[str]:
        return ModelStore(self.settings.paths.models).labels()

    def registered(self) -> int:
        return len(self.registry.list_versions())

    def champion(self) -> str | None:
        found = self.registry.champion()
        return None if found is None else found.label


def _acquire(settings: Settings, folder: Path, rows: int, seed: int, **options: Any) -> None:
    from permeability.pipelines.acquisition import acquire

    frame = generate_lab_export(rows, seed, messy=False, **options)
    report = acquire(settings, str(write_lab_export(frame, folder / f"lab_{seed}.csv")))
    assert report.feature_set_version is not None


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    from permeability.pipelines.promotion import promote
    from permeability.pipelines.training import train

    root = tmp_path_factory.mktemp("retraining-job")
    settings = Settings(home=root / "storage")
    _acquire(settings, root, FIRST_ROWS, 71)
    blunt = {"n_neighbors": 100, "weights": "uniform"}
    train(
        settings,
        TrainingSpec.parse(
            model="KNeighborsRegressor", version="0.1", test_size=0.25, params=blunt
        ),
    )
    promote(settings, "0.1", reason="first version")
    _acquire(settings, root, NEXT_ROWS, 72, start_id=FIRST_ROWS + 1, start_date=date(2026, 3, 1))
    return Home(settings)


def _config(**retraining: Any) -> ProjectConfig:
    base = ProjectConfig()
    return base.model_copy(update={"retraining": base.retraining.model_copy(update=retraining)})


@pytest.fixture
def champion_restored(home: Home) -> Iterator[None]:
    """Put 0.1 back as the champion after a test that may promote."""
    from permeability.pipelines.promotion import promote

    try:
        yield
    finally:
        if home.champion() != "0.1":
            promote(home.settings, "0.1", reason="test clean-up")


def _snapshot(home: Home, champion: str, *kinds: str) -> None:
    events = [Event(kind=k, severity="warning", subject=champion) for k in kinds]  # type: ignore[arg-type]
    snapshot = bare_snapshot(champion, events, generated_at=datetime.now(UTC))
    write_snapshot(home.settings.paths.monitoring, snapshot)


def _no_snapshot(home: Home) -> None:
    (home.settings.paths.monitoring / "latest.json").unlink(missing_ok=True)


def _assert_recorded(home: Home, report: RetrainReport) -> dict[str, Any]:
    run = home.runs.get_run(report.run_id)
    assert run.status == "FINISHED"
    assert run.tags["decision"] == report.decision
    assert run.tags["champion"] == report.champion
    assert run.tags["reason"] == report.reason[:5000]
    assert run.tags["challenger"] == (report.challenger or "")
    assert run.tags["training_run_id"] == (report.training_run_id or "")
    artifacts = set(home.runs.list_artifacts(report.run_id))
    assert {"reason.txt", "retraining.json"} <= artifacts
    return {"params": run.params, "metrics": run.metrics, "artifacts": artifacts}


# -- no challenger --------------------------------------------------------------------------


def test_no_trigger_is_a_recorded_decision_and_trains_nothing(home: Home) -> None:
    _no_snapshot(home)
    labels, registered = home.labels(), home.registered()
    report = retrain(home.settings, config=_config(min_new_tests=10_000))
    assert report.decision == "no_trigger"
    assert report.challenger is None
    assert report.champion == "0.1"
    assert report.feature_set_version == 1
    assert 0 < report.new_tests <= NEXT_ROWS  # tests, not rows: replicates share one
    assert report.new_tests < NEXT_ROWS
    assert "no retraining trigger is met" in report.reason
    assert "not assessed: no evaluation has been recorded" in report.reason
    assert f"{report.new_tests} new labelled test(s)" in report.reason
    assert home.labels() == labels
    assert home.registered() == registered
    recorded = _assert_recorded(home, report)
    assert recorded["params"]["triggers_met"] == ""
    assert recorded["params"]["min_new_tests"] == "10000"
    assert recorded["params"]["auto_promote"] == "False"
    assert recorded["metrics"]["new_tests"] == report.new_tests
    assert "decision: no_trigger" in report.summary()


def test_too_few_tests_for_a_holdout_trains_nothing(home: Home) -> None:
    labels = home.labels()
    report = retrain(home.settings, force=True, config=_config(min_holdout_tests=10_000))
    assert report.decision == "too_few_tests"
    assert report.challenger is None
    assert report.reason.startswith("forced by the request; but ")
    assert "retraining.min_holdout_tests" in report.reason
    assert home.labels() == labels
    assert _assert_recorded(home, report)["params"]["force"] == "True"


# -- a challenger ---------------------------------------------------------------------------


def test_drift_trains_a_challenger_that_cannot_win_a_099_margin_and_is_kept(home: Home) -> None:
    _snapshot(home, "0.1", "drift")
    registered = home.registered()
    config = _config(min_new_tests=10_000, margin=0.99, auto_promote=True)
    report = retrain(home.settings, config=config)

    assert report.decision == "kept"
    assert [t.name for t in report.triggers if t.met] == ["drift"]
    challenger = str(report.challenger)
    assert challenger.startswith("retrain-")
    assert challenger in home.labels()
    assert home.registered() == registered + 1
    assert home.champion() == "0.1"
    assert report.promoted is None
    assert report.comparison is not None
    assert report.comparison.best_challenger == challenger
    assert not report.comparison.challenger_wins
    assert "stays available" in report.reason

    holdout = report.holdout
    assert holdout is not None
    assert holdout.learn_tests > 0
    assert len(holdout.tests) == holdout.window_tests - holdout.learn_tests
    assert report.comparison.n == len(holdout.tests)  # one row per test, every test
    assert set(report.scores) == {"0.1", challenger}

    # The challenger never saw a holdout test, and says so in its lineage and run.
    metadata = ModelStore(home.settings.paths.models).read_metadata(challenger)
    assert sorted(metadata["lineage"]["excluded_test_ids"]) == sorted(holdout.tests)
    assert metadata["lineage"]["feature_set_version"] == 1
    assert metadata["model"] == "auto"
    frame = FeatureStore(home.settings.resolved_feature_store_uri).read().frame
    held_rows = int(frame["test_id"].isin(holdout.tests).sum())
    training_run = home.registry.get_run(str(report.training_run_id))
    assert training_run.params["excluded_tests"] == str(len(holdout.tests))
    assert training_run.params["data_rows_excluded_tests"] == str(held_rows)
    split_apart = 0 if metadata["split"]["calibration_method"] == "cross-conformal" else 1
    seen = metadata["n_train"] + metadata["n_test"] + split_apart * metadata["n_calibration"]
    non_product = int(training_run.params["data_rows_excluded_non_product"])
    assert seen == len(frame) - held_rows - non_product

    recorded = _assert_recorded(home, report)
    assert recorded["params"]["holdout_tests"] == str(len(holdout.tests))
    assert recorded["params"]["margin"] == "0.99"
    assert recorded["params"]["triggers_met"] == "drift"
    assert recorded["metrics"]["champion_mae"] == pytest.approx(report.scores["0.1"].metrics["mae"])
    assert recorded["metrics"]["challenger_mae"] == pytest.approx(
        report.scores[challenger].metrics["mae"]
    )
    assert recorded["metrics"]["champion_n_tests"] == len(holdout.tests)
    assert {"tables/champion_per_test.csv", "tables/challenger_per_test.csv"} <= recorded[
        "artifacts"
    ]

    # The same trigger on the same data against the same champion does not train again.
    again = retrain(home.settings, config=config)
    assert again.decision == "no_trigger"
    assert f"{challenger} (retraining run {report.run_id}) was already trained" in again.reason
    assert home.registered() == registered + 1


def test_findings_about_another_champion_do_not_trigger(home: Home) -> None:
    _snapshot(home, "0.0", "drift", "degradation")
    report = retrain(home.settings, config=_config(min_new_tests=10_000))
    assert report.decision == "no_trigger"
    assert "is about 0.0, not the champion 0.1" in report.reason


def test_enough_new_tests_train_a_winner_that_awaits_approval(home: Home, tmp_path: Path) -> None:
    _no_snapshot(home)
    # Newer lab results: a feature-set version no challenger was trained on yet.
    later = FIRST_ROWS + NEXT_ROWS + 1
    _acquire(home.settings, tmp_path, 120, 73, start_id=later, start_date=date(2028, 6, 1))
    registered = home.registered()
    report = retrain(home.settings, config=_config(min_new_tests=20))

    assert report.decision == "awaiting_approval"
    assert [t.name for t in report.triggers if t.met] == ["new_tests"]
    assert report.feature_set_version == 2
    assert str(report.challenger).startswith("retrain-")
    assert report.comparison is not None
    assert report.comparison.challenger_wins
    assert report.comparison.improvement is not None
    assert report.comparison.improvement >= 0.05
    assert home.champion() == "0.1"
    assert home.registered() == registered + 1
    assert report.promoted is None
    assert f"permeability promote {report.challenger}" in report.reason
    [event] = report.events
    assert event.kind == "approval_needed"
    assert event.subject == report.challenger
    assert event.run_id == report.run_id
    assert event.figures["champion"] == "0.1"
    assert event.figures["tests"] == report.comparison.n
    recorded = _assert_recorded(home, report)
    assert recorded["metrics"]["improvement"] == pytest.approx(report.comparison.improvement)
    assert recorded["params"]["triggers_met"] == "new_tests"
    assert recorded["params"]["force"] == "False"


@pytest.mark.usefixtures("champion_restored")
def test_with_auto_promote_a_winner_becomes_the_champion(home: Home) -> None:
    report = retrain(home.settings, force=True, config=_config(auto_promote=True))
    assert report.decision == "promoted"
    assert report.promoted == report.challenger
    assert home.champion() == report.challenger
    assert report.events == []
    promoted = home.registry.find_label(str(report.challenger))
    assert promoted is not None
    assert promoted.tags["promoted_by"] == "retrain"
    assert f"retrain (run {report.run_id})" in promoted.tags["promotion_reason"]
    assert _assert_recorded(home, report)["params"]["auto_promote"] == "True"


# -- refusals -------------------------------------------------------------------------------


def test_a_persons_label_in_the_reserved_namespace_is_refused() -> None:
    with pytest.raises(
        InvalidInputError, match=r"version: .*starts with 'retrain-', a prefix reserved"
    ):
        TrainingSpec.parse(model="Ridge", version="retrain-20260101-000000", test_size=0.25)
    generated = TrainingSpec.generated(model="auto", version="retrain-20260101-000000")
    assert generated.version == "retrain-20260101-000000"
    assert TrainingSpec.parse(model="Ridge", version="my-retrain-1", test_size=0.25)


def test_training_refuses_to_exclude_tests_the_feature_set_lacks(home: Home) -> None:
    from permeability.pipelines.training import train

    labels = home.labels()
    spec = TrainingSpec.parse(
        model="LinearRegression", version="excl-1", test_size=0.25, excluded_tests=("T-nope",)
    )
    with pytest.raises(InvalidInputError, match=r"excluded_tests: 1 test id.*T-nope"):
        train(home.settings, spec)
    assert home.labels() == labels


def test_without_a_champion_retraining_is_refused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "storage")
    _acquire(settings, tmp_path, 60, 3)
    with pytest.raises(NotFoundError, match="no champion version is set"):
        retrain(settings)


@pytest.mark.parametrize(
    ("args", "expected"), [({}, False), ({"force": True}, True), ({"force": False}, False)]
)
def test_schedule_args_give_force(args: dict[str, Any], expected: bool) -> None:
    assert force_from_args(args) is expected


@pytest.mark.parametrize(
    ("args", "message"),
    [({"force": "yes"}, "args.force must be true or false"), ({"margin": 0.1}, r"unknown args")],
)
def test_bad_schedule_args_are_refused(args: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        force_from_args(args)
