"""The structures the generator knows: the law on them, their spellings, their names."""

from __future__ import annotations

import numpy as np
import pytest

from permeability.errors import InvalidInputError
from permeability.record.structures import build_alias_map, normalise_structure
from permeability.synthetic.catalogue import (
    base_mix,
    real_catalogue,
    reference_wvtr,
    resolve_structure,
    spelling_variants,
    structure_catalogue,
)
from permeability.synthetic.physics import MATERIALS


def test_wvtr_rises_with_temperature_and_humidity() -> None:
    for name in base_mix():
        cold, warm = reference_wvtr(name, [23.0, 38.0], 90.0, 50.0)
        dry, wet = reference_wvtr(name, 38.0, [50.0, 90.0], 50.0)
        assert warm > cold, name
        assert wet > dry, name


def test_thickness_matters_for_bopp_but_barely_for_metallized_bopp() -> None:
    thin, thick = reference_wvtr("BOPP", 38.0, 90.0, [20.0, 40.0])
    assert thin / thick > 1.7
    thin_met, thick_met = reference_wvtr("BOPP/MET", 38.0, 90.0, [20.0, 40.0])
    assert 1.0 < thin_met / thick_met < 1.15


def test_a_laminate_transmits_less_than_each_of_its_layers() -> None:
    for spec in structure_catalogue().values():
        if not spec.is_laminate:
            continue
        total = 60.0
        laminate = reference_wvtr(spec.name, 38.0, 90.0, total)[()]
        for layer in spec.layers:
            alone = reference_wvtr(layer.material.name, 38.0, 90.0, total * layer.share)[()]
            assert laminate < alone, (spec.name, layer.material.name)


def test_bopa_is_far_more_humidity_sensitive_than_bopp() -> None:
    bopa_50, bopa_90 = reference_wvtr("NY", 23.0, [50.0, 90.0], 25.0)
    bopp_50, bopp_90 = reference_wvtr("BOPP", 23.0, [50.0, 90.0], 25.0)
    assert bopp_90 / bopp_50 == pytest.approx(90 / 50, rel=1e-6)  # driving force only
    assert bopa_90 / bopa_50 > 2.0 * (90 / 50)


def test_reference_values_match_the_data_sheets() -> None:
    assert reference_wvtr("BOPP", 38.0, 90.0, 25.0)[()] == pytest.approx(5.0)
    assert 15 <= reference_wvtr("PET", 38.0, 90.0, 25.0)[()] <= 31
    assert 0.1 <= reference_wvtr("BOPP/MET", 38.0, 90.0, 25.0)[()] <= 0.6
    assert 155 <= reference_wvtr("NY", 38.0, 90.0, 25.0)[()] <= 410


def test_reference_wvtr_accepts_any_spelling_and_vectors_of_structures() -> None:
    values = reference_wvtr(["Bopp metalizado", "BOPP MET", "pet / ldpe"], 38.0, 90.0, 25.0)
    assert values[0] == values[1]
    assert values[2] == reference_wvtr("PET/LDPE", 38.0, 90.0, 25.0)[()]


def test_reference_wvtr_gives_nan_for_impossible_thickness() -> None:
    values = reference_wvtr("BOPP", 38.0, 90.0, [25.0, 0.0, -3.0])
    assert np.isfinite(values[0])
    assert np.isnan(values[1:]).all()


def test_unknown_structure_is_refused_by_name() -> None:
    with pytest.raises(InvalidInputError, match="UNOBTAINIUM"):
        reference_wvtr("UNOBTAINIUM", 38.0, 90.0, 25.0)


def test_every_spelling_variant_normalises_back() -> None:
    aliases = build_alias_map()
    for name in structure_catalogue():
        variants = spelling_variants(name)
        assert len(variants) >= 4, name
        assert name not in variants
        assert {normalise_structure(v, aliases) for v in variants} == {name}


def test_every_name_the_generator_knows_is_canonical() -> None:
    aliases = build_alias_map()
    names = [*structure_catalogue(), *real_catalogue(), *MATERIALS]
    assert [n for n in names if normalise_structure(n, aliases) != n] == []
    assert {"BOPP/MET", "PPC", "NY", "PET/MET/LDPE"} <= set(structure_catalogue())


def test_any_spelling_resolves_to_its_catalogue_entry() -> None:
    assert resolve_structure("BOPP MET") is structure_catalogue()["BOPP/MET"]
    assert resolve_structure("cpp").name == "PPC"
    assert resolve_structure("BOPA").name == "NY"
    assert resolve_structure("PET / AL / PE") is real_catalogue()["PET/AL/PE"]
    assert resolve_structure("BOPP-BOPPMET").name == "BOPP/BOPP/MET"  # the seed entry first
    assert resolve_structure("Bopp metalizado / pebd").name == "BOPP/MET/LDPE"  # on the fly


def test_foil_laminates_sit_at_the_detection_limit_and_paper_is_permeable() -> None:
    foil = reference_wvtr("PET-AL-PE", 38.0, 90.0, 80.0)[()]
    paper = reference_wvtr("PAPEL", 38.0, 90.0, 70.0)[()]
    metallized = reference_wvtr("BOPP-BOPP-MET", 38.0, 90.0, 40.0)[()]
    assert foil < 0.01 < metallized < 1.0 < paper
