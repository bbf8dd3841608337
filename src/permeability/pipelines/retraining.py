"""The ``retrain`` job: train a challenger when the loop says so, judge it, promote or ask.

1. **Look**: the champion (the registry's alias; none is a refusal), the current feature set,
   the champion's new tests (product tests none of whose rows it trained on) and the latest
   evaluation (the monitoring snapshot). The rules are :mod:`permeability.monitoring.retraining`'s:
   drift or degradation found for *this* champion, or ``retraining.min_new_tests`` new tests,
   or ``force``; never twice on the same data against the same champion.
2. **Hold out**: the latest ``retraining.holdout_fraction`` of the new tests (whole tests, at
   least ``retraining.min_holdout_tests``); too few and nothing is trained.
3. **Train** a challenger with ``auto`` on the latest feature-set version *minus* the holdout
   tests, under a generated label (``retrain-YYYYMMDD-HHMMSS``), through
   :func:`permeability.pipelines.training.train`: the same label reservation, the same training
   slots and line (``training.max_concurrent``), the same run, registry version and model store.
4. **Judge**: champion and challenger score the holdout tests, one row per test
   (:func:`~permeability.monitoring.retraining.per_test_scores`), and the margin rule decides
   (:func:`~permeability.monitoring.comparison.compare_versions`: ``evaluation.compare_metric``,
   ``retraining.margin``, ``evaluation.coverage_tolerance``).
5. **Act**: a winner is promoted when ``retraining.auto_promote`` is true, else an
   ``approval_needed`` event asks a person (with the comparison); a loser stays available (a
   person can still promote it). Every decision, including "no trigger", is one run in
   experiment ``permeability-retraining`` (:mod:`permeability.pipelines.retraining_record`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from permeability.config import ProjectConfig
from permeability.errors import ConflictError, InvalidInputError, NotFoundError
from permeability.monitoring.comparison import ComparisonOutcome, compare_versions
from permeability.monitoring.evaluation import evaluate_scored
from permeability.monitoring.events import Event
from permeability.monitoring.reports import EvaluationMetrics
from permeability.monitoring.retraining import (
    Holdout,
    TriggerAssessment,
    approval_event,
    assess_triggers,
    choose_holdout,
    count_tests,
    evaluation_triggers,
    generated_label,
    new_tests_trigger,
    new_tests_window,
    per_test_scores,
)
from permeability.monitoring.scored_rows import TEST_COLUMN, score_labelled
from permeability.monitoring.snapshot import MonitoringSnapshot
from permeability.monitoring.windows import unseen_rows
from permeability.pipelines.base import JobContext, job_context
from permeability.pipelines.retraining_record import (
    Decision,
    RetrainReport,
    already_trained,
    log_decision,
    retraining_registry,
    retraining_run,
)
from permeability.pipelines.training_queue import TrainingQueue
from permeability.pipelines.training_spec import TrainingResult
from permeability.record.schema import TEST_ID
from permeability.settings import Settings

if TYPE_CHECKING:
    from permeability.io.evaluation_inputs import LoadedVersion
    from permeability.io.registry import Registry

STAGE: Final = "retrain"
#: Attempts at a generated label when another retrain takes the same one meanwhile.
_LABEL_ATTEMPTS: Final = 5


#: What a scheduled ``retrain`` job's ``args`` may hold.
SCHEDULE_ARGS: Final = ("force",)


def force_from_args(args: Mapping[str, str | int | float | bool]) -> bool:
    """A schedule entry's ``force`` (default false); anything else is refused."""
    unknown = sorted(set(args) - set(SCHEDULE_ARGS))
    if unknown:
        raise InvalidInputError(
            f"scheduled retraining: unknown args {unknown}; allowed: {', '.join(SCHEDULE_ARGS)}"
        )
    force = args.get("force", False)
    if not isinstance(force, bool):
        raise InvalidInputError(
            f"scheduled retraining: args.force must be true or false, got {force!r}"
        )
    return force


def retrain(
    settings: Settings,
    *,
    force: bool = False,
    config: ProjectConfig | None = None,
    registry: Any = None,
    queue: TrainingQueue | None = None,
) -> RetrainReport:
    """Decide, and maybe train, judge and promote; see the module docstring.

    The training service passes its set-up ``registry`` and its training ``queue``, so a
    retraining waits in the same line as ``POST /train``; the CLI and the scheduler pass none.
    """
    with job_context(STAGE, settings, config=config) as context:
        return _Retraining(context, force, registry, queue).run()


