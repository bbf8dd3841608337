"""Train one version: feature store -> model -> MLflow run + registry version + model store.

The order is chosen so that a request that is refused (bad input, taken label, empty store)
writes nothing, and a training that fails midway leaves nothing half-done:

1. validate the request (label, model, hyperparameters, split) and check the feature store
   has data - nothing touched yet; an earlier attempt of the label whose process died is
   reconciled first (:mod:`permeability.pipelines.training_recovery`);
2. reserve the label in the model store (exclusive; a second writer gets 409 at once) and
   check the registry does not carry it either;
3. wait for a training slot (:mod:`permeability.pipelines.training_queue`: at most
   ``training.max_concurrent`` trainings at once on the machine, first come first served);
4. read the feature store, leave out the tests the spec excludes (``excluded_tests``: the
   retrain job keeps its holdout out of a challenger's training) and train (CPU-bound);
5. record the attempt in the journal, then create the MLflow run, log params/metrics/
   artifacts, save the model once into the staging folder, upload that same folder as the
   MLflow logged model, register a version (each tagged with the attempt's id);
6. publish the staging folder into ``models/<label>/`` atomically, close the run and delete
   the journal record.

If step 5 or 6 fails before publication, the run is marked FAILED, a registry version
created for it is deleted and the staging folder is removed; the reservation and the slot
are always released. If the process is killed instead, the journal record outlives it and
reconciliation does the same later.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from permeability.config import ProjectConfig
from permeability.errors import InvalidInputError
from permeability.io.model_store import ModelStore, Reservation
from permeability.io.training_runs import TrainingJournal
from permeability.pipelines.base import JobContext, job_context
from permeability.pipelines.training_queue import TrainingQueue
from permeability.pipelines.training_record import TrainingRecorder
from permeability.pipelines.training_spec import TrainingResult, TrainingSpec
from permeability.settings import Settings

STAGE = "train"


def train(
    settings: Settings,
    spec: TrainingSpec,
    *,
    config: ProjectConfig | None = None,
    registry: Any = None,
    queue: TrainingQueue | None = None,
) -> TrainingResult:
    """Train, track, register and store one version.

    A long-running service passes its already set-up ``registry`` and its ``queue`` (one line
    for all its requests); the CLI passes none and waits for a slot like any other process.
    """
    with job_context(STAGE, settings, config=config) as context:
        return _train(context, spec, registry, queue)


def _train(
    context: JobContext, spec: TrainingSpec, registry: Any, queue: TrainingQueue | None
) -> TrainingResult:
    from permeability.modelling.catalogue import AUTO, resolve_params
    from permeability.pipelines.training_recovery import reconcile_label

    started = time.perf_counter()
    if spec.model != AUTO:
        resolve_params(spec.model, spec.params)  # bad hyperparameters: 422 before any write
    elif spec.params:
        raise InvalidInputError("params: 'auto' chooses its own hyperparameters; omit params")
    store = ModelStore(context.paths.models)
    if TrainingJournal(store.root).has(spec.version):  # an earlier attempt may have died
        registry = registry if registry is not None else _set_up_registry(context.settings)
        reconcile_label(store, registry, spec.version, context.logger)
    store.ensure_available(spec.version)
    feature_store = feature_store_with_data(context.settings)
    if registry is None:
        registry = _set_up_registry(context.settings)
    if queue is None:
        queue = TrainingQueue.for_models(store.root, context.config.training)
    with store.reserve(spec.version) as reservation:
        _ensure_label_unregistered(registry, spec.version)
        with queue.turn(spec.version, on_wait=context.logger.info):
            return _train_reserved(context, spec, registry, reservation, feature_store, started)


def _set_up_registry(settings: Settings) -> Any:
    from permeability.io.registry import Registry

    registry = Registry.from_settings(settings)
    registry.setup()
    return registry


def feature_store_with_data(settings: Settings) -> Any:
    """The feature store, refused while empty: cheaply, before MLflow is even set up."""
    from permeability.errors import EmptyFeatureStoreError
    from permeability.io.feature_store import FeatureStore
    from permeability.io.mlflow_setup import describe_uri

    uri = settings.resolved_feature_store_uri
    feature_store = FeatureStore(uri)
    if feature_store.current_version() is None:
        raise EmptyFeatureStoreError(
            f"the feature store at {describe_uri(uri)} is empty; load lab data with "
            "`permeability acquire` before training"
        )
    return feature_store


def _ensure_label_unregistered(registry: Any, label: str) -> None:
    from permeability.errors import ConflictError

    if registry.find_label(label) is not None:
        raise ConflictError(
            f"version label '{label}' is already registered in model "
            f"'{registry.config.model_name}' (but not in this model store); choose another"
        )


def _train_reserved(
    context: JobContext,
    spec: TrainingSpec,
    registry: Any,
    reservation: Reservation,
    feature_store: Any,
    started: float,
) -> TrainingResult:
    from permeability.modelling.catalogue import AUTO
    from permeability.modelling.training import train_model

    log = context.logger
    features = feature_store.read()
    frame = without_tests(features.frame, spec.excluded_tests, features.version)
    log.info(
        "training %s as version %s on feature set v%s (%d rows%s)",
        spec.model,
        spec.version,
        features.version,
        len(frame),
        f"; {len(spec.excluded_tests)} test(s), {len(features.frame) - len(frame)} rows left out"
        if spec.excluded_tests
        else "",
    )
    cv = (
        spec.cv
        if spec.cv is not None
        else (context.config.training.cv_folds if spec.model == AUTO else None)
    )
    outcome = train_model(
        frame,
        features.pca,
        model=spec.model,
        params=spec.params,
        test_size=spec.test_size,
        cv=cv,
        random_state=context.config.training.random_state,
        calibration_fraction=context.config.training.calibration_fraction,
        calibration=context.config.training.calibration,
        calibration_folds=context.config.training.calibration_folds,
        interval_level=context.config.inference.interval_level,
        detection_limit=context.config.acquisition.detection_limit,
        non_product=context.config.acquisition.non_product,
    )
    log.info(
        "trained %s in %.2fs: %s",
        outcome.model_name,
        outcome.seconds,
        ", ".join(f"{k}={v:.4g}" for k, v in outcome.metrics.items()),
    )
    trained_at = time.perf_counter()
    recorder = TrainingRecorder(
        context, spec, registry, reservation, features, outcome, cv, training_frame=frame
    )
    result = recorder.record(started_at=started, trained_at=trained_at)
    log.info(
        "version %s registered as %s v%s (run %s) in %.2fs",
        result.version,
        result.registered_model,
        result.registry_version,
        result.run_id,
        result.timings["track_and_register"],
    )
    return result


def without_tests(frame: pd.DataFrame, tests: Sequence[str], version: int) -> pd.DataFrame:
    """``frame`` without every row of ``tests`` (test ids); each must be in the feature set,
    so a typo or a stale id is refused instead of silently leaving nothing out."""
    from permeability.record.schema import TEST_ID

    if not tests:
        return frame
    present = frame[TEST_ID].astype("str")
    unknown = sorted(set(tests) - set(present))
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise InvalidInputError(
            f"excluded_tests: {len(unknown)} test id(s) are not in feature set v{version}: {shown}"
        )
    return frame.loc[~present.isin(tests).to_numpy(dtype=bool)].reset_index(drop=True)
