"""Answer bodies of the inference service (what it says back; what a client may send is
:mod:`permeability.services.inference.schemas`): the guide value with its interval and
decision, a batch's rows and counts, health, readiness, versions and limits.
"""

from __future__ import annotations

import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from permeability.scoring.decisions import Decision
from permeability.scoring.specs import PERMEABILITY_UNIT
from permeability.services.inference.schemas import MUESTRA_DESCRIPTION


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
