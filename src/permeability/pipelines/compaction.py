"""The job behind ``permeability compact`` and the scheduler's ``compact`` kind.

It keeps the prediction log small (:mod:`permeability.io.predictions.maintenance`): compacts the
``predictions`` table's small files and deletes the files replaced more than
``retention_hours`` ago (7 days by default, so time travel over the last week keeps working).
Only the days given (``--day``), by default the days holding more than one file (those appended
since the last compaction), are rewritten; a log from before the day partitions is migrated to
them first (one commit, logged). The feature table is never touched. One compaction at a time on this machine: two OPTIMIZEs
racing each other would both commit and store the rows they both rewrote twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Final

from pydantic import BaseModel, ConfigDict

from permeability.errors import InvalidInputError
from permeability.io.file_lock import exclusive_lock
from permeability.io.predictions.maintenance import (
    DEFAULT_RETENTION_HOURS,
    CompactionResult,
    compact_predictions,
)
from permeability.pipelines.base import job_context
from permeability.settings import Settings

LOCK_FILE: Final = ".compact.lock"
#: The ``args`` a scheduled compaction accepts (config ``schedule.jobs[].args``).
SCHEDULE_ARGS: Final = ("retention_hours",)


class CompactionReport(BaseModel):
    """One compaction run: its id and what it did to the prediction log."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    compaction: CompactionResult

    def summary(self) -> str:
        done = self.compaction
        if not done.table_exists:
            return (
                f"nothing to compact: no prediction log yet at {done.table}\n"
                f"run {self.run_id} in {done.seconds:.2f}s"
            )
        days = ", ".join(day.isoformat() for day in done.days) or "none"
        if done.optimize_version is None:
            rewrite = f"already compact: nothing rewritten (days compacted: {days})"
        else:
            retried = done.attempts - 1
            rewrite = (
                f"rewrote {done.files_rewritten} files into {done.files_written} "
                f"(OPTIMIZE, version {done.optimize_version}"
                + (f", after {retried} refused attempt(s)" if retried else "")
                + f"); days compacted: {days}"
            )
        migration = (
            [f"migrated to day partitions as version {done.migrated_version}"]
            if done.migrated_version is not None
            else []
        )
        return "\n".join(
            [
                f"prediction log {done.table}: {done.files_before} -> {done.files_after} "
                f"files, {done.rows} rows",
                *migration,
                rewrite,
                f"vacuumed {done.files_vacuumed} files replaced more than "
                f"{done.retention_hours} h ago",
                f"versions {done.version_before} -> {done.version_after}; "
                f"run {self.run_id} in {done.seconds:.2f}s",
            ]
        )


def retention_from_args(args: Mapping[str, str | int | float | bool]) -> int:
    """The retention of a schedule entry's ``args`` (default 168 h); anything else is refused."""
    unknown = sorted(set(args) - set(SCHEDULE_ARGS))
    if unknown:
        raise InvalidInputError(
            f"scheduled compaction: unknown args {unknown}; allowed: {', '.join(SCHEDULE_ARGS)}"
        )
    value = args.get("retention_hours", DEFAULT_RETENTION_HOURS)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(
            "scheduled compaction: args.retention_hours must be a whole number of hours "
            f">= 0, got {value!r}"
        )
    return value


def compact(
    settings: Settings,
    *,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    days: Sequence[date] | None = None,
) -> CompactionReport:
    """Compact ``days`` of the prediction log of ``settings``' feature store (None: the days
    appended since their last compaction) and vacuum it; log what was done."""
    with job_context("compact", settings) as ctx:
        uri = settings.resolved_feature_store_uri
        ctx.logger.info(
            "compacting the prediction log below %s (retention %d h)", uri, retention_hours
        )
        with exclusive_lock(
            ctx.paths.data / LOCK_FILE, "another compaction of the prediction log is running"
        ):
            result = compact_predictions(uri, None, retention_hours=retention_hours, days=days)
        report = CompactionReport(run_id=ctx.run_id, compaction=result)
        ctx.logger.info("%s", "; ".join(report.summary().splitlines()))
        return report
