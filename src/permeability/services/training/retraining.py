"""``POST /retrain`` on the training service: the on-demand trigger of the retraining policy.

It runs the same job as ``permeability retrain`` (:mod:`permeability.pipelines.retraining`) and
answers with its report when done. A challenger it trains waits for a training slot in the
service's own line, like ``POST /train`` (503 with Retry-After when the line is full); it writes
MLflow runs and may move the ``champion`` alias, so it is guarded by the bearer token. Every
decision, "no trigger" included, is answered with 200 and recorded.
"""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from permeability.pipelines.retraining_record import RetrainReport
from permeability.services.common.deps import Authorized, ServiceDep, SettingsDep
from permeability.services.training.trainings import QueueDep

router = APIRouter(tags=["retrain"])

_REFUSALS: dict[int | str, dict[str, str]] = {
    status.HTTP_401_UNAUTHORIZED: {"description": "Token required and missing or wrong."},
    status.HTTP_404_NOT_FOUND: {
        "description": "No champion is set, or the champion cannot be loaded."
    },
    status.HTTP_409_CONFLICT: {"description": "The feature store is empty."},
    status.HTTP_422_UNPROCESSABLE_CONTENT: {
        "description": "A field is invalid; the body says which."
    },
    status.HTTP_503_SERVICE_UNAVAILABLE: {
        "description": "Every training slot is busy and the line is full; see Retry-After."
    },
}


class RetrainRequest(BaseModel):
    """Optional: train a challenger even when no trigger is met (an empty body follows the
    policy)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_extra={"examples": [{}, {"force": True}]}
    )

    force: StrictBool = Field(
        default=False, description="Train a challenger even when no retraining trigger is met."
    )


@router.post(
    "/retrain",
    response_model=RetrainReport,
    responses=_REFUSALS,  # type: ignore[arg-type]
    summary="Train and judge a challenger when the retraining policy says so",
)
def retrain(
    settings: SettingsDep,
    service: ServiceDep,
    queue: QueueDep,
    _: Authorized,
    body: RetrainRequest | None = None,
) -> RetrainReport:
    from permeability.pipelines.retraining import retrain as run

    request = body or RetrainRequest()
    return run(
        settings,
        force=request.force,
        config=service.config,
        registry=service.registry,
        queue=queue,
    )
