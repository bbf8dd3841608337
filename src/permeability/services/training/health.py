"""``GET /health``: the training service is up, and where it tracks, reads and stores."""

from __future__ import annotations

from fastapi import APIRouter

from permeability.services.common.deps import ServiceDep, SettingsDep, configured_token
from permeability.services.training.schemas import TrainingHealth

router = APIRouter(tags=["health"])


@router.get("/health", response_model=TrainingHealth, summary="Liveness and wiring")
def health(settings: SettingsDep, service: ServiceDep) -> TrainingHealth:
    from permeability.io.mlflow_setup import describe_uri

    return TrainingHealth(
        status="ok",
        tracking_uri=describe_uri(service.registry.config.tracking_uri),
        feature_store_uri=describe_uri(settings.resolved_feature_store_uri),
        models_dir=str(settings.paths.models),
        auth_required=configured_token(settings) is not None,
    )
