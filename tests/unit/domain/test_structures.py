from __future__ import annotations

import pytest

from permeability.domain.structures import build_alias_map, canonical_spelling, normalise_structure


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("bopp ", "BOPP"),
        ("  BOPP  ", "BOPP"),
        ("BOPP MET", "BOPP MET"),
        ("Bopp metalizado", "BOPP MET"),
        ("bopp_metalizado", "BOPP MET"),
        ("Métalized pet", "METALIZED PET"),
        ("metallized PET", "PET MET"),
        ("BOPET", "PET"),
        ("pet / met pet", "PET/PET MET"),
        ("Pét", "PET"),
    ],
)
def test_hand_typed_names_reach_one_spelling(raw: str, expected: str) -> None:
    assert normalise_structure(raw, build_alias_map()) == expected


def test_unknown_structure_is_kept_not_rejected() -> None:
    assert normalise_structure("  nuevo   film x ", build_alias_map()) == "NUEVO FILM X"


def test_user_aliases_extend_and_override_defaults() -> None:
    aliases = build_alias_map({"film azul": "BOPP", "OPP": "CPP"})
    assert normalise_structure("Film Azul", aliases) == "BOPP"
    assert normalise_structure("opp", aliases) == "CPP"
    assert normalise_structure("bopp metalizado", aliases) == "BOPP MET"


def test_canonical_spelling_is_idempotent() -> None:
    once = canonical_spelling(" Bópp_ met /  pe ")
    assert canonical_spelling(once) == once == "BOPP MET/PE"
