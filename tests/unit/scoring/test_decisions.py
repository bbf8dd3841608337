"""The decision policy, decide / decide_many at the thresholds, and the reason wording: one
sentence for one sample and for a batch, the batch's without the sample's own numbers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from permeability.config import InferenceParams
from permeability.errors import InvalidInputError
from permeability.scoring.decisions import (
    APPROVE,
    DECISIONS,
    NO_DECISION_CODE,
    REJECT,
    RETEST,
    DecisionPolicy,
    decide,
    decide_many,
    decision_codes,
    decision_reason,
    no_decision_reason,
)
from permeability.scoring.specs import SpecificationSet, SpecLimit

POLICY = DecisionPolicy(level=0.9, approve_below=0.05, reject_above=0.95)


def _limit(**overrides: object) -> SpecLimit:
    fields: dict[str, object] = {
        "structure": "BOPP",
        "max_permeability": 6.0,
        "temperature_c": 38.0,
        "humidity_pct": 90.0,
        "min_thickness_um": 20.0,
        "max_thickness_um": 22.0,
    }
    fields.update(overrides)
    return SpecLimit.model_validate(fields)


SPECS = SpecificationSet.from_limits(
    [
        _limit(),
        _limit(min_thickness_um=15.0, max_thickness_um=40.0, temperature_c=23.0, humidity_pct=85),
        _limit(
            structure="PET/MET", max_permeability=1.5, min_thickness_um=None, max_thickness_um=None
        ),
    ],
    "test",
)

# -- the policy ---------------------------------------------------------------------------


def test_a_policy_keeps_its_numbers_and_cannot_be_changed() -> None:
    assert (POLICY.level, POLICY.approve_below, POLICY.reject_above) == (0.9, 0.05, 0.95)
    with pytest.raises(dataclasses.FrozenInstanceError):
        POLICY.level = 0.5  # type: ignore[misc]


@pytest.mark.parametrize("level", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_a_level_outside_zero_to_one_is_refused(level: float) -> None:
    with pytest.raises(InvalidInputError, match="level must be between 0 and 1"):
        DecisionPolicy(level, 0.05, 0.95)


@pytest.mark.parametrize(
    ("approve", "reject"), [(0.5, 0.4), (0.0, 0.9), (0.1, 1.0), (0.3, 0.3), (float("nan"), 0.9)]
)
def test_inconsistent_thresholds_are_refused(approve: float, reject: float) -> None:
    with pytest.raises(InvalidInputError, match="approve_below"):
        DecisionPolicy(0.9, approve, reject)
    with pytest.raises(InvalidInputError, match="approve_below"):
        decide(0.3, approve, reject)
    with pytest.raises(InvalidInputError, match="approve_below"):
        decide_many([0.3], approve, reject)


def test_the_configuration_builds_the_policy_with_an_optional_level() -> None:
    params = InferenceParams(interval_level=0.8, approve_below=0.02, reject_above=0.9)
    assert params.decision_policy() == DecisionPolicy(0.8, 0.02, 0.9)
    assert params.decision_policy(level=0.5) == DecisionPolicy(0.5, 0.02, 0.9)
    with pytest.raises(InvalidInputError, match="level"):
        params.decision_policy(level=1.5)


# -- deciding -----------------------------------------------------------------------------


def test_decisions_follow_the_thresholds_and_a_tie_is_too_close_to_call() -> None:
    below, above = np.nextafter(0.05, 0.0), np.nextafter(0.95, 1.0)
    assert decide(0.01, 0.05, 0.95) == APPROVE
    assert decide(float(below), 0.05, 0.95) == APPROVE
    assert decide(0.05, 0.05, 0.95) == RETEST
    assert decide(0.5, 0.05, 0.95) == RETEST
    assert decide(0.95, 0.05, 0.95) == RETEST
    assert decide(float(above), 0.05, 0.95) == REJECT
    assert decide(1.0, 0.05, 0.95) == REJECT


def test_decide_many_and_the_codes_equal_decide_row_by_row() -> None:
    values = np.array([0.0, 0.01, np.nextafter(0.05, 0.0), 0.05, 0.5, 0.95, 0.951, 1.0])
    words = [decide(float(v), 0.05, 0.95) for v in values]
    assert decide_many(values, 0.05, 0.95).tolist() == words
    has_limit = np.array([True, True, True, True, False, True, True, True])
    codes = decision_codes(values, has_limit, POLICY)
    assert codes.dtype == np.int8
    assert codes[4] == NO_DECISION_CODE
    assert [DECISIONS[c] for c in codes[has_limit]] == [
        w for w, judged in zip(words, has_limit, strict=True) if judged
    ]
    assert decision_codes(values, np.zeros(len(values), dtype=bool), POLICY).tolist() == [
        NO_DECISION_CODE
    ] * len(values)


# -- wording: one sentence, the batch's without the sample's numbers ----------------------

_DECIDED = [
    (
        APPROVE,
        0.012,
        "approve: P(WVTR > 6) = 0.012 < 0.05; limit BOPP 20–22 µm: ≤ 6 g/m²·day at "
        "38 ± 1 °C / 90 ± 2 % RH",
    ),
    (
        RETEST,
        0.4081632653,
        "retest: P(WVTR > 6) = 0.408 between 0.05 and 0.95: too close to call, run the full "
        "test; limit BOPP 20–22 µm: ≤ 6 g/m²·day at 38 ± 1 °C / 90 ± 2 % RH",
    ),
    (
        REJECT,
        1.0,
        "reject: P(WVTR > 6) = 1 > 0.95; limit BOPP 20–22 µm: ≤ 6 g/m²·day at "
        "38 ± 1 °C / 90 ± 2 % RH",
    ),
]


@pytest.mark.parametrize(("decision", "p_exceed", "single"), _DECIDED)
def test_a_decision_is_one_sentence_for_a_sample_and_for_a_batch(
    decision: str, p_exceed: float, single: str
) -> None:
    limit = SPECS.for_structure("BOPP")[0]
    assert decide(p_exceed, 0.05, 0.95) == decision
    assert decision_reason(decide(p_exceed, 0.05, 0.95), limit, POLICY, p_exceed) == single
    batch = decision_reason(decide(p_exceed, 0.05, 0.95), limit, POLICY)
    assert batch == single.replace(f" = {p_exceed:.3g}", "")
    assert batch.startswith(f"{decision}: P(WVTR > 6) ")


def test_the_wording_follows_the_policy_thresholds() -> None:
    limit = SPECS.for_structure("PET/MET")[0]
    strict = DecisionPolicy(0.9, 0.01, 0.99)
    assert decision_reason("approve", limit, strict) == (
        "approve: P(WVTR > 1.5) < 0.01; limit PET/MET any thickness: ≤ 1.5 g/m²·day at "
        "38 ± 1 °C / 90 ± 2 % RH"
    )
    assert decision_reason("retest", limit, strict, 0.5).startswith(
        "retest: P(WVTR > 1.5) = 0.5 between 0.01 and 0.99: too close to call"
    )


_UNDECIDED = [
    (
        "PE",
        38.0,
        90.0,
        21.0,
        "no decision: no specification limit is defined for structure PE",
        "no decision: no specification limit is defined for structure PE",
    ),
    (
        "BOPP",
        38.0,
        90.0,
        45.5,
        "no decision: mean caliper 45.5 µm is outside every thickness band with a limit for "
        "BOPP (15–40 µm, 20–22 µm)",
        "no decision: mean caliper is outside every thickness band with a limit for BOPP "
        "(15–40 µm, 20–22 µm)",
    ),
    (
        "BOPP",
        25.6,
        23.0,
        21.0,
        "no decision: test conditions 25.6 °C / 23 % RH do not match the conditions the limit "
        "is stated at (23 ± 1 °C / 85 ± 2 % RH; 38 ± 1 °C / 90 ± 2 % RH), so the result cannot "
        "be judged against it",
        "no decision: test conditions do not match the conditions the limit is stated at "
        "(23 ± 1 °C / 85 ± 2 % RH; 38 ± 1 °C / 90 ± 2 % RH), so the result cannot be judged "
        "against it",
    ),
    (
        "BOPP",
        38.0,
        90.0,
        30.0,  # only the 23 °C limit's band holds 30 µm: only its conditions are stated
        "no decision: test conditions 38 °C / 90 % RH do not match the conditions the limit is "
        "stated at (23 ± 1 °C / 85 ± 2 % RH), so the result cannot be judged against it",
        "no decision: test conditions do not match the conditions the limit is stated at "
        "(23 ± 1 °C / 85 ± 2 % RH), so the result cannot be judged against it",
    ),
]


@pytest.mark.parametrize(
    ("structure", "temperature", "humidity", "thickness", "single", "batch"), _UNDECIDED
)
def test_no_decision_is_one_sentence_for_a_sample_and_for_a_batch(
    structure: str, temperature: float, humidity: float, thickness: float, single: str, batch: str
) -> None:
    match = SPECS.match(structure, temperature, humidity, thickness)
    assert match.limit is None
    assert no_decision_reason(match.reason) == single
    row = SPECS.match_many([structure], [temperature], [humidity], [thickness])
    band = SPECS.band_codes(np.zeros(1, dtype=np.intp), [structure], [thickness])
    case = SPECS.reason_for_case(
        int(row.reason_code[0]), int(row.limit_index[0]), structure, int(band[0])
    )
    assert no_decision_reason(case) == batch
    own_numbers = (f" {thickness:g} µm", f" {temperature:g} °C / {humidity:g} % RH")
    stripped = single
    for number in own_numbers:
        stripped = stripped.replace(number, "", 1)
    assert stripped == batch
