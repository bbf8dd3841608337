from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from apscheduler.schedulers.background import BackgroundScheduler

from permeability.config import ProjectConfig, ScheduledJob, ScheduleParams
from permeability.errors import InvalidInputError
from permeability.io.exports import write_lab_export
from permeability.io.feature_store import FeatureStore
from permeability.io.notifications.history import History
from permeability.pipelines.base import job_context
from permeability.runtime import scheduler
from permeability.runtime.scheduler import (
    JOB_KINDS,
    ScheduledJobError,
    build_scheduler,
    run_job,
    run_scheduler,
)
from permeability.settings import Settings
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec


@pytest.fixture
def lab_csv(tmp_path: Path) -> Path:
    frame = generate_lab_data(200, seed=5, mess=MessSpec.none())
    return write_lab_export(frame, tmp_path / "lab.csv")


def settings_with(tmp_path: Path, jobs: list[dict[str, Any]], **extra: Any) -> Settings:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"schedule": {"timezone": "America/Bogota", "jobs": jobs}}), encoding="utf-8"
    )
    return Settings(home=tmp_path / "storage", config_file=config, **extra)


def test_once_runs_each_job_and_logs_it(tmp_path: Path, lab_csv: Path) -> None:
    settings = settings_with(
        tmp_path,
        [
            {
                "name": "nightly",
                "kind": "acquire",
                "cron": "0 2 * * *",
                "args": {"source": str(lab_csv)},
            }
        ],
    )
    run_scheduler(settings, once=True)
    assert FeatureStore(settings.resolved_feature_store_uri).current_version() == 0
    log = (settings.paths.logs / "schedule.log").read_text(encoding="utf-8")
    assert "job nightly (acquire) starting" in log
    assert "job nightly done: read 200 rows" in log
    assert (settings.paths.logs / "acquire.log").is_file()


def test_scheduled_acquisition_falls_back_to_the_settings_source(
    tmp_path: Path, lab_csv: Path
) -> None:
    settings = settings_with(
        tmp_path, [{"name": "a", "kind": "acquire", "cron": "0 2 * * *"}], source=str(lab_csv)
    )
    run_scheduler(settings, once=True)
    assert FeatureStore(settings.resolved_feature_store_uri).current_version() == 0


def test_a_failing_job_is_logged_and_the_others_still_run(tmp_path: Path, lab_csv: Path) -> None:
    settings = settings_with(
        tmp_path,
        [
            {
                "name": "broken",
                "kind": "acquire",
                "cron": "0 1 * * *",
                "args": {"source": str(tmp_path / "missing.csv")},
            },
            {
                "name": "good",
                "kind": "acquire",
                "cron": "0 2 * * *",
                "args": {"source": str(lab_csv)},
            },
        ],
    )
    with pytest.raises(ScheduledJobError, match="1 of 2 scheduled job"):
        run_scheduler(settings, once=True)
    assert FeatureStore(settings.resolved_feature_store_uri).current_version() == 0
    log = (settings.paths.logs / "schedule.log").read_text(encoding="utf-8")
    assert "job broken failed: source file" in log
    assert "job good done" in log


def test_a_failing_job_is_a_critical_event_naming_it_and_its_error(
    tmp_path: Path, lab_csv: Path
) -> None:
    missing = tmp_path / "missing.csv"
    settings = settings_with(
        tmp_path,
        [
            {
                "name": "nightly",
                "kind": "acquire",
                "cron": "0 1 * * *",
                "args": {"source": str(missing)},
            }
        ],
    )
    with pytest.raises(ScheduledJobError):
        run_scheduler(settings, once=True)
    [entry] = History(settings.paths.notifications).entries()
    assert entry.event.kind == "job_failed"
    assert entry.event.severity == "critical"
    assert entry.event.figures["job"] == "nightly"
    assert entry.event.figures["kind"] == "acquire"
    assert "missing.csv" in str(entry.event.figures["error"])


def test_an_acquisition_without_any_source_fails_clearly(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, [{"name": "a", "kind": "acquire", "cron": "0 2 * * *"}])
    with pytest.raises(ScheduledJobError):
        run_scheduler(settings, once=True)
    log = (settings.paths.logs / "schedule.log").read_text(encoding="utf-8")
    assert "has no source: set args.source" in log