class _Retraining:
    """One run of the job: what it looked at, and the steps of the module docstring."""

    def __init__(
        self, context: JobContext, force: bool, registry: Any, queue: TrainingQueue | None
    ) -> None:
        self.context = context
        self.force = force
        self.registry = registry
        self.queue = queue
        self.started = time.perf_counter()
        self.runs = retraining_registry(context.settings)

    def run(self) -> RetrainReport:
        from permeability.pipelines.training import feature_store_with_data

        settings, log = self.context.settings, self.context.logger
        feature_store = feature_store_with_data(settings)
        if self.registry is None:
            self.registry = _set_up_registry(settings)
        champion = _champion_label(self.registry)
        current = feature_store.read()
        loaded = _load(self.context, [champion], champion, feature_store)[0]
        window = self._window(current.frame, loaded)
        new_tests = count_tests(window)
        assessment = self._assess(champion, current.version, new_tests)
        log.info("champion %s, %d new test(s): %s", champion, new_tests, assessment.reason)
        base = {
            "champion": champion,
            "feature_set_version": current.version,
            "new_tests": new_tests,
            "triggers": assessment.triggers,
        }
        if not assessment.train:
            return self._record("no_trigger", assessment.reason, base)
        params = self.context.config.retraining
        holdout = choose_holdout(
            window, fraction=params.holdout_fraction, min_tests=params.min_holdout_tests
        )
        if holdout.problem is not None:
            reason = f"{assessment.reason}; but {holdout.problem}: no challenger trained"
            return self._record("too_few_tests", reason, {**base, "holdout": holdout})
        trained = self._train_challenger(holdout, assessment)
        challenger = _load(self.context, [trained.version], champion, feature_store)
        held = window.loc[window[TEST_ID].astype("str").isin(holdout.tests)]
        scores, per_test = self._judge([loaded, challenger[0]], held)
        comparison = compare_versions(
            scores,
            champion,
            metric=self.context.config.evaluation.compare_metric,
            margin=params.margin,
            coverage_tolerance=self.context.config.evaluation.coverage_tolerance,
        )
        log.info("comparison on %d holdout test(s): %s", comparison.n, comparison.reason)
        facts = {
            **base,
            "holdout": holdout,
            "challenger": trained.version,
            "training_run_id": trained.run_id,
            "comparison": comparison,
            "scores": scores,
        }
        return self._act(assessment, comparison, facts, per_test)

    # -- 1. look --------------------------------------------------------------------------

    def _window(self, frame: pd.DataFrame, champion: LoadedVersion) -> pd.DataFrame:
        """The champion's new tests: product rows of tests it saw no row of."""
        from permeability.record.identity import product_rows

        products = product_rows(frame, self.context.config.acquisition.non_product)
        products = products.reset_index(drop=True)
        unseen = unseen_rows(products, champion.training_frame, champion.metadata.get("created_at"))
        return new_tests_window(products, unseen)

    def _assess(self, champion: str, feature_set_version: int, new_tests: int) -> TriggerAssessment:
        params = self.context.config.retraining
        snapshot, problem = _latest_snapshot(self.context)
        triggers = [
            *evaluation_triggers(
                snapshot,
                champion,
                on_drift=params.on_drift,
                on_degradation=params.on_degradation,
                snapshot_problem=problem,
            ),
            new_tests_trigger(new_tests, params.min_new_tests, champion),
        ]
        repeated = None if self.force else already_trained(self.runs, champion, feature_set_version)
        return assess_triggers(triggers, force=self.force, already_trained=repeated)

    # -- 3. train -------------------------------------------------------------------------

    def _train_challenger(self, holdout: Holdout, assessment: TriggerAssessment) -> TrainingResult:
        """``auto`` on the latest feature set minus the holdout tests, under a fresh label."""
        from permeability.io.model_store import ModelStore
        from permeability.modelling.catalogue import AUTO
        from permeability.pipelines.training import train
        from permeability.pipelines.training_spec import TrainingSpec

        taken = set(ModelStore(self.context.paths.models).labels())
        taken |= {v.label for v in self.registry.list_versions() if v.label is not None}
        tried = 0
        while True:
            label = generated_label(datetime.now(UTC), taken)
            spec = TrainingSpec.generated(
                model=AUTO,
                version=label,
                test_size=self.context.config.retraining.test_size,
                excluded_tests=holdout.tests,
                description=f"retrain: {assessment.reason}"[:500],
            )
            tried += 1
            try:
                return train(
                    self.context.settings,
                    spec,
                    config=self.context.config,
                    registry=self.registry,
                    queue=self.queue,
                )
            except ConflictError:  # another retrain took the label meanwhile
                if tried >= _LABEL_ATTEMPTS:
                    raise
                taken.add(label)

    # -- 4. judge -------------------------------------------------------------------------

    def _judge(
        self, versions: list[LoadedVersion], held: pd.DataFrame
    ) -> tuple[dict[str, EvaluationMetrics], dict[str, pd.DataFrame]]:
        """Each version's per-test scores on the holdout, on the tests both could score."""
        from permeability.io.specs import load_configured_specs

        config = self.context.config
        specs = load_configured_specs(self.context.settings, config)
        policy = config.inference.decision_policy()
        tables = {
            v.label: per_test_scores(score_labelled(v.model, held, specs, policy)) for v in versions
        }
        common = set.intersection(*(set(t[TEST_COLUMN]) for t in tables.values()))
        per_test = {
            label: table.loc[table[TEST_COLUMN].isin(common)].reset_index(drop=True)
            for label, table in tables.items()
        }
        return {label: evaluate_scored(t) for label, t in per_test.items()}, per_test

    # -- 5. act ---------------------------------------------------------------------------

    def _act(
        self,
        assessment: TriggerAssessment,
        comparison: ComparisonOutcome,
        facts: dict[str, Any],
        per_test: dict[str, pd.DataFrame],
    ) -> RetrainReport:
        challenger = str(facts["challenger"])
        if not comparison.challenger_wins:
            reason = (
                f"{assessment.reason}; {comparison.reason}; challenger {challenger} stays "
                "available (a person may still promote it)"
            )
            return self._record("kept", reason, facts, per_test)
        if self.context.config.retraining.auto_promote:
            reason = f"{assessment.reason}; {comparison.reason}; promoted (auto_promote)"
            return self._record("promoted", reason, facts, per_test)
        reason = (
            f"{assessment.reason}; {comparison.reason}; awaiting approval "
            f"(retraining.auto_promote is false): `permeability promote {challenger}`"
        )
        return self._record("awaiting_approval", reason, facts, per_test)

    def _record(
        self,
        decision: Decision,
        reason: str,
        facts: dict[str, Any],
        per_test: dict[str, pd.DataFrame] | None = None,
    ) -> RetrainReport:
        """Carry out ``decision`` inside its MLflow run, log it, tell people, report."""
        champion, version = str(facts["champion"]), int(facts["feature_set_version"])
        with retraining_run(self.runs, champion, version) as run_id:
            events: list[Event] = []
            promoted = None
            if decision == "promoted":
                promoted = self._promote(facts["comparison"], run_id)
            elif decision == "awaiting_approval":
                holdout: Holdout = facts["holdout"]
                events.append(
                    approval_event(
                        facts["comparison"],
                        tests=facts["comparison"].n,
                        run_id=run_id,
                        experiment_id=self.runs.experiment_id,
                    )
                )
                self.context.logger.info(
                    "challenger %s awaits approval (%d holdout tests)",
                    facts["challenger"],
                    len(holdout.tests),
                )
            report = RetrainReport(
                decision=decision,
                reason=reason,
                triggers=facts["triggers"],
                champion=champion,
                challenger=facts.get("challenger"),
                training_run_id=facts.get("training_run_id"),
                feature_set_version=version,
                new_tests=int(facts["new_tests"]),
                holdout=facts.get("holdout"),
                comparison=facts.get("comparison"),
                scores=facts.get("scores") or {},
                promoted=promoted,
                run_id=run_id,
                events=events,
                seconds=round(time.perf_counter() - self.started, 3),
            )
            log_decision(
                self.runs, report, self.context.config, force=self.force, per_test=per_test or {}
            )
        self.context.logger.info("retraining decision %s (run %s): %s", decision, run_id, reason)
        if events:
            _notify(self.context, events)
        return report

    def _promote(self, comparison: ComparisonOutcome, run_id: str) -> str:
        from permeability.pipelines.promotion import promote

        winner = str(comparison.winner)
        promote(
            self.context.settings,
            winner,
            reason=f"retrain (run {run_id}): {comparison.reason}",
            promoted_by="retrain",
            config=self.context.config,
            registry=self.registry,
        )
        return winner


