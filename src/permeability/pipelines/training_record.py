"""Steps 5-6 of a training (:mod:`permeability.pipelines.training`): record what was trained.

The MLflow run (params, metrics, artifacts), the model saved once into the staging folder and
uploaded as the logged model, the registry version, then the publication of the folder; all
undone when a step fails before publication (reconciliation finishes a killed one).
"""

from __future__ import annotations

import importlib.metadata
import platform
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from permeability.io.cells import write_csv
from permeability.io.model_file import MODEL_ARTIFACT_FILE, SERVED_FILE
from permeability.io.model_store import METADATA_FILE, Reservation
from permeability.io.training_runs import (
    ATTEMPT_TAG,
    OWNER_TAG,
    TrainingAttempt,
    TrainingJournal,
)
from permeability.pipelines.base import JobContext
from permeability.pipelines.training_spec import TrainingResult, TrainingSpec

_LIBRARIES = ("numpy", "pandas", "scikit-learn", "scipy", "mlflow", "joblib", "permeability")


class TrainingRecorder:
    """Steps 5-6: everything written to MLflow and the model store, undone on failure."""

    def __init__(
        self,
        context: JobContext,
        spec: TrainingSpec,
        registry: Any,
        reservation: Reservation,
        features: Any,
        outcome: Any,
        cv: int | None,
        *,
        training_frame: pd.DataFrame | None = None,
    ) -> None:
        """``training_frame``: the rows trained from, when the spec left tests out of the
        feature set's (``features.frame``)."""
        self.context = context
        self.spec = spec
        self.registry = registry
        self.reservation = reservation
        self.features = features
        self.outcome = outcome
        self.cv = cv
        self.training_frame = features.frame if training_frame is None else training_frame
        self.journal = TrainingJournal(reservation.store.root)
        self.attempt: TrainingAttempt | None = None
        self.run_id: str | None = None
        self.model_id: str | None = None
        self.registry_version: str | None = None

    def record(self, *, started_at: float, trained_at: float) -> TrainingResult:
        try:
            return self._record(started_at, trained_at)
        except BaseException as exc:
            if self.reservation.published:
                # The version is complete and servable: undoing would break it. The journal
                # record stays, and reconciliation finishes the run.
                self.context.logger.error(
                    "version %s is published but its run could not be closed (%s); it will "
                    "be finished by reconciliation",
                    self.spec.version,
                    exc,
                )
            else:
                self._undo(exc)
            raise

    def _record(self, started_at: float, trained_at: float) -> TrainingResult:
        from permeability.io import pyfunc

        spec, outcome, registry = self.spec, self.outcome, self.registry
        created_at = datetime.now(UTC)
        lineage_tags = self._lineage_tags()
        start_ms = int((time.time() - (time.perf_counter() - started_at)) * 1000)
        self.attempt = self.journal.begin(spec.version)
        attempt_tag = {ATTEMPT_TAG: self.attempt.attempt_id}
        self.run_id = registry.start_run(
            run_name=f"{spec.version}-{outcome.model_name}",
            tags={
                **lineage_tags,
                **attempt_tag,
                OWNER_TAG: self.attempt.owner,
                "mlflow.note.content": spec.description or "",
            },
            start_time_ms=start_ms,
        )
        metrics = self._metrics()
        registry.log_run_data(self.run_id, params=self._params(), metrics=metrics)
        with tempfile.TemporaryDirectory(prefix="permeability-train-") as scratch:
            workdir = Path(scratch)
            self._log_artifacts(workdir / "artifacts")
            self.model_id, location = registry.create_logged_model(
                self.run_id, tags={"version_label": spec.version, **attempt_tag}
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
                tags={**lineage_tags, **attempt_tag, "run_id": self.run_id},
            )
            self.registry_version = registered.version
            metadata = self._metadata(created_at, metrics)
            path = self.reservation.publish(metadata)
            registry.log_artifact(self.run_id, path / METADATA_FILE)
        registry.finish_run(self.run_id)
        self.journal.end(spec.version)
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

    def _undo(self, error: BaseException) -> None:
        """Roll back what the attempt wrote to MLflow, as reconciliation would.

        If that fails too (e.g. the tracking server is gone), the journal record stays and
        reconciliation retries later.
        """
        from permeability.pipelines.training_recovery import roll_back

        if self.attempt is None:
            return  # nothing was written to MLflow
        reason = f"training failed while recording: {type(error).__name__}: {error}"
        try:
            roll_back(self.registry, self.attempt.attempt_id, reason)
        except Exception:
            self.context.logger.exception(
                "could not undo failed training %s; left for reconciliation", self.spec.version
            )
            return
        self.journal.end(self.spec.version)

    # -- what gets logged ----------------------------------------------------------------

    def _row_counts(self) -> dict[str, Any]:
        """How many records the feature-set version held, and how many of them were left out
        (excluded tests, then non-products) or censored."""
        from permeability.record.identity import product_rows
        from permeability.record.schema import BELOW_DETECTION_LIMIT

        frame = self.training_frame
        patterns = self.context.config.acquisition.non_product
        products = product_rows(frame, patterns)
        censored = (
            int(products[BELOW_DETECTION_LIMIT].astype(bool).sum())
            if BELOW_DETECTION_LIMIT in products.columns
            else 0
        )
        return {
            "rows_available": len(self.features.frame),
            "rows_excluded_tests": len(self.features.frame) - len(frame),
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
            "excluded_tests": str(len(self.spec.excluded_tests)),
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
            "excluded_tests": len(spec.excluded_tests),
            "split_grouping": outcome.split_grouping,
            **{f"data_{k}": v for k, v in self._row_counts().items()},
            "non_product": ",".join(self.context.config.acquisition.non_product),
        }
        params.update({f"hp_{k}": v for k, v in outcome.params.items()})
        return params

    def _metrics(self) -> dict[str, float]:
        from permeability.io.tracking import safe_metric_name

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

    def _files(self) -> list[str]:
        """The model folder's files the store checks: the MLmodel, the model file and, when
        the model has one (linear and compiled tree models), its served form."""
        files = ["MLmodel", f"artifacts/{MODEL_ARTIFACT_FILE}"]
        if (self.reservation.staging_path / SERVED_FILE).is_file():
            files.append(SERVED_FILE.as_posix())
        return files

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
        from permeability.io import pyfunc
        from permeability.record.schema import ESTRUCTURA, MUESTRA

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
        write_csv(outcome.per_structure, tables / "per_structure_errors.csv")
        write_csv(outcome.test_predictions, tables / "test_predictions.csv")
        write_csv(variance_frame(self.features.pca), pca_dir / "explained_variance.csv")
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
        from permeability.io.mlflow_setup import describe_uri

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
                # Tests of the feature set this version never saw (the retrain job's holdout).
                "excluded_test_ids": list(spec.excluded_tests),
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
            "files": self._files(),
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
