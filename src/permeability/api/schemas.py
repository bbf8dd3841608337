"""Request and response bodies of the training service (requests and responses are separate
models: what a client may send is not what the server says back).

Requests forbid unknown fields (a typo such as ``"test_sise"`` is an error, not a silently
ignored default) and are strict about types (``"0.25"`` is not a number). The seed's body
``{"model": "LinearRegression", "version": "0.1", "test_size": 0.25}`` is valid as is.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from permeability.io.model_store import MAX_LABEL_LENGTH
from permeability.jobs.promotion import PromotionResult, VersionInfo, VersionsReport
from permeability.jobs.training_spec import TrainingResult, TrainingSpec

#: ``validate_label``'s rules (io/model_store.py) as a JSON-schema pattern: starts with a letter
#: or digit; letters, digits, '.', '_', '-'; a '.' never followed by another. Documentation
#: only (the validator runs and words the error); tests check the two agree.
VERSION_LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*\.?$"


def version_label_schema() -> dict[str, Any]:
    """The OpenAPI keywords of a version label (a fresh dict: FastAPI may keep a reference)."""
    return {"pattern": VERSION_LABEL_PATTERN, "minLength": 1, "maxLength": MAX_LABEL_LENGTH}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TrainRequest(_Request):
    """Train one version: the seed's three fields, plus optional extras."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"model": "LinearRegression", "version": "0.1", "test_size": 0.25}]
        }
    )

    model: str = Field(description="A name from GET /models (or 'auto').")
    version: str = Field(
        description="Immutable label, e.g. '0.1': letters, digits, '.', '_', '-'; at most 64; "
        "starts with a letter or digit; never '..'.",
        json_schema_extra=version_label_schema(),
    )
    test_size: float = Field(gt=0.0, lt=1.0, description="Share of rows held out for scoring.")
    params: dict[str, Any] | None = Field(
        default=None, description="Hyperparameters of the model (see GET /models)."
    )
    cv: int | None = Field(default=None, ge=2, le=20, description="Cross-validation folds.")
    description: str | None = Field(default=None, max_length=500)

    @field_validator("version")
    @classmethod
    def _label(cls, value: str) -> str:
        from permeability.io.model_store import validate_label

        return _as_value_error(validate_label, value)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        from permeability.domain.models import model_names

        valid = model_names()
        if value not in valid:
            raise ValueError(f"model {value!r} is not in the catalogue; valid: {', '.join(valid)}")
        return value

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        """Hyperparameters checked against the estimator now, so the 422 points at ``params``."""
        from permeability.domain.models import AUTO, resolve_params
        from permeability.errors import InvalidInputError

        model = info.data.get("model")
        if not value or model is None:
            return value
        if model == AUTO:
            raise ValueError("'auto' chooses its own hyperparameters; omit params")
        try:
            resolve_params(model, value)
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from exc
        return value

    def to_spec(self) -> TrainingSpec:
        return TrainingSpec.parse(**self.model_dump())


def _as_value_error(check: Any, value: str) -> str:
    """Our validators raise InvalidInputError; pydantic reports ValueError as a field error."""
    from permeability.errors import InvalidInputError

    try:
        return str(check(value))
    except InvalidInputError as exc:
        raise ValueError(str(exc)) from exc


class TrainResponse(BaseModel):
    """The trained version; the same object ``permeability train --json`` prints."""

    version: str
    run_id: str = Field(description="MLflow run id.")
    registry_version: str = Field(description="Version number in registered model 'permeability'.")
    registered_model: str
    feature_set_version: int = Field(description="Delta table version trained on (lineage).")
    data_hash: str
    model: str = Field(description="The model requested.")
    chosen_model: str = Field(description="The model trained (differs for 'auto').")
    params: dict[str, Any]
    metrics: dict[str, float] = Field(description="Held-out r2, mae, mse, rmse, mape, coverage…")
    per_structure: dict[str, dict[str, float]]
    cv_scores: dict[str, float] | None
    n_train: int
    n_calibration: int
    n_test: int
    rows_available: int = Field(description="Records in the feature-set version.")
    rows_excluded_non_product: int = Field(
        description="Calibration/reference films and unreported materials: never trained on."
    )
    rows_censored: int = Field(
        description="Product rows whose WVTR was under the detection limit (learnt at it)."
    )
    detection_limit: float | None = Field(description="WVTR under which the lab reads nothing.")
    split_grouping: str = Field(
        description="'test_id': every split kept each test's replicates together (held-out "
        "metrics say what a new test will see); 'row': the data had no test ids."
    )
    n_test_groups: int = Field(description="Tests in the held-out part.")
    noise_floor: dict[str, float | int] | None = Field(
        description="Replicate disagreement: noise_floor_mae is the error no model can beat "
        "(metrics.mae_over_noise_floor compares the model with it)."
    )
    created_at: str
    model_path: str
    seconds: float
    timings: dict[str, float]

    @classmethod
    def from_result(cls, result: TrainingResult) -> TrainResponse:
        return cls.model_validate(result.model_dump())


class ParamOut(BaseModel):
    name: str
    default: Any
    type: str
    allowed: str


class ModelOut(BaseModel):
    name: str
    description: str
    scaled: bool
    interactions: bool
    max_rows: int | None
    params: list[ParamOut]


class ModelsResponse(BaseModel):
    models: list[ModelOut]


class VersionOut(BaseModel):
    version: str
    status: str = Field(description="'champion', 'available' or 'unavailable'.")
    is_champion: bool
    registry_version: str | None
    run_id: str | None
    model: str | None
    chosen_model: str | None
    metrics: dict[str, float]
    lineage: dict[str, Any]
    created_at: str | None
    problem: str | None

    @classmethod
    def from_info(cls, info: VersionInfo) -> VersionOut:
        return cls.model_validate(info.model_dump())


class VersionsResponse(BaseModel):
    versions: list[VersionOut]
    champion: str | None
    registry_error: str | None

    @classmethod
    def from_report(cls, report: VersionsReport) -> VersionsResponse:
        return cls(
            versions=[VersionOut.from_info(v) for v in report.versions],
            champion=report.champion,
            registry_error=report.registry_error,
        )


class PromoteRequest(_Request):
    """Optional: why, and on whose behalf (recorded as tags on the registry version)."""

    reason: str | None = Field(default=None, max_length=500)
    promoted_by: str | None = Field(default=None, min_length=1, max_length=100)


class PromoteResponse(BaseModel):
    version: str
    registry_version: str
    registered_model: str
    alias: str
    previous_champion: str | None
    promoted_by: str
    promoted_at: str
    reason: str | None

    @classmethod
    def from_result(cls, result: PromotionResult) -> PromoteResponse:
        return cls.model_validate(result.model_dump())


class HealthResponse(BaseModel):
    status: str
    tracking_uri: str
    feature_store_uri: str
    models_dir: str
    auth_required: bool
