"""Request and response bodies of the inference service (separate models for each direction).

The single-sample request is the seed's body verbatim: ``{"version": "0.1", "data_test":
{"Muestra": 1, "Grados_C": 25.6, ...}}``. Every field is checked on its own, so a 422 names
the field (``loc``) and the problem: types (numbers must be JSON numbers; an integer in a
float field is fine, ``true`` or ``"25,6"`` is not), physical ranges (from
:mod:`permeability.record.schema`) and the caliper mean against its readings
(:func:`~permeability.record.schema.caliper_mean_consistent`). The structure is text here;
whether the chosen version knows it, or refuses it as a non-product (a calibration or
reference film, an unreported material), is checked by the endpoint (it depends on the
version).

``Muestra`` is the *replicate number* of a test (specimen 1, 2, ...), not a sample id (issue
11). The optional record fields ``CONSECUTIVO``, ``Referencia`` and ``Fecha`` say which lab
record a guide value is for; they do not change it, they are echoed when sent and logged, so
evaluation can match the answer with the lab's later result
(:mod:`permeability.record.request_fields` holds their rules, shared with batch scoring).
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    computed_field,
    field_validator,
)
from pydantic_core import PydanticCustomError

from permeability.record.identity import MAX_FIELD_LENGTH, control_character_problem
from permeability.record.request_fields import (
    iso_test_date,
    record_number_text,
    reference_text,
)
from permeability.record.schema import (
    CALIPER_RANGE_UM,
    HUMIDITY_RANGE_PCT,
    TEMPERATURE_RANGE_C,
    caliper_mean_consistent,
)
from permeability.scoring.decisions import Decision
from permeability.scoring.specs import PERMEABILITY_UNIT

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
_T_LOW, _T_HIGH = TEMPERATURE_RANGE_C
_RH_LOW, _RH_HIGH = HUMIDITY_RANGE_PCT
_L_LOW, _L_HIGH = CALIPER_RANGE_UM


def _caliper(description: str) -> Any:
    return Field(gt=_L_LOW, le=_L_HIGH, allow_inf_nan=False, description=description)


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
        ge=0, le=2**53, description=MUESTRA_DESCRIPTION
    )
    Grados_C: Number = Field(
        ge=_T_LOW, le=_T_HIGH, allow_inf_nan=False, description="Test temperature, °C."
    )
    Porc_Humedad: Number = Field(
        gt=_RH_LOW, le=_RH_HIGH, allow_inf_nan=False, description="Test relative humidity, % RH."
    )
    Estructura: str = Field(
        min_length=1,
        max_length=100,
        description="Film structure as typed ('BOPP', 'bopp ', 'Bopp metalizado', 'PET/LDPE').",
    )
    Calibre1: Number = _caliper("Caliper reading 1, µm.")
    Calibre2: Number = _caliper("Caliper reading 2, µm.")
    Calibre3: Number = _caliper("Caliper reading 3, µm.")
    Calibre4: Number = _caliper("Caliper reading 4, µm.")
    Calibre5: Number = _caliper("Caliper reading 5, µm.")
    CalibreProm: Number = _caliper("Mean caliper, µm; must agree with the five readings.")
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
        readings = [info.data.get(f"Calibre{i}") for i in range(1, 6)]
        if any(r is None for r in readings):
            return value  # a reading already failed; that error names it
        mean = sum(float(r) for r in readings if r is not None) / len(readings)
        if not caliper_mean_consistent(value, mean):
            raise PydanticCustomError(
                "caliper_mean_inconsistent",
                "CalibreProm {value} disagrees with the mean of Calibre1..5 ({mean}); "
                "check for a typo (e.g. 164 for 16.4)",
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


class Quantity(BaseModel):
    value: float = Field(description="Median guide value of the WVTR.")
    unit: str = PERMEABILITY_UNIT


class IntervalOut(BaseModel):
    level: float = Field(description="Share of measured results the interval is built to cover.")
    lower: float
    upper: float | None = Field(
        description="null when the calibration set is too small for this level (unbounded)."
    )
    unit: str = PERMEABILITY_UNIT
    method: Literal["split-conformal", "cross-conformal"] = Field(
        default="split-conformal",
        description="Conformal calibration on residuals of rows the predicting model did not "
        "train on: a held-out part (split) or out-of-fold refits (cross).",
    )
    calibration: Literal["structure", "family", "pooled"] = Field(
        description="'structure': this structure's own residuals; 'family': those of the "
        "structures sharing its best barrier layer (too few of its own); 'pooled': all "
        "structures'."
    )


class ConditionsOut(BaseModel):
    temperature_c: float
    temperature_tolerance_c: float
    humidity_pct: float
    humidity_tolerance_pct: float


class SpecificationOut(BaseModel):
    structure: str
    limit: float = Field(description="Maximum WVTR allowed.")
    unit: str = PERMEABILITY_UNIT
    conditions: ConditionsOut
    min_thickness_um: float | None = None
    max_thickness_um: float | None = None
    method: str | None = None
    note: str | None = None


class InferenceResponse(BaseModel):
    """A guide value with its uncertainty and, when a limit applies, the decision."""

    version: str = Field(description="Version label that answered.")
    champion: bool = Field(description="Whether that version is the current champion.")
    model: str = Field(description="Estimator behind the version.")
    request_id: str
    Muestra: int = Field(description=MUESTRA_DESCRIPTION)
    CONSECUTIVO: str | None = Field(
        default=None, description="The record number sent, as text (absent when not sent)."
    )
    Referencia: str | None = Field(
        default=None, description="The product reference sent (absent when not sent)."
    )
    Fecha: datetime.date | None = Field(
        default=None, description="The test date sent (absent when not sent)."
    )
    structure: str = Field(description="Canonical structure name the model used.")
    prediction: Quantity
    interval: IntervalOut
    specification: SpecificationOut | None = Field(
        description="The limit applied, or null when none applies (see decision_reason)."
    )
    decision: Decision | None = Field(
        description="approve / reject / retest when a limit applies, else null."
    )
    p_exceed: float | None = Field(
        description="Estimated probability that the measured WVTR exceeds the limit."
    )
    decision_reason: str
    below_detection_limit: bool = Field(
        default=False,
        description="True when the guide value is below the instrument's detection limit "
        "(`detection_limit`): a measurement would read 0, so report '< detection_limit'. "
        "Present when the version knows its detection limit (versions trained before it "
        "answer without this field and `detection_limit`).",
    )
    detection_limit: float | None = Field(
        default=None,
        description="The version's detection limit, g/m²·day (absent for older versions).",
    )
    basis: Literal["structure", "layers"] = Field(
        default="structure",
        description="'structure': the version learnt this structure (or pooled it with its "
        "family when it had few rows). 'layers': a laminate never seen, whose layers are all "
        "known, predicted from its family (the structures sharing its best barrier layer: "
        "`stand_in`), with an interval twice as wide in log terms.",
    )
    stand_in: str | None = Field(
        default=None,
        description="With basis 'layers': the category the value comes from (FAMILY:foil, or "
        "the family's most measured structure).",
    )
    extrapolated: bool = Field(
        default=False,
        description="True when the model's value went more than 3x beyond the WVTR range the "
        "structure's family showed in training and was bounded there; the interval is then "
        "twice as wide in log terms. Treat it as a rough guide: run the full test.",
    )


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


class BatchResponse(BaseModel):
    version: str
    level: float
    rows: int
    predicted: int
    failed: int
    decisions: dict[str, int]
    records: list[dict[str, Any]] = Field(
        description="Every input record, in order, plus filled, prediction, lower, upper, "
        "p_exceed, decision, error, structure, limit, decision_reason and "
        "below_detection_limit (null for a row that failed)."
    )

    @computed_field(  # type: ignore[prop-decorator]
        description="Scored records with a missing caliper reading or CalibreProm filled with "
        "the mean of the readings present; their `filled` names the fields."
    )
    @property
    def filled_rows(self) -> int:
        """Counted from the records themselves, so the count cannot disagree with them."""
        return sum(1 for record in self.records if record.get("filled"))


class InferenceHealth(BaseModel):
    """This process answers (the lean liveness check; readiness is ``GET /ready``)."""

    status: Literal["ok"] = "ok"
    pid: int = Field(description="Process that answered (one per uvicorn worker).")


class ReadyResponse(BaseModel):
    ready: bool
    reason: str | None = None
    champion: str | None = None
    loaded_versions: list[str]


class ServedVersion(BaseModel):
    """A version as the inference service sees it: loadable or not, loaded, what it accepts."""

    version: str
    status: Literal["available", "unavailable"]
    reason: str | None = None
    champion: bool
    loaded: bool
    model: str | None = None
    created_at: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    n_train: int | None = Field(default=None, description="Samples the model was fitted on.")
    run_id: str | None = Field(default=None, description="MLflow run of the training.")
    known_structures: list[str] = Field(
        default_factory=list,
        description="Structures this version accepts (canonical names; never a non-product).",
    )
    non_product: list[str] = Field(
        default_factory=list,
        description="Shell patterns of structure names the version refuses as non-products "
        "(calibration and reference films, unreported materials); known when it is loaded.",
    )
    detection_limit: float | None = Field(
        default=None,
        description="WVTR (g/m²·day) below which a guide value is reported as '< limit'; "
        "known when the version is loaded and was trained with one.",
    )
    interval_level: float | None = Field(
        default=None, description="Interval level the version was calibrated for by default."
    )


class VersionsResponse(BaseModel):
    champion: str | None
    champion_error: str | None = None
    versions: list[ServedVersion]


class SpecsResponse(BaseModel):
    source: str = Field(description="File the limits were read from (or the embedded default).")
    loaded_at: str
    reload_error: str | None = Field(
        default=None, description="Why an edited file was refused; the previous limits stay."
    )
    unit: str = PERMEABILITY_UNIT
    limits: list[dict[str, Any]]
