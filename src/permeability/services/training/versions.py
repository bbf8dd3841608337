"""``GET /versions``, ``GET /versions/{version}`` and ``POST /versions/{version}/promote``:
the trained versions, and moving the ``champion`` alias. Trainings that died half-way are
reconciled before versions are listed (:mod:`permeability.pipelines.training_recovery`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path

from permeability.pipelines.promotion import PromotionResult, VersionInfo, VersionsReport
from permeability.services.common.deps import Authorized, ServiceDep, SettingsDep
from permeability.services.training.schemas import REFUSALS, PromoteRequest, version_label_schema

#: A version label in a path, documented with the label rules (so a client, or a schema-driven
#: test, knows which labels can exist); the route still checks it and says what is wrong.
VersionPath = Annotated[
    str, Path(description="A version label.", json_schema_extra=version_label_schema())
]

router = APIRouter(tags=["versions"])


@router.get("/versions", response_model=VersionsReport, summary="Trained versions")
def list_versions(settings: SettingsDep, service: ServiceDep) -> VersionsReport:
    from permeability.pipelines.promotion import list_versions as run_listing
    from permeability.pipelines.training_recovery import reconcile_trainings

    reconcile_trainings(settings, service.logger, registry=service.registry)
    return run_listing(settings, registry=service.registry)


@router.get(
    "/versions/{version}",
    response_model=VersionInfo,
    responses={404: {"description": "No such version."}},
    summary="One trained version",
)
def get_version(version: VersionPath, settings: SettingsDep, service: ServiceDep) -> VersionInfo:
    from permeability.errors import NotFoundError
    from permeability.io.model_store import validate_label
    from permeability.pipelines.promotion import list_versions as run_listing
    from permeability.pipelines.training_recovery import reconcile_trainings

    validate_label(version)
    reconcile_trainings(settings, service.logger, registry=service.registry)
    report = run_listing(settings, registry=service.registry)
    for info in report.versions:
        if info.version == version:
            return info
    raise NotFoundError(f"version '{version}' is neither in the model store nor in the registry")


@router.post(
    "/versions/{version}/promote",
    response_model=PromotionResult,
    responses=REFUSALS,  # type: ignore[arg-type]
    summary="Move the 'champion' alias to this version",
)
def promote(
    version: VersionPath,
    settings: SettingsDep,
    service: ServiceDep,
    _: Authorized,
    body: Annotated[PromoteRequest | None, Body()] = None,
) -> PromotionResult:
    from permeability.pipelines.promotion import promote as run_promotion

    request = body or PromoteRequest()
    result = run_promotion(
        settings,
        version,
        reason=request.reason,
        promoted_by=request.promoted_by or "api",
        config=service.config,
        registry=service.registry,
    )
    return result
