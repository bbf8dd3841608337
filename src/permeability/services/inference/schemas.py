"""Request bodies of the inference service: what a client may send (the answers are
:mod:`permeability.services.inference.responses`: separate models for each direction).

The single-sample request is the seed's body verbatim: ``{"version": "0.1", "data_test":
{"Muestra": 1, "Grados_C": 25.6, ...}}``. Every field is checked on its own, so a 422 names
the field (``loc``) and the problem: types (numbers must be JSON numbers; an integer in a
float field is fine, ``true`` or ``"25,6"`` is not) and the record rules acquisition and batch
scoring apply (:mod:`permeability.record.rules`): each range's bounds, which of them are open
and its unit, as pydantic ``Field`` constraints (so a valid body costs what it did to check,
and a broken one gets pydantic's words and types), ``Muestra`` a whole number ≥ 0, and the
caliper mean against its readings, in a batch's words. Unlike a batch, the single sample fills
no caliper reading (all five and ``CalibreProm`` are required) and a broken value refuses the
request where a batch marks the row. The structure is text here; whether the chosen version
knows it, or refuses it as a non-product (a calibration or reference film, an unreported
material), is checked by the endpoint (it depends on the version).

``Muestra`` is the *replicate number* of a test (specimen 1, 2, ...), not a sample id (issue
11). The optional record fields ``CONSECUTIVO``, ``Referencia`` and ``Fecha`` say which lab
record a guide value is for; they do not change it, they are echoed when sent and logged, so
evaluation can match the answer with the lab's later result
(:mod:`permeability.record.request_fields` holds their rules, shared with batch scoring).
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from permeability.record.identity import MAX_FIELD_LENGTH, control_character_problem
from permeability.record.problems import shown
from permeability.record.request_fields import (
    iso_test_date,
    record_number_text,
    reference_text,
)
from permeability.record.rules import (
    INPUT_RANGE_RULES,
    MAX_SAMPLE_ID,
    MAX_STRUCTURE_TEXT,
    caliper_mean_problem,
)
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    GRADOS_C,
    PORC_HUMEDAD,
    caliper_mean_consistent,
)

SEED_SAMPLE: Final[dict[str, Any]] = {
    "Muestra": 1,
    "Grados_C": 25.6,
    "Porc_Humedad": 23,
    "Estructura": "BOPP",
    "Calibre1": 16.4,
    "Calibre2": 16.4,
    "Calibre3": 16.4,
    "Calibre4": 16.4,
    "Calibre5": 16.4,
    "CalibreProm": 16.4,
}
SEED_BODY: Final[dict[str, Any]] = {"version": "0.1", "data_test": SEED_SAMPLE}
#: The seed's sample with the optional record fields of the lab's real export (issue 11).
RECORD_SAMPLE: Final[dict[str, Any]] = {
    **SEED_SAMPLE,
    "CONSECUTIVO": "10234",
    "Referencia": "REF-1187",
    "Fecha": "2026-03-02",
}


def _number_only(value: Any) -> Any:
    """JSON numbers only: ``true`` would otherwise become 1.0 and ``"23"`` 23.0 silently."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "number_type",
            "must be a JSON number (integer or decimal), got {kind} {value}",
            {"kind": type(value).__name__, "value": repr(value)[:40]},
        )
    return value


def _integer_only(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "integer_type",
            "must be a whole JSON number, got {kind} {value}",
            {"kind": type(value).__name__, "value": repr(value)[:40]},
        )
    return value


def _record_number(value: Any) -> Any:
    if value is None:
        return None
    try:
        return record_number_text(value)
    except ValueError as exc:
        raise PydanticCustomError("record_number", "{problem}", {"problem": str(exc)}) from None


def _reference(value: Any) -> Any:
    if value is None:
        return None
    try:
        return reference_text(value)
    except ValueError as exc:
        raise PydanticCustomError("reference", "{problem}", {"problem": str(exc)}) from None


def _test_date(value: Any) -> Any:
    if value is None:
        return None
    try:
        return iso_test_date(value)
    except ValueError as exc:
        raise PydanticCustomError("test_date", "{problem}", {"problem": str(exc)}) from None


Number = Annotated[float, BeforeValidator(_number_only)]
RecordNumber = Annotated[str | None, BeforeValidator(_record_number)]
Reference = Annotated[str | None, BeforeValidator(_reference)]
TestDate = Annotated[datetime.date | None, BeforeValidator(_test_date)]


def _ranged(column: str, description: str) -> Any:
    """A number field with the column's declared range; ``{unit}`` in the description is its
    unit."""
    rule = INPUT_RANGE_RULES[column]
    ge, gt, le, lt = rule.bounds()
    return Field(
        ge=ge,
        gt=gt,
        le=le,
        lt=lt,
        allow_inf_nan=False,
        description=description.format(unit=rule.unit),
    )


MUESTRA_DESCRIPTION: Final = (
    "Replicate number of the test (specimen 1, 2, ... of one film under one set of "
    "conditions), not a record id: many records share it."
)