def _set_up_registry(settings: Settings) -> Registry:
    from permeability.io.registry import Registry

    registry = Registry.from_settings(settings)
    registry.setup()
    return registry


def _champion_label(registry: Any) -> str:
    champion = registry.champion()
    if champion is None or champion.label is None:
        raise NotFoundError(
            "no champion version is set: retraining judges a challenger against the champion; "
            "train a version and promote it first (`permeability promote <version>`)"
        )
    return str(champion.label)


def _load(
    context: JobContext, labels: list[str], champion: str, feature_store: Any
) -> list[LoadedVersion]:
    from permeability.io.evaluation_inputs import load_versions

    loaded, skipped = load_versions(context.paths.models, labels, champion, feature_store)
    if skipped:
        raise NotFoundError(
            "cannot retrain: " + "; ".join(f"version {k}: {v}" for k, v in skipped.items())
        )
    return loaded


def _latest_snapshot(context: JobContext) -> tuple[MonitoringSnapshot | None, str | None]:
    """The latest evaluation's snapshot, or why there is none."""
    from permeability.io.monitoring_snapshot import NoSnapshotError, read_snapshot

    try:
        return read_snapshot(context.paths.monitoring), None
    except NoSnapshotError as exc:
        return None, str(exc)


def _notify(context: JobContext, events: list[Event]) -> None:
    from permeability.pipelines.notifying import notify

    notify(context, events)
