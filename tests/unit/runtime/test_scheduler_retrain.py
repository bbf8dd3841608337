"""The ``retrain`` job kind of the scheduler: registered, its args checked at start-up, run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from permeability.config import ProjectConfig, ScheduledJob, ScheduleParams
from permeability.errors import InvalidInputError
from permeability.pipelines.base import job_context
from permeability.runtime import scheduler
from permeability.runtime.scheduler import JOB_KINDS, build_scheduler, run_job
from permeability.settings import Settings
from tests.builders import fill_feature_store


def _config(*jobs: ScheduledJob) -> ProjectConfig:
    return ProjectConfig(schedule=ScheduleParams(timezone="UTC", jobs=jobs))


def test_retrain_is_a_job_kind() -> None:
    assert JOB_KINDS["retrain"] is scheduler.run_retrain_job


@pytest.mark.parametrize("args", [{}, {"force": True}, {"force": False}])
def test_a_retrain_job_with_good_args_is_scheduled(
    settings: Settings, args: dict[str, Any]
) -> None:
    job = ScheduledJob(name="nightly-retrain", kind="retrain", cron="0 4 * * *", args=args)
    with job_context("schedule", settings, config=_config(job)) as ctx:
        built = build_scheduler(ctx, BackgroundScheduler)
    assert built.get_job("nightly-retrain") is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"force": "yes"}, r"schedule job 'r': scheduled retraining: args.force must be true"),
        ({"margin": 0.1}, r"schedule job 'r': scheduled retraining: unknown args \['margin'\]"),
    ],
)
def test_bad_retrain_args_stop_the_scheduler_at_start(
    settings: Settings, args: dict[str, Any], message: str
) -> None:
    job = ScheduledJob(name="r", kind="retrain", cron="0 4 * * *", args=args)
    with (
        job_context("schedule", settings, config=_config(job)) as ctx,
        pytest.raises(InvalidInputError, match=message),
    ):
        build_scheduler(ctx, BackgroundScheduler)


def test_a_retrain_job_without_a_champion_fails_and_says_why(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "storage")
    fill_feature_store(settings, tmp_path / "exports", rows=60, seed=3)
    job = ScheduledJob(name="r", kind="retrain", cron="0 4 * * *")
    with job_context("schedule", settings, config=_config(job)) as ctx:
        assert run_job(ctx, job) is False
    log = (settings.paths.logs / "schedule.log").read_text(encoding="utf-8")
    assert "job r (retrain) starting" in log
    assert "job r failed: no champion version is set" in log
