"""Spreadsheet cells (issue 13, item 2): text starting like a formula goes out behind a quote,
numbers stay numbers, and an .xlsx holds text cells only as text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from permeability.io.cells import (
    FORMULA_STARTS,
    XML_STAND_IN,
    csv_text,
    neutralise_cell,
    neutralise_text,
    spreadsheet_safe,
    write_csv,
    write_sheet,
    write_xlsx,
)

HYPERLINK = '=HYPERLINK("http://x","y")'


@pytest.mark.parametrize(
    "text",
    [
        HYPERLINK,
        "@SUM(A1)",
        "+1+1",
        "-2+3",
        "\t=1",
        "\r=1",
        "=",
        "-",  # the lab's "no value" placeholder: not a number, so quoted
        "-5 °C",
        "+34 600 000 000",
        "-1e3x",
        "=1+cmd|' /C calc'!A0",
    ],
)
def test_text_that_starts_like_a_formula_gets_a_quote(text: str) -> None:
    assert text.startswith(FORMULA_STARTS)
    assert neutralise_text(text) == "'" + text
    assert neutralise_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["-5", "+5", "-0,5", "-16.4", "-.5", "-1.234,5", "-1e-3", "+2E+5"])
def test_a_plain_number_written_as_text_stays_as_typed(text: str) -> None:
    assert neutralise_text(text) == text


@pytest.mark.parametrize(
    "text", ["BOPP", "", " =1", "'=already quoted", "a=b", "PET/AL/PE", "5-3", "n/a"]
)
def test_other_text_is_untouched(text: str) -> None:
    assert neutralise_text(text) == text


@pytest.mark.parametrize("value", [-5, -5.5, None, np.nan, True, pd.Timestamp("2024-01-01")])
def test_values_that_are_not_text_are_untouched(value: object) -> None:
    assert neutralise_cell(value) is value


def _hostile_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Estructura": pd.Series([HYPERLINK, "BOPP", None, "-5"], dtype="str"),
            "Grados_C": [-5.0, 38.0, np.nan, 23.0],  # numeric: written as numbers, always
            "Muestra": np.array([1, 2, 3, 4], dtype=np.int64),
            "mixed": pd.Series(["@SUM(A1)", 16.4, None, "-2+3"], dtype=object),
            "structure": pd.Categorical(["=A", "BOPP", None, "=A"]),
            "=extra": ["+1+1", "ok", "ok", "\t=1"],
            "ok": [True, False, True, False],
        }
    )


def test_a_frame_is_neutralised_cell_by_cell_and_numbers_are_kept() -> None:
    frame = _hostile_frame()
    safe = spreadsheet_safe(frame)
    assert list(safe.columns) == [
        "Estructura",
        "Grados_C",
        "Muestra",
        "mixed",
        "structure",
        "'=extra",
        "ok",
    ]
    assert safe["Estructura"].tolist()[:2] == ["'" + HYPERLINK, "BOPP"]
    assert pd.isna(safe["Estructura"].iloc[2])
    assert safe["Estructura"].iloc[3] == "-5"
    assert safe["Estructura"].dtype == frame["Estructura"].dtype
    assert safe["mixed"].tolist()[:2] == ["'@SUM(A1)", 16.4]
    assert safe["mixed"].iloc[3] == "'-2+3"
    assert safe["structure"].tolist()[:2] == ["'=A", "BOPP"]
    assert safe["'=extra"].tolist() == ["'+1+1", "ok", "ok", "'\t=1"]
    pd.testing.assert_series_equal(safe["Grados_C"], frame["Grados_C"])
    pd.testing.assert_series_equal(safe["Muestra"], frame["Muestra"])
    pd.testing.assert_series_equal(safe["ok"], frame["ok"])
    # the caller's frame is not changed
    assert frame["Estructura"].iloc[0] == HYPERLINK
    assert list(frame.columns)[5] == "=extra"


def test_a_frame_with_nothing_to_neutralise_keeps_its_columns() -> None:
    frame = pd.DataFrame(
        {"a": pd.Series(["BOPP", "-5"], dtype="str"), "b": pd.Categorical(["x", "y"])}
    )
    safe = spreadsheet_safe(frame)
    pd.testing.assert_frame_equal(safe, frame)


def test_duplicate_column_names_are_each_neutralised() -> None:
    frame = pd.DataFrame([["=a", "=b"]], columns=["x", "x"])
    assert spreadsheet_safe(frame).iloc[0].tolist() == ["'=a", "'=b"]


def test_csv_outputs_are_neutralised(tmp_path: Path) -> None:
    text = csv_text(_hostile_frame())
    assert text.splitlines()[0] == "Estructura,Grados_C,Muestra,mixed,structure,'=extra,ok"
    assert (
        text.splitlines()[1]
        == '"\'=HYPERLINK(""http://x"",""y"")",-5.0,1,\'@SUM(A1),\'=A,\'+1+1,True'
    )
    path = tmp_path / "out.csv"
    write_csv(_hostile_frame(), path)
    assert path.read_text(encoding="utf-8") == text


def test_xlsx_text_cells_are_strings_never_formulas(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    write_xlsx(_hostile_frame(), path)
    sheet = openpyxl.load_workbook(path).worksheets[0]
    rows = list(sheet.iter_rows())
    assert [c.value for c in rows[0]][5] == "'=extra"
    first = rows[1]
    assert (first[0].value, first[0].data_type) == ("'" + HYPERLINK, "s")
    assert (first[1].value, first[1].data_type) == (-5, "n")
    assert (first[2].value, first[2].data_type) == (1, "n")
    assert (first[3].value, first[3].data_type) == ("'@SUM(A1)", "s")
    assert (first[6].value, first[6].data_type) == (True, "b")
    assert [c.value for c in rows[3]][:2] == [None, None]  # missing: empty cells
    assert rows[4][0].value == "-5"  # a number typed as text stays text, as typed
    assert all(c.data_type != "f" for row in rows for c in row)


def test_a_sheet_written_as_given_still_holds_text_as_text(tmp_path: Path) -> None:
    """The lab export keeps its cells as typed, yet an .xlsx never turns them into formulas or
    error values, and a character XML cannot hold does not break the file."""
    frame = pd.DataFrame({"Estructura": [HYPERLINK, "#N/A", "BO\x00PP", "-5"], "n": [1, 2, 3, 4]})
    path = tmp_path / "lab.xlsx"
    write_sheet(frame, path, "muestras")
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["muestras"]
    cells = [row[0] for row in book["muestras"].iter_rows(min_row=2)]
    assert [c.value for c in cells] == [HYPERLINK, "#N/A", f"BO{XML_STAND_IN}PP", "-5"]
    assert {c.data_type for c in cells} == {"s"}
