"""MLflow tracking: the store's client, its write lock and set-up, and the experiment's runs.

Why it looks the way it does:

- Two trainings may run at once (threads in one server, or two processes). MLflow's fluent
  API keeps one active run per process, so every call goes through an ``MlflowClient`` with an
  explicit run id. SQLite tracking stores dislike concurrent writers, so every write is
  serialised by an inter-process ``flock`` on a file under the storage home.
- :class:`Tracking` is the only class that talks to MLflow's tracking API; the model registry
  (logged models, versions, labels, the champion alias) is built on it in
  :mod:`permeability.io.registry`.
"""

from __future__ import annotations

import fcntl
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from permeability.io.mlflow_setup import import_mlflow, is_remote_tracking, point_mlflow_at
from permeability.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXPERIMENT_NAME = "permeability"
REGISTERED_MODEL_NAME = "permeability"

_UNSAFE_METRIC_CHARS = re.compile(r"[^A-Za-z0-9_]+")


def safe_metric_name(prefix: str, name: str, taken: set[str] | None = None) -> str:
    """``mae_PET_LDPE`` from ``PET/LDPE``: MLflow would nest a ``/`` in its UI.

    Two structures that collapse to the same safe name get ``_2``, ``_3``... so that no
    metric silently overwrites another.
    """
    base = f"{prefix}_{_UNSAFE_METRIC_CHARS.sub('_', name).strip('_') or 'unnamed'}"
    if taken is None:
        return base
    candidate, counter = base, 2
    while candidate in taken:
        candidate, counter = f"{base}_{counter}", counter + 1
    taken.add(candidate)
    return candidate


@dataclass(frozen=True)
class RegistryConfig:
    """Where tracking happens and which lock file serialises writes to it."""

    tracking_uri: str
    artifact_location: str | None
    lock_file: Path
    experiment_name: str = EXPERIMENT_NAME
    model_name: str = REGISTERED_MODEL_NAME

    @classmethod
    def from_settings(cls, settings: Settings) -> RegistryConfig:
        """Embedded SQLite store with artifacts under the home, unless a server is configured."""
        uri = settings.resolved_tracking_uri
        paths = settings.paths
        artifacts = None if is_remote_tracking(uri) else paths.mlflow_artifacts.as_uri()
        return cls(
            tracking_uri=uri,
            artifact_location=artifacts,
            lock_file=paths.mlflow_db.parent / "registry.lock",
        )


@dataclass(frozen=True)
class RunRecord:
    """What a training run logged, read back for checks and reports."""

    run_id: str
    status: str
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]


class Tracking:
    """MLflow tracking for experiment ``permeability``: set-up, lock and runs."""

    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(RegistryConfig.from_settings(settings))

    # -- set-up ---------------------------------------------------------------------------

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            mlflow = import_mlflow()
            self._client = mlflow.MlflowClient(
                tracking_uri=self.config.tracking_uri, registry_uri=self.config.tracking_uri
            )
        return self._client

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Serialise writers across threads and processes (each call opens its own descriptor,
        and ``flock`` locks belong to the open file description, so threads exclude each other too)."""
        self.config.lock_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.config.lock_file, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def setup(self) -> str:
        """Point MLflow at the configured store and make sure experiment and model exist.

        The process-global tracking URI is set too, so ``mlflow.pyfunc.load_model("models:/...")``
        resolves against the same store; the first call on a fresh SQLite file creates its
        schema, which is why it runs under the write lock.
        """
        point_mlflow_at(self.config.tracking_uri)
        with self.write_lock():
            experiment = self.client.get_experiment_by_name(self.config.experiment_name)
            if experiment is None:
                experiment_id = self.client.create_experiment(
                    self.config.experiment_name, artifact_location=self.config.artifact_location
                )
            else:
                experiment_id = experiment.experiment_id
            self._ensure_registered_model()
        self._experiment_id = str(experiment_id)
        return self._experiment_id

    def _ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.config.model_name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            self.client.create_registered_model(
                self.config.model_name,
                description="Guide value of a film sample's water-vapour transmission rate.",
            )

    @property
    def experiment_id(self) -> str:
        return self._experiment_id if self._experiment_id is not None else self.setup()

    def has_store(self) -> bool:
        """False for an embedded SQLite store that was never created (nothing trained yet):
        reading it would create it, and a read-only command should not."""
        parts = urlsplit(self.config.tracking_uri)
        if parts.scheme != "sqlite":
            return True
        return Path(parts.path.removeprefix("/")).exists()

    # -- runs -----------------------------------------------------------------------------

    def start_run(self, *, run_name: str, tags: Mapping[str, str], start_time_ms: int) -> str:
        with self.write_lock():
            run = self.client.create_run(
                self.experiment_id,
                start_time=start_time_ms,
                tags=dict(tags),
                run_name=run_name,
            )
        return str(run.info.run_id)

    def log_run_data(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Params, metrics and tags in one batch (fewer writes, fewer lock round-trips)."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        with self.write_lock():
            self.client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                params=[Param(k, _param_text(v)) for k, v in params.items()],
                tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
                synchronous=True,
            )

    def log_artifacts(self, run_id: str, local_dir: Path, artifact_path: str | None = None) -> None:
        with self.write_lock():
            self.client.log_artifacts(run_id, str(local_dir), artifact_path)

    def log_artifact(self, run_id: str, local_file: Path, artifact_path: str | None = None) -> None:
        with self.write_lock():
            self.client.log_artifact(run_id, str(local_file), artifact_path)

    def finish_run(self, run_id: str, *, failed: bool = False) -> None:
        with self.write_lock():
            self.client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")

    def link_model_input(self, run_id: str, model_id: str) -> None:
        """Record a logged model as an input of a run (an evaluation run uses the model a
        training run produced; MLflow 3's UI links the two through the model)."""
        from mlflow.entities import LoggedModelInput

        with self.write_lock():
            self.client.log_inputs(run_id, models=[LoggedModelInput(model_id)])

    def get_run(self, run_id: str) -> RunRecord:
        return _to_run_record(self.client.get_run(run_id))

    def set_run_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        with self.write_lock():
            self.client.log_batch(
                run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()], synchronous=True
            )

    def runs_tagged(self, key: str, value: str) -> list[RunRecord]:
        """Runs of the experiment whose tag ``key`` is ``value`` (e.g. one training attempt)."""
        found = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.{key} = {filter_literal(value)}"
        )
        return [_to_run_record(run) for run in found]

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        """Every artifact file below ``path`` of a run (recursively), as relative paths."""
        found: list[str] = []
        for entry in self.client.list_artifacts(run_id, path):
            if entry.is_dir:
                found.extend(self.list_artifacts(run_id, entry.path))
            else:
                found.append(entry.path)
        return found

    def count_runs(self) -> int:
        runs = self.client.search_runs([self.experiment_id], max_results=50_000)
        return len(runs)


def filter_literal(value: str) -> str:
    """A search-filter literal; our values (labels, ids, names) never need escaping."""
    if "'" in value or "\\" in value:
        raise ValueError(f"{value!r} cannot be used in an MLflow search filter")
    return f"'{value}'"


def _to_run_record(run: Any) -> RunRecord:
    return RunRecord(
        run_id=run.info.run_id,
        status=run.info.status,
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        tags=dict(run.data.tags),
    )


def _param_text(value: Any) -> str:
    """MLflow params are strings of at most 6000 characters; ``None`` reads better as 'None'."""
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."
