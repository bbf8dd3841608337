"""MLflow tracking and model registry: the only module that talks to MLflow's tracking API.

Why it looks the way it does:

- ``import mlflow`` costs about a second and MLflow phones home unless told not to, so
  :func:`import_mlflow` switches telemetry off and imports it lazily; nothing here runs at
  import time.
- Two trainings may run at once (threads in one server, or two processes). MLflow's fluent
  API keeps one active run per process, so every call goes through an ``MlflowClient`` with an
  explicit run id. SQLite tracking stores dislike concurrent writers, so every write is
  serialised by an inter-process ``flock`` on a file under the storage home.
- Each version label is carried as the model-version tag ``version_label``: it is how a
  label (what people say) maps to a registry version (what MLflow counts).
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from permeability.errors import ConflictError, NotFoundError
from permeability.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXPERIMENT_NAME = "permeability"
REGISTERED_MODEL_NAME = "permeability"
CHAMPION_ALIAS = "champion"
LABEL_TAG = "version_label"
MODEL_ARTIFACT_NAME = "model"

_REMOTE_SCHEMES = ("http", "https", "databricks")
_UNSAFE_METRIC_CHARS = re.compile(r"[^A-Za-z0-9_]+")


#: Set before MLflow is first imported: no telemetry; and no copying of whatever uv project
#: happens to be the current directory into saved models (it depends on where you stand).
MLFLOW_ENVIRONMENT = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_UV_AUTO_DETECT": "false"}


def import_mlflow() -> ModuleType:
    """Import MLflow with telemetry off (the variable must be set before the first import)."""
    os.environ.update(MLFLOW_ENVIRONMENT)
    import mlflow

    return mlflow


_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def point_mlflow_at(uri: str) -> None:
    """Set MLflow's process-global tracking and registry URI, but not the environment.

    ``mlflow.set_tracking_uri`` also exports ``MLFLOW_TRACKING_URI``, which
    :class:`~permeability.settings.Settings` reads as the user's override: left in place, it
    would silently point every later ``Settings()`` of the process (another home, a test) at
    this store. The variables are restored to what the user had set.
    """
    mlflow = import_mlflow()
    saved = {name: os.environ.get(name) for name in _URI_VARIABLES}
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def is_remote_tracking(uri: str) -> bool:
    """A tracking server (it decides where artifacts go) rather than a database we own."""
    return urlsplit(uri).scheme in _REMOTE_SCHEMES


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
class RegistryVersion:
    """One registered model version, as the rest of the project needs to see it."""

    version: str
    label: str | None
    run_id: str | None
    source: str
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    created_at_ms: int | None = None

    @property
    def is_champion(self) -> bool:
        return CHAMPION_ALIAS in self.aliases


@dataclass(frozen=True)
class RunRecord:
    """What a training run logged, read back for checks and reports."""

    run_id: str
    status: str
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]


class Registry:
    """MLflow tracking + registry for experiment and registered model ``permeability``."""

    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
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
            [self.experiment_id], filter_string=f"tags.{key} = {_quoted(value)}"
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

    # -- models ---------------------------------------------------------------------------

    def create_logged_model(self, run_id: str, *, tags: Mapping[str, str]) -> tuple[str, str]:
        """A PENDING MLflow 3 logged model for the run; returns (model_id, artifact location)."""
        with self.write_lock():
            logged = self.client.create_logged_model(
                self.experiment_id,
                name=MODEL_ARTIFACT_NAME,
                source_run_id=run_id,
                tags=dict(tags),
                model_type="permeability-regressor",
            )
        return str(logged.model_id), str(logged.artifact_location)

    def upload_logged_model(self, run_id: str, model_id: str, model_dir: Path) -> None:
        """Upload a saved MLflow model directory and link it to the run as its output."""
        from mlflow.entities import LoggedModelOutput

        with self.write_lock():
            self.client.log_model_artifacts(model_id, str(model_dir))
            self.client.log_outputs(run_id, [LoggedModelOutput(model_id, step=0)])
            self.client.finalize_logged_model(model_id, "READY")

    def fail_logged_model(self, model_id: str) -> None:
        with self.write_lock():
            self.client.finalize_logged_model(model_id, "FAILED")

    def logged_models_tagged(self, key: str, value: str) -> dict[str, str]:
        """Logged models of the experiment whose tag ``key`` is ``value``: id -> status."""
        found = self.client.search_logged_models(
            [self.experiment_id], filter_string=f"tags.{key} = {_quoted(value)}"
        )
        return {str(m.model_id): str(m.status) for m in found}

    def register(self, *, model_id: str, run_id: str, tags: Mapping[str, str]) -> RegistryVersion:
        """A new version of the registered model, tagged with the version label.

        The source is MLflow 3's ``models:/<model_id>`` (the UI links version and logged
        model). A SQL registry resolves that URI through the process-global tracking URI,
        not this client's (MLflow's own TODO), so the global URI is pointed at this store
        under the lock first. The label check and the creation happen under the same lock,
        so two writers can never both register one label.
        """
        label = tags.get(LABEL_TAG)
        with self.write_lock():
            point_mlflow_at(self.config.tracking_uri)
            if label is not None and self.find_label(label) is not None:
                raise ConflictError(
                    f"version label '{label}' is already registered in model "
                    f"'{self.config.model_name}'; labels are immutable, choose another"
                )
            created = self.client.create_model_version(
                self.config.model_name,
                source=f"models:/{model_id}",
                run_id=run_id,
                tags=dict(tags),
                model_id=model_id,
            )
        return _to_version(created)

    def delete_version(self, version: str) -> None:
        with self.write_lock():
            self.client.delete_model_version(self.config.model_name, version)

    def find_label(self, label: str) -> RegistryVersion | None:
        """The registry version carrying ``label`` (labels are validated: no quotes to escape)."""
        versions = self.versions_tagged(LABEL_TAG, label)
        return min(versions, key=lambda v: int(v.version)) if versions else None

    def versions_tagged(self, key: str, value: str) -> list[RegistryVersion]:
        """Versions of the registered model whose tag ``key`` is exactly ``value``."""
        found = self.client.search_model_versions(
            f"name={_quoted(self.config.model_name)} and tags.{key}={_quoted(value)}"
        )
        return [_to_version(v) for v in found if v.tags.get(key) == value]

    def has_store(self) -> bool:
        """False for an embedded SQLite store that was never created (nothing trained yet):
        reading it would create it, and a read-only command should not."""
        parts = urlsplit(self.config.tracking_uri)
        if parts.scheme != "sqlite":
            return True
        return Path(parts.path.removeprefix("/")).exists()

    def list_versions(self) -> list[RegistryVersion]:
        if not self.has_store():
            return []
        found = self.client.search_model_versions(f"name='{self.config.model_name}'")
        if not found:
            return []
        aliases = self._aliases_by_version()
        versions = [_to_version(v, aliases.get(str(v.version), ())) for v in found]
        return sorted(versions, key=lambda v: int(v.version))

    def _aliases_by_version(self) -> dict[str, tuple[str, ...]]:
        """Search results may omit aliases, so read them from the registered model."""
        model = self.client.get_registered_model(self.config.model_name)
        by_version: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
        return {k: tuple(sorted(v)) for k, v in by_version.items()}

    def champion(self) -> RegistryVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_model_version_by_alias(self.config.model_name, CHAMPION_ALIAS)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        return _to_version(found, (CHAMPION_ALIAS,))

    def promote(self, label: str, *, tags: Mapping[str, str]) -> RegistryVersion:
        """Move the ``champion`` alias to the version carrying ``label`` and record why."""
        with self.write_lock():
            target = self.find_label(label)
            if target is None:
                raise NotFoundError(
                    f"version label '{label}' is not registered in model '{self.config.model_name}'"
                )
            self.client.set_registered_model_alias(
                self.config.model_name, CHAMPION_ALIAS, target.version
            )
            for key, value in tags.items():
                self.client.set_model_version_tag(
                    self.config.model_name, target.version, key, str(value)
                )
        promoted = self.client.get_model_version(self.config.model_name, target.version)
        return _to_version(promoted, (CHAMPION_ALIAS,))


def mlflow_ui_command(settings: Settings, *, host: str, port: int) -> list[str]:
    """``mlflow ui`` arguments for the embedded store: one worker (≈ 540 MiB instead of ≈ 3 GiB).

    Run with ``python -m`` and ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` in the environment.
    """
    from permeability.errors import InvalidInputError

    uri = settings.resolved_tracking_uri
    if is_remote_tracking(uri):
        raise InvalidInputError(
            f"MLFLOW_TRACKING_URI points at a tracking server ({describe_uri(uri)}); open it in "
            "a browser instead: `permeability ui` serves the embedded store only"
        )
    paths = settings.paths.ensure()
    paths.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    return [
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--default-artifact-root",
        paths.mlflow_artifacts.as_uri(),
        "--workers",
        "1",
        "--host",
        host,
        "--port",
        str(port),
    ]


def describe_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (safe for logs, metadata and reports)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=f"{user}{host}").geturl()


def _quoted(value: str) -> str:
    """A filter-string literal; our values (labels, ids, names) never need escaping."""
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


def _to_version(version: Any, aliases: tuple[str, ...] | None = None) -> RegistryVersion:
    tags = dict(version.tags or {})
    return RegistryVersion(
        version=str(version.version),
        label=tags.get(LABEL_TAG),
        run_id=version.run_id,
        source=str(version.source),
        tags=tags,
        aliases=aliases if aliases is not None else tuple(getattr(version, "aliases", ()) or ()),
        created_at_ms=version.creation_timestamp,
    )
