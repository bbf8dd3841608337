"""``POST /train`` and ``GET /trainings``: train one version, and who trains or waits now.

Training answers when done, as the seed does; the endpoint is a plain ``def``, so FastAPI runs
each request in its thread pool. Requests take turns (:mod:`permeability.pipelines.training_queue`):
at most ``training.max_concurrent`` train at once on the machine, the others wait in a FIFO line
of at most ``training.max_queued`` (one more gets 503 with Retry-After), and ``GET /trainings``
shows who runs and who waits. They cannot corrupt each other: the label is reserved first (a
second request for the same label gets 409), MLflow is driven by explicit run ids, registry
writes are serialised by a file lock (see :mod:`permeability.pipelines.training`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from permeability.pipelines.training_queue import TrainingQueue, TrainingsView
from permeability.pipelines.training_spec import TrainingResult
from permeability.services.common.deps import Authorized, ServiceDep, SettingsDep
from permeability.services.training.schemas import REFUSALS, TrainRequest

_QUEUE_FULL = {
    status.HTTP_503_SERVICE_UNAVAILABLE: {
        "description": "Every training slot is busy and the line is full; see Retry-After."
    }
}

router = APIRouter(tags=["train"])


def get_training_queue(request: Request, _: ServiceDep) -> TrainingQueue:
    queue: TrainingQueue = request.app.state.training_queue
    return queue


QueueDep = Annotated[TrainingQueue, Depends(get_training_queue)]


@router.post(
    "/train",
    status_code=status.HTTP_201_CREATED,
    response_model=TrainingResult,
    responses={**REFUSALS, **_QUEUE_FULL},  # type: ignore[dict-item]
    summary="Train, track, register and store one version (waits for its turn)",
)
def train(
    body: TrainRequest, settings: SettingsDep, service: ServiceDep, queue: QueueDep, _: Authorized
) -> TrainingResult:
    from permeability.pipelines.training import train as run_training

    result = run_training(
        settings,
        body.to_spec(),
        config=service.config,
        registry=service.registry,
        queue=queue,
    )
    return result


@router.get("/trainings", response_model=TrainingsView, summary="Trainings running and waiting")
def list_trainings(queue: QueueDep) -> TrainingsView:
    return queue.view()
