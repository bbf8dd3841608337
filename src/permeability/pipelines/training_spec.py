"""What a training is asked for and what it answers: the seed's ``POST /train`` contract.

Shared by the training job, the CLI and the API's request and response models, so the three
cannot drift.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from permeability.errors import InvalidInputError, invalid_input_from
from permeability.io.model_store import validate_label, validate_new_label

#: Validation context key under which the retrain job may use its reserved label namespace.
_GENERATED: Final = "generated_label"


class TrainingSpec(BaseModel):
    """What to train: the seed's three fields plus optional hyperparameters, folds, a note."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    version: str
    test_size: float = Field(default=0.25, gt=0.0, lt=1.0)
    params: dict[str, Any] | None = None
    cv: int | None = Field(default=None, ge=2, le=20)
    description: str | None = Field(default=None, max_length=500)
    excluded_tests: tuple[str, ...] = Field(
        default=(),
        description="Test ids (``test_id``) of the feature set left out of this training, "
        "every replicate of each: the retrain job keeps its holdout tests out of the "
        "challenger's training. Recorded in the run and the version's lineage.",
    )

    @field_validator("version")
    @classmethod
    def _safe_label(cls, value: str, info: ValidationInfo) -> str:
        """A person's label must stay out of the retrain job's namespace (:meth:`generated`)."""
        generated = bool(info.context and info.context.get(_GENERATED))
        try:
            return validate_label(value) if generated else validate_new_label(value)
        except InvalidInputError as exc:  # a ValueError is reported with the field's name
            raise ValueError(str(exc)) from exc

    @field_validator("excluded_tests")
    @classmethod
    def _distinct_tests(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not test for test in value):
            raise ValueError("test ids must not be empty")
        return tuple(sorted(set(value)))

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        from permeability.modelling.catalogue import UnknownModelError, model_names

        valid = model_names()
        if value not in valid:
            raise ValueError(str(UnknownModelError(value, valid)))
        return value

    @classmethod
    def parse(cls, **fields: Any) -> TrainingSpec:
        """Build a spec, turning pydantic's report into one sentence naming the field."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise invalid_input_from(exc) from exc

    @classmethod
    def generated(cls, **fields: Any) -> TrainingSpec:
        """A spec of the retrain job, whose label (``retrain-...``) it generated itself."""
        try:
            return cls.model_validate(fields, context={_GENERATED: True})
        except ValidationError as exc:
            raise invalid_input_from(exc) from exc


class TrainingResult(BaseModel):
    """What a training produced: ``POST /train`` answers exactly this model (its OpenAPI schema)
    and ``train --json`` prints it, so the two cannot drift."""

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
    rows_excluded_tests: int = Field(
        default=0,
        description="Rows of the tests the request left out (excluded_tests); never seen.",
    )
    rows_censored: int = Field(
        description="Product rows whose WVTR was under the detection limit (learnt at it)."
    )
    detection_limit: float | None = Field(description="WVTR under which the lab reads nothing.")
    split_grouping: str = Field(
        description="'test_id': the test part, calibration and every fold kept each test's "
        "replicates together, so held-out metrics say what a new test will see; 'row': the "
        "data had no test ids."
    )
    n_test_groups: int = Field(description="Tests in the held-out part.")
    noise_floor: dict[str, float | int] | None = Field(
        description="The replicate disagreement of the data (modelling/noise_floor.py): "
        "noise_floor_mae is the error no model can beat; metrics.mae_over_noise_floor is the "
        "model's MAE over it. None without tests of two or more replicates."
    )
    created_at: str
    model_path: str
    seconds: float
    timings: dict[str, float]
