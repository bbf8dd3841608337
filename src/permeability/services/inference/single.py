"""One sample in, one answer out: the work behind ``POST /inference``.

Shared by the FastAPI route and the lean ASGI path in front of it (``services/inference/fast.py``),
so both give the same answer byte for byte. Pure CPU work of a few microseconds for linear
models: no DataFrame, and one I/O call: the prediction-log append buffers the row and
writes it to the local spool (one ``write()``, before the answer leaves: a killed service
loses no answered prediction; docs/inference.md, Durability).
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any, Final

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from pydantic_core import to_json

from permeability.errors import InvalidInputError
from permeability.modelling.conformal import UNCERTAIN_WIDENING, widen_interval, widened_limit
from permeability.modelling.served import LoadedModel
from permeability.record.request_fields import non_product, non_product_message
from permeability.record.structures import LAYER_VOCABULARY
from permeability.scoring.decisions import (
    Decision,
    DecisionPolicy,
    decide,
    decision_reason,
    no_decision_reason,
)
from permeability.scoring.specs import PERMEABILITY_UNIT, SpecificationSet, SpecLimit
from permeability.services.inference.responses import ConditionsOut, SpecificationOut
from permeability.services.inference.schemas import InferenceRequest, SampleInput
from permeability.services.inference.state import InferenceState

#: The errors of a single-sample request, as documented in the OpenAPI schema.
SAMPLE_ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    404: {"description": "Unknown version (the body lists the available ones), or no champion."},
    422: {
        "description": "A field is invalid, the structure is a non-product (a calibration or "
        "reference film, an unreported material) or unknown to the version; `detail[].loc` "
        "names the field."
    },
    503: {"description": "The version exists but cannot serve (missing or corrupt files)."},
}

#: The most a single-sample body may hold (a sample is under a kilobyte): ``POST /inference``
#: reads its body whole, so a larger one is refused while it streams (413, ``services/common/body_limit.py``).
MAX_SAMPLE_BYTES: Final = 1024 * 1024


def _unknown_structure(raw: str, canonical: str, loaded: LoadedModel, loc: tuple[Any, ...]) -> Any:
    known = sorted(loaded.known_structures)
    return RequestValidationError(
        [
            {
                "loc": loc,
                "msg": f"structure {raw!r} ({canonical}) is not known to version "
                f"{loaded.version} and is not a laminate of known layers "
                f"({', '.join(LAYER_VOCABULARY)}) whose family the version learnt; "
                f"known structures: {', '.join(known)}",
                "type": "unknown_structure",
                "input": raw,
                "ctx": {"known": known},
            }
        ]
    )


def _non_product(raw: str, canonical: str, loc: tuple[Any, ...]) -> Any:
    return RequestValidationError(
        [
            {
                "loc": loc,
                "msg": non_product_message(raw, canonical),
                "type": "non_product",
                "input": raw,
                "ctx": {"structure": canonical},
            }
        ]
    )


@functools.lru_cache(maxsize=512)
def _specification(limit: SpecLimit) -> dict[str, Any]:
    """The response's view of a limit (limits are immutable: built once per limit)."""
    return _specification_model(limit).model_dump(mode="json")


def _specification_model(limit: SpecLimit) -> SpecificationOut:
    return SpecificationOut(
        structure=limit.structure,
        limit=limit.max_permeability,
        conditions=ConditionsOut(
            temperature_c=limit.temperature_c,
            temperature_tolerance_c=limit.temperature_tolerance_c,
            humidity_pct=limit.humidity_pct,
            humidity_tolerance_pct=limit.humidity_tolerance_pct,
        ),
        min_thickness_um=limit.min_thickness_um,
        max_thickness_um=limit.max_thickness_um,
        method=limit.method,
        note=limit.note,
    )


