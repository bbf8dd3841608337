"""The record text rule (issue 13, item 7): no control character in any record text field,
structure names included; one rule, the same words at every entry."""

from __future__ import annotations

import pytest

from permeability.record.identity import (
    MAX_FIELD_LENGTH,
    control_character_problem,
    field_text_problem,
)
from tests.unit.record.test_cleaning import clean, good_row


@pytest.mark.parametrize(
    ("text", "code_point", "position"),
    [
        ("BO\x00PP", "U+0000", 3),
        ("\x00", "U+0000", 1),
        ("BOPP\tMET", "U+0009", 5),  # a tab inside a name: not a separator, an accident
        ("PET\nPE", "U+000A", 4),
        ("PET\rPE", "U+000D", 4),
        ("A\x1bB", "U+001B", 2),  # ESC, a terminal escape
        ("A\x1fB", "U+001F", 2),
        ("A\x7fB", "U+007F", 2),  # DEL
        ("A\x80B", "U+0080", 2),  # C1, first
        ("Ana\x9b1m", "U+009B", 4),  # C1 CSI
        ("A\x9fB", "U+009F", 2),  # C1, last
        ("A\x01B\x00", "U+0001", 2),  # the first one is named
    ],
)
def test_control_characters_are_named_with_their_position(
    text: str, code_point: str, position: int
) -> None:
    expected = f"contains a control character ({code_point}) at position {position}"
    assert control_character_problem(text) == expected
    assert field_text_problem(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "BOPP/MET",
        "Año Ñandú",  # accents are letters
        "A\u00a0B",  # no-break space (U+00A0) is just after the C1 range
        '=HYPERLINK("http://x","y")',  # a formula is text: neutralised on output, not refused
        "日本",
        "",
    ],
)
def test_ordinary_text_has_no_problem(text: str) -> None:
    assert control_character_problem(text) is None
    assert field_text_problem(text) is None


def test_a_field_is_judged_on_control_characters_before_its_length() -> None:
    long = "x" * (MAX_FIELD_LENGTH + 1)
    assert field_text_problem(long) == f"is longer than {MAX_FIELD_LENGTH} characters"
    problem = field_text_problem(long + "\x00")
    assert problem is not None
    assert problem.startswith("contains a control character (U+0000)")


def test_acquisition_refuses_a_structure_with_a_control_character_naming_it() -> None:
    result = clean(
        good_row("1", Estructura="BO\x00PP"),
        good_row("2", Estructura="BOPP\tMET"),
        good_row("3", Estructura=" BOPP\t"),  # blanks around a name are trimmed, as ever
        good_row("4", Estructura="\x00"),
    )
    assert result.clean["Estructura"].tolist() == ["BOPP"]
    reasons = result.rejected["reason"].tolist()
    assert reasons == [
        "Estructura 'BO\\x00PP' contains a control character (U+0000) at position 3",
        "Estructura 'BOPP\\tMET' contains a control character (U+0009) at position 5",
        "Estructura '\\x00' contains a control character (U+0000) at position 1",
    ]
