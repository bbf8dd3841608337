from __future__ import annotations

import numpy as np
import pandas as pd

from permeability.modelling.splits import (
    BY_ROW,
    BY_TEST,
    grouped_folds,
    grouped_split,
    row_groups,
    split_grouping,
    stratified_split,
)


def frame_of_tests(n_tests: int = 60, replicates: int = 2) -> pd.DataFrame:
    ids = np.repeat([f"T-{i:03d}" for i in range(n_tests)], replicates)
    structures = np.repeat(["BOPP" if i % 3 else "PET/AL/PE" for i in range(n_tests)], replicates)
    return pd.DataFrame({"test_id": ids, "Estructura": structures})


def test_a_test_never_straddles_the_split_and_each_structure_keeps_its_share() -> None:
    frame = frame_of_tests()
    groups = row_groups(frame)
    kept, held = grouped_split(
        frame["Estructura"].to_numpy(), groups, 0.25, np.random.default_rng(3)
    )
    assert set(groups[kept]).isdisjoint(groups[held])
    assert len(kept) + len(held) == len(frame)
    assert len(held) == 30  # a quarter of the 60 tests, two rows each
    held_structures = frame["Estructura"].iloc[held].value_counts().to_dict()
    assert held_structures == {"BOPP": 20, "PET/AL/PE": 10}


def test_folds_keep_tests_whole_and_cover_every_row_once() -> None:
    groups = row_groups(frame_of_tests(40, 3))
    seen: list[int] = []
    for train, held in grouped_folds(groups, 5, random_state=1):
        assert set(groups[train]).isdisjoint(groups[held])
        seen.extend(held.tolist())
    assert sorted(seen) == list(range(len(groups)))


def test_without_test_ids_every_row_is_its_own_group() -> None:
    frame = frame_of_tests().drop(columns="test_id")
    assert split_grouping(frame) == BY_ROW
    assert row_groups(frame).tolist() == list(range(len(frame)))
    assert split_grouping(frame_of_tests()) == BY_TEST
    blank = frame_of_tests().assign(test_id="")
    assert split_grouping(blank) == BY_ROW


def test_stratified_split_keeps_each_structures_share() -> None:
    labels = np.array(["A"] * 400 + ["B"] * 100 + ["C"] * 3 + ["D"] + ["E"], dtype=object)
    kept, held = stratified_split(labels, 0.25, np.random.default_rng(0))
    assert len(held) == round(0.25 * len(labels))
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(len(labels)))
    held_labels = labels[held].tolist()
    assert held_labels.count("A") == 100
    assert held_labels.count("B") == 25
    assert "C" in labels[kept].tolist()  # a stratum with two or more rows keeps one
