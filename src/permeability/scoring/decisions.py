"""Approve, retest or reject: the rule that turns P(WVTR > limit) into a decision, and its words.

One home for what the single answer, batch scoring and evaluation must agree on, so that they
cannot drift apart: the policy (interval level and the two probability thresholds) with its
validation, the decision words and their codes, :func:`decide` / :func:`decide_many`, and the
sentence that explains a decision (:func:`decision_reason`, :func:`no_decision_reason`).

The same sentence serves one sample and a batch. One sample's reason carries its own
P(exceed) (``approve: P(WVTR > 1.5) = 0.012 < 0.05; limit ...``); a batch words each distinct
case (structure, limit, why, decision) once, for any number of rows, so its reason is the same
sentence without the row's number (``approve: P(WVTR > 1.5) < 0.05; limit ...``): the number
is in the row's ``p_exceed`` column. Why no limit applies is the specification's explanation,
prefixed here: :class:`~permeability.scoring.specs.SpecMatch` for one sample (``no decision:
mean caliper 45 µm is outside every thickness band ...``), :meth:`~permeability.scoring.specs.
SpecificationSet.reason_for_case` for a batch, the same sentence without the sample's mean
caliper or test conditions (``no decision: mean caliper is outside every thickness band ...``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from permeability.errors import InvalidInputError
from permeability.scoring.specs import SpecLimit

Decision = Literal["approve", "reject", "retest"]
APPROVE: Final = "approve"
RETEST: Final = "retest"
REJECT: Final = "reject"
#: Decision words in the order of their codes (0, 1, 2); :data:`NO_DECISION_CODE` is none.
DECISIONS: Final[tuple[Decision, Decision, Decision]] = (APPROVE, RETEST, REJECT)
NO_DECISION_CODE: Final = -1
#: How a reason without a decision starts (no limit applies, so nothing was decided).
NO_DECISION: Final = "no decision"


def _check_thresholds(approve_below: float, reject_above: float) -> None:
    if not 0.0 < approve_below < reject_above < 1.0:
        raise InvalidInputError(
            "approve_below and reject_above must satisfy 0 < approve_below < reject_above < 1, "
            f"got {approve_below} and {reject_above}"
        )


@dataclass(frozen=True)
class DecisionPolicy:
    """Interval level and the probability thresholds of the approve/retest/reject rule.

    Checked when built (from plain numbers, or by ``InferenceParams.decision_policy``), so a policy in hand is
    always usable: a level outside (0, 1) or thresholds out of order are refused before any
    row is scored, not halfway through a batch.
    """

    level: float
    approve_below: float
    reject_above: float

    def __post_init__(self) -> None:
        if not 0.0 < self.level < 1.0:
            raise InvalidInputError(f"level must be between 0 and 1 (exclusive), got {self.level}")
        _check_thresholds(self.approve_below, self.reject_above)


def decide(p_exceed: float, approve_below: float, reject_above: float) -> Decision:
    """Approve when exceeding the limit is unlikely, reject when likely, else send to the full
    test (a probability equal to a threshold is too close to call)."""
    _check_thresholds(approve_below, reject_above)
    if p_exceed < approve_below:
        return APPROVE
    if p_exceed > reject_above:
        return REJECT
    return RETEST


def decide_many(p_exceed: ArrayLike, approve_below: float, reject_above: float) -> NDArray[np.str_]:
    """Vectorised :func:`decide`."""
    codes = _codes(np.asarray(p_exceed, dtype=np.float64), approve_below, reject_above)
    return np.asarray(DECISIONS)[codes]


def decision_codes(
    p_exceed: NDArray[np.float64], has_limit: NDArray[np.bool_], policy: DecisionPolicy
) -> NDArray[np.int8]:
    """Index into :data:`DECISIONS` per row (:func:`decide`); :data:`NO_DECISION_CODE` where
    no limit applies. Codes, not words: a million rows become a categorical without a string
    per row."""
    decision = np.full(len(p_exceed), NO_DECISION_CODE, dtype=np.int8)
    if has_limit.any():
        decision[has_limit] = _codes(p_exceed[has_limit], policy.approve_below, policy.reject_above)
    return decision


def _codes(
    values: NDArray[np.float64], approve_below: float, reject_above: float
) -> NDArray[np.int8]:
    _check_thresholds(approve_below, reject_above)
    codes = np.ones(len(values), dtype=np.int8)  # retest
    codes[values < approve_below] = 0
    codes[values > reject_above] = 2
    return codes


# -- the words ------------------------------------------------------------------------------


def decision_reason(
    decision: Decision, limit: SpecLimit, policy: DecisionPolicy, p_exceed: float | None = None
) -> str:
    """Why ``decision`` was taken against ``limit``: the probability, the threshold it passed
    and the limit. With ``p_exceed`` (one sample) the sentence states it (``= 0.012``); without
    (a batch, worded once per case) it is the same sentence without the number."""
    head, tail = _reason_parts(decision, limit, policy.approve_below, policy.reject_above)
    if p_exceed is None:
        return head + tail
    return f"{head} = {p_exceed:.3g}{tail}"


def no_decision_reason(why: str) -> str:
    """The reason of a sample no limit applies to; ``why`` is the specification's explanation
    (which check failed: no limit for the structure, a thickness outside every band, other
    test conditions)."""
    return f"{NO_DECISION}: {why}"


@functools.lru_cache(maxsize=1024)
def _reason_parts(
    decision: Decision, limit: SpecLimit, approve_below: float, reject_above: float
) -> tuple[str, str]:
    """The sentence around P(exceed), worded once per (decision, limit, thresholds): wording
    it cost about 4 µs, a tenth of a single answer, and limits are immutable."""
    rule = {
        APPROVE: f"< {approve_below:g}",
        REJECT: f"> {reject_above:g}",
        RETEST: f"between {approve_below:g} and {reject_above:g}: too close to call, run the "
        "full test",
    }[decision]
    return (
        f"{decision}: P(WVTR > {limit.max_permeability:g})",
        f" {rule}; limit {limit.describe()}",
    )
