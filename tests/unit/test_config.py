from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from permeability.config import ProjectConfig, load_config
from permeability.errors import InvalidInputError


def test_defaults_need_no_file() -> None:
    config = load_config(None)
    assert config.acquisition.variance_threshold == 0.99
    assert config.schedule.jobs[0].kind == "acquire"


def test_file_overrides_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "acquisition:\n  variance_threshold: 0.95\n  column_map: {Temp: Grados_C}\n"
        "schedule:\n  jobs:\n    - {name: hourly, kind: acquire, cron: '0 * * * *'}\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.acquisition.variance_threshold == 0.95
    assert config.acquisition.column_map == {"Temp": "Grados_C"}
    assert config.schedule.jobs[0].cron == "0 * * * *"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("acquisition:\n  variance_threshold: 1.5\n", "acquisition.variance_threshold"),
        ("acquisition:\n  unknown_key: 1\n", "acquisition.unknown_key"),
        ("schedule:\n  jobs:\n    - {name: x, kind: acquire, cron: 'every day'}\n", "cron"),
        ("[1, 2]\n", "mapping"),
        ("acquisition: [\n", "not valid YAML"),
        ("training:\n  calibration: bootstrap\n", "training.calibration"),
        ("training:\n  calibration_folds: 1\n", "training.calibration_folds"),
        ("inference:\n  fast_path: sometimes\n", "inference.fast_path"),
        (
            "schedule:\n  jobs:\n    - {name: x, kind: vacuum, cron: '0 2 * * *'}\n",
            "schedule.jobs.0.kind",
        ),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInputError, match=fragment.replace(".", r"\.")):
        load_config(path)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_config_is_frozen() -> None:
    config = ProjectConfig()
    with pytest.raises(ValueError, match="frozen"):
        config.acquisition.variance_threshold = 0.5  # type: ignore[misc]


def test_the_shipped_example_is_a_valid_config() -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
    config = load_config(example)
    assert config.acquisition.column_map["WVTR"] == "Permeabilidad"
    assert {job.kind for job in config.schedule.jobs} == {
        "acquire",
        "evaluate",
        "compact",
        "retrain",
    }
    assert [c.name for c in config.notifications.channels] == ["lab-mail", "teams"]
    assert config.retraining.auto_promote is False


def test_defaults_compact_the_prediction_log_nightly() -> None:
    compaction = [job for job in load_config(None).schedule.jobs if job.kind == "compact"]
    assert [(job.name, job.cron, job.args) for job in compaction] == [
        ("nightly-compact", "30 2 * * *", {})
    ]


def test_defaults_close_the_loop_nightly_evaluation_then_retraining() -> None:
    jobs = {job.kind: job.cron for job in load_config(None).schedule.jobs}
    assert jobs["evaluate"] == "0 3 * * *"
    assert jobs["retrain"] == "0 4 * * *"  # after the evaluation whose findings it reads


def test_a_compact_job_takes_a_retention(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "schedule:\n  jobs:\n    - {name: c, kind: compact, cron: '30 2 * * *',"
        " args: {retention_hours: 24}}\n",
        encoding="utf-8",
    )
    job = load_config(path).schedule.jobs[0]
    assert (job.kind, job.args) == ("compact", {"retention_hours": 24})


def test_record_rules_have_real_export_defaults() -> None:
    acquisition = load_config(None).acquisition
    assert acquisition.record_key is None
    assert acquisition.test_group == (
        "Fecha",
        "Referencia",
        "Estructura",
        "Grados_C",
        "Porc_Humedad",
    )
    assert "CALIBRACION*" in acquisition.non_product
    assert acquisition.detection_limit == 0.0005


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ({"record_key": ["Lote"]}, "record_key"),
        ({"record_key": []}, "record_key"),
        ({"test_group": ["Fecha", "Fecha"]}, "test_group"),
        ({"detection_limit": 0}, "detection_limit"),
        ({"detection_limit": -1}, "detection_limit"),
    ],
)
def test_bad_record_rules_are_refused_naming_the_key(
    tmp_path: Path, section: dict[str, object], fragment: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"acquisition": section}), encoding="utf-8")
    with pytest.raises(InvalidInputError, match=fragment):
        load_config(path)