def answer_sample(
    loaded: LoadedModel,
    sample: SampleInput,
    specs: SpecificationSet,
    policy: DecisionPolicy,
    *,
    level: float,
    champion: str | None,
    request_id: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The answer (shaped as InferenceResponse) for one validated sample, and its
    prediction-log row (without time fields).

    Pure CPU work of a few microseconds for linear models: no DataFrame, no I/O.
    """
    model = loaded.scorer
    structure = model.features.canonical_structure(sample.Estructura)
    # Before the unknown-structure check: "not a product" is the true reason, and it holds
    # even for a version that (trained before non-products were flagged) knows the name.
    if model.non_product and non_product(structure, model.non_product):
        raise _non_product(sample.Estructura, structure, ("body", "data_test", "Estructura"))
    stand_in: str | None = None
    if structure not in loaded.known_structures:
        stand_in = _stand_in(model, structure)
        if stand_in is None:
            raise _unknown_structure(
                sample.Estructura, structure, loaded, ("body", "data_test", "Estructura")
            )
    record = sample.model_dump()
    record["Estructura"] = structure
    prediction, extrapolated = model.predict_record_detail(record, strict=stand_in is None)
    if not 0.0 < prediction < math.inf:
        raise InvalidInputError(
            "the model gives no finite positive value for this sample; its inputs are far "
            "outside the data it was trained on"
        )
    widen = UNCERTAIN_WIDENING if (stand_in is not None or extrapolated) else 1.0
    lower, upper = widen_interval(prediction, *model.interval(prediction, structure, level), widen)
    match = specs.match(structure, sample.Grados_C, sample.Porc_Humedad, sample.CalibreProm)
    decision: Decision | None = None
    p_exceed: float | None = None
    if match.limit is None:
        reason = no_decision_reason(match.reason)
    else:
        p_exceed = model.p_exceed(
            prediction, structure, widened_limit(prediction, match.limit.max_permeability, widen)
        )
        decision = decide(p_exceed, policy.approve_below, policy.reject_above)
        reason = decision_reason(decision, match.limit, policy, p_exceed)
    # A plain dict, serialised by pydantic-core: building pydantic models here would cost
    # more than the prediction. Its shape is InferenceResponse (checked by the tests).
    response: dict[str, Any] = {
        "version": loaded.version,
        "champion": loaded.version == champion,
        "model": loaded.model_name,
        "request_id": request_id,
        "Muestra": sample.Muestra,
        **sample.record_fields,  # echoed only when sent: the seed's answer is unchanged
        "structure": structure,
        "prediction": {"value": prediction, "unit": PERMEABILITY_UNIT},
        "interval": {
            "level": level,
            "lower": lower,
            "upper": upper if upper < math.inf else None,
            "unit": PERMEABILITY_UNIT,
            "method": model.calibration.method,
            "calibration": model.calibration.source(structure),
        },
        "specification": None if match.limit is None else _specification(match.limit),
        "decision": decision,
        "p_exceed": p_exceed,
        "decision_reason": reason,
    }
    limit = model.detection_limit
    if limit is not None:  # versions trained before the real-export rules answer as they did
        response["below_detection_limit"] = prediction < limit
        response["detection_limit"] = limit
        response["basis"] = "structure" if stand_in is None else "layers"
        response["stand_in"] = stand_in
        response["extrapolated"] = extrapolated
    log_row = {
        "request_id": request_id,
        "endpoint": "single",
        "version": loaded.version,
        **record,
        "Estructura": sample.Estructura,
        "structure": structure,
        "prediction": prediction,
        "lower": lower,
        "upper": upper,
        "level": level,
        "spec_limit": None if match.limit is None else match.limit.max_permeability,
        "p_exceed": p_exceed,
        "decision": decision,
    }
    return response, log_row


def _stand_in(model: Any, structure: str) -> str | None:
    """The category an unseen laminate of known layers is predicted with (None: 422)."""
    finder = getattr(model.features, "stand_in", None)
    return None if finder is None else finder(structure)


def parse_inference_request(raw: bytes) -> InferenceRequest:
    """Parse and validate in one pass (pydantic-core reads the JSON itself); errors come back
    as FastAPI's 422 body, each ``loc`` starting with ``body``."""
    try:
        return InferenceRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [_json_safe({**e, "loc": ("body", *e["loc"])}) for e in exc.errors(include_url=False)]
        ) from None


def _json_safe(error: dict[str, Any]) -> dict[str, Any]:
    """A body that is not UTF-8 comes back as bytes in ``input``; show it, do not crash on it."""
    if isinstance(error.get("input"), bytes):
        error["input"] = error["input"].decode("utf-8", errors="replace")
    return error


def respond(
    state: InferenceState, body: InferenceRequest, loaded: LoadedModel, started: float
) -> bytes:
    """The JSON answer for a parsed request whose model is in memory; counts the decision and
    logs the prediction (buffered and spooled; with the latency since ``started``, a
    perf_counter) before the answer is returned to be sent."""
    response, log_row = answer_sample(
        loaded,
        body.data_test,
        state.specs.current,
        state.policy,
        level=state.policy.level if body.level is None else body.level,
        champion=state.cache.champion,
        request_id=state.request_ids(),
    )
    state.metrics.count_decision(response["decision"])
    log_row["timestamp"] = time.time()
    log_row["latency_ms"] = (time.perf_counter() - started) * 1000.0
    state.log.append(log_row)
    # Serialised here: FastAPI would validate the finished response model a second time.
    return to_json(response)
