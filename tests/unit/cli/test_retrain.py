"""``permeability retrain``: the decision as a summary or JSON, refusals, the reserved labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from permeability.io.model_store import ModelStore
from permeability.settings import Settings
from tests.builders import fill_feature_store
from tests.unit.cli.cli_support import invoke, last_json


@pytest.fixture(scope="module")
def champion_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 0.1 trained on 300 samples and promoted; nothing newer."""
    from permeability.pipelines.promotion import promote
    from permeability.pipelines.training import train
    from permeability.pipelines.training_spec import TrainingSpec

    root = tmp_path_factory.mktemp("cli-retrain")
    settings = Settings(home=root / "storage")
    fill_feature_store(settings, root / "exports", rows=300, seed=9)
    train(settings, TrainingSpec.parse(model="LinearRegression", version="0.1", test_size=0.25))
    promote(settings, "0.1")
    return root / "storage"


@pytest.fixture
def with_champion(monkeypatch: pytest.MonkeyPatch, champion_home: Path) -> Settings:
    monkeypatch.setenv("PERMEABILITY_HOME", str(champion_home))
    return Settings(home=champion_home)


def test_retrain_prints_the_decision_one_fact_a_line(with_champion: Settings) -> None:
    result = invoke("retrain")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    decision = next(i for i, line in enumerate(lines) if line.startswith("decision: "))
    assert lines[decision] == "decision: no_trigger"
    assert lines[decision + 1].startswith("reason: no retraining trigger is met")
    assert lines[decision + 2] == "triggers met: none"
    assert lines[-1].startswith("run: ")
    assert "(permeability-retraining)" in lines[-1]


def test_retrain_force_json_is_the_report(with_champion: Settings) -> None:
    before = ModelStore(with_champion.paths.models).labels()
    result = invoke("retrain", "--force", "--json")
    assert result.exit_code == 0, result.output
    payload = last_json(result.stdout)
    assert payload["decision"] == "too_few_tests"  # nothing new to judge a challenger on
    assert payload["champion"] == "0.1"
    assert [t["name"] for t in payload["triggers"] if t["met"]] == ["force"]
    assert payload["run_id"]
    assert ModelStore(with_champion.paths.models).labels() == before


def test_retrain_without_a_champion_exits_1_saying_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "other"
    fill_feature_store(Settings(home=home), tmp_path / "exports", rows=60, seed=2)
    monkeypatch.setenv("PERMEABILITY_HOME", str(home))
    result = invoke("retrain")
    assert result.exit_code == 1
    reason = result.stderr.strip().splitlines()[-1]
    assert reason.startswith("error: no champion version is set")


def test_retrain_on_an_empty_home_exits_1(settings: Settings) -> None:
    result = invoke("retrain")
    assert result.exit_code == 1
    assert "empty" in result.stderr.strip().splitlines()[-1]


def test_train_refuses_a_label_in_the_retrain_namespace(with_champion: Settings) -> None:
    before = ModelStore(with_champion.paths.models).labels()
    result = invoke(
        "train", "--model", "Ridge", "--version", "retrain-20260101-000000", "--test-size", "0.25"
    )
    assert result.exit_code == 1
    reason = result.stderr.strip().splitlines()[-1]
    assert "starts with 'retrain-', a prefix reserved" in reason
    assert ModelStore(with_champion.paths.models).labels() == before


def test_help_lists_retrain() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert "retrain" in result.stdout
