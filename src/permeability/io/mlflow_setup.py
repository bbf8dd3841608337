"""MLflow in this process: imported with telemetry off, pointed at a store, its URIs shown safely.

``import mlflow`` costs about a second and MLflow phones home unless told not to, so
:func:`import_mlflow` switches telemetry off and imports it lazily; nothing here runs at
import time. The tracking and registry themselves are :mod:`permeability.io.tracking` and
:mod:`permeability.io.registry`.
"""

from __future__ import annotations

import os
from types import ModuleType
from urllib.parse import urlsplit

from permeability.errors import InvalidInputError
from permeability.settings import Settings

#: Set before MLflow is first imported: no telemetry; and no copying of whatever uv project
#: happens to be the current directory into saved models (it depends on where you stand).
MLFLOW_ENVIRONMENT = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_UV_AUTO_DETECT": "false"}

_REMOTE_SCHEMES = ("http", "https", "databricks")
_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def import_mlflow() -> ModuleType:
    """Import MLflow with telemetry off (the variable must be set before the first import)."""
    os.environ.update(MLFLOW_ENVIRONMENT)
    import mlflow

    return mlflow


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


def mlflow_ui_command(settings: Settings, *, host: str, port: int) -> list[str]:
    """``mlflow ui`` arguments for the embedded store: one worker (≈ 540 MiB instead of ≈ 3 GiB).

    Run with ``python -m`` and ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` in the environment.
    """
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
