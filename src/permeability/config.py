"""Per-stage parameters: typed, validated, frozen; loaded from an optional YAML file.

Environment settings say *where* (see :mod:`permeability.settings`); this says *how*.
Every field has an embedded default, so the project runs with no file at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from permeability.errors import InvalidInputError, invalid_input_from
from permeability.monitoring.comparison import ComparisonMetric
from permeability.notifications_config import NotificationParams
from permeability.record.calipers import MIN_CALIPER_READINGS
from permeability.record.identity import (
    DEFAULT_DETECTION_LIMIT,
    DEFAULT_NON_PRODUCT,
    DEFAULT_TEST_GROUP,
    IDENTITY_COLUMNS,
)
from permeability.scoring.decisions import DecisionPolicy

if TYPE_CHECKING:  # imported where used: every process reads the configuration, few evaluate
    from permeability.monitoring.alerts import AlertThresholds
    from permeability.monitoring.reports import DriftThresholds


class _Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AcquisitionParams(_Params):
    """How raw lab exports are read, cleaned and turned into features."""

    variance_threshold: float = Field(
        default=0.99,
        gt=0.0,
        le=1.0,
        description="Smallest cumulative explained variance the caliper PCA must reach.",
    )
    column_map: dict[str, str] = Field(
        default_factory=dict,
        description="Source header -> seed column name, for exports whose headers differ.",
    )
    structure_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="Extra spellings of structures (added to the built-in alias map).",
    )
    min_caliper_readings: int = Field(
        default=MIN_CALIPER_READINGS,
        ge=1,
        le=5,
        description="Readings a row needs; missing ones are filled from the others and counted.",
    )
    chunk_rows: int = Field(default=200_000, ge=1_000, description="Rows per extraction chunk.")
    record_key: tuple[str, ...] | None = Field(
        default=None,
        description="Columns whose values identify one record. Unset: CONSECUTIVO when the "
        "source has it, else the test date, Referencia, Estructura, Muestra and conditions.",
    )
    test_group: tuple[str, ...] = Field(
        default=DEFAULT_TEST_GROUP,
        min_length=1,
        description="Columns whose values identify one test (its rows are replicates).",
    )
    non_product: tuple[str, ...] = Field(
        default=DEFAULT_NON_PRODUCT,
        description="Structure names (shell patterns such as 'MUESTRA-*', matched on the "
        "canonical name) of calibration and reference films and unreported materials: loaded "
        "and flagged, never trained on or served.",
    )
    detection_limit: float = Field(
        default=DEFAULT_DETECTION_LIMIT,
        gt=0.0,
        le=1.0,
        description="WVTR (g/m²·day) below which the instrument reads nothing: a 0 or a value "
        "under it is kept as left-censored at this limit.",
    )
    missing_tokens: tuple[str, ...] = Field(
        default=(),
        description="Extra cell texts that mean 'no value' (added to the built-in ones).",
    )

    @field_validator("record_key", "test_group")
    @classmethod
    def _record_columns(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("needs at least one column")
        unknown = [c for c in value if c not in IDENTITY_COLUMNS]
        if unknown:
            raise ValueError(
                f"{', '.join(map(repr, unknown))} not a record column; choose from "
                + ", ".join(IDENTITY_COLUMNS)
            )
        if len(set(value)) != len(value):
            raise ValueError("names a column twice")
        return value


class ScheduledJob(_Params):
    """One entry of the scheduler: what to run and when (a 5-field cron expression).

    ``args`` of an ``evaluate`` job: ``version`` (a label; default the champion), ``all``,
    ``compare``, ``promote_if_better`` (a margin), ``since`` (YYYY-MM-DD) or ``since_days``.

    A ``compact`` job compacts the prediction log (its small files rewritten into few, the
    replaced ones deleted once older than the retention); its one optional arg is
    ``retention_hours``, a whole number >= 0 (default 168: time travel over the last week keeps
    working). The scheduler refuses any other arg or value at start-up.
    """

    name: str = Field(min_length=1, max_length=64)
    kind: Literal["acquire", "evaluate", "compact", "retrain"]
    cron: str = Field(min_length=9, description="Cron expression, e.g. '0 2 * * *'.")
    args: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError("cron must have 5 fields: minute hour day month weekday")
        return value


class ScheduleParams(_Params):
    timezone: str = "UTC"
    jobs: tuple[ScheduledJob, ...] = (
        ScheduledJob(name="acquire", kind="acquire", cron="0 2 * * *"),
        ScheduledJob(name="nightly-compact", kind="compact", cron="30 2 * * *"),
        # The seed's loop, closed: evaluation tells people what changed and the retraining
        # policy acts on it (a challenger waits for approval unless retraining.auto_promote).
        ScheduledJob(name="nightly-evaluate", kind="evaluate", cron="0 3 * * *"),
        ScheduledJob(name="nightly-retrain", kind="retrain", cron="0 4 * * *"),
    )


class TrainingParams(_Params):
    random_state: int = 42
    cv_folds: int = Field(default=5, ge=2, le=20)
    calibration: Literal["auto", "split", "cross"] = Field(
        default="auto",
        description="How intervals are calibrated: 'split' holds calibration_fraction of the "
        "training split aside; 'cross' fits on all of it and calibrates on out-of-fold "
        "residuals; 'auto' is cross up to 20,000 training rows, split above.",
    )
    calibration_folds: int = Field(
        default=5, ge=2, le=20, description="Refits behind cross-conformal residuals."
    )
    calibration_fraction: float = Field(
        default=0.2,
        gt=0.0,
        lt=0.5,
        description="Share of the training split kept aside to calibrate (split-conformal).",
    )
    max_concurrent: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Trainings that may run at once on this machine, across the training "
        "service and `permeability train` processes (each can take several GB; 1 fits a "
        "2-core machine). The others wait their turn.",
    )
    max_queued: int = Field(
        default=8,
        ge=0,
        le=32,
        description="POST /train requests that may wait for a turn in one service process; "
        "one more is refused with 503 and Retry-After. Each waiting request holds one of the "
        "server's 40 worker threads, hence the bound.",
    )


class InferenceParams(_Params):
    interval_level: float = Field(default=0.9, gt=0.5, lt=1.0)
    approve_below: float = Field(
        default=0.05, gt=0.0, lt=0.5, description="Approve when P(exceed limit) is below this."
    )
    reject_above: float = Field(
        default=0.95, gt=0.5, lt=1.0, description="Reject when P(exceed limit) is above this."
    )
    specs_file: Path | None = Field(
        default=None, description="YAML of specification limits; the embedded one when unset."
    )
    fast_path: bool = Field(
        default=True,
        description="Answer well-formed single samples without FastAPI's request layers "
        "(same answers; off only to compare or to rule it out).",
    )
    prediction_spool: bool = Field(
        default=True,
        description="Write each answered prediction to a local spool before answering, so a "
        "killed service loses none (docs/inference.md, Durability; off only to measure it).",
    )

    def decision_policy(self, level: float | None = None) -> DecisionPolicy:
        """The configured decision rule; ``level`` (a request's or the CLI's) replaces the
        configured interval level."""
        chosen = self.interval_level if level is None else level
        return DecisionPolicy(chosen, self.approve_below, self.reject_above)


class EvaluationParams(_Params):
    """How versions are judged on data that arrived after their training (docs/evaluation.md)."""

    drift_psi: float = Field(
        default=0.2, gt=0.0, description="Smallest population stability index that is drift."
    )
    drift_alpha: float = Field(
        default=0.01,
        gt=0.0,
        lt=1.0,
        description="Chance of any false drift alarm in one report (Bonferroni-corrected).",
    )
    drift_min_rows: int = Field(
        default=30, ge=5, description="Rows a structure needs on each side for its own tests."
    )
    drift_bins: int = Field(default=10, ge=2, le=50, description="PSI bins (reference deciles).")
    compare_metric: ComparisonMetric = Field(
        default="mae", description="What champion and challengers are compared on."
    )
    compare_margin: float = Field(
        default=0.05,
        ge=0.0,
        lt=1.0,
        description="Win margin reported by --compare without --promote-if-better.",
    )
    coverage_tolerance: float = Field(
        default=0.05,
        ge=0.0,
        lt=0.5,
        description="A challenger whose interval coverage is further below its level cannot win; "
        "the champion's coverage further from its level (either side) raises a coverage event.",
    )
    degradation_metric: ComparisonMetric = Field(
        default="mae",
        description="The metric a degradation event compares: the champion on new lab results "
        "against the same metric at its training.",
    )
    degradation_margin: float = Field(
        default=0.25,
        gt=0.0,
        lt=10.0,
        description="How much worse than at training (relative for error metrics, absolute for "
        "R²) the champion may get on new lab results before a degradation event.",
    )
    alert_min_rows: int = Field(
        default=10,
        ge=1,
        description="New lab results the champion needs before degradation and coverage events "
        "are raised (fewer say too little either way).",
    )

    def drift_thresholds(self) -> DriftThresholds:
        """The drift rule these parameters configure (what evaluation judges drift by)."""
        from permeability.monitoring.reports import DriftThresholds

        return DriftThresholds(
            psi=self.drift_psi,
            alpha=self.drift_alpha,
            min_rows=self.drift_min_rows,
            bins=self.drift_bins,
        )

    def alert_thresholds(self) -> AlertThresholds:
        """When the champion's evaluation becomes events (drift's alpha is the coverage test's)."""
        from permeability.monitoring.alerts import AlertThresholds

        return AlertThresholds(
            metric=self.degradation_metric,
            margin=self.degradation_margin,
            coverage_tolerance=self.coverage_tolerance,
            alpha=self.drift_alpha,
            min_rows=self.alert_min_rows,
        )


