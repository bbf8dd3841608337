from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from permeability.modelling.noise_floor import replicate_noise_floor


def test_pairs_give_the_replicate_difference_and_the_true_mean_floor() -> None:
    frame = pd.DataFrame(
        {
            "test_id": ["a", "a", "b", "b", "c"],  # c has one replicate: it does not count
            "Permeabilidad": [1.0, 1.2, 10.0, 9.0, 50.0],
        }
    )
    floor = replicate_noise_floor(frame)
    assert floor is not None
    assert (floor.tests, floor.rows) == (2, 4)
    # one replicate against its twin: |0.2| twice and |1.0| twice
    assert floor.replicate_mae == pytest.approx(0.6)
    # deviation from the pair mean × √2: (0.1·2 + 0.5·2)/4 · √2
    assert floor.noise_floor_mae == pytest.approx(0.3 * math.sqrt(2))
    pooled = ((math.log(1.0) - math.log(1.2)) ** 2 / 2 + (math.log(10) - math.log(9)) ** 2 / 2) / 2
    assert floor.replicate_log_sd == pytest.approx(math.sqrt(pooled))


def test_the_floor_estimates_the_spread_a_model_cannot_beat() -> None:
    rng = np.random.default_rng(0)
    truth = np.repeat(rng.uniform(1, 10, 4000), 2)
    measured = truth + rng.normal(0, 0.3, truth.size)
    frame = pd.DataFrame({"test_id": np.repeat(np.arange(4000), 2), "Permeabilidad": measured})
    floor = replicate_noise_floor(frame)
    assert floor is not None
    expected = 0.3 * math.sqrt(2 / math.pi)  # E|y − true mean|
    assert floor.noise_floor_mae == pytest.approx(expected, rel=0.03)
    assert floor.replicate_mae == pytest.approx(expected * math.sqrt(2), rel=0.03)


def test_no_replicated_test_no_floor() -> None:
    assert replicate_noise_floor(pd.DataFrame({"Permeabilidad": [1.0, 2.0]})) is None
    single = pd.DataFrame({"test_id": ["a", "b"], "Permeabilidad": [1.0, 2.0]})
    assert replicate_noise_floor(single) is None
