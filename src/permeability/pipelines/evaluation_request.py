"""What an evaluation is asked to do and what it answers, shared by every way to start one.

:class:`EvaluationRequest` is the validated request the CLI, ``POST /evaluate`` and scheduled
jobs build (a schedule entry's ``args`` through :func:`evaluation_request_from_args`);
:class:`EvaluationReport` is what the job (:mod:`permeability.pipelines.evaluation`) returns, and
exactly what ``evaluate --json`` and ``POST /evaluate`` print. None of it depends on how the
job runs, so it lives apart from the job's flow.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Final

import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from permeability.errors import InvalidInputError, invalid_input_from
from permeability.monitoring.comparison import ComparisonOutcome
from permeability.monitoring.evaluation import VersionEvaluation
from permeability.monitoring.events import Event


class EvaluationRequest(BaseModel):
    """What to evaluate; shared by the CLI, ``POST /evaluate`` and scheduled jobs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str | None = Field(default=None, description="A version label; default the champion.")
    all_versions: bool = Field(default=False, description="Evaluate every available version.")
    since: datetime | None = Field(
        default=None, description="Only rows dated (or predictions made) at or after this."
    )
    compare: bool = Field(
        default=False, description="Score the champion and all other versions on the same rows."
    )
    promote_if_better: float | None = Field(
        default=None,
        ge=0.0,
        lt=1.0,
        description="Move the champion alias to a challenger that wins by this margin.",
    )

    @field_validator("version")
    @classmethod
    def _safe_label(cls, value: str | None) -> str | None:
        from permeability.io.model_store import validate_label

        return None if value is None else validate_label(value)

    @field_validator("since")
    @classmethod
    def _naive_utc(cls, value: datetime | None) -> datetime | None:
        """Stored dates are naive UTC; an aware ``since`` is converted, a naive one is UTC."""
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    @model_validator(mode="after")
    def _consistent(self) -> EvaluationRequest:
        if self.version is not None and self.all_versions:
            raise ValueError("give either a version or all versions, not both")
        return self

    @property
    def comparing(self) -> bool:
        return self.compare or self.promote_if_better is not None

    @classmethod
    def parse(cls, **fields: Any) -> EvaluationRequest:
        """Build a request, turning pydantic's report into one sentence naming the field."""
        since = fields.get("since")
        if isinstance(since, date) and not isinstance(since, datetime):
            fields["since"] = datetime(since.year, since.month, since.day)
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise invalid_input_from(exc) from exc


class EvaluationReport(BaseModel):
    """What one evaluation did; ``evaluate --json`` and ``POST /evaluate`` return exactly this."""

    evaluation_id: str
    experiment: str
    feature_set_version: int
    since: str | None
    evaluated: list[VersionEvaluation]
    skipped: dict[str, str]
    comparison: ComparisonOutcome | None
    promoted: str | None
    drift_flagged: bool
    seconds: float
    events: list[Event] = Field(
        default_factory=list, description="What the evaluation found worth telling someone."
    )
    control_chart_run_id: str | None = Field(
        default=None, description="The run holding this evaluation's reference-film chart."
    )

    def summary(self) -> str:
        lines = []
        for item in self.evaluated:
            scores = item.recent or item.served
            figures = (
                f"MAE {scores.metrics['mae']:.4g}, MAPE {scores.metrics['mape']:.3g} %, "
                f"coverage {scores.metrics['coverage']:.1%}, wrong approvals "
                f"{scores.decisions['wrong_approvals']}"
                if scores is not None
                else "no scores"
            )
            drift = item.drift.summary() if item.drift is not None else "drift not assessed"
            lines.append(
                f"version {item.version}: {item.recent_rows} recent rows, {item.served_rows} "
                f"served predictions; {figures}; {drift}; run {item.run_id}"
            )
        lines.extend(f"version {v}: skipped ({why})" for v, why in self.skipped.items())
        if self.comparison is not None:
            lines.append(f"comparison: {self.comparison.reason}")
        if self.promoted is not None:
            lines.append(f"promoted {self.promoted} to champion")
        lines.extend(f"event {e.kind} ({e.severity}): {e.subject}" for e in self.events)
        return "\n".join(lines)


#: The ``args`` a scheduled evaluation accepts (config ``schedule.jobs[].args``).
SCHEDULE_ARGS: Final = ("version", "all", "compare", "promote_if_better", "since", "since_days")


def evaluation_request_from_args(
    args: Mapping[str, str | int | float | bool], *, now: datetime | None = None
) -> EvaluationRequest:
    """A request from a schedule entry's ``args``; ``since_days: 30`` means the last 30 days."""
    unknown = sorted(set(args) - set(SCHEDULE_ARGS))
    if unknown:
        raise InvalidInputError(
            f"scheduled evaluation: unknown args {unknown}; allowed: {', '.join(SCHEDULE_ARGS)}"
        )
    if "since" in args and "since_days" in args:
        raise InvalidInputError(
            "scheduled evaluation: give args.since or args.since_days, not both"
        )
    since: Any = args.get("since")
    if "since_days" in args:
        days = args["since_days"]
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise InvalidInputError(
                f"scheduled evaluation: args.since_days must be a whole number of days >= 1, "
                f"got {days!r}"
            )
        since = (now or datetime.now(UTC)).replace(tzinfo=None) - pd.Timedelta(days=days)
    return EvaluationRequest.parse(
        version=args.get("version"),
        all_versions=args.get("all", False),
        since=since,
        compare=args.get("compare", False),
        promote_if_better=args.get("promote_if_better"),
    )
