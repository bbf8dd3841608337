"""The single sample's body takes its bounds and words from the declared record rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from permeability.record.rules import INPUT_RANGE_RULES, MAX_SAMPLE_ID, MAX_STRUCTURE_TEXT
from permeability.services.inference.schemas import SEED_SAMPLE, SampleInput


def test_every_number_field_has_its_declared_range_and_unit() -> None:
    properties = SampleInput.model_json_schema()["properties"]
    for column, rule in INPUT_RANGE_RULES.items():
        field = properties[column]
        low = "minimum" if rule.low_inclusive else "exclusiveMinimum"
        high = "maximum" if rule.high_inclusive else "exclusiveMaximum"
        assert (field[low], field[high]) == (rule.low, rule.high), column
        assert rule.unit in field["description"], column
    assert properties["Muestra"]["maximum"] == MAX_SAMPLE_ID
    assert properties["Estructura"]["maxLength"] == MAX_STRUCTURE_TEXT


def test_an_inconsistent_caliper_mean_is_worded_as_in_a_batch() -> None:
    with pytest.raises(ValidationError) as caught:
        SampleInput.model_validate({**SEED_SAMPLE, "CalibreProm": 164})
    (error,) = caught.value.errors()
    assert error["type"] == "caliper_mean_inconsistent"
    assert error["msg"] == (
        "CalibreProm 164 does not match the mean of the readings (16.40 µm, tolerance ± 0.49 µm)"
    )
    assert error["ctx"] == {"value": 164.0, "mean": 16.4}
