"""Which limit applies to a sample, and the reason when none does."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from permeability.scoring.specs import (
    REASON_CONDITIONS,
    REASON_MATCHED,
    REASON_NO_LIMIT,
    REASON_THICKNESS,
    SpecificationSet,
    SpecLimit,
)


def _limit(**overrides: object) -> SpecLimit:
    fields: dict[str, object] = {
        "structure": "BOPP",
        "max_permeability": 6.0,
        "temperature_c": 38.0,
        "humidity_pct": 90.0,
    }
    fields.update(overrides)
    return SpecLimit.model_validate(fields)


@pytest.fixture
def specs() -> SpecificationSet:
    return SpecificationSet.from_limits(
        [
            _limit(max_permeability=5.0),  # any thickness
            _limit(min_thickness_um=20, max_thickness_um=22),  # the domain's example
            _limit(min_thickness_um=10, max_thickness_um=40, max_permeability=4.0),
            _limit(
                structure="PET MET", max_permeability=2.0, min_thickness_um=8, max_thickness_um=14
            ),
            _limit(structure="LDPE", max_permeability=15.0, min_thickness_um=35),
        ],
        "test",
    )


def test_limit_applies_at_its_conditions_within_tolerance(specs: SpecificationSet) -> None:
    match = specs.match("PET MET", 37.2, 91.5, 12.0)
    assert match.limit is not None
    assert match.limit.max_permeability == 2.0
    assert "applies" in match.reason


def test_most_specific_band_wins_over_wider_and_unbanded(specs: SpecificationSet) -> None:
    match = specs.match("BOPP", 38.0, 90.0, 21.0)
    assert match.limit is not None
    assert (match.limit.min_thickness_um, match.limit.max_thickness_um) == (20, 22)
    wide = specs.match("BOPP", 38.0, 90.0, 30.0)
    assert wide.limit is not None
    assert wide.limit.max_permeability == 4.0
    unbanded = specs.match("BOPP", 38.0, 90.0, 60.0)
    assert unbanded.limit is not None
    assert unbanded.limit.max_permeability == 5.0


def test_strictest_limit_wins_among_equally_specific() -> None:
    specs = SpecificationSet.from_limits(
        [_limit(max_permeability=7.0), _limit(max_permeability=5.5, humidity_tolerance_pct=5)],
        "test",
    )
    match = specs.match("BOPP", 38.0, 90.0, 21.0)
    assert match.limit is not None
    assert match.limit.max_permeability == 5.5


def test_other_conditions_give_no_limit_and_say_why(specs: SpecificationSet) -> None:
    match = specs.match("BOPP", 25.6, 23.0, 16.4)
    assert match.limit is None
    assert "25.6 °C / 23 % RH" in match.reason
    assert "38 ± 1 °C / 90 ± 2 % RH" in match.reason


def test_just_outside_tolerance_is_not_comparable(specs: SpecificationSet) -> None:
    assert specs.match("PET MET", 39.01, 90.0, 12.0).limit is None
    assert specs.match("PET MET", 39.0, 92.0, 12.0).limit is not None


def test_thickness_outside_every_band_says_so(specs: SpecificationSet) -> None:
    match = specs.match("PET MET", 38.0, 90.0, 23.0)
    assert match.limit is None
    assert "23 µm" in match.reason
    assert "8–14 µm" in match.reason


def test_structure_without_limit(specs: SpecificationSet) -> None:
    match = specs.match("BOPA", 38.0, 90.0, 15.0)
    assert match.limit is None
    assert "no specification limit" in match.reason
    assert "BOPA" in match.reason


def test_open_band_is_inclusive(specs: SpecificationSet) -> None:
    assert specs.match("LDPE", 38.0, 90.0, 35.0).limit is not None
    assert specs.match("LDPE", 38.0, 90.0, 34.99).limit is None


def test_match_many_equals_match_row_by_row(specs: SpecificationSet) -> None:
    rng = np.random.default_rng(3)
    n = 3000
    structures = rng.choice(["BOPP", "PET MET", "LDPE", "BOPA"], n)
    temperature = rng.choice([38.0, 37.5, 40.0, 23.0, 25.6], n)
    humidity = rng.choice([90.0, 88.5, 85.0, 23.0], n)
    thickness = rng.uniform(5, 70, n).round(2)
    batch = specs.match_many(structures, temperature, humidity, thickness)
    for i in range(n):
        single = specs.match(structures[i], temperature[i], humidity[i], thickness[i])
        got = None if batch.limit_index[i] < 0 else specs.limits[batch.limit_index[i]]
        assert got == single.limit
        reason = specs.reason_for_row(
            int(batch.reason_code[i]),
            int(batch.limit_index[i]),
            structures[i],
            temperature[i],
            humidity[i],
            thickness[i],
        )
        assert reason == single.reason
    assert set(batch.reason_code.tolist()) == {
        REASON_MATCHED,
        REASON_NO_LIMIT,
        REASON_THICKNESS,
        REASON_CONDITIONS,
    }


@pytest.fixture
def mixed() -> SpecificationSet:
    """BOPP limits stated at two conditions, in overlapping bands; one PET MET limit."""
    return SpecificationSet.from_limits(
        [
            _limit(min_thickness_um=15, max_thickness_um=22),
            _limit(min_thickness_um=20, max_thickness_um=40, temperature_c=23.0, humidity_pct=85),
            _limit(min_thickness_um=22, max_thickness_um=30, max_permeability=5.0),
            _limit(max_permeability=9.0, temperature_c=25.0, humidity_pct=60),
            _limit(structure="PET MET", max_permeability=2.0, min_thickness_um=8),
        ],
        "test",
    )


def _edges_and_uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    edges = np.array([8.0, 15.0, 20.0, 22.0, 30.0, 40.0])
    return np.r_[edges, np.nextafter(edges, 0.0), np.nextafter(edges, 99.0), rng.uniform(5, 50, n)]


def test_a_case_reason_is_the_row_reason_without_the_rows_numbers(
    mixed: SpecificationSet,
) -> None:
    rng = np.random.default_rng(4)
    thickness = _edges_and_uniform(rng, 2000)
    n = len(thickness)
    names = ["BOPP", "PET MET", "BOPA"]
    codes = rng.integers(0, len(names), n).astype(np.intp)
    structures = np.array(names, dtype=object)[codes]
    temperature = rng.choice([38.0, 37.5, 23.0, 25.6], n)
    humidity = rng.choice([90.0, 85.0, 23.0], n)
    batch = mixed.match_coded(codes, names, temperature, humidity, thickness)
    bands = mixed.band_codes(codes, names, thickness)
    kinds = set()
    for i in range(n):
        code, index = int(batch.reason_code[i]), int(batch.limit_index[i])
        row = mixed.reason_for_row(
            code, index, structures[i], temperature[i], humidity[i], thickness[i]
        )
        numbers = (f" {thickness[i]:g} µm", f" {temperature[i]:g} °C / {humidity[i]:g} % RH")
        for number in numbers:
            row = row.replace(number, "", 1)
        assert mixed.reason_for_case(code, index, structures[i], int(bands[i])) == row
        kinds.add(code)
    assert kinds == {REASON_MATCHED, REASON_NO_LIMIT, REASON_THICKNESS, REASON_CONDITIONS}


def test_rows_sharing_a_band_code_have_limits_in_band_stated_alike(
    mixed: SpecificationSet,
) -> None:
    """What lets a batch word the conditions reason once per band code."""
    names = ["BOPP", "PET MET", "BOPA"]
    rng = np.random.default_rng(6)
    thickness = _edges_and_uniform(rng, 600)
    codes = rng.integers(0, len(names), len(thickness)).astype(np.intp)
    bands = mixed.band_codes(codes, names, thickness)
    seen: dict[tuple[int, int], frozenset[str]] = {}
    for code, band, t in zip(codes, bands, thickness, strict=True):
        stated = frozenset(
            lim.conditions_text()
            for lim in mixed.for_structure(names[code])
            if (lim.min_thickness_um is None or t >= lim.min_thickness_um)
            and (lim.max_thickness_um is None or t <= lim.max_thickness_um)
        )
        if stated:  # none in band: the thickness reason, which names every band
            assert seen.setdefault((int(code), int(band)), stated) == stated
    assert len({stated for (code, _), stated in seen.items() if code == 0}) >= 4
    assert len(seen) < 30  # a few cases per structure, not one per row
    assert not bands[codes != 0].any()  # one condition per structure: one sentence


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_permeability", 0.0),
        ("max_permeability", -1.0),
        ("humidity_pct", 120.0),
        ("temperature_c", float("nan")),
        ("temperature_tolerance_c", -1.0),
    ],
)
def test_invalid_limit_fields_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as caught:
        _limit(**{field: value})
    assert caught.value.errors()[0]["loc"] == (field,)


def test_reversed_band_is_refused() -> None:
    with pytest.raises(ValidationError, match="min_thickness_um"):
        _limit(min_thickness_um=30, max_thickness_um=20)


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="max_wvtr"):
        _limit(max_wvtr=3.0)
