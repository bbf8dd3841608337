"""Run the configured jobs (``config.schedule.jobs``) on their cron expressions.

APScheduler 3's ``BlockingScheduler`` fires each job from a 5-field cron expression in the
configured timezone. Jobs run one at a time (a single worker thread): two loads of the same
feature store must not overlap. A failing job is logged and the scheduler keeps going.
``--once`` runs every job now, once, and exits (non-zero if any failed).

Job kinds are a mapping kind -> callable (:data:`JOB_KINDS`): ``acquire``, ``evaluate``,
``compact`` (the prediction log's nightly compaction) and ``retrain`` (the retraining policy)
today; a new kind is one entry here and one literal in :class:`permeability.config.ScheduledJob`. A kind whose ``args`` can be checked
without running it has an entry in :data:`JOB_ARG_CHECKS`: a bad value then stops the scheduler
at start-up instead of failing every night.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from permeability.config import ScheduledJob
from permeability.errors import InvalidInputError, PermeabilityError
from permeability.io.logs import log_scope
from permeability.pipelines.base import JobContext, job_context
from permeability.settings import Settings

JobArgs = Mapping[str, str | int | float | bool]
JobRunner = Callable[[Settings, JobArgs], Any]


class ScheduledJobError(PermeabilityError):
    """At least one job of a ``--once`` run failed (each failure is in the logs)."""


def _text_arg(args: JobArgs, name: str) -> str | None:
    value = args.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"scheduled acquisition: args.{name} must be text, got {value!r}")
    return value


def run_acquire_job(settings: Settings, args: JobArgs) -> Any:
    """Acquire from ``args`` (source/table/query), else from PERMEABILITY_SOURCE(_TABLE)."""
    from permeability.pipelines.acquisition import acquire

    source = _text_arg(args, "source")
    table, query = _text_arg(args, "table"), _text_arg(args, "query")
    if source is None:
        source = settings.source
        table = table if table is not None or query is not None else settings.source_table
    if not source:
        raise InvalidInputError(
            "scheduled acquisition has no source: set args.source in the schedule config "
            "or PERMEABILITY_SOURCE"
        )
    return acquire(settings, source, table=table, query=query)


def run_evaluate_job(settings: Settings, args: JobArgs) -> Any:
    """Evaluate as ``args`` say (version / all / compare / promote_if_better / since /
    since_days); with nothing new to evaluate, say so and succeed (a quiet night is no failure)."""
    from permeability.pipelines.evaluation import NothingToEvaluateError, run_evaluation
    from permeability.pipelines.evaluation_request import evaluation_request_from_args

    request = evaluation_request_from_args(args)
    try:
        return run_evaluation(settings, request)
    except NothingToEvaluateError as exc:
        return f"nothing to evaluate: {exc}"


def _compaction_retention(args: JobArgs) -> int:
    from permeability.pipelines.compaction import retention_from_args

    return retention_from_args(args)


def run_compact_job(settings: Settings, args: JobArgs) -> Any:
    """Compact the prediction log; ``args.retention_hours`` (default 168) keeps replaced files
    that long. No log yet is no failure: the report says there was nothing to compact."""
    from permeability.pipelines.compaction import compact

    return compact(settings, retention_hours=_compaction_retention(args))


def _retrain_force(args: JobArgs) -> bool:
    from permeability.pipelines.retraining import force_from_args

    return force_from_args(args)


def run_retrain_job(settings: Settings, args: JobArgs) -> Any:
    """Apply the retraining policy (``args.force``, default false, trains regardless); "no
    trigger" is a decision, recorded and reported, not a failure."""
    from permeability.pipelines.retraining import retrain

    return retrain(settings, force=_retrain_force(args))


JOB_KINDS: dict[str, JobRunner] = {
    "acquire": run_acquire_job,
    "evaluate": run_evaluate_job,
    "compact": run_compact_job,
    "retrain": run_retrain_job,
}
#: Checks of a kind's ``args`` made when the scheduler is built (they raise InvalidInputError).
JOB_ARG_CHECKS: dict[str, Callable[[JobArgs], object]] = {
    "compact": _compaction_retention,
    "retrain": _retrain_force,
}


