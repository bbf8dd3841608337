"""Where a message's links point: the MLflow run that found the event, and the lab page.

The MLflow UI is found as the lab page finds it (:attr:`Settings.resolved_mlflow_ui_url`); on
the embedded store, which has no UI of its own, the page uses its own host on port 5000 (where
``permeability ui`` listens) and so do messages when ``PERMEABILITY_PAGE_URL`` names that host.
A run link has the form the page uses (``<ui>/#/runs/<run id>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from permeability.monitoring.events import Event
from permeability.settings import DEFAULT_MLFLOW_UI_PORT, Settings


@dataclass(frozen=True)
class Links:
    """The two bases a message links to (either may be unknown)."""

    mlflow_ui: str | None
    page: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Links:
        page = settings.page_url.rstrip("/") + "/" if settings.page_url else None
        return cls(mlflow_ui=_mlflow_ui(settings), page=page)

    def run_url(self, event: Event) -> str | None:
        if not event.run_id or not self.mlflow_ui:
            return None
        return f"{self.mlflow_ui}/#/runs/{quote(event.run_id, safe='')}"


def _mlflow_ui(settings: Settings) -> str | None:
    configured = settings.resolved_mlflow_ui_url
    if configured or not settings.page_url:
        return configured
    parts = urlsplit(settings.page_url)
    if not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme or 'http'}://{host}:{DEFAULT_MLFLOW_UI_PORT}"
