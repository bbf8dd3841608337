"""``GET /models``: the model catalogue, each model with its hyperparameters."""

from __future__ import annotations

from fastapi import APIRouter

from permeability.services.training.schemas import ModelOut, ModelsResponse

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelsResponse, summary="The model catalogue")
def list_models() -> ModelsResponse:
    from permeability.modelling.catalogue import catalogue

    return ModelsResponse(models=[ModelOut.model_validate(m.to_dict()) for m in catalogue()])