def run_job(ctx: JobContext, job: ScheduledJob) -> bool:
    """Run one job, log how it went, never raise: the scheduler must outlive a bad run.

    Runs in the scheduler's worker thread, which does not inherit the scheduler's log scope:
    it is entered again here, so the job's own lines also land in ``schedule.log``."""
    with log_scope("schedule", ctx.run_id, ctx.paths.logs):
        ctx.logger.info("job %s (%s) starting", job.name, job.kind)
        try:
            runner = JOB_KINDS[job.kind]
            result = runner(ctx.settings, job.args)
        except Exception as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            ctx.logger.error("job %s failed: %s", job.name, message)
            _announce_failure(ctx, job, message)
            return False
        summary = result.summary() if hasattr(result, "summary") else str(result)
        ctx.logger.info("job %s done: %s", job.name, "; ".join(summary.splitlines()))
        return True


def _announce_failure(ctx: JobContext, job: ScheduledJob, message: str) -> None:
    """A scheduled job that failed is a ``job_failed`` event: nobody watches the log at 2 am."""
    from permeability.monitoring.events import Event
    from permeability.pipelines.notifying import notify

    now = datetime.now(UTC)
    event = Event(
        kind="job_failed",
        severity="critical",
        subject=job.name,
        figures={
            "job": job.name,
            "kind": job.kind,
            "error": message[:1000],
            "when": now.isoformat(),
        },
        key=f"job_failed:{job.name}:{now:%Y%m%dT%H%M%S}",
    )
    notify(ctx, [event])


def _timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInputError(f"schedule.timezone {name!r} is not a known timezone") from exc


def build_scheduler(
    ctx: JobContext, scheduler_class: type[BaseScheduler] = BlockingScheduler
) -> BaseScheduler:
    """A scheduler holding every configured job; one worker thread, missed runs coalesced."""
    params = ctx.config.schedule
    zone = _timezone(params.timezone)
    scheduler = scheduler_class(
        timezone=zone,
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
    )
    names = [job.name for job in params.jobs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InvalidInputError(f"schedule.jobs: job names must be unique, repeated: {duplicated}")
    for job in params.jobs:
        if job.kind not in JOB_KINDS:
            raise InvalidInputError(f"schedule job {job.name!r}: unknown kind {job.kind!r}")
        _check_args(job)
        try:
            trigger = CronTrigger.from_crontab(job.cron, timezone=zone)
        except ValueError as exc:
            raise InvalidInputError(
                f"schedule job {job.name!r}: cron {job.cron!r} is invalid ({exc})"
            ) from exc
        scheduler.add_job(run_job, trigger, args=[ctx, job], id=job.name, name=job.name)
    return scheduler


def _check_args(job: ScheduledJob) -> None:
    check = JOB_ARG_CHECKS.get(job.kind)
    if check is None:
        return
    try:
        check(job.args)
    except InvalidInputError as exc:
        raise InvalidInputError(f"schedule job {job.name!r}: {exc}") from exc


def run_scheduler(settings: Settings, *, once: bool = False) -> None:
    """Block and run jobs on schedule, or (``once``) run each job now and return."""
    with job_context("schedule", settings) as ctx:
        jobs = ctx.config.schedule.jobs
        if not jobs:
            raise InvalidInputError("schedule.jobs is empty: nothing to run")
        scheduler = build_scheduler(ctx)
        # Deliver what earlier commands left in the notification outbox, and keep retrying.
        from permeability.pipelines.notifying import start_dispatcher

        start_dispatcher(settings, ctx.config)
        if once:
            failed = [job.name for job in jobs if not run_job(ctx, job)]
            if failed:
                raise ScheduledJobError(
                    f"{len(failed)} of {len(jobs)} scheduled job(s) failed: {', '.join(failed)}"
                )
            return
        zone = ctx.config.schedule.timezone
        for job in jobs:
            ctx.logger.info("scheduled %s (%s) on '%s' %s", job.name, job.kind, job.cron, zone)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
        scheduler.start()
        ctx.logger.info("scheduler stopped")
