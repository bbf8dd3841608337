"""Infrastructure settings read from the environment (``PERMEABILITY_*``).

Only where things live and how to reach them belongs here; what a stage does is in
:mod:`permeability.config`. Nothing is read at import time: call :func:`get_settings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the storage root, the feature store, MLflow and the config file are."""

    model_config = SettingsConfigDict(env_prefix="PERMEABILITY_", frozen=True, extra="ignore")

    home: Path = Field(default=Path("storage"), description="Storage root (data/, logs/, models/).")
    config_file: Path | None = Field(
        default=None, description="YAML with per-stage parameters; defaults are embedded."
    )
    source: str | None = Field(
        default=None, description="Default lab source (path or SQLAlchemy URL) for scheduled runs."
    )
    source_table: str | None = None
    feature_store_uri: str | None = Field(
        default=None, description="Delta Lake root; a local path or an object-store URI."
    )
    tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "PERMEABILITY_TRACKING_URI"),
        description="MLflow tracking server; defaults to a SQLite store under the home.",
    )
    api_token: SecretStr | None = Field(
        default=None, description="Bearer token required by state-changing endpoints when set."
    )
    inference_token: SecretStr | None = Field(
        default=None,
        description="Bearer token the inference service's POST endpoints require when set "
        "(its GET endpoints and the lab page stay open).",
    )
    specs_file: Path | None = Field(
        default=None,
        description="YAML of specification limits; overrides config.inference.specs_file.",
    )
    mlflow_ui_url: str | None = Field(
        default=None,
        description="Base URL of the MLflow UI the lab page links runs to; default: the "
        "tracking server, or port 5000 of the page's host (`permeability ui`).",
    )

    @property
    def paths(self) -> StoragePaths:
        return StoragePaths(self.home.expanduser().resolve())

    @property
    def resolved_feature_store_uri(self) -> str:
        return self.feature_store_uri or str(self.paths.feature_store)

    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{self.paths.mlflow_db}"


@dataclass(frozen=True)
class StoragePaths:
    """The seed's storage layout: ``data/``, ``logs/``, ``models/`` below one root."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def feature_store(self) -> Path:
        return self.data / "feature_store"

    @property
    def rejected(self) -> Path:
        return self.data / "rejected"

    @property
    def raw(self) -> Path:
        return self.data / "raw"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow" / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlflow" / "artifacts"

    def ensure(self) -> StoragePaths:
        """Create the layout; called by jobs, never at import."""
        for folder in (self.data, self.logs, self.models, self.rejected, self.raw):
            folder.mkdir(parents=True, exist_ok=True)
        self.mlflow_db.parent.mkdir(parents=True, exist_ok=True)
        return self


def get_settings() -> Settings:
    """Read the environment now (tests change it between calls)."""
    return Settings()
