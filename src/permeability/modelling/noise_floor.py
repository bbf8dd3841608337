"""The data's own noise floor: how much the replicates of one test disagree.

A test measures two (sometimes more) specimens of the same film under the same conditions.
Whatever a model knows about the film and the conditions, it cannot tell one replicate from
its twin, so the scatter of replicates around their test's mean is an error no model can beat.
Measured on the lab's own data, it is the yardstick a model's held-out error is read against
(on the seed lab's real data the replicates of a test differ by about 9 %, median).

Three figures, from every test with two or more replicates (other rows do not count):

* ``replicate_mae`` — the mean absolute difference between one replicate and the mean of its
  test's other replicates (g/m²·day): how far apart a lab's own repeats are;
* ``noise_floor_mae`` — the mean absolute deviation of a replicate from its test's *true*
  mean, estimated from the deviations from the sample mean scaled by √(n/(n−1)) (with two
  replicates, half the replicate difference × √2): the MAE a model that knew every test's
  true WVTR would still have. A model's held-out MAE divided by it is ``mae_over_noise_floor``;
* ``replicate_log_sd`` — the pooled within-test standard deviation of log WVTR: the relative
  scatter (0.09 is about 9 %).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from permeability.record.schema import PERMEABILIDAD, TEST_ID


@dataclass(frozen=True)
class NoiseFloor:
    """Replicate disagreement of the tests that have at least two replicates."""

    tests: int
    rows: int
    replicate_mae: float
    noise_floor_mae: float
    replicate_log_sd: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def replicate_noise_floor(frame: pd.DataFrame) -> NoiseFloor | None:
    """The noise floor of ``frame`` (columns ``test_id`` and ``Permeabilidad`` > 0), or None
    when no test has two replicates (a store without test ids, or single measurements)."""
    if TEST_ID not in frame.columns or PERMEABILIDAD not in frame.columns:
        return None
    values = frame[PERMEABILIDAD].to_numpy(dtype=np.float64)
    tests = frame[TEST_ID].astype("str").to_numpy(dtype=object)
    usable = np.isfinite(values) & (values > 0)
    values, tests = values[usable], tests[usable]
    codes, _ = pd.factorize(pd.Series(tests))
    sizes = np.bincount(codes) if len(codes) else np.zeros(0, dtype=np.int64)
    replicated = sizes[codes] >= 2 if len(codes) else np.zeros(0, dtype=bool)
    if not replicated.any():
        return None
    codes, values = codes[replicated], values[replicated]
    n = sizes[codes].astype(np.float64)
    total = np.bincount(codes, weights=values)[codes]
    mean = total / n
    others = (total - values) / (n - 1.0)
    logs = np.log(values)
    log_mean = np.bincount(codes, weights=logs)[codes] / n
    groups = len(np.unique(codes))
    return NoiseFloor(
        tests=groups,
        rows=len(values),
        replicate_mae=float(np.mean(np.abs(values - others))),
        noise_floor_mae=float(np.mean(np.abs(values - mean) * np.sqrt(n / (n - 1.0)))),
        replicate_log_sd=float(np.sqrt(np.sum((logs - log_mean) ** 2) / (len(values) - groups))),
    )
