"""Train one version: feature store -> model -> MLflow run + registry version + model store.

The order is chosen so that a request that is refused (bad input, taken label, empty store)
writes nothing, and a training that fails midway leaves nothing half-done:

1. validate the request (label, model, hyperparameters, split) and check the feature store
   has data - nothing touched yet;
2. reserve the label in the model store (exclusive; a second writer gets 409 at once) and
   check the registry does not carry it either;
3. read the feature store and train (CPU-bound; holds no lock but the label's);
4. only now create the MLflow run, log params/metrics/artifacts, save the model once into the
   staging folder, upload that same folder as the MLflow logged model, register a version;
5. publish the staging folder into ``models/<label>/`` atomically and close the run.

If step 4 or 5 fails, the run is marked FAILED, a registry version created for it is
deleted and the staging folder is removed; the reservation is always released.
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from permeability.config import ProjectConfig, load_config
from permeability.errors import InvalidInputError, invalid_input_from
from permeability.io.model_store import METADATA_FILE, ModelStore, Reservation, validate_label
from permeability.jobs.base import JobContext, job_context, new_run_id
from permeability.settings import Settings

STAGE = "train"
_LIBRARIES = ("numpy", "pandas", "scikit-learn", "scipy", "mlflow", "joblib", "permeability")


class TrainingSpec(BaseModel):
    """What to train: the seed's three fields plus optional hyperparameters, folds, a note."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    version: str
    test_size: float = Field(default=0.25, gt=0.0, lt=1.0)
    params: dict[str, Any] | None = None
    cv: int | None = Field(default=None, ge=2, le=20)
    description: str | None = Field(default=None, max_length=500)

    @field_validator("version")
    @classmethod
    def _safe_label(cls, value: str) -> str:
        try:
            return validate_label(value)
        except InvalidInputError as exc:  # a ValueError is reported with the field's name
            raise ValueError(str(exc)) from exc

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        from permeability.domain.models import UnknownModelError, model_names

        valid = model_names()
        if value not in valid:
            raise ValueError(str(UnknownModelError(value, valid)))
        return value

    @classmethod
    def parse(cls, **fields: Any) -> TrainingSpec:
        """Build a spec, turning pydantic's report into one sentence naming the field."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise invalid_input_from(exc) from exc


class TrainingResult(BaseModel):
    """What a training produced; the API response and ``train --json`` print exactly this."""

    version: str
    run_id: str
    registry_version: str
    registered_model: str
    feature_set_version: int
    data_hash: str
    model: str
    chosen_model: str
    params: dict[str, Any]
    metrics: dict[str, float]
    per_structure: dict[str, dict[str, float]]
    cv_scores: dict[str, float] | None
    n_train: int
    n_calibration: int
    n_test: int
    rows_available: int = Field(description="Records in the feature-set version.")
    rows_excluded_non_product: int = Field(
        description="Calibration/reference films and unreported materials: never trained on."
    )
    rows_censored: int = Field(
        description="Product rows whose WVTR was under the detection limit (learnt at it)."
    )
    detection_limit: float | None
    split_grouping: str = Field(
        description="'test_id': the test part, calibration and every fold kept each test's "
        "replicates together, so held-out metrics say what a new test will see; 'row': the "
        "data had no test ids."
    )
    n_test_groups: int = Field(description="Tests in the held-out part.")
    noise_floor: dict[str, float | int] | None = Field(
        description="The replicate disagreement of the data (domain/noise_floor.py): "
        "noise_floor_mae is the error no model can beat; metrics.mae_over_noise_floor is the "
        "model's MAE over it. None without tests of two or more replicates."
    )
    created_at: str
    model_path: str
    seconds: float
    timings: dict[str, float]


def train(
    settings: Settings,
    spec: TrainingSpec,
    *,
    config: ProjectConfig | None = None,
    registry: Any = None,
    logger: logging.Logger | None = None,
) -> TrainingResult:
    """Train, track, register and store one version.

    A long-running service passes its own ``logger`` (its logging is set up once: the job
    context re-routes process-wide logging, which concurrent requests must not do) and its
    already set-up ``registry``; the CLI passes neither.
    """
    if logger is None:
        with job_context(STAGE, settings, config=config) as context:
            return _train(context, spec, registry)
    resolved = config if config is not None else load_config(settings.config_file)
    context = JobContext(settings, resolved, settings.paths.ensure(), new_run_id(), logger)
    return _train(context, spec, registry)


def _train(context: JobContext, spec: TrainingSpec, registry: Any) -> TrainingResult:
    from permeability.domain.models import AUTO, resolve_params
    from permeability.io.registry import Registry

    started = time.perf_counter()
    if spec.model != AUTO:
        resolve_params(spec.model, spec.params)  # bad hyperparameters: 422 before any write
    elif spec.params:
        raise InvalidInputError("params: 'auto' chooses its own hyperparameters; omit params")
    store = ModelStore(context.paths.models)
    store.ensure_available(spec.version)
    feature_store = _feature_store_with_data(context.settings)
    if registry is None:
        registry = Registry.from_settings(context.settings)
        registry.setup()
    with store.reserve(spec.version) as reservation:
        _ensure_label_unregistered(registry, spec.version)
        return _train_reserved(context, spec, registry, reservation, feature_store, started)


def _feature_store_with_data(settings: Settings) -> Any:
    """The feature store, refused while empty: cheaply, before MLflow is even set up."""
    from permeability.errors import EmptyFeatureStoreError
    from permeability.io.feature_store import FeatureStore
    from permeability.io.registry import describe_uri

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
    from permeability.domain.model import train_model
    from permeability.domain.models import AUTO

    log = context.logger
    features = feature_store.read()
    log.info(
        "training %s as version %s on feature set v%s (%d rows)",
        spec.model,
        spec.version,
        features.version,
        len(features.frame),
    )
    cv = (
        spec.cv
        if spec.cv is not None
        else (context.config.training.cv_folds if spec.model == AUTO else None)
    )
    outcome = train_model(
        features.frame,
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
    recorder = _Recorder(context, spec, registry, reservation, features, outcome, cv)
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


class _Recorder:
    """Steps 4-5: everything written to MLflow and the model store, undone on failure."""

    def __init__(
        self,
        context: JobContext,
        spec: TrainingSpec,
        registry: Any,
        reservation: Reservation,
        features: Any,
        outcome: Any,
        cv: int | None,
    ) -> None:
        self.context = context
        self.spec = spec
        self.registry = registry
        self.reservation = reservation
        self.features = features
        self.outcome = outcome
        self.cv = cv
        self.run_id: str | None = None
        self.model_id: str | None = None
        self.registry_version: str | None = None

    def record(self, *, started_at: float, trained_at: float) -> TrainingResult:
        try:
            return self._record(started_at, trained_at)
        except BaseException:
            self._undo()
            raise

    def _record(self, started_at: float, trained_at: float) -> TrainingResult:
        from permeability.io import pyfunc

        spec, outcome, registry = self.spec, self.outcome, self.registry
        created_at = datetime.now(UTC)
        lineage_tags = self._lineage_tags()
        start_ms = int((time.time() - (time.perf_counter() - started_at)) * 1000)
        self.run_id = registry.start_run(
            run_name=f"{spec.version}-{outcome.model_name}",
            tags={**lineage_tags, "mlflow.note.content": spec.description or ""},
            start_time_ms=start_ms,
        )
        metrics = self._metrics()
        registry.log_run_data(self.run_id, params=self._params(), metrics=metrics)
        with tempfile.TemporaryDirectory(prefix="permeability-train-") as scratch:
            workdir = Path(scratch)
            self._log_artifacts(workdir / "artifacts")
            self.model_id, location = registry.create_logged_model(
                self.run_id, tags={"version_label": spec.version}
            )
            pyfunc.save_pyfunc_model(
                self.reservation.staging_path,
                outcome.model,
                self._input_example(),
                workdir=workdir / "joblib",
                run_id=self.run_id,
                model_id=self.model_id,
                artifact_location=location,
                metadata={"version_label": spec.version},
            )
            registry.upload_logged_model(self.run_id, self.model_id, self.reservation.staging_path)
            registered = registry.register(
                model_id=self.model_id,
                run_id=self.run_id,
                tags={**lineage_tags, "run_id": self.run_id},
            )
            self.registry_version = registered.version
            metadata = self._metadata(created_at, metrics)
            path = self.reservation.publish(metadata)
            registry.log_artifact(self.run_id, path / METADATA_FILE)
        registry.finish_run(self.run_id)
        finished = time.perf_counter()
        return TrainingResult(
            version=spec.version,
            run_id=self.run_id,
            registry_version=registered.version,
            registered_model=registry.config.model_name,
            feature_set_version=int(self.features.version),
            data_hash=str(self.features.data_hash),
            model=spec.model,
            chosen_model=outcome.model_name,
            params=_jsonable(outcome.params),
            metrics=dict(outcome.metrics),
            per_structure=self._per_structure_dict(),
            cv_scores=dict(outcome.cv_scores) if outcome.cv_scores else None,
            n_train=int(outcome.n_train),
            n_calibration=int(outcome.n_calibration),
            n_test=int(outcome.n_test),
            **self._row_counts(),
            split_grouping=outcome.split_grouping,
            n_test_groups=int(outcome.n_test_groups),
            noise_floor=outcome.noise_floor.as_dict() if outcome.noise_floor else None,
            created_at=created_at.isoformat(),
            model_path=str(path),
            seconds=round(finished - started_at, 3),
            timings={
                "train": round(float(outcome.seconds), 3),
                "track_and_register": round(finished - trained_at, 3),
            },
        )

    def _undo(self) -> None:
        """Best effort: each step may fail again (e.g. the tracking server is gone)."""
        log = self.context.logger
        steps = (
            (self.registry_version, lambda: self.registry.delete_version(self.registry_version)),
            (self.model_id, lambda: self.registry.fail_logged_model(self.model_id)),
            (self.run_id, lambda: self.registry.finish_run(self.run_id, failed=True)),
        )
        for needed, step in steps:
            if needed is None:
                continue
            try:
                step()
            except Exception:
                log.exception("could not undo a step of failed training %s", self.spec.version)

    # -- what gets logged ----------------------------------------------------------------

    def _row_counts(self) -> dict[str, Any]:
        """How many records the version held, and how many were left out or censored."""
        from permeability.domain.records import product_rows
        from permeability.domain.schema import BELOW_DETECTION_LIMIT

        frame = self.features.frame
        patterns = self.context.config.acquisition.non_product
        products = product_rows(frame, patterns)
        censored = (
            int(products[BELOW_DETECTION_LIMIT].astype(bool).sum())
            if BELOW_DETECTION_LIMIT in products.columns
            else 0
        )
        return {
            "rows_available": len(frame),
            "rows_excluded_non_product": len(frame) - len(products),
            "rows_censored": censored,
            "detection_limit": self.outcome.model.detection_limit,
        }

    def _lineage_tags(self) -> dict[str, str]:
        return {
            "version_label": self.spec.version,
            "feature_set_version": str(self.features.version),
            "data_hash": str(self.features.data_hash),
            "feature_store_uri": self.context.settings.resolved_feature_store_uri,
            "chosen_model": self.outcome.model_name,
        }

    def _params(self) -> dict[str, Any]:
        spec, outcome, training = self.spec, self.outcome, self.context.config.training
        params: dict[str, Any] = {
            "model": spec.model,
            "chosen_model": outcome.model_name,
            "version": spec.version,
            "test_size": spec.test_size,
            "cv": self.cv,
            "random_state": training.random_state,
            "calibration_fraction": training.calibration_fraction,
            "calibration": training.calibration,
            "calibration_method": outcome.model.calibration.method,
            "calibration_folds": training.calibration_folds,
            "interval_level": self.context.config.inference.interval_level,
            "description": spec.description or "",
            "feature_set_version": self.features.version,
            "split_grouping": outcome.split_grouping,
            **{f"data_{k}": v for k, v in self._row_counts().items()},
            "non_product": ",".join(self.context.config.acquisition.non_product),
        }
        params.update({f"hp_{k}": v for k, v in outcome.params.items()})
        return params

    def _metrics(self) -> dict[str, float]:
        from permeability.io.registry import safe_metric_name

        metrics = {k: float(v) for k, v in self.outcome.metrics.items()}
        taken = set(metrics)
        for structure, row in self._per_structure_dict().items():
            metrics[safe_metric_name("mae", structure, taken)] = row["mae"]
        for key, value in (self.outcome.cv_scores or {}).items():
            metrics[safe_metric_name("cv", key, taken)] = float(value)
        metrics.update({k: float(v) for k, v in self._counts().items()})
        floor = self.outcome.noise_floor
        if floor is not None:
            metrics.update(
                {
                    "replicate_mae": floor.replicate_mae,
                    "replicate_log_sd": floor.replicate_log_sd,
                    "noise_floor_tests": float(floor.tests),
                }
            )
        return metrics

    def _counts(self) -> dict[str, int]:
        outcome = self.outcome
        return {
            "n_train": int(outcome.n_train),
            "n_calibration": int(outcome.n_calibration),
            "n_test": int(outcome.n_test),
        }

    def _per_structure_dict(self) -> dict[str, dict[str, float]]:
        table: pd.DataFrame = self.outcome.per_structure
        numeric = table.set_index("Estructura").select_dtypes("number")
        return {
            str(name): {str(k): float(v) for k, v in row.items()}
            for name, row in numeric.iterrows()
        }

    def _input_example(self) -> pd.DataFrame:
        """A few held-out records of structures the model knows (strict prediction must work:
        MLflow validates the example by predicting it)."""
        from permeability.domain.schema import ESTRUCTURA, MUESTRA
        from permeability.io import pyfunc

        frame = self.features.frame
        known = frame[ESTRUCTURA].isin(list(_known_structures(self.outcome.model)))
        held_out = frame[MUESTRA].isin(self.outcome.test_predictions[MUESTRA])
        preferred = frame.loc[known & held_out]
        return pyfunc.input_example(preferred if len(preferred) else frame.loc[known])

    def _log_artifacts(self, folder: Path) -> None:
        from permeability.plots.training import training_figures, variance_frame

        outcome, spec = self.outcome, self.spec
        plots, tables, pca_dir = folder / "plots", folder / "tables", folder / "pca"
        for path in (plots, tables, pca_dir):
            path.mkdir(parents=True, exist_ok=True)
        figures = training_figures(
            outcome.test_predictions,
            outcome.per_structure,
            self.features.pca,
            plots,
            label=spec.version,
            model_name=outcome.model_name,
        )
        pca_plot = next(p for p in figures if p.name == "pca_explained_variance.png")
        pca_plot.rename(pca_dir / pca_plot.name)
        outcome.per_structure.to_csv(tables / "per_structure_errors.csv", index=False)
        outcome.test_predictions.to_csv(tables / "test_predictions.csv", index=False)
        variance_frame(self.features.pca).to_csv(pca_dir / "explained_variance.csv", index=False)
        self._copy_feature_store_pca(pca_dir / "feature_store")
        self.registry.log_artifacts(self.run_id, folder)

    def _copy_feature_store_pca(self, target: Path) -> None:
        """The feature store's own PCA files for this version, when the store is local."""
        import shutil

        source = (
            Path(self.context.settings.resolved_feature_store_uri)
            / "pca"
            / (f"v{self.features.version}")
        )
        if source.is_dir():
            shutil.copytree(source, target)

    def _metadata(self, created_at: datetime, metrics: Mapping[str, float]) -> dict[str, Any]:
        from permeability.io import pyfunc
        from permeability.io.registry import describe_uri

        outcome, spec = self.outcome, self.spec
        return {
            "version": spec.version,
            "model": spec.model,
            "chosen_model": outcome.model_name,
            "description": spec.description,
            "params": _jsonable(outcome.params),
            "metrics": dict(outcome.metrics),
            "per_structure": self._per_structure_dict(),
            "cv_scores": dict(outcome.cv_scores) if outcome.cv_scores else None,
            "logged_metrics": dict(metrics),
            "lineage": {
                "feature_set_version": int(self.features.version),
                "data_hash": str(self.features.data_hash),
                "feature_store_uri": describe_uri(self.context.settings.resolved_feature_store_uri),
                "run_id": self.run_id,
                "experiment": self.registry.config.experiment_name,
                "registered_model": self.registry.config.model_name,
                "registry_version": self.registry_version,
                "logged_model_id": self.model_id,
                "tracking_uri": describe_uri(self.registry.config.tracking_uri),
            },
            "created_at": created_at.isoformat(),
            "libraries": _library_versions(),
            "split": {
                "test_size": spec.test_size,
                "cv": self.cv,
                "random_state": self.context.config.training.random_state,
                "calibration_fraction": self.context.config.training.calibration_fraction,
                "calibration_method": self.outcome.model.calibration.method,
                "grouping": self.outcome.split_grouping,
                "test_groups": int(self.outcome.n_test_groups),
            },
            "noise_floor": self.outcome.noise_floor.as_dict() if self.outcome.noise_floor else None,
            **self._counts(),
            "known_structures": _known_structures(outcome.model),
            "non_product": list(outcome.model.non_product),
            "detection_limit": outcome.model.detection_limit,
            "interval_level": self.context.config.inference.interval_level,
            "training_seconds": round(float(outcome.seconds), 3),
            "files": ["MLmodel", f"artifacts/{pyfunc.MODEL_ARTIFACT_FILE}"],
        }


def _known_structures(model: Any) -> dict[str, int]:
    """Structures the model accepts in strict mode, with their training (fit) row counts."""
    counts = model.structure_counts
    return {str(name): int(counts.get(name, 0)) for name in model.known_structures}


def _library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameters as JSON can carry them (numpy scalars -> Python, others -> text)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None or isinstance(value, str | bool | int | float):
            out[str(key)] = value
        elif hasattr(value, "item"):
            out[str(key)] = value.item()
        else:
            out[str(key)] = str(value)
    return out
