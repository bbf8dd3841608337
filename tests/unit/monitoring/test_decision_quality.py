"""Decision quality: the costly mistakes counted once the lab's results came back."""

from __future__ import annotations

import numpy as np
import pytest

from permeability.errors import InvalidInputError
from permeability.monitoring.decision_quality import decision_quality


def test_decision_quality_counts_the_costly_mistakes() -> None:
    measured = np.array([1.0, 7.0, 5.0, 9.0, 3.0, 6.5])
    decisions = np.array(["approve", "approve", "reject", "reject", "retest", "retest"])
    limits = np.array([6.0, 6.0, 6.0, 6.0, 6.0, np.nan])
    quality = decision_quality(measured, decisions, limits)
    assert quality == {
        "n": 6,
        "no_limit": 1,
        "approve": 2,
        "reject": 2,
        "retest": 1,
        "wrong_approvals": 1,
        "wrong_rejections": 1,
        "exceeding": 2,
    }


def test_decision_quality_accepts_one_limit_for_all() -> None:
    quality = decision_quality([1.0, 9.0], ["approve", "reject"], 6.0)
    assert quality["wrong_approvals"] == quality["wrong_rejections"] == 0
    with pytest.raises(InvalidInputError, match="maybe"):
        decision_quality([1.0], ["maybe"], 6.0)
