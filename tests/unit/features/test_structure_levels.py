from __future__ import annotations

import math

import numpy as np
import pytest

from permeability.features.structure_levels import LEVEL_FEATURES, StructureLevels
from permeability.record.structures import LAYER_VOCABULARY


def _levels(shrinkage: float = 1.0) -> StructureLevels:
    # polypropylene: BOPP (3 rows at log 1) and BOPP/PPC (1 row at log 3); foil: one row.
    names = ["BOPP", "BOPP", "BOPP", "BOPP/PPC", "PET/AL/PE"]
    families = ["polypropylene"] * 4 + ["foil"]
    return StructureLevels.fit(names, families, np.array([1.0, 1.0, 1.0, 3.0, -6.0]), shrinkage)


def test_levels_are_means_shrunk_toward_the_parent_level() -> None:
    levels = _levels()
    overall = (3.0 + 3.0 - 6.0) / 5
    family = (6.0 + overall) / 5  # four rows plus one pseudo-row at the overall mean
    assert levels.overall == pytest.approx(overall)
    assert levels.family["polypropylene"] == pytest.approx(family)
    assert levels.structure["BOPP"] == pytest.approx((3.0 + family) / 4)
    # One row leans half on its family.
    assert levels.structure["BOPP/PPC"] == pytest.approx((3.0 + family) / 2)


def test_without_shrinkage_levels_are_plain_means() -> None:
    levels = _levels(shrinkage=0.0)
    assert levels.structure["BOPP"] == pytest.approx(1.0)
    assert levels.structure["BOPP/PPC"] == pytest.approx(3.0)
    assert levels.family["foil"] == pytest.approx(-6.0)


def test_a_row_carries_the_structure_and_family_levels_and_its_layer_counts() -> None:
    levels = _levels()
    row = levels.row("BOPP/BOPP/PPC", "polypropylene", ("BOPP", "BOPP", "PPC"))
    assert len(row) == len(LEVEL_FEATURES) == 3 + len(LAYER_VOCABULARY)
    values = dict(zip(LEVEL_FEATURES, row, strict=True))
    # Never seen: its family's level stands in for its own.
    assert values["structure_level"] == pytest.approx(levels.family["polypropylene"])
    assert values["family_level"] == pytest.approx(levels.family["polypropylene"])
    assert values["n_layers"] == 3.0
    assert values["layers_BOPP"] == 2.0
    assert values["layers_PPC"] == 1.0
    assert values["layers_AL"] == 0.0


def test_an_unknown_family_takes_the_overall_level() -> None:
    levels = _levels()
    row = levels.row("MUESTRA-X", "unknown", ())
    assert row[0] == row[1] == pytest.approx(levels.overall)
    assert row[2] == 0.0


def test_names_of_no_family_do_not_pool_with_each_other() -> None:
    levels = StructureLevels.fit(
        ["X", "Y", "BOPP"], ["unknown", "unknown", "polypropylene"], np.array([5.0, -5.0, 0.0])
    )
    assert "unknown" not in levels.family
    assert levels.structure["X"] > 0.0 > levels.structure["Y"]


def test_rows_without_a_finite_target_are_left_out() -> None:
    levels = StructureLevels.fit(
        ["BOPP", "BOPP"], ["polypropylene"] * 2, np.array([2.0, -math.inf]), 0.0
    )
    assert levels.structure["BOPP"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="finite target"):
        StructureLevels.fit(["BOPP"], ["polypropylene"], np.array([math.nan]))
    with pytest.raises(ValueError, match="shrinkage"):
        StructureLevels.fit(["BOPP"], ["polypropylene"], np.array([1.0]), -1.0)
