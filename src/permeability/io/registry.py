"""MLflow model registry: logged models, versions registered by label, the ``champion`` alias.

Built on :class:`~permeability.io.tracking.Tracking` (client, write lock, set-up, runs): a
training run's model is logged, registered as a new version of model ``permeability``, and
promoted by moving the alias. Each version label is carried as the model-version tag
``version_label``: it is how a label (what people say) maps to a registry version (what
MLflow counts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from permeability.errors import ConflictError, NotFoundError
from permeability.io.mlflow_setup import point_mlflow_at
from permeability.io.tracking import Tracking, filter_literal

CHAMPION_ALIAS = "champion"
LABEL_TAG = "version_label"
MODEL_ARTIFACT_NAME = "model"


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


class Registry(Tracking):
    """MLflow tracking + registry for experiment and registered model ``permeability``."""

    # -- logged models --------------------------------------------------------------------

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
            [self.experiment_id], filter_string=f"tags.{key} = {filter_literal(value)}"
        )
        return {str(m.model_id): str(m.status) for m in found}

    # -- versions -------------------------------------------------------------------------

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
            f"name={filter_literal(self.config.model_name)} and tags.{key}={filter_literal(value)}"
        )
        return [_to_version(v) for v in found if v.tags.get(key) == value]

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

    # -- the champion alias ---------------------------------------------------------------

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
