"""The Western Electric rules of a Shewhart chart, on results already expressed in σ units.

A result's *z* is its distance from the centre line in σ (``(value - centre) / σ``). The rules
(Western Electric, *Statistical Quality Control Handbook*, 1956), each on one side of the centre:

1. one result beyond 3σ;
2. two of three successive results beyond 2σ;
3. four of five successive results beyond 1σ;
4. eight successive results on one side of the centre.

A rule is marked on the result that completes its pattern, and only when that result is itself
part of it (beyond the zone, on the same side): a good result after two bad ones completes no
pattern. Windows at the start of a series are the results available (two of the first two
results beyond 2σ break rule 2).

A censored result (below the detection limit, charted *at* the limit) is an upper bound: its true
value is at most the charted one. So it counts as low whenever its bound is low (certainly true),
and never as high (unknown, and a chart must not alarm on a guess): a reference film that
suddenly reads under the detection limit breaks rule 1 low, a film that always sits there breaks
nothing.

Pure: numpy and pandas only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

#: Each rule: (σ a result must be beyond (0: any distance, one side of the centre), results of
#: the window that must be beyond, window length).
RULE_PATTERNS: Final[dict[str, tuple[float, int, int]]] = {
    "1": (3.0, 1, 1),
    "2": (2.0, 2, 3),
    "3": (1.0, 4, 5),
    "4": (0.0, 8, 8),
}
#: What each rule means, in the words the chart's legend and notes use.
RULE_TEXT: Final[dict[str, str]] = {
    "1": "one result beyond 3σ",
    "2": "two of three beyond 2σ on one side",
    "3": "four of five beyond 1σ on one side",
    "4": "eight in a row on one side of the centre",
}


def _completes(beyond: NDArray[np.bool_], needed: int, window: int) -> NDArray[np.bool_]:
    """Results that are ``beyond`` and close a window of ``window`` with ``needed`` beyond."""
    counts = pd.Series(beyond.astype(np.int64)).rolling(window, min_periods=1).sum()
    return beyond & (counts.to_numpy(dtype=np.int64) >= needed)


def rule_violations(
    z: NDArray[np.float64], censored: NDArray[np.bool_], rules: Sequence[str]
) -> list[list[str]]:
    """The rules (of ``rules``, in their order) each result breaks, in the results' order.

    ``z`` in σ from the centre; ``censored`` marks upper bounds (see the module docstring).
    """
    unknown = sorted(set(rules) - set(RULE_PATTERNS))
    if unknown:
        raise ValueError(f"unknown Western Electric rule(s) {unknown}; known: 1, 2, 3, 4")
    z = np.asarray(z, dtype=np.float64)
    censored = np.asarray(censored, dtype=bool)
    broken: list[list[str]] = [[] for _ in range(len(z))]
    for rule in sorted(set(rules), key=list(RULE_PATTERNS).index):
        sigmas, needed, window = RULE_PATTERNS[rule]
        low = z < -sigmas
        high = (z > sigmas) & ~censored
        hits = _completes(low, needed, window) | _completes(high, needed, window)
        for position in np.flatnonzero(hits):
            broken[int(position)].append(rule)
    return broken
