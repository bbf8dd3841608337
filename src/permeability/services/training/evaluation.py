"""``POST /evaluate`` on the training service: the on-demand trigger of an evaluation.

It runs the same job as ``permeability evaluate`` (:mod:`permeability.pipelines.evaluation`) and
answers with its report when done. It writes MLflow runs and may move the ``champion`` alias,
so it is guarded by the bearer token like ``/train``. Refusals: 422 for a bad body, 404 for an
unknown version (or no champion to default to), 409 when there is nothing new to evaluate (no
labelled data after the version's training, or an empty ``since`` window) - then nothing is
written.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictBool

from permeability.pipelines.evaluation_request import EvaluationReport, EvaluationRequest
from permeability.services.common.deps import Authorized, ServiceDep, SettingsDep
from permeability.services.training.schemas import version_label_schema

router = APIRouter(tags=["evaluate"])

_REFUSALS: dict[int | str, dict[str, str]] = {
    status.HTTP_401_UNAUTHORIZED: {"description": "Token required and missing or wrong."},
    status.HTTP_404_NOT_FOUND: {"description": "No such version, or no champion to default to."},
    status.HTTP_409_CONFLICT: {
        "description": "Nothing to evaluate: no labelled data after the version's training."
    },
    status.HTTP_422_UNPROCESSABLE_CONTENT: {
        "description": "A field is invalid; the body says which."
    },
}


class EvaluateRequest(BaseModel):
    """What to evaluate; every field is optional (an empty body evaluates the champion)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        json_schema_extra={"examples": [{}, {"version": "0.1"}, {"compare": True}]},
    )

    version: str | None = Field(
        default=None,
        description="A version label (default: champion).",
        json_schema_extra=version_label_schema(),
    )
    all_versions: StrictBool = Field(
        default=False,
        validation_alias=AliasChoices("all", "all_versions"),
        serialization_alias="all",
        description="Evaluate every available version.",
    )
    since: datetime | None = Field(
        default=None,
        description="Only lab results dated (and predictions made) at or after this; "
        "ISO date or date-time, UTC when no offset is given.",
    )
    compare: StrictBool = Field(
        default=False, description="Score the champion and all other versions on the same rows."
    )
    promote_if_better: float | None = Field(
        default=None,
        ge=0.0,
        lt=1.0,
        allow_inf_nan=False,
        description="Move 'champion' to a challenger that wins by this margin; implies compare.",
    )

    def to_request(self) -> EvaluationRequest:
        return EvaluationRequest.parse(
            version=self.version,
            all_versions=self.all_versions,
            since=self.since,
            compare=self.compare,
            promote_if_better=self.promote_if_better,
        )


@router.post(
    "/evaluate",
    response_model=EvaluationReport,
    responses=_REFUSALS,  # type: ignore[arg-type]
    summary="Evaluate versions on lab results that arrived after their training",
)
def evaluate(
    settings: SettingsDep,
    service: ServiceDep,
    _: Authorized,
    body: EvaluateRequest | None = None,
) -> EvaluationReport:
    from permeability.pipelines.evaluation import run_evaluation

    request = (body or EvaluateRequest()).to_request()
    return run_evaluation(settings, request, config=service.config)