class RetrainingParams(_Params):
    """When and how a challenger is trained and judged (docs/monitoring.md, Retraining)."""

    auto_promote: bool = Field(
        default=False,
        description="Promote a challenger that wins by the margin; false: notify for approval.",
    )
    margin: float = Field(
        default=0.05,
        ge=0.0,
        lt=1.0,
        description="How much better (relative for error metrics) the challenger must be on the "
        "same recent tests than the champion to win.",
    )
    on_drift: bool = Field(default=True, description="Retrain when evaluation flags drift.")
    on_degradation: bool = Field(
        default=True, description="Retrain when the champion's metric degraded (evaluation)."
    )
    min_new_tests: int = Field(
        default=30,
        ge=1,
        description="Retrain when at least this many labelled product tests arrived since the "
        "champion's training (tests none of whose replicates it trained on), whatever "
        "evaluation says.",
    )
    holdout_fraction: float = Field(
        default=0.5,
        gt=0.0,
        lt=1.0,
        description="Share of the recent tests (the latest by date) both versions are judged "
        "on; the challenger trains on everything before them.",
    )
    min_holdout_tests: int = Field(
        default=5,
        ge=1,
        description="Fewest recent tests a comparison may be made on; with fewer (or none left "
        "for the challenger to learn from) nothing is trained and the decision says why.",
    )
    test_size: float = Field(
        default=0.25,
        gt=0.0,
        lt=1.0,
        description="The challenger's own held-out share (its training metrics), as "
        "`train --test-size`; the holdout tests above are never seen at all.",
    )


