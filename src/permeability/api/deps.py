"""Dependencies shared by the routers: settings, the set-up service state, token auth.

The bearer token guards every state-changing endpoint when ``PERMEABILITY_API_TOKEN`` is
set; read-only endpoints stay open so dashboards and health checks need no secret. The
comparison is constant-time so response timing does not leak the token. An empty token
counts as unset (an empty environment variable is how people usually "unset" one).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from permeability.config import ProjectConfig
from permeability.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="Required for POST endpoints when set.")


@dataclass(frozen=True)
class ServiceState:
    """What the app's lifespan set up once: parsed config, the MLflow registry, a logger."""

    config: ProjectConfig
    registry: Any
    logger: logging.Logger


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_service(request: Request) -> ServiceState:
    service: ServiceState | None = getattr(request.app.state, "service", None)
    if service is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the service is still starting (its lifespan has not run)",
        )
    return service


def require_token(
    settings: Annotated[Settings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected = configured_token(settings)
    if expected is None:
        return
    given = credentials.credentials if credentials is not None else ""
    if not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Authorization: header 'Bearer <token>' is missing or the token is wrong",
            headers={"WWW-Authenticate": "Bearer"},
        )


def configured_token(settings: Settings) -> str | None:
    token = settings.api_token.get_secret_value() if settings.api_token is not None else ""
    return token or None


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[ServiceState, Depends(get_service)]
Authorized = Annotated[None, Depends(require_token)]
