"""The training commands: train, promote, versions, serve, ui."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from permeability.cli.main import app
from permeability.io.model_store import ModelStore
from permeability.io.registry import Registry
from permeability.services.training.app import create_training_app
from permeability.settings import Settings
from tests.builders import fill_feature_store


@pytest.fixture(scope="module")
def stocked_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-training")
    fill_feature_store(Settings(home=root / "storage"), root / "exports", rows=300, seed=8)
    return root / "storage"


@pytest.fixture
def stocked(monkeypatch: pytest.MonkeyPatch, stocked_home: Path) -> Settings:
    monkeypatch.setenv("PERMEABILITY_HOME", str(stocked_home))
    return Settings(home=stocked_home)


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def _last_json(output: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return parsed


def test_train_prints_the_api_result_object_as_json(stocked: Settings) -> None:
    result = _invoke(
        "train", "--model", "LinearRegression", "--version", "cli-0.1", "--test-size", "0.25",
        "--json",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    payload = _last_json(result.stdout)
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
    result = _invoke(
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

    result = _invoke("train", *args, "--json")

    assert result.exit_code == 1
    assert result.stdout == ""
    reason = result.stderr.strip().splitlines()[-1]  # after the job's own log lines, if any
    assert reason.startswith("error: ")
    assert message in reason
    assert ModelStore(stocked.paths.models).labels() == before


def test_a_duplicate_label_exits_1(stocked: Settings) -> None:
    first = _invoke("train", "--model", "Ridge", "--version", "dup", "--test-size", "0.25")
    assert first.exit_code == 0, first.output

    second = _invoke("train", "--model", "Lasso", "--version", "dup", "--test-size", "0.25")

    assert second.exit_code == 1
    assert "'dup' already exists" in second.stderr
    assert ModelStore(stocked.paths.models).read_metadata("dup")["chosen_model"] == "Ridge"


def test_an_empty_feature_store_exits_1_saying_so(settings: Settings) -> None:
    result = _invoke("train", "--model", "Ridge", "--version", "0.1", "--test-size", "0.25")

    assert result.exit_code == 1
    reason = result.stderr.strip().splitlines()[-1]
    assert reason.startswith("error: ")
    assert "empty" in reason
    assert ModelStore(settings.paths.models).labels() == []


def test_versions_and_promote(stocked: Settings) -> None:
    trained = _invoke("train", "--model", "Ridge", "--version", "promo", "--test-size", "0.25")
    assert trained.exit_code == 0, trained.output

    promoted = _invoke("promote", "promo", "--reason", "best so far", "--json")

    assert promoted.exit_code == 0, promoted.output
    payload = _last_json(promoted.stdout)
    assert (payload["version"], payload["alias"]) == ("promo", "champion")
    client = Registry.from_settings(stocked).client
    champion = client.get_model_version_by_alias("permeability", "champion")
    assert champion.tags["version_label"] == "promo"
    assert champion.tags["promotion_reason"] == "best so far"
    listed = _invoke("versions", "--json")
    assert listed.exit_code == 0, listed.output
    report = _last_json(listed.stdout)
    assert report["champion"] == "promo"
    statuses = {v["version"]: v["status"] for v in report["versions"]}
    assert statuses["promo"] == "champion"
    human = _invoke("versions")
    assert any(
        line.startswith("promo") and "champion" in line for line in human.stdout.splitlines()
    )


def test_promoting_an_unknown_version_exits_1(stocked: Settings) -> None:
    result = _invoke("promote", "never-trained")
    assert result.exit_code == 1
    assert "'never-trained' is not in the model store" in result.stderr


def test_versions_on_an_empty_home(settings: Settings) -> None:
    result = _invoke("versions")
    assert result.exit_code == 0
    assert result.stdout.strip() == "no versions trained yet"
    assert not settings.paths.mlflow_db.exists()


def test_serve_training_builds_the_service_on_the_seed_port(
    monkeypatch: pytest.MonkeyPatch, stocked: Settings
) -> None:
    import uvicorn

    served: dict[str, Any] = {}

    def fake_run(application: FastAPI, **options: Any) -> None:
        served.update(app=application, **options)

    monkeypatch.setattr(uvicorn, "run", fake_run)

    result = _invoke("serve", "training")

    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("127.0.0.1", 8000)
    with TestClient(served["app"]) as client:
        health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["models_dir"] == str(stocked.paths.models)


def test_serve_inference_without_its_module_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "permeability.services.inference.app", None)

    result = _invoke("serve", "inference", "--port", "8123")

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "permeability.services.inference.app" in lines[0]


def test_serve_refuses_an_unknown_service() -> None:
    result = _invoke("serve", "billing")
    assert result.exit_code == 2


def test_ui_runs_mlflow_on_the_embedded_store_with_one_worker(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    ran: dict[str, Any] = {}

    def fake_run(command: list[str], *, env: dict[str, str], check: bool) -> Any:
        ran.update(command=command, env=env)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)

    result = _invoke("ui", "--port", "5123")

    assert result.exit_code == 0, result.output
    command = ran["command"]
    assert command[:4] == [sys.executable, "-m", "mlflow", "ui"]
    assert command[command.index("--backend-store-uri") + 1] == settings.resolved_tracking_uri
    assert command[command.index("--workers") + 1] == "1"
    assert command[command.index("--port") + 1] == "5123"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert ran["env"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_ui_refuses_a_remote_tracking_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    result = _invoke("ui")
    assert result.exit_code == 1
    assert "tracking server" in result.stderr


def test_help_lists_the_training_commands() -> None:
    result = _invoke("--help")
    assert result.exit_code == 0
    for command in ("train", "promote", "versions", "serve", "ui"):
        assert command in result.stdout


def test_compact_prints_a_summary_or_the_report_as_json(settings: Settings) -> None:
    from tests.unit.io.prediction_log_support import data_files, fill_prediction_log

    root = settings.resolved_feature_store_uri
    fill_prediction_log(root, commits=6)

    human = _invoke("compact")
    assert human.exit_code == 0, human.output
    assert "6 -> 1 files, 18 rows" in human.stdout
    assert "vacuumed 0 files replaced more than 168 h ago" in human.stdout

    as_json = _invoke("compact", "--retention-hours", "0", "--json")
    assert as_json.exit_code == 0, as_json.output
    report = _last_json(as_json.stdout)
    assert report["compaction"]["files_vacuumed"] == 6
    assert report["compaction"]["retention_hours"] == 0
    assert report["compaction"]["optimize_version"] is None  # compacted by the first call
    assert len(data_files(root)) == 1


def test_compact_without_a_log_says_so(settings: Settings) -> None:
    result = _invoke("compact", "--json")
    assert result.exit_code == 0, result.output
    assert _last_json(result.stdout)["compaction"]["table_exists"] is False
    assert "nothing to compact" in _invoke("compact").stdout


def test_compact_refuses_a_negative_retention() -> None:
    result = _invoke("compact", "--retention-hours", "-1")
    assert result.exit_code == 2
    assert "--retention-hours" in result.output