def test_job_kinds_are_a_mapping_others_can_extend(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def fake(settings: Settings, args: Any) -> str:
        calls.append(dict(args))
        return "fine"

    monkeypatch.setitem(JOB_KINDS, "acquire", fake)
    job = ScheduledJob(name="x", kind="acquire", cron="*/5 * * * *", args={"source": "s"})
    with job_context("schedule", settings) as ctx:
        assert run_job(ctx, job) is True
    assert calls == [{"source": "s"}]


def config_with(jobs: tuple[ScheduledJob, ...], timezone: str = "Europe/Madrid") -> ProjectConfig:
    return ProjectConfig(schedule=ScheduleParams(timezone=timezone, jobs=jobs))


def test_the_scheduler_holds_every_job_on_its_cron(settings: Settings) -> None:
    jobs = (
        ScheduledJob(name="night", kind="acquire", cron="30 2 * * *"),
        ScheduledJob(name="weekly", kind="acquire", cron="0 6 * * 1"),
    )
    with job_context("schedule", settings, config=config_with(jobs)) as ctx:
        built = build_scheduler(ctx, BackgroundScheduler)
    assert [j.id for j in built.get_jobs()] == ["night", "weekly"]
    zone = ZoneInfo("Europe/Madrid")
    night = built.get_job("night").trigger.get_next_fire_time(
        None, datetime(2026, 1, 1, 3, 0, tzinfo=zone)
    )
    assert night == datetime(2026, 1, 2, 2, 30, tzinfo=zone)


@pytest.mark.parametrize(
    ("jobs", "timezone", "message"),
    [
        (
            (ScheduledJob(name="a", kind="acquire", cron="99 * * * *"),),
            "UTC",
            "cron '99 \\* \\* \\* \\*' is invalid",
        ),
        (
            (ScheduledJob(name="a", kind="acquire", cron="0 2 * * *"),),
            "Mars/Olympus",
            "not a known timezone",
        ),
        (
            (ScheduledJob(name="a", kind="acquire", cron="0 2 * * *"),) * 2,
            "UTC",
            "must be unique",
        ),
    ],
)
def test_bad_schedules_are_refused(
    settings: Settings, jobs: tuple[ScheduledJob, ...], timezone: str, message: str
) -> None:
    with (
        job_context("schedule", settings, config=config_with(jobs, timezone)) as ctx,
        pytest.raises(InvalidInputError, match=message),
    ):
        build_scheduler(ctx, BackgroundScheduler)


def test_a_started_scheduler_fires_jobs_through_its_worker(tmp_path: Path, lab_csv: Path) -> None:
    settings = settings_with(
        tmp_path,
        [{"name": "now", "kind": "acquire", "cron": "0 2 * * *", "args": {"source": str(lab_csv)}}],
    )
    with job_context("schedule", settings) as ctx:
        running = build_scheduler(ctx, BackgroundScheduler)
        running.start()
        try:
            running.modify_job("now", next_run_time=datetime.now(ZoneInfo("UTC")))
            store = FeatureStore(settings.resolved_feature_store_uri)
            deadline = time.monotonic() + 60
            while store.current_version() is None and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            running.shutdown(wait=True)
    assert store.current_version() == 0
    assert scheduler.JOB_KINDS["acquire"] is scheduler.run_acquire_job


def test_evaluate_jobs_are_scheduled_and_their_args_checked(settings: Settings) -> None:
    jobs = (ScheduledJob(name="weekly-eval", kind="evaluate", cron="0 6 * * 1", args={"bogus": 1}),)
    with job_context("schedule", settings, config=config_with(jobs)) as ctx:
        built = build_scheduler(ctx, BackgroundScheduler)
        assert built.get_job("weekly-eval") is not None
        assert run_job(ctx, jobs[0]) is False
    log = (settings.paths.logs / "schedule.log").read_text(encoding="utf-8")
    assert "job weekly-eval failed: scheduled evaluation: unknown args ['bogus']" in log


def test_once_runs_a_compact_job_on_the_prediction_log(tmp_path: Path) -> None:
    from tests.unit.io.prediction_log_support import data_files, fill_prediction_log

    settings = settings_with(
        tmp_path,
        [
            {
                "name": "nightly-compact",
                "kind": "compact",
                "cron": "30 2 * * *",
                "args": {"retention_hours": 0},
            }
        ],
    )
    fill_prediction_log(settings.resolved_feature_store_uri, commits=12)
    run_scheduler(settings, once=True)
    assert len(data_files(settings.resolved_feature_store_uri)) == 1
    log = (settings.paths.logs / "schedule.log").read_text(encoding="utf-8")
    assert "job nightly-compact (compact) starting" in log
    assert "job nightly-compact done: prediction log" in log
    assert "12 -> 1 files, 36 rows" in log
    assert (settings.paths.logs / "compact.log").is_file()


def test_a_compact_job_without_a_log_yet_succeeds(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, [{"name": "c", "kind": "compact", "cron": "30 2 * * *"}])
    run_scheduler(settings, once=True)
    log = (settings.paths.logs / "schedule.log").read_text(encoding="utf-8")
    assert "job c done: nothing to compact: no prediction log yet" in log


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"retention_hours": -1}, "schedule job 'c': .*args.retention_hours"),
        ({"retention_hours": "a week"}, "schedule job 'c': .*args.retention_hours"),
        ({"keep": 1}, r"schedule job 'c': scheduled compaction: unknown args \['keep'\]"),
    ],
)
def test_a_bad_compact_arg_stops_the_scheduler_before_any_job(
    tmp_path: Path, lab_csv: Path, args: dict[str, Any], message: str
) -> None:
    settings = settings_with(
        tmp_path,
        [
            {"name": "a", "kind": "acquire", "cron": "0 2 * * *", "args": {"source": str(lab_csv)}},
            {"name": "c", "kind": "compact", "cron": "30 2 * * *", "args": args},
        ],
    )
    with pytest.raises(InvalidInputError, match=message):
        run_scheduler(settings, once=True)
    assert FeatureStore(settings.resolved_feature_store_uri).current_version() is None


def test_compact_is_a_job_kind() -> None:
    assert JOB_KINDS["compact"] is scheduler.run_compact_job
