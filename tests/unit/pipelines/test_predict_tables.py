"""Lab tables into batch scoring: CSV encodings and delimiters, workbooks, refusals."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from permeability.errors import InvalidInputError
from permeability.pipelines.predict_tables import read_table


def test_csv_with_semicolons_and_latin1_is_read(tmp_path: Path) -> None:
    text = "Muestra;Grados_C;Estructura\n1;25,6;Polipropileno orientado ñ\n"
    frame = read_table(text.encode("latin-1"), "lab.csv")
    assert frame.loc[0, "Grados_C"] == "25,6"
    assert str(frame.loc[0, "Estructura"]).endswith("ñ")


@pytest.mark.parametrize(
    ("encoding", "sep"), [("utf-16", "\t"), ("utf-16-be", "\t"), ("utf-8-sig", ";")]
)
def test_a_unicode_text_export_is_decoded_by_its_byte_order_mark(encoding: str, sep: str) -> None:
    """Excel's "Unicode text" export (UTF-16 with a BOM, tabs) reads as acquisition reads it."""
    text = (
        sep.join(["Muestra", "Grados_C", "Estructura"]) + "\n" + sep.join(["1", "25,6", "BOPP ñ"])
    )
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    frame = read_table(data, "lab.csv")
    assert list(frame.columns) == ["Muestra", "Grados_C", "Estructura"]
    assert frame.loc[0, "Grados_C"] == "25,6"
    assert frame.loc[0, "Estructura"] == "BOPP ñ"


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "x.csv", "is empty"),
        (b"a,b\n1,2\n", "x.json", "must be one of .csv, .xlsx"),
        (b"not a zip", "x.xlsx", r"x.xlsx is not an Excel workbook \(.xlsx\): it is a text file"),
        (b"<html><body>report</body></html>", "x.xlsx", "it is an HTML page"),
        (b"\xff\xfeM\x00\x00\xd8", "x.csv", "UTF-16 byte-order mark but is not valid UTF-16"),
    ],
)
def test_unreadable_inputs_are_clear_errors(data: bytes, name: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        read_table(data, name)
