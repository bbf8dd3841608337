"""Finish or undo what a killed training left behind, so that no label is burnt for good.

A training's steps (see :mod:`permeability.pipelines.training`): the attempt is recorded in the
journal (:mod:`permeability.io.training_runs`), the MLflow run starts, the logged model is
uploaded, a registry version is created, the model folder is published, the run is finished
and the record deleted. A process killed in between leaves a record whose owner no longer
holds the label's reservation lock. Reconciling it, with that lock held:

- **folder published**: the version is complete and servable; only the run was left
  ``RUNNING``. It gets its ``metadata.json`` artifact and is marked ``FINISHED``.
- **folder not published**: rolled back. The registry versions the attempt created are
  deleted (which frees the label), its logged models and ``RUNNING`` runs are marked
  ``FAILED``, with the reason as the run tag ``training_outcome``. Not finished instead,
  because the folder's ``metadata.json`` (per-structure errors, known structures, lineage:
  the training's answer) existed only in the dead process, and whoever retries the label
  expects their own training to run.

Everything an attempt created in MLflow carries its id as the tag ``training_attempt``, so a
run created a moment before the kill is found too. When: at the next attempt for the label,
at training-service start-up, and before versions are listed (a record count when there is
nothing to do). A live owner's record is left alone. Versions registered by another model
store sharing the tracking server have no record here and are never touched.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Literal

from permeability.errors import ConflictError
from permeability.io.model_store import METADATA_FILE, ModelStore, Reservation
from permeability.io.training_runs import ATTEMPT_TAG, TrainingAttempt, TrainingJournal
from permeability.settings import Settings

OUTCOME_TAG = "training_outcome"


@dataclass(frozen=True)
class Reconciliation:
    """What was done for one label's dead attempt."""

    label: str
    outcome: Literal["finished", "rolled_back"]
    owner: str
    runs: tuple[str, ...]
    registry_versions_deleted: tuple[str, ...]


STAGE = "reconcile"


def reconcile_dead_trainings(settings: Settings) -> list[Reconciliation]:
    """For a command with no log of its own (``permeability versions``): only when there is
    something to reconcile does it set up logging (``logs/reconcile.log`` and stderr)."""
    from permeability.pipelines.base import job_context

    if not TrainingJournal(settings.paths.models).labels():
        return []
    with job_context(STAGE, settings) as context:
        return reconcile_trainings(settings, context.logger)


def reconcile_trainings(
    settings: Settings, logger: logging.Logger, *, registry: Any = None
) -> list[Reconciliation]:
    """Reconcile every dead attempt of this home's model store; MLflow untouched if none.

    Never raises: a listing or a start-up must not fail because MLflow is unreachable now
    (the records stay and are reconciled next time).
    """
    from permeability.io.registry import Registry

    store = ModelStore(settings.paths.models)
    if not TrainingJournal(store.root).labels():
        return []
    if registry is None:
        try:
            registry = Registry.from_settings(settings)
            registry.setup()
        except Exception:
            logger.exception("could not reach MLflow to reconcile dead trainings; later then")
            return []
    return reconcile_all(store, registry, logger)


def reconcile_all(store: ModelStore, registry: Any, logger: logging.Logger) -> list[Reconciliation]:
    """Each label on record in turn; one that fails (MLflow unreachable) is retried next time."""
    done: list[Reconciliation] = []
    for label in TrainingJournal(store.root).labels():
        try:
            result = reconcile_label(store, registry, label, logger)
        except Exception:
            logger.exception("could not reconcile training %s; its record stays for later", label)
            continue
        if result is not None:
            done.append(result)
    return done


def reconcile_label(
    store: ModelStore, registry: Any, label: str, logger: logging.Logger
) -> Reconciliation | None:
    """Reconcile ``label``'s recorded attempt unless its owner is alive (holds the lock)."""
    journal = TrainingJournal(store.root)
    if not journal.has(label):
        return None
    with ExitStack() as stack:
        try:
            stack.enter_context(store.lock_label(label))
        except ConflictError:
            logger.info("training %s is in progress (its owner holds the label)", label)
            return None
        attempt = journal.read(label)
        if attempt is None:  # reconciled by someone else meanwhile
            return None
        if store.exists(label):
            runs = finish(registry, attempt, store)
            result = Reconciliation(label, "finished", attempt.owner, runs, ())
        else:
            reason = (
                f"its process ({attempt.owner}) ended before publishing the model folder; "
                "rolled back by reconciliation so the label can be trained again"
            )
            runs, versions = roll_back(registry, attempt.attempt_id, reason)
            Reservation(store, label).discard()
            result = Reconciliation(label, "rolled_back", attempt.owner, runs, versions)
        journal.end(label)
    logger.warning(
        "training %s started %s by %s had died: %s (runs %s, registry versions deleted %s)",
        label,
        attempt.started_at,
        attempt.owner,
        result.outcome.replace("_", " "),
        ", ".join(result.runs) or "none",
        ", ".join(result.registry_versions_deleted) or "none",
    )
    return result


def finish(registry: Any, attempt: TrainingAttempt, store: ModelStore) -> tuple[str, ...]:
    """Close the runs of an attempt whose folder was published: its metadata, then FINISHED."""
    metadata = store.path_of(attempt.label) / METADATA_FILE
    closed: list[str] = []
    for run in registry.runs_tagged(ATTEMPT_TAG, attempt.attempt_id):
        if run.status != "RUNNING":
            continue
        if metadata.is_file():
            registry.log_artifact(run.run_id, metadata)
        registry.set_run_tags(
            run.run_id,
            {OUTCOME_TAG: f"finished by reconciliation: {attempt.owner} ended after publishing"},
        )
        registry.finish_run(run.run_id)
        closed.append(run.run_id)
    return tuple(closed)


def roll_back(
    registry: Any, attempt_id: str, reason: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Undo an unpublished attempt in MLflow: (runs marked FAILED, registry versions deleted).

    The registry version goes first (it is what holds the label); every step is idempotent,
    so a rollback interrupted by an MLflow error is simply done again later.
    """
    deleted: list[str] = []
    for version in registry.versions_tagged(ATTEMPT_TAG, attempt_id):
        registry.delete_version(version.version)
        deleted.append(version.version)
    for model_id, status in registry.logged_models_tagged(ATTEMPT_TAG, attempt_id).items():
        if status != "FAILED":
            registry.fail_logged_model(model_id)
    failed: list[str] = []
    for run in registry.runs_tagged(ATTEMPT_TAG, attempt_id):
        if run.status == "RUNNING":
            registry.set_run_tags(run.run_id, {OUTCOME_TAG: f"failed: {reason}"[:5000]})
            registry.finish_run(run.run_id, failed=True)
            failed.append(run.run_id)
    return tuple(failed), tuple(deleted)
