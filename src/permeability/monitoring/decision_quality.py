"""How good the approve / retest / reject decisions were, once the lab's results came back."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from permeability.errors import InvalidInputError
from permeability.scoring.decisions import APPROVE, REJECT, RETEST


def decision_quality(
    measured: ArrayLike, decisions: ArrayLike, limits: ArrayLike
) -> dict[str, int]:
    """Counts of each decision and of the two costly mistakes.

    A wrong approval ships a film whose measured WVTR exceeds its limit (the customer's risk);
    a wrong rejection discards one within its limit (the plant's cost). Rows with no limit
    (nan) are counted apart as ``no_limit`` and judged in neither way.
    """
    y = np.asarray(measured, dtype=np.float64)
    chosen = np.asarray(decisions, dtype=object).astype(str)
    bounds = np.broadcast_to(np.asarray(limits, dtype=np.float64), y.shape)
    if chosen.shape != y.shape:
        raise InvalidInputError(f"need one decision per value, got {chosen.shape} and {y.shape}")
    known = np.isfinite(bounds)
    unknown = sorted(set(chosen[known]) - {APPROVE, REJECT, RETEST})
    if unknown:
        raise InvalidInputError(f"unknown decision(s) {', '.join(unknown)}")
    exceeds = known & (y > np.where(known, bounds, np.inf))
    return {
        "n": len(y),
        "no_limit": int((~known).sum()),
        APPROVE: int((known & (chosen == APPROVE)).sum()),
        REJECT: int((known & (chosen == REJECT)).sum()),
        RETEST: int((known & (chosen == RETEST)).sum()),
        "wrong_approvals": int((known & (chosen == APPROVE) & exceeds).sum()),
        "wrong_rejections": int((known & (chosen == REJECT) & ~exceeds).sum()),
        "exceeding": int(exceeds.sum()),
    }
