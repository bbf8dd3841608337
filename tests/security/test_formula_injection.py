"""Attack replay (issue 13, items 2 and 7): formulas and control characters in record text.

2. A hostile cell such as ``=HYPERLINK("http://x","y")`` or ``@SUM(A1)`` was stored and then
   written unescaped into every table people open in a spreadsheet: the rejected-rows CSV, the
   ``permeability predict`` output (``.csv``, and a *live formula* in ``.xlsx``) and the CSV
   answer of ``POST /inference/batch``.
7. A NUL inside ``Estructura`` loaded as a new structure (``BO\\x00PP``) and later broke
   ``predict --output x.xlsx`` (an .xlsx cannot hold it).

Each attack is replayed end to end through the real entry points; the outputs are read back
cell by cell, as a spreadsheet would see them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from permeability.cli.main import app
from permeability.io.feature_store import FeatureStore
from permeability.pipelines.acquisition import acquire
from permeability.record.schema import CALIBRES
from permeability.services.inference.app import create_inference_app
from permeability.settings import Settings
from tests.builders import SEED_HEADER
from tests.unit.services.inference_support import (
    SEED_SAMPLE,
    Champion,
    lab_frame,
    patch_registry,
    publish_version,
    tiny_model,
)

HYPERLINK = '=HYPERLINK("http://x","y")'
ATTACKS = (HYPERLINK, "@SUM(A1)", "+1+1", "-2+3", "\t=1")
#: What a spreadsheet reads as the start of a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

HEADER = (
    "CONSECUTIVO",
    *SEED_HEADER,
    "Referencia",
    "Instrumentista",
)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "."))
    except ValueError:
        return False
    return True


def _live_formula(cell: str) -> bool:
    """Whether a spreadsheet would evaluate ``cell``: a formula start, and not just a number
    (``-5`` is a number to any spreadsheet, and is left as typed)."""
    return cell.startswith(FORMULA_STARTS) and not _is_number(cell)


def _formulas(cells: Iterable[Any]) -> list[str]:
    return [c for c in cells if isinstance(c, str) and _live_formula(c)]


def _csv_cells(text: str) -> Iterator[str]:
    for row in csv.reader(io.StringIO(text, newline="")):
        yield from row


# -- acquisition: the rejected-rows file and the feature store --------------------------------


def _lab_row(number: int, **values: str) -> list[str]:
    cells = {
        "CONSECUTIVO": str(number),
        "Muestra": "1",
        "Grados_C": "38",
        "Porc_Humedad": "90",
        "Estructura": "BOPP",
        **dict.fromkeys(CALIBRES, "20.0"),
        "CalibreProm": "20.0",
        "Permeabilidad": "5.0",
        "Fecha": "2024-01-10",
        "Referencia": f"REF-{number}",
        "Instrumentista": "Ana",
    }
    cells.update(values)
    return [cells[h] for h in HEADER]


@pytest.fixture
def hostile_export(tmp_path: Path) -> Path:
    rows = [
        _lab_row(1, Estructura=HYPERLINK, Referencia=HYPERLINK),  # loaded (it has letters)
        _lab_row(2, Estructura="@SUM(A1)", Instrumentista="@SUM(A1)"),  # loaded
        _lab_row(3, Estructura="+1+1"),  # rejected: no letter
        _lab_row(4, Estructura="-2+3", Referencia="+1+1"),  # rejected: no letter
        _lab_row(5, Estructura="\t=1"),  # rejected: no letter once trimmed
        _lab_row(6, Estructura="BO\x00PP"),  # rejected: NUL
        _lab_row(7, Referencia="REF\x00"),  # rejected: NUL
        _lab_row(8, Instrumentista="Ana\x9b1m"),  # rejected: C1 control (CSI)
        _lab_row(9, Estructura="BOPP\tMET"),  # rejected: a tab inside a name
        _lab_row(10, Permeabilidad="-5"),  # rejected: negative; a number, kept as typed
        _lab_row(11, Referencia="-2+3", Instrumentista="+1+1"),  # loaded
    ]
    path = tmp_path / "hostile.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def test_acquisition_refuses_control_characters_and_writes_no_live_formula(
    settings: Settings, hostile_export: Path
) -> None:
    report = acquire(settings, str(hostile_export))
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (11, 3, 8)
    assert report.rows_read == report.rows_loaded + report.rows_rejected + report.duplicates_skipped

    assert report.rejected_file is not None
    text = Path(report.rejected_file).read_text(encoding="utf-8")
    assert _formulas(_csv_cells(text)) == []
    rejected = {row["CONSECUTIVO"]: row for row in csv.DictReader(io.StringIO(text, newline=""))}
    assert sorted(rejected, key=int) == ["3", "4", "5", "6", "7", "8", "9", "10"]
    # as typed, behind a quote: the spreadsheet shows the text, never evaluates it
    assert rejected["3"]["Estructura"] == "'+1+1"
    assert rejected["4"]["Estructura"] == "'-2+3"
    assert rejected["4"]["Referencia"] == "'+1+1"
    assert rejected["5"]["Estructura"] == "'\t=1"
    assert rejected["10"]["Permeabilidad"] == "-5"  # a number stays a number
    assert "Permeabilidad '-5' is outside" in rejected["10"]["reason"]
    # control characters: refused, naming the field, the character and where it is
    assert rejected["6"]["Estructura"] == "BO\x00PP"  # the row as typed, nothing lost
    assert (
        "Estructura 'BO\\x00PP' contains a control character (U+0000) at position 3"
        in rejected["6"]["reason"]
    )
    assert (
        "Referencia 'REF\\x00' contains a control character (U+0000) at position 4"
        in (rejected["7"]["reason"])
    )
    assert (
        "Instrumentista 'Ana\\x9b1m' contains a control character (U+009B) at position 4"
        in (rejected["8"]["reason"])
    )
    assert (
        "Estructura 'BOPP\\tMET' contains a control character (U+0009) at position 5"
        in (rejected["9"]["reason"])
    )

    stored = FeatureStore(settings.resolved_feature_store_uri).read().frame
    assert sorted(stored["CONSECUTIVO"], key=int) == ["1", "2", "11"]
    # stored as typed (the store is data, not a spreadsheet); neutralised when written out
    assert set(stored["Estructura"]) == {'=HYPERLINK("HTTP:-X","Y")', "@SUM(A1)", "BOPP"}
    texts = stored.select_dtypes(include=["object", "string"])
    for column in texts.columns:
        for value in texts[column].dropna():
            assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in str(value)), (
                column,
                value,
            )


# -- batch scoring: predict to .csv and .xlsx, and the CSV answer of the API -------------------


def _hostile_batch() -> pd.DataFrame:
    """Scorable rows carrying the attacks in their record fields and in an extra column, rows
    whose structure is an attack (errors that echo it) and a structure with a NUL."""
    frame = lab_frame().head(12).copy().astype(str)
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("_")])
    attacks = [*ATTACKS, HYPERLINK]
    frame["Referencia"] = attacks + ["REF"] * (len(frame) - len(attacks))
    frame["CONSECUTIVO"] = ["@SUM(A1)", *(str(i) for i in range(1, len(frame)))]
    frame["=Nota"] = list(reversed(attacks)) + ["ok"] * (len(frame) - len(attacks))
    frame.loc[6, "Estructura"] = HYPERLINK
    frame.loc[7, "Estructura"] = "@SUM(A1)"
    frame.loc[8, "Estructura"] = "BO\x00PP"
    frame.loc[9, "Grados_C"] = "-5"  # out of range: an error row that echoes a number
    return frame


def _check_scored(rows: list[dict[str, Any]]) -> None:
    """The cells of a scored table as read back: the attacks are there, behind a quote."""
    assert len(rows) == 12
    assert rows[0]["Referencia"] == "'" + HYPERLINK
    assert rows[0]["CONSECUTIVO"] == "'@SUM(A1)"
    assert rows[2]["Referencia"] == "'+1+1"
    assert rows[4]["Referencia"] == "'\t=1"
    assert rows[0]["'=Nota"] == "'" + HYPERLINK
    assert rows[6]["Estructura"] == "'" + HYPERLINK
    assert rows[9]["Grados_C"] == "-5"
    assert "Grados_C" in rows[9]["error"]
    assert rows[8]["error"].startswith(
        "Estructura 'BO\\x00PP' contains a control character (U+0000) at position 3"
    )
    assert all(not rows[i]["error"] for i in (0, 1, 2, 3, 4, 5))  # the attacks were scored


@pytest.fixture
def served(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Champion:
    champion = Champion()
    patch_registry(monkeypatch, champion)
    publish_version(settings, "0.1", tiny_model())
    champion.label = "0.1"
    return champion


def _predict(source: Path, out: Path) -> None:
    result = CliRunner().invoke(
        app, ["predict", "--version", "0.1", "--input", str(source), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output


def test_predict_csv_output_has_no_live_formula(
    settings: Settings, served: Champion, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    _hostile_batch().to_csv(source, index=False)
    out = tmp_path / "scored.csv"
    _predict(source, out)
    text = out.read_text(encoding="utf-8")
    assert _formulas(_csv_cells(text)) == []
    _check_scored(list(csv.DictReader(io.StringIO(text, newline=""))))


def test_predict_xlsx_output_has_text_cells_only_and_survives_a_nul(
    settings: Settings, served: Champion, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    _hostile_batch().to_csv(source, index=False)
    out = tmp_path / "scored.xlsx"
    _predict(source, out)
    sheet = openpyxl.load_workbook(out).worksheets[0]
    cells = [cell for row in sheet.iter_rows() for cell in row if cell.value is not None]
    text_cells = [cell for cell in cells if isinstance(cell.value, str)]
    assert {cell.data_type for cell in text_cells} == {"s"}  # never "f", a formula
    assert _formulas(cell.value for cell in text_cells) == []
    assert any(cell.data_type == "n" for cell in cells)  # guide values stay numbers
    values = list(sheet.values)
    header = [str(h) for h in values[0]]
    rows = [
        {h: "" if v is None else v for h, v in zip(header, row, strict=True)} for row in values[1:]
    ]
    # an .xlsx cannot hold a NUL: the echoed structure shows U+FFFD in its place
    assert rows[8]["Estructura"] == "BO\ufffdPP"
    _check_scored(rows)


def test_batch_csv_answer_has_no_live_formula(settings: Settings, served: Champion) -> None:
    payload = _hostile_batch().to_csv(index=False).encode("utf-8")
    with TestClient(create_inference_app(settings)) as client:
        response = client.post(
            "/inference/batch?format=csv",
            files={"file": ("lab.csv", payload, "text/csv")},
            data={"version": "0.1"},
        )
    assert response.status_code == 200, response.text
    assert _formulas(_csv_cells(response.text)) == []
    _check_scored(list(csv.DictReader(io.StringIO(response.text, newline=""))))


# -- the single-sample path refuses control characters the same way ----------------------------


@pytest.mark.parametrize(
    ("field", "value", "code_point", "position"),
    [
        ("Estructura", "BO\x00PP", "U+0000", 3),
        ("Estructura", "BOPP\nMET", "U+000A", 5),
        ("Referencia", "REF\x7f", "U+007F", 4),
        ("CONSECUTIVO", "A\x85B", "U+0085", 2),
    ],
)
def test_single_inference_refuses_control_characters_naming_the_field(
    settings: Settings, served: Champion, field: str, value: str, code_point: str, position: int
) -> None:
    body = {"version": "0.1", "data_test": {**SEED_SAMPLE, field: value}}
    with TestClient(create_inference_app(settings)) as client:
        response = client.post("/inference", json=body)
    assert response.status_code == 422, response.text
    errors = {e["loc"][-1]: e["msg"] for e in response.json()["detail"]}
    assert errors[field] == f"contains a control character ({code_point}) at position {position}"
