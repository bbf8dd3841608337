"""Acquisition from CSV and .xlsx files through the CLI: messy and malicious input, reruns, updates."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from openpyxl import Workbook
from typer.testing import CliRunner

from permeability.cli.main import app
from permeability.io.exports import write_lab_export
from permeability.io.feature_store import FeatureStore
from permeability.record.schema import CALIBRES
from permeability.settings import get_settings
from permeability.synthetic.generator import generate_lab_data
from tests.builders import SEED_HEADER

HEADER = list(SEED_HEADER)


def record(muestra: object, **values: object) -> list[object]:
    cells: dict[str, object] = {
        "Muestra": muestra,
        "Grados_C": "38",
        "Porc_Humedad": "90",
        "Estructura": "BOPP",
        **dict.fromkeys(CALIBRES, "20,0"),
        "CalibreProm": "20,0",
        "Permeabilidad": "5,0",
        "Fecha": "2024-01-10",
    }
    cells.update(values)
    return [cells[h] for h in HEADER]


def write_csv(
    path: Path, rows: list[list[object]], *, delimiter: str = ",", encoding: str = "utf-8"
) -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def run(*args: str) -> tuple[int, dict[str, Any] | None, str]:
    """Exit code, the JSON object on the last stdout line (if any), and stderr."""
    result = CliRunner().invoke(app, ["acquire", *args, "--json"])
    lines = result.stdout.strip().splitlines()
    payload = json.loads(lines[-1]) if result.exit_code == 0 and lines else None
    return result.exit_code, payload, result.stderr


def store() -> FeatureStore:
    return FeatureStore(get_settings().resolved_feature_store_uri)


MALICIOUS = [
    record(1, Estructura="'; DROP TABLE muestras; --"),  # kept as a (weird) structure name
    record(2, Estructura='=HYPERLINK("http://x")', Grados_C="1e3"),  # out of range
    record(3, Grados_C="treinta y ocho"),  # wrong type
    record("4; DELETE FROM samples", Estructura="PET"),  # id with SQL in it
    record(5, Estructura="Robert'); DROP TABLE Students;--", Permeabilidad="NaN"),
    record(6, Estructura="\x00\x1b[31mred", Calibre1="1" * 400),
    record(7, Estructura="pet/ldpe"),
]


def test_malicious_csv_is_data_not_code(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "evil.csv", MALICIOUS)
    code, report, _ = run("--source", str(path))
    assert code == 0
    assert report is not None
    assert (report["rows_read"], report["rows_loaded"], report["rows_rejected"]) == (7, 2, 5)
    frame = store().read().frame.set_index("Muestra")
    assert frame.loc[1, "Estructura"] == "';-DROP-TABLE-MUESTRAS;"
    assert frame.loc[7, "Estructura"] == "PET/LDPE"
    rejected = pd.read_csv(report["rejected_file"], dtype=str, keep_default_na=False)
    reasons = dict(zip(rejected["source_row"], rejected["reason"], strict=True))
    assert "Grados_C '1e3' is outside [0, 80]" in reasons["2"]
    assert "Grados_C 'treinta y ocho' is not a number" in reasons["3"]
    assert "Muestra '4; DELETE FROM samples' is not a number" in reasons["4"]
    assert "Permeabilidad 'NaN' is missing" in reasons["5"]
    assert "Calibre1 '111111" in reasons["6"]
    assert rejected.loc[rejected["source_row"] == "4", "Muestra"].tolist() == [
        "4; DELETE FROM samples"
    ]


def test_semicolon_latin1_export_from_excel(tmp_path: Path) -> None:
    rows = [
        record(1, Calibre1="20,0 µm", Estructura="Polietileno"),
        record(2, Estructura="Bopp metalizado"),
    ]
    path = write_csv(tmp_path / "export.csv", rows, delimiter=";", encoding="latin-1")
    code, report, _ = run("--source", str(path))
    assert code == 0
    assert report is not None
    assert report["rows_loaded"] == 2
    frame = store().read().frame.set_index("Muestra")
    assert frame.loc[1, "Estructura"] == "PE"  # polietileno: the real export's PE layer
    assert frame.loc[2, "Estructura"] == "BOPP/MET"


def test_xlsx_with_messy_cells(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(HEADER)
    sheet.append([1, 25.6, 90, "BOPP", 20, 20, 20, 20, 20, 20, 5.1, "2024-01-02"])
    sheet.append([2, "38,2", "90 %", " bopp ", "20,1", None, 20.1, 20.1, 20.1, None, "0,45", None])
    sheet.append([3, 38, 150, "PET", 12, 12, 12, 12, 12, 12, 20, "02/01/2024"])
    path = tmp_path / "lab.xlsx"
    workbook.save(path)
    code, report, _ = run("--source", str(path))
    assert code == 0
    assert report is not None
    assert (report["rows_loaded"], report["rows_rejected"], report["calipers_imputed"]) == (2, 1, 1)
    frame = store().read().frame.set_index("Muestra")
    assert frame.loc[2, "Grados_C"] == 38.2
    assert frame.loc[2, "CalibreProm"] == pytest.approx(20.1)
    rejected = pd.read_csv(report["rejected_file"], dtype=str)
    assert "Porc_Humedad '150' is outside (0, 100]" in str(rejected["reason"].iloc[0])


def test_generated_xlsx_and_csv_load_the_same_samples(tmp_path: Path) -> None:
    frame = generate_lab_data(300, seed=11)
    xlsx = write_lab_export(frame, tmp_path / "lab.xlsx")
    code, from_xlsx, _ = run("--source", str(xlsx))
    assert code == 0
    assert from_xlsx is not None
    csv_path = write_lab_export(frame, tmp_path / "lab.csv")
    code, from_csv, _ = run("--source", str(csv_path))
    assert code == 0
    assert from_csv is not None
    assert from_csv["rows_loaded"] == 0  # same samples, already stored
    assert from_csv["duplicates"]["unchanged"] == from_xlsx["rows_loaded"]
    assert from_csv["rows_rejected"] == from_xlsx["rows_rejected"]


def test_rerun_creates_no_version_and_says_why(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "lab.csv", [record(1), record(2), record(2)])
    run("--source", str(path))
    code, report, _ = run("--source", str(path))
    assert code == 0
    assert report is not None
    assert report["new_version"] is False
    assert report["feature_set_version"] == 0
    assert report["duplicates_skipped"] == 3
    assert report["duplicates"] == {
        "exact_repeats": 1,
        "superseded_in_batch": 0,
        "unchanged": 2,
        "stale": 0,
        "superseded_examples": [],
    }
    assert len(store().history()) == 1


def test_a_changed_record_is_updated_and_time_travel_keeps_the_old_one(tmp_path: Path) -> None:
    run("--source", str(write_csv(tmp_path / "a.csv", [record(1), record(2)])))
    changed = write_csv(tmp_path / "b.csv", [record(1, Permeabilidad="4,2"), record(2)])
    code, report, _ = run("--source", str(changed))
    assert code == 0
    assert report is not None
    assert (report["rows_updated"], report["feature_set_version"]) == (1, 1)
    assert store().read(1).frame.set_index("Muestra").loc[1, "Permeabilidad"] == 4.2
    assert store().read(0).frame.set_index("Muestra").loc[1, "Permeabilidad"] == 5.0
    assert store().query("SELECT count(*) AS n FROM samples")["n"].tolist() == [2]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\n \n", "is empty"),
        (b"Muestra,Estructura\n1,BOPP\n", "lacks required column(s) Grados_C, Porc_Humedad"),
    ],
)
def test_unusable_files_fail_with_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    code, _, stderr = run("--source", str(path))
    assert code == 1
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    assert message in last
    assert store().current_version() is None


def test_a_header_only_file_succeeds_with_zero_counts(tmp_path: Path) -> None:
    code, report, _ = run("--source", str(write_csv(tmp_path / "h.csv", [])))
    assert code == 0
    assert report is not None
    assert report["rows_read"] == 0
    assert report["feature_set_version"] is None


def test_missing_file_and_table_with_a_file_are_refused(tmp_path: Path) -> None:
    code, _, stderr = run("--source", str(tmp_path / "nope.csv"))
    assert code == 1
    assert "does not exist" in stderr
    path = write_csv(tmp_path / "lab.csv", [record(1)])
    code, _, stderr = run("--source", str(path), "--table", "muestras")
    assert code == 1
    assert "apply to SQL sources" in stderr
