"""The first worksheet of an .xlsx read as text; anything else named .xlsx refused in one sentence."""

from __future__ import annotations

import io
import random
import zipfile
from datetime import date
from pathlib import Path

import pytest
from openpyxl import Workbook

from permeability.errors import InvalidInputError
from permeability.io.sources.opening import open_source
from tests.unit.io.sources.source_support import HEADER, read_all


def test_xlsx_first_sheet_is_read_as_text(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append([None])
    sheet.append(HEADER)
    sheet.append(
        [1, 25.6, 90, "Bopp metalizado", 20, 20.1, None, "20", "20", 20.0, 0.3, date(2024, 1, 2)]
    )
    sheet.append([None] * len(HEADER))
    sheet.append([2, "38,0", "90 %", "PET", 12, 12, 12, 12, 12, 12, "n/a", "02/01/2024"])
    path = tmp_path / "lab.xlsx"
    workbook.save(path)
    with open_source(str(path)) as source:
        records, _ = read_all(source)
    assert records["Grados_C"].tolist() == ["25.6", "38,0"]
    assert records["Calibre2"].tolist() == ["20.1", "12"]
    assert records["Calibre3"].isna().tolist() == [True, False]
    assert records["Fecha"].tolist() == ["2024-01-02 00:00:00", "02/01/2024"]
    assert records["source_row"].tolist() == [1, 2]


def test_broken_or_empty_workbooks_are_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"not a zip file")
    with (
        pytest.raises(InvalidInputError, match=r"is not an Excel workbook \(\.xlsx\)"),
        open_source(str(broken)),
    ):
        pass
    empty = tmp_path / "empty.xlsx"
    Workbook().save(empty)
    with pytest.raises(InvalidInputError, match="is empty"), open_source(str(empty)):
        pass


def zipped(**members: bytes) -> bytes:
    """A zip archive holding ``members`` (name -> bytes); ``__`` in a name stands for '/'."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name.replace("__", "/"), content)
    return buffer.getvalue()


NOISE = random.Random(13).randbytes(4096)


@pytest.mark.parametrize(
    ("content", "what", "reason"),
    [
        (  # the case: a zip of junk parts -> an XML ParseError inside openpyxl
            zipped(**{"[Content_Types].xml": b"garbage", "xl__workbook.xml": NOISE[:64]}),
            "it is a zip archive without a readable workbook inside",
            "syntax error: line 1, column 0",
        ),
        (
            zipped(notes__a=NOISE[:100]),
            "it is a zip archive without a readable workbook inside",
            "There is no item named '[Content_Types].xml' in the archive",
        ),
        (NOISE, "it is unrecognised binary content", "File is not a zip file"),
        (
            b"<!DOCTYPE html>\n<html><body><table><tr><td>1</td></tr></table></body></html>",
            "it is an HTML page",
            "File is not a zip file",
        ),
        (
            "Muestra;Estructura\n1;Polietileno ñ\n".encode(),
            "it is a text file",
            "File is not a zip file",
        ),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + NOISE[:512],
            "it is an OLE2 file: a legacy .xls workbook or a password-protected one",
            "File is not a zip file",
        ),
        (b"%PDF-1.7\n" + NOISE[:256], "it is a PDF document", "File is not a zip file"),
    ],
)
def test_a_file_named_xlsx_that_is_not_a_workbook_is_named_clearly(
    tmp_path: Path, content: bytes, what: str, reason: str
) -> None:
    path = tmp_path / "lab.xlsx"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError) as caught, open_source(str(path)):
        pass
    message = str(caught.value)
    assert message.startswith(f"source {path} is not an Excel workbook (.xlsx): {what}")
    assert f"(reader: {reason})" in message
    assert "\n" not in message


def test_a_workbook_damaged_after_its_header_is_named_when_read(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(HEADER)
    for muestra in range(1, 201):
        sheet.append([muestra, 38, 90, "BOPP", *[20] * 6, 5, "2024-01-01"])
    intact = tmp_path / "intact.xlsx"
    workbook.save(intact)
    damaged = tmp_path / "damaged.xlsx"
    with zipfile.ZipFile(intact) as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2] + b"<<junk"
            target.writestr(item, data)
    with open_source(str(damaged)) as opened:
        assert opened.headers == tuple(HEADER)
        with pytest.raises(InvalidInputError) as caught:
            read_all(opened)
    message = str(caught.value)
    assert message.startswith(f"source {damaged} is a damaged Excel workbook (.xlsx)")
    assert "cannot be read after record" in message
