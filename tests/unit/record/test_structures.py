from __future__ import annotations

import pytest

from permeability.record.structures import (
    LAYER_VOCABULARY,
    build_alias_map,
    canonical_spelling,
    normalise_structure,
    parse_structure,
)

ALIASES = build_alias_map()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("bopp ", "BOPP"),
        ("  BOPP  ", "BOPP"),
        ("BOPP MET", "BOPP/MET"),
        ("Bopp metalizado", "BOPP/MET"),
        ("bopp_metalizado", "BOPP/MET"),
        ("metallized PET", "PET/MET"),
        ("BOPET", "PET"),
        ("Pét", "PET"),
        ("CPP", "PPC"),
        ("nylon / pe", "NY/PE"),
    ],
)
def test_hand_typed_names_reach_one_name(raw: str, expected: str) -> None:
    assert normalise_structure(raw, ALIASES) == expected


@pytest.mark.parametrize(
    ("spellings", "name", "layers"),
    [
        (
            ("PET / AL / PE", "PET/AL/PE", "PET-AL-PE", "pet-al-pe"),
            "PET/AL/PE",
            ("PET", "AL", "PE"),
        ),
        (
            ("BOPP-BOPPMET", "BOPP-BOPP-MET", "BOPP/BOPP MET"),
            "BOPP/BOPP/MET",
            ("BOPP", "BOPP", "MET"),
        ),
        (
            ("BOPP-MATE---BOPP-MET", "BOPP-MATE-BOPP-MET"),
            "BOPP/MATE/BOPP/MET",
            ("BOPP", "MATE", "BOPP", "MET"),
        ),
        (("PE-MDO-PE", "PE MDO / PE"), "PE-MDO/PE", ("PE-MDO", "PE")),
        (("PET-AL-NY-PPC",), "PET/AL/NY/PPC", ("PET", "AL", "NY", "PPC")),
        (("CELOFAN-PLA", "celofán / pla"), "CELOFAN/PLA", ("CELOFAN", "PLA")),
        (("PAPEL-PE",), "PAPEL/PE", ("PAPEL", "PE")),
        (("PET-PET-MET-PE",), "PET/PET/MET/PE", ("PET", "PET", "MET", "PE")),
        (
            # pearlised BOPP fused to its name, then metallized BOPP fused too
            ("BOPPPL-BOPPMET", "BOPP PL / BOPP MET", "bopp perlado/bopp met"),
            "BOPP-PL/BOPP/MET",
            ("BOPP-PL", "BOPP", "MET"),
        ),
    ],
)
def test_the_real_exports_spellings_map_to_one_name_and_its_layers(
    spellings: tuple[str, ...], name: str, layers: tuple[str, ...]
) -> None:
    for spelled in spellings:
        parsed = parse_structure(spelled, ALIASES)
        assert (parsed.name, parsed.layers) == (name, layers), spelled
    assert set(layers) <= set(LAYER_VOCABULARY)


def test_the_real_exports_layers_are_all_in_the_vocabulary() -> None:
    for layer in ("PET", "BOPP", "PE", "PE-MDO", "PPC", "NY", "AL", "MET", "PAPEL", "PLA"):
        assert layer in LAYER_VOCABULARY
    for layer in ("CELOFAN", "PVC", "MATE"):
        assert parse_structure(layer, ALIASES).layers == (layer,)


def test_a_name_that_is_not_a_list_of_layers_is_kept_without_layers() -> None:
    for raw, expected in (
        ("NO-REPORTADA", "NO-REPORTADA"),
        ("Análisis de estructura", "ANALISIS-DE-ESTRUCTURA"),
        ("  nuevo   film x ", "NUEVO-FILM-X"),
        ("PET-XYZ-PE", "PET-XYZ-PE"),
    ):
        parsed = parse_structure(raw, ALIASES)
        assert (parsed.name, parsed.layers, parsed.layers_text) == (expected, (), "")


def test_user_aliases_extend_and_override_defaults() -> None:
    aliases = build_alias_map({"film azul": "BOPP", "OPP": "PPC", "XYZ": "EVOH"})
    assert normalise_structure("Film Azul", aliases) == "BOPP"
    assert normalise_structure("opp", aliases) == "PPC"
    assert normalise_structure("bopp metalizado", aliases) == "BOPP/MET"
    assert parse_structure("PET-XYZ-PE", aliases).layers == ("PET", "EVOH", "PE")


def test_canonical_names_are_fixed_points() -> None:
    for raw in ("PET / AL / PE", "BOPP-BOPPMET", "NO-REPORTADA", "PE-MDO-PE", "nuevo film"):
        once = normalise_structure(raw, ALIASES)
        assert normalise_structure(once, ALIASES) == once


def test_canonical_spelling_is_idempotent() -> None:
    once = canonical_spelling(" Bópp_ met /  pe ")
    assert canonical_spelling(once) == once == "BOPP MET/PE"
