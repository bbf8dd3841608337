"""The model commands: train, promote, versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from permeability.io.model_store import ModelStore
from permeability.io.registry import Registry
from permeability.services.training.app import create_training_app
from permeability.settings import Settings
from tests.builders import fill_feature_store
from tests.unit.cli.cli_support import invoke, last_json


@pytest.fixture(scope="module")
def stocked_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-training")
    fill_feature_store(Settings(home=root / "storage"), root / "exports", rows=300, seed=8)
    return root / "storage"


@pytest.fixture
def stocked(monkeypatch: pytest.MonkeyPatch, stocked_home: Path) -> Settings:
    monkeypatch.setenv("PERMEABILITY_HOME", str(stocked_home))
    return Settings(home=stocked_home)


def test_train_prints_the_api_result_object_as_json(stocked: Settings) -> None:
    result = invoke(
        "train", "--model", "LinearRegression", "--version", "cli-0.1", "--test-size", "0.25",
        "--json",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    payload = last_json(result.stdout)
    openapi = create_training_app(stocked).openapi()
    answer = openapi["paths"]["/train"]["post"]["responses"]["201"]["content"]
    documented = answer["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(payload) == set(openapi["components"]["schemas"][documented]["properties"])
    assert payload["version"] == "cli-0.1"
    assert payload["chosen_model"] == "LinearRegression"
    assert {"r2", "mae", "mse"} <= set(payload["metrics"])
    registry = Registry.from_settings(stocked)
    assert registry.get_run(payload["run_id"]).status == "FINISHED"
    registered = registry.find_label("cli-0.1")
    assert registered is not None
    assert registered.version == payload["registry_version"]
    assert ModelStore(stocked.paths.models).inspect("cli-0.1").status == "available"


def test_train_with_extras_and_a_human_summary(stocked: Settings) -> None:
    result = invoke(
        "train", "--model", "Ridge", "--version", "cli-extras", "--test-size", "0.3",
        "--params", '{"alpha": 0.2}', "--cv", "3", "--description", "from the shell",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("version cli-extras: Ridge on feature set v")
    assert "mae=" in summary
    metadata = ModelStore(stocked.paths.models).read_metadata("cli-extras")
    assert metadata["params"]["alpha"] == 0.2
    assert metadata["description"] == "from the shell"
    assert metadata["cv_scores"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "Nope", "--version", "x1", "--test-size", "0.25"], "valid models:"),
        (["--model", "Ridge", "--version", "../x", "--test-size", "0.25"], "'/'"),
        (["--model", "Ridge", "--version", "x1", "--test-size", "1.5"], "test_size"),
        (["--model", "Ridge", "--version", "x1", "--test-size", "0.25", "--params", "{"], "JSON"),
        (
            ["--model", "Ridge", "--version", "x1", "--test-size", "0.25", "--params", "[1]"],
            "object",
        ),
        (["--model", "Ridge", "--version", "x1", "--test-size", "0.25", "--cv", "30"], "cv"),
        (
            ["--model", "Ridge", "--version", "x1", "--test-size", "0.25", "--params", '{"a": 1}'],
            "valid parameters",
        ),
    ],
)
def test_refusals_exit_1_with_one_line_and_write_nothing(
    stocked: Settings, args: list[str], message: str
) -> None:
    before = ModelStore(stocked.paths.models).labels()

    result = invoke("train", *args, "--json")

    assert result.exit_code == 1
    assert result.stdout == ""
    reason = result.stderr.strip().splitlines()[-1]  # after the job's own log lines, if any
    assert reason.startswith("error: ")
    assert message in reason
    assert ModelStore(stocked.paths.models).labels() == before


def test_a_duplicate_label_exits_1(stocked: Settings) -> None:
    first = invoke("train", "--model", "Ridge", "--version", "dup", "--test-size", "0.25")
    assert first.exit_code == 0, first.output

    second = invoke("train", "--model", "Lasso", "--version", "dup", "--test-size", "0.25")

    assert second.exit_code == 1
    assert "'dup' already exists" in second.stderr
    assert ModelStore(stocked.paths.models).read_metadata("dup")["chosen_model"] == "Ridge"


def test_an_empty_feature_store_exits_1_saying_so(settings: Settings) -> None:
    result = invoke("train", "--model", "Ridge", "--version", "0.1", "--test-size", "0.25")

    assert result.exit_code == 1
    reason = result.stderr.strip().splitlines()[-1]
    assert reason.startswith("error: ")
    assert "empty" in reason
    assert ModelStore(settings.paths.models).labels() == []


def test_versions_and_promote(stocked: Settings) -> None:
    trained = invoke("train", "--model", "Ridge", "--version", "promo", "--test-size", "0.25")
    assert trained.exit_code == 0, trained.output

    promoted = invoke("promote", "promo", "--reason", "best so far", "--json")

    assert promoted.exit_code == 0, promoted.output
    payload = last_json(promoted.stdout)
    assert (payload["version"], payload["alias"]) == ("promo", "champion")
    client = Registry.from_settings(stocked).client
    champion = client.get_model_version_by_alias("permeability", "champion")
    assert champion.tags["version_label"] == "promo"
    assert champion.tags["promotion_reason"] == "best so far"
    listed = invoke("versions", "--json")
    assert listed.exit_code == 0, listed.output
    report = last_json(listed.stdout)
    assert report["champion"] == "promo"
    statuses = {v["version"]: v["status"] for v in report["versions"]}
    assert statuses["promo"] == "champion"
    human = invoke("versions")
    assert any(
        line.startswith("promo") and "champion" in line for line in human.stdout.splitlines()
    )


def test_promoting_an_unknown_version_exits_1(stocked: Settings) -> None:
    result = invoke("promote", "never-trained")
    assert result.exit_code == 1
    assert "'never-trained' is not in the model store" in result.stderr


def test_versions_on_an_empty_home(settings: Settings) -> None:
    result = invoke("versions")
    assert result.exit_code == 0
    assert result.stdout.strip() == "no versions trained yet"
    assert not settings.paths.mlflow_db.exists()