class ControlChartParams(_Params):
    """The instrument's control chart on reference films (docs/monitoring.md, Control chart)."""

    references: tuple[str, ...] = Field(
        default=("CALIBRACION", "NIST-ROJA", "MATERIAL-REF"),
        description="Structure names (shell patterns on the canonical name) of reference films.",
    )
    series_by: tuple[str, ...] = Field(
        default=("Referencia",),
        description="Record columns that split one reference name into series (one film each).",
    )
    scale: Literal["log10", "linear"] = Field(
        default="log10", description="Scale the chart is drawn and judged on."
    )
    baseline_points: int = Field(
        default=20,
        ge=2,
        description="The first results of a series that estimate its centre and limits.",
    )
    min_points: int = Field(
        default=8, ge=2, description="Fewer results than this: no limits, the series says so."
    )
    rules: tuple[Literal["1", "2", "3", "4"], ...] = Field(
        default=("1", "2", "3", "4"),
        description="Western Electric rules applied: 1 beyond 3σ, 2 two of three beyond 2σ, "
        "3 four of five beyond 1σ (same side), 4 eight in a row on one side.",
    )


class ProjectConfig(_Params):
    acquisition: AcquisitionParams = AcquisitionParams()
    schedule: ScheduleParams = ScheduleParams()
    training: TrainingParams = TrainingParams()
    inference: InferenceParams = InferenceParams()
    evaluation: EvaluationParams = EvaluationParams()
    retraining: RetrainingParams = RetrainingParams()
    control_chart: ControlChartParams = ControlChartParams()
    notifications: NotificationParams = NotificationParams()


def load_config(path: Path | None) -> ProjectConfig:
    """The embedded defaults, overridden by ``path`` when given."""
    if path is None:
        return ProjectConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise InvalidInputError(f"config file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidInputError(f"config file {path} must hold a mapping of sections")
    try:
        return ProjectConfig.model_validate(raw)
    except ValidationError as exc:
        raise invalid_input_from(exc, prefix=f"config file {path}: ") from exc
