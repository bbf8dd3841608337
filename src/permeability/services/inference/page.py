"""The lab page: one HTML file and its assets, served by the inference service at ``/``.

The page is for technicians at the bench, often on a network with no internet access, so
everything it needs (script, styles, both languages, the chart) is in ``static/`` and is
served from here: no CDN, no web fonts. The page talks only to the inference API of the
same origin (``/versions``, ``/specs``, ``/inference``, ``/inference/batch``, ``/monitoring``).
Its GETs need no secret; when ``PERMEABILITY_INFERENCE_TOKEN`` is set, the first POST that
answers 401 makes the page ask for the token once and keep it for the tab's session
(``static/app.js``, ``api()``). The monitoring view (``static/monitoring.js``, its control
chart ``static/control_chart.js``) is created by ``app.js`` with the page's helpers and shows
``GET /monitoring`` on its tab.

Assets are served from a fixed list rather than a directory mount, so a request can never
reach a file that was not meant to be public, whatever its path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from permeability.settings import DEFAULT_MLFLOW_UI_PORT, Settings

STATIC_DIR: Final = Path(__file__).with_name("static")

#: Every public asset and its media type; anything else under /static is a 404.
ASSETS: Final = {
    "app.js": "text/javascript; charset=utf-8",
    "monitoring.js": "text/javascript; charset=utf-8",
    "control_chart.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "i18n.json": "application/json; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

#: Browsers revalidate on each load (cheap: ETag), so a deployed fix shows up at once.
_NO_STALE_ASSETS: Final = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


class PageConfig(BaseModel):
    """What the page cannot know by itself: where the MLflow UI is."""

    mlflow_ui_url: str | None = Field(
        description="Base URL of the MLflow UI; null means the page's host on port "
        f"{DEFAULT_MLFLOW_UI_PORT} (where `permeability ui` listens)."
    )
    mlflow_ui_port: int = DEFAULT_MLFLOW_UI_PORT


def mlflow_ui_url(settings: Settings) -> str | None:
    """The MLflow UI a run link should open (one rule for the page and the notifications:
    :attr:`permeability.settings.Settings.resolved_mlflow_ui_url`)."""
    return settings.resolved_mlflow_ui_url


@router.get("/")
def index() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_NO_STALE_ASSETS
    )


@router.get("/static/{name}")
def asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no page asset named {name!r}")
    return FileResponse(STATIC_DIR / name, media_type=media_type, headers=_NO_STALE_ASSETS)


@router.get("/page/config")
def page_config(request: Request) -> PageConfig:
    settings: Settings | None = getattr(request.app.state, "settings", None)
    return PageConfig(mlflow_ui_url=None if settings is None else mlflow_ui_url(settings))