class SampleInput(BaseModel):
    """One lab sample: the seed's ``data_test`` (test conditions, structure, calipers), and
    optionally the record it is (``CONSECUTIVO``, ``Referencia``, ``Fecha``)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [SEED_SAMPLE, RECORD_SAMPLE]}
    )

    Muestra: Annotated[int, BeforeValidator(_integer_only)] = Field(
        ge=0, le=MAX_SAMPLE_ID, description=MUESTRA_DESCRIPTION
    )
    Grados_C: Number = _ranged(GRADOS_C, "Test temperature, {unit}.")
    Porc_Humedad: Number = _ranged(PORC_HUMEDAD, "Test relative humidity, {unit}.")
    Estructura: str = Field(
        min_length=1,
        max_length=MAX_STRUCTURE_TEXT,
        description="Film structure as typed ('BOPP', 'bopp ', 'Bopp metalizado', 'PET/LDPE').",
    )
    Calibre1: Number = _ranged(CALIBRES[0], "Caliper reading 1, {unit}.")
    Calibre2: Number = _ranged(CALIBRES[1], "Caliper reading 2, {unit}.")
    Calibre3: Number = _ranged(CALIBRES[2], "Caliper reading 3, {unit}.")
    Calibre4: Number = _ranged(CALIBRES[3], "Caliper reading 4, {unit}.")
    Calibre5: Number = _ranged(CALIBRES[4], "Caliper reading 5, {unit}.")
    CalibreProm: Number = _ranged(
        CALIBRE_PROM, "Mean caliper, {unit}; must agree with the five readings."
    )
    CONSECUTIVO: RecordNumber = Field(
        default=None,
        description="Optional. The lab's running record number (text or a whole number; "
        f"echoed as text; at most {MAX_FIELD_LENGTH} characters): the key evaluation "
        "matches the answer with the lab result on.",
        json_schema_extra={"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
    )
    Referencia: Reference = Field(
        default=None,
        description="Optional. Product reference of the test, as the lab writes it (text, at "
        f"most {MAX_FIELD_LENGTH} characters).",
    )
    Fecha: TestDate = Field(
        default=None,
        description="Optional. Test date, YYYY-MM-DD.",
    )

    @property
    def record_fields(self) -> dict[str, Any]:
        """The record fields sent (absent ones left out), as the answer echoes them."""
        fields: dict[str, Any] = {}
        if self.CONSECUTIVO is not None:
            fields["CONSECUTIVO"] = self.CONSECUTIVO
        if self.Referencia is not None:
            fields["Referencia"] = self.Referencia
        if self.Fecha is not None:
            fields["Fecha"] = self.Fecha.isoformat()
        return fields

    @field_validator("Estructura")
    @classmethod
    def _has_text(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("blank_structure", "must not be blank")
        problem = control_character_problem(value.strip())  # acquisition's rule, same words
        if problem is not None:
            raise PydanticCustomError("control_character", "{problem}", {"problem": problem})
        return value

    @field_validator("CalibreProm")
    @classmethod
    def _consistent_mean(cls, value: float, info: ValidationInfo) -> float:
        readings = [info.data.get(c) for c in CALIBRES]
        if any(r is None for r in readings):
            return value  # a reading already failed; that error names it
        mean = sum(float(r) for r in readings if r is not None) / len(readings)
        if not caliper_mean_consistent(value, mean):  # the batch's rule, in the batch's words
            raise PydanticCustomError(
                "caliper_mean_inconsistent",
                f"{CALIBRE_PROM} {shown(value)} {caliper_mean_problem(mean)}",
                {"value": value, "mean": round(mean, 3)},
            )
        return value


class InferenceRequest(BaseModel):
    """The seed's body; ``version`` may be omitted (the champion), ``level`` is optional."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SEED_BODY]})

    version: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Version label, e.g. '0.1'. Omitted: the version promoted as champion.",
    )
    level: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        allow_inf_nan=False,
        description="Prediction-interval level (default from config, 0.9).",
    )
    data_test: SampleInput


class BatchOptions(BaseModel):
    """A batch's options, checked by the same rules however they come: the JSON body's
    fields, or a multipart upload's form fields (text, so ``level`` is read as a number)."""

    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(default=None, min_length=1, max_length=64)
    level: float | None = Field(default=None, gt=0.0, lt=1.0, allow_inf_nan=False)


class BatchRequest(BatchOptions):
    """Many samples at once; each record has the fields of ``data_test``. A bad record
    becomes a row with an ``error``, never a failed request."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"version": "0.1", "records": [SEED_SAMPLE]}]},
    )

    records: list[Any] = Field(
        max_length=100_000,
        description="Lab records (objects with the seed's field names, optionally with "
        "CONSECUTIVO, Referencia and Fecha). An item that is not an object becomes a row "
        "whose error says so (so the schema takes any item).",
    )
