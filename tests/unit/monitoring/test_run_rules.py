"""The Western Electric rules on results in σ units: each fires on its pattern, not on a near miss."""

from __future__ import annotations

import numpy as np
import pytest

from permeability.monitoring.run_rules import rule_violations

ALL = ("1", "2", "3", "4")


def broken(
    z: list[float], censored: list[bool] | None = None, rules: tuple[str, ...] = ALL
) -> list[list[str]]:
    flags = np.array(censored if censored is not None else [False] * len(z), dtype=bool)
    return rule_violations(np.array(z, dtype=np.float64), flags, rules)


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_rule_1_one_result_beyond_three_sigma(side: float) -> None:
    assert broken([0.0, 0.2, side * 3.1]) == [[], [], ["1"]]
    assert broken([0.0, 0.2, side * 2.9]) == [[], [], []]


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_rule_2_two_of_three_beyond_two_sigma_on_one_side(side: float) -> None:
    assert broken([0.0, side * 2.5, side * 0.5, side * 2.5]) == [[], [], [], ["2"]]
    # Near misses: the two are four results apart, or on opposite sides of the centre.
    assert broken([side * 2.5, 0.5, -0.5, side * 2.5]) == [[], [], [], []]
    assert broken([0.0, side * 2.5, -side * 2.5]) == [[], [], []]


def test_rule_2_is_marked_on_the_result_that_completes_it_not_on_a_good_one_after() -> None:
    assert broken([2.5, 2.5, 0.1]) == [[], ["2"], []]


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_rule_3_four_of_five_beyond_one_sigma_on_one_side(side: float) -> None:
    pattern = [side * v for v in (1.5, 1.5, 0.5, 1.5, 1.5)]
    assert broken(pattern) == [[], [], [], [], ["3"]]
    near_miss = [side * v for v in (1.5, 0.5, 0.5, 1.5, 1.5)]  # three of five
    assert broken(near_miss) == [[]] * 5


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_rule_4_eight_in_a_row_on_one_side(side: float) -> None:
    assert broken([side * 0.5] * 8) == [[]] * 7 + [["4"]]
    assert broken([side * 0.5] * 7) == [[]] * 7
    interrupted = [side * 0.5] * 8
    interrupted[3] = -side * 0.1
    assert broken(interrupted) == [[]] * 8


def test_one_result_can_break_several_rules_listed_in_rule_order() -> None:
    z = [2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 3.5]
    assert broken(z)[-1] == ["1", "2", "3", "4"]


def test_only_the_configured_rules_are_applied() -> None:
    assert broken([0.5] * 8, rules=("1",)) == [[]] * 8
    assert broken([0.5] * 8, rules=("4",))[-1] == ["4"]


def test_a_censored_result_counts_as_low_when_its_bound_is_low_and_never_as_high() -> None:
    assert broken([0.0, -3.5], censored=[False, True]) == [[], ["1"]]
    assert broken([0.0, 3.5], censored=[False, True]) == [[], []]
    assert broken([0.5] * 7 + [0.6], censored=[False] * 7 + [True]) == [[]] * 8


def test_an_unknown_rule_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"\['5'\]"):
        broken([0.0], rules=("1", "5"))
