"""The approve / retest / reject rule of batch scoring, and the words that explain each row.

A decision needs a specification limit; the reason says which limit decided and by which
threshold, or why no limit applies (no limit for the structure, a thickness outside every
band, test conditions other than the limit's). Reasons are worded once per distinct case,
not once per row: a million rows hold a few dozen cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from permeability.config import InferenceParams
from permeability.domain.intervals import decide_many
from permeability.domain.specs import (
    REASON_MATCHED,
    REASON_NO_LIMIT,
    REASON_THICKNESS,
    SpecificationSet,
)
from permeability.errors import InvalidInputError

#: Decision words, in the order of their codes (0, 1, 2; -1 is "no decision").
DECISIONS: Final = ("approve", "retest", "reject")


@dataclass(frozen=True)
class DecisionPolicy:
    """Interval level and the probability thresholds of the approve/retest/reject rule."""

    level: float
    approve_below: float
    reject_above: float

    @classmethod
    def from_params(cls, params: InferenceParams, level: float | None = None) -> DecisionPolicy:
        chosen = params.interval_level if level is None else level
        if not 0.0 < chosen < 1.0:
            raise InvalidInputError(f"level must be between 0 and 1 (exclusive), got {chosen}")
        return cls(chosen, params.approve_below, params.reject_above)


def decision_codes(
    p_exceed: NDArray[np.float64], has_limit: NDArray[np.bool_], policy: DecisionPolicy
) -> NDArray[np.int8]:
    """Index into DECISIONS per row; -1 (no decision) where no limit applies."""
    decision = np.full(len(p_exceed), -1, dtype=np.int8)
    if has_limit.any():
        words = decide_many(p_exceed[has_limit], policy.approve_below, policy.reject_above)
        decision[has_limit] = np.select(
            [words == word for word in DECISIONS], list(range(len(DECISIONS))), -1
        )
    return decision


def decision_reasons(
    specs: SpecificationSet,
    policy: DecisionPolicy,
    match_codes: NDArray[np.int8],
    limit_index: NDArray[np.int64],
    group_names: NDArray[np.object_],
    group_codes: NDArray[np.intp],
    decisions: NDArray[np.int8],
) -> tuple[NDArray[np.int64], list[str]]:
    """``decision_reason`` per row as (codes, distinct texts), worded once per distinct
    (structure, limit, reason, decision): the key is packed into one integer, so a million
    rows cost one integer factorisation."""
    n_limits = len(specs.limits) + 1
    key = (group_codes.astype(np.int64) * n_limits + (limit_index + 1)) * 4 + match_codes
    key = key * 4 + (decisions.astype(np.int64) + 1)
    codes, uniques = pd.factorize(key)
    texts: list[str] = []
    for packed in uniques:
        rest, decision_code = divmod(int(packed), 4)
        rest, match_code = divmod(rest, 4)
        structure_code, limit_slot = divmod(rest, n_limits)
        decision = DECISIONS[decision_code - 1] if decision_code else ""
        texts.append(
            _batch_reason(
                specs,
                policy,
                match_code,
                limit_slot - 1,
                str(group_names[structure_code]),
                decision,
            )
        )
    distinct, remap = np.unique(np.array(texts, dtype=object), return_inverse=True)
    return np.asarray(remap, dtype=np.int64)[codes], [str(t) for t in distinct]


def _batch_reason(
    specs: SpecificationSet,
    policy: DecisionPolicy,
    match_code: int,
    limit_index: int,
    structure: str,
    decision: str,
) -> str:
    if match_code == REASON_MATCHED:
        limit = specs.limits[limit_index].describe()
        rule = {
            "approve": f"P(WVTR > limit) < {policy.approve_below:g}",
            "reject": f"P(WVTR > limit) > {policy.reject_above:g}",
            "retest": (
                f"{policy.approve_below:g} ≤ P(WVTR > limit) ≤ {policy.reject_above:g}, "
                "too close to call: run the full test"
            ),
        }[decision]
        return f"{decision}: {rule} for limit {limit}"
    limits = specs.for_structure(structure)
    if match_code == REASON_NO_LIMIT or not limits:
        return f"no decision: no specification limit is defined for structure {structure}"
    if match_code == REASON_THICKNESS:
        bands = ", ".join(sorted({lim.band_text() for lim in limits}))
        return (
            f"no decision: mean caliper outside every thickness band with a limit for "
            f"{structure} ({bands})"
        )
    stated = "; ".join(sorted({lim.conditions_text() for lim in limits}))
    return (
        "no decision: the test conditions do not match the conditions the limits of "
        f"{structure} are stated at ({stated}), so the result cannot be judged against them"
    )
