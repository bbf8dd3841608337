"""What every adapter shares: a cell or database value becomes the text a person would type."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from permeability.io.sources.base import cell_text


def test_cell_values_become_the_text_a_person_would_type() -> None:
    assert cell_text(16.4) == "16.4"
    assert cell_text(0.1 + 0.2) == "0.30000000000000004"
    assert cell_text(7) == "7"
    assert cell_text(Decimal("16.40")) == "16.40"
    assert cell_text(datetime(2024, 1, 2, 0, 0)) == "2024-01-02 00:00:00"
    assert cell_text(date(2024, 1, 2)) == "2024-01-02"
    assert cell_text(None) is None
