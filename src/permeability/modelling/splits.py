"""How training rows are split: by test, so a replicate and its twin never straddle a split.

The replicates of one test are the same film measured under the same conditions; their WVTR
differs by a few percent. A random row split puts one replicate in training and its twin in
the held-out part, and the model is then scored on a near copy of a row it learnt: on the seed
lab's real data a default random forest looked 35 % better than it is. Every split the
training makes — the test part, the split-conformal calibration part, the cross-validation
folds of ``auto`` and the cross-conformal refits — therefore keeps each test's rows together
(the ``test_id`` acquisition stores). A frame without test ids (built by hand, an old store)
is split by rows, each row its own group; :func:`split_grouping` says which.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.model_selection import GroupKFold

from permeability.record.schema import TEST_ID

#: What :func:`split_grouping` answers.
BY_TEST: Final = "test_id"
BY_ROW: Final = "row"


def split_grouping(frame: pd.DataFrame) -> str:
    """``test_id`` when the frame's rows carry their test, else ``row``."""
    if TEST_ID in frame.columns and frame[TEST_ID].notna().all() and len(frame):
        return BY_TEST if (frame[TEST_ID].astype("str").str.len() > 0).all() else BY_ROW
    return BY_ROW


def row_groups(frame: pd.DataFrame) -> NDArray[np.int64]:
    """One group code per row: its test (see :func:`split_grouping`), else its position."""
    if split_grouping(frame) == BY_TEST:
        codes, _ = pd.factorize(frame[TEST_ID].astype("str"))
        return np.asarray(codes, dtype=np.int64)
    return np.arange(len(frame), dtype=np.int64)


def stratified_split(
    labels: Sequence[str] | NDArray[np.object_], fraction: float, rng: np.random.Generator
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(kept, held) positions with ``fraction`` of each label held out.

    Labels with one row cannot be stratified: those rows are pooled and split at random. The
    held count per stratum is allocated by largest remainder, so the total is the rounded
    overall share, and a stratum with two or more rows always keeps one row.
    """
    names = np.asarray(labels, dtype=object).astype(str)
    _, inverse, counts = np.unique(names, return_inverse=True, return_counts=True)
    strata = np.where(counts[inverse] >= 2, inverse, -1)
    groups = [np.flatnonzero(strata == s) for s in sorted(set(strata.tolist()))]
    targets = np.array([fraction * len(g) for g in groups])
    held_counts = np.floor(targets).astype(int)
    remaining = round(fraction * len(names)) - int(held_counts.sum())
    if remaining > 0:
        ties = rng.random(len(groups))
        order = np.lexsort((ties, -(targets - held_counts)))
        held_counts[order[:remaining]] += 1
    held: list[NDArray[np.intp]] = []
    kept: list[NDArray[np.intp]] = []
    for group, count in zip(groups, held_counts, strict=True):
        is_pool = strata[group[0]] == -1
        limit = len(group) if is_pool else len(group) - 1
        shuffled = rng.permutation(group)
        take = min(int(count), limit)
        held.append(shuffled[:take])
        kept.append(shuffled[take:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def grouped_split(
    labels: Sequence[str] | NDArray[np.object_],
    groups: NDArray[np.int64],
    fraction: float,
    rng: np.random.Generator,
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(kept, held) positions: :func:`stratified_split` of whole groups (tests), stratified by
    each group's label (a test has one structure), so no group has rows on both sides."""
    names = np.asarray(labels, dtype=object).astype(str)
    codes, first = np.unique(groups, return_index=True)
    _, held_groups = stratified_split(names[first], fraction, rng)
    held = np.isin(groups, codes[held_groups])
    return np.flatnonzero(~held).astype(np.intp), np.flatnonzero(held).astype(np.intp)


def grouped_folds(
    groups: NDArray[np.int64], folds: int, random_state: int
) -> Iterator[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """(training, held-out) positions of K folds that keep every group (test) whole."""
    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=random_state)
    positions = np.arange(len(groups))
    for train_rows, held_rows in splitter.split(positions, groups=groups):
        yield train_rows.astype(np.intp), held_rows.astype(np.intp)


def distinct_groups(groups: NDArray[np.int64]) -> int:
    return len(np.unique(groups))
