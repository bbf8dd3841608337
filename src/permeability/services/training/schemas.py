"""Request and response bodies of the training service (requests and responses are separate
models: what a client may send is not what the server says back), and the refusals its
writing routes document.

Requests forbid unknown fields (a typo such as ``"test_sise"`` is an error, not a silently
ignored default) and are strict about types (``"0.25"`` is not a number). The seed's body
``{"model": "LinearRegression", "version": "0.1", "test_size": 0.25}`` is valid as is.
"""

from __future__ import annotations

from typing import Any

from fastapi import status
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from permeability.io.model_store import MAX_LABEL_LENGTH
from permeability.pipelines.training_spec import TrainingSpec

#: ``validate_label``'s rules (io/model_store.py) as a JSON-schema pattern: starts with a letter
#: or digit; letters, digits, '.', '_', '-'; a '.' never followed by another. Documentation
#: only (the validator runs and words the error); tests check the two agree.
VERSION_LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*\.?$"


def version_label_schema() -> dict[str, Any]:
    """The OpenAPI keywords of a version label (a fresh dict: FastAPI may keep a reference)."""
    return {"pattern": VERSION_LABEL_PATTERN, "minLength": 1, "maxLength": MAX_LABEL_LENGTH}


#: The refusals of ``POST /train`` and ``POST /versions/{version}/promote`` (the bodies are the
#: services' error contract, ``services/common/errors.py``).
REFUSALS = {
    status.HTTP_401_UNAUTHORIZED: {"description": "Token required and missing or wrong."},
    status.HTTP_404_NOT_FOUND: {"description": "No such version."},
    status.HTTP_409_CONFLICT: {
        "description": "Label taken (immutable), or the feature store is empty."
    },
    status.HTTP_422_UNPROCESSABLE_CONTENT: {
        "description": "A field is invalid; the body says which."
    },
}


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
        "starts with a letter or digit; never '..'; never 'retrain-...' (the retrain job's).",
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
        from permeability.io.model_store import validate_new_label

        return _as_value_error(validate_new_label, value)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        from permeability.modelling.catalogue import model_names

        valid = model_names()
        if value not in valid:
            raise ValueError(f"model {value!r} is not in the catalogue; valid: {', '.join(valid)}")
        return value

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        """Hyperparameters checked against the estimator now, so the 422 points at ``params``."""
        from permeability.errors import InvalidInputError
        from permeability.modelling.catalogue import AUTO, resolve_params

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


class PromoteRequest(_Request):
    """Optional: why, and on whose behalf (recorded as tags on the registry version)."""

    reason: str | None = Field(default=None, max_length=500)
    promoted_by: str | None = Field(default=None, min_length=1, max_length=100)


class TrainingHealth(BaseModel):
    """The training service is up, and where it tracks, reads and stores."""

    status: str
    tracking_uri: str
    feature_store_uri: str
    models_dir: str
    auth_required: bool
