"""The main job's preparation: a first run builds the loop, a second one reuses it."""

from __future__ import annotations

import socket

import pytest

from permeability.errors import InvalidInputError, NotFoundError
from permeability.io.feature_store import FeatureStore
from permeability.io.model_store import ModelStore
from permeability.pipelines.up import UpOptions, ensure_ports_free, prepare
from permeability.settings import Settings


@pytest.fixture(scope="module")
def first_and_second_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Settings, list[dict[str, str]], list[dict[str, str]], int | None]:
    settings = Settings(home=tmp_path_factory.mktemp("up") / "storage")
    options = UpOptions(rows=600, model="LinearRegression")
    first = prepare(settings, options)
    version_after_first = FeatureStore(settings.resolved_feature_store_uri).current_version()
    second = prepare(settings, options)
    assert first.champion == second.champion == "0.1"
    return (
        settings,
        [s.model_dump() for s in first.steps],
        [s.model_dump() for s in second.steps],
        version_after_first,
    )


def _actions(steps: list[dict[str, str]]) -> dict[str, str]:
    return {s["step"]: s["action"] for s in steps}


def test_a_first_run_generates_acquires_trains_and_promotes(
    first_and_second_run: tuple[Settings, list[dict[str, str]], list[dict[str, str]], int | None],
) -> None:
    settings, first, _, version = first_and_second_run
    assert _actions(first) == {
        "source": "created",
        "acquire": "ran",
        "train": "created",
        "promote": "created",
        "evaluate": "skipped",  # nothing arrived after the first training
    }
    assert (settings.paths.raw / "lab_export.csv").exists()
    assert version == 0
    assert [v.label for v in ModelStore(settings.paths.models).versions()] == ["0.1"]


def test_the_up_log_holds_every_steps_lines(
    first_and_second_run: tuple[Settings, list[dict[str, str]], list[dict[str, str]], int | None],
) -> None:
    """Each step's own lines, stamped with its stage, land in up.log too (issue 14: before,
    the acquisition's exit re-pointed logging and its lines and later ones were lost)."""
    settings = first_and_second_run[0]
    up = (settings.paths.logs / "up.log").read_text(encoding="utf-8")
    stamped = {stage: f" {stage} run=" for stage in ("up", "acquire", "train", "promote")}
    for stage, stamp in stamped.items():
        assert stamp in up, f"no {stage} line in up.log"
    assert "committed feature set version 0" in up  # the acquisition's own line
    assert "registered as permeability" in up  # the training's
    assert "is now champion" in up  # the promotion's
    assert "evaluate: skipped" in up  # up's own summary, after the nested steps
    acquire = (settings.paths.logs / "acquire.log").read_text(encoding="utf-8")
    assert "committed feature set version 0" in acquire
    assert " up run=" not in acquire  # the outer job's lines stay out of a step's log


def test_a_second_run_reuses_everything_and_adds_no_version(
    first_and_second_run: tuple[Settings, list[dict[str, str]], list[dict[str, str]], int | None],
) -> None:
    settings, _, second, version = first_and_second_run
    assert _actions(second) == {
        "source": "reused",
        "acquire": "reused",
        "train": "reused",
        "promote": "reused",
        "evaluate": "skipped",
    }
    assert FeatureStore(settings.resolved_feature_store_uri).current_version() == version
    assert [v.label for v in ModelStore(settings.paths.models).versions()] == ["0.1"]


def test_a_configured_source_is_used_instead_of_generated_data(settings: Settings) -> None:
    configured = Settings(home=settings.home, source=str(settings.home / "missing.csv"))
    with pytest.raises(NotFoundError, match=r"missing\.csv"):
        prepare(configured, UpOptions(rows=200, model="LinearRegression"))
    assert not (configured.paths.raw / "lab_export.csv").exists()


def test_a_taken_port_is_refused_before_anything_starts() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(InvalidInputError, match=f"port {port}"):
            ensure_ports_free("127.0.0.1", [port])
