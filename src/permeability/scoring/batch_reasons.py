"""The ``decision_reason`` column of batch scoring, worded once per case, not once per row.

The sentences are the single answer's (:mod:`permeability.scoring.decisions`), without the
row's own numbers (P(exceed), mean caliper, test conditions), which are in the row's columns:
a million rows hold a few dozen cases, so a million rows cost one integer factorisation and a
few dozen sentences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from permeability.scoring.decisions import (
    DECISIONS,
    DecisionPolicy,
    decision_reason,
    no_decision_reason,
)
from permeability.scoring.specs import REASON_CONDITIONS, BatchSpecMatch, SpecificationSet


def decision_reasons(
    specs: SpecificationSet,
    policy: DecisionPolicy,
    matched: BatchSpecMatch,
    group_names: NDArray[np.object_],
    group_codes: NDArray[np.intp],
    thickness_um: NDArray[np.float64],
    decisions: NDArray[np.int8],
) -> tuple[NDArray[np.int64], list[str]]:
    """``decision_reason`` per row as (codes, distinct texts).

    A case is a distinct (structure, limit, why no limit, decision) and, for rows whose test
    conditions match no limit in band, which conditions those limits are stated at
    (:meth:`~permeability.scoring.specs.SpecificationSet.band_codes`), packed into one integer
    per row: a million rows cost one integer factorisation.
    """
    n_limits = len(specs.limits) + 1
    key = (group_codes.astype(np.int64) * n_limits + (matched.limit_index + 1)) * 4
    key = (key + matched.reason_code) * 4 + (decisions.astype(np.int64) + 1)
    n_bands = 1
    conditions = np.flatnonzero(matched.reason_code == REASON_CONDITIONS)
    if len(conditions):
        bands = specs.band_codes(
            group_codes[conditions], [str(n) for n in group_names], thickness_um[conditions]
        )
        n_bands = int(bands.max(initial=0)) + 1
        if n_bands > 1:
            key *= n_bands
            key[conditions] += bands
    codes, uniques = pd.factorize(key)
    texts: list[str] = []
    for packed in uniques.tolist():
        rest, band = divmod(packed, n_bands)
        rest, decision = divmod(rest, 4)
        rest, match_code = divmod(rest, 4)
        structure, limit_slot = divmod(rest, n_limits)
        if decision:  # a limit applied: code + 1 into DECISIONS
            limit = specs.limits[limit_slot - 1]
            texts.append(decision_reason(DECISIONS[decision - 1], limit, policy))
        else:
            name = str(group_names[structure])
            why = specs.reason_for_case(match_code, limit_slot - 1, name, band)
            texts.append(no_decision_reason(why))
    distinct, remap = np.unique(np.array(texts, dtype=object), return_inverse=True)
    return np.asarray(remap, dtype=np.int64)[codes], [str(t) for t in distinct]
