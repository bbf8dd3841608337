"""Infrastructure settings read from the environment (``PERMEABILITY_*``).

Only where things live and how to reach them belongs here; what a stage does is in
:mod:`permeability.config`. Nothing is read at import time: call :func:`get_settings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Port of ``permeability ui`` (the MLflow UI on the embedded store) when nothing says otherwise.
DEFAULT_MLFLOW_UI_PORT: Final = 5000


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
    page_url: str | None = Field(
        default=None,
        description="Public URL of the lab page (the inference service, e.g. "
        "http://lab-server:8001/) that notifications link to; unset: messages carry no page "
        "link (a guessed host would be a broken link more often than not).",
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

    @property
    def resolved_mlflow_ui_url(self) -> str | None:
        """The MLflow UI a run link should open (the lab page and notifications both use it).

        An explicit ``PERMEABILITY_MLFLOW_UI_URL`` wins; a tracking *server* is its own UI; the
        embedded SQLite store has no UI until ``permeability ui`` starts one (``None``: the page
        then uses its own host on :data:`DEFAULT_MLFLOW_UI_PORT`). Credentials in a tracking URI
        are never handed out.
        """
        if self.mlflow_ui_url:
            return self.mlflow_ui_url.rstrip("/")
        parts = urlsplit(self.tracking_uri or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        return f"{parts.scheme}://{host}{parts.path}".rstrip("/")


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
    def monitoring(self) -> Path:
        """The latest evaluation as the lab page shows it (``latest.json``)."""
        return self.root / "monitoring"

    @property
    def notifications(self) -> Path:
        """The notification outbox and the record of what was sent."""
        return self.root / "notifications"

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
