"""``permeability generate-data``: the job writes the export and says what it wrote."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from permeability.cli.main import app
from permeability.errors import InvalidInputError
from permeability.io.exports import write_lab_export
from permeability.pipelines.synthetic import generate_data
from permeability.record.identity import DEFAULT_NON_PRODUCT, is_non_product
from permeability.record.schema import (
    ANIO,
    CONSECUTIVO,
    DIA,
    ESTRUCTURA,
    FECHA,
    MES,
    MUESTRA,
    REAL_EXPORT_COLUMNS,
    RECORD_COLUMNS,
)
from permeability.settings import Settings
from permeability.synthetic.catalogue import base_mix, real_catalogue
from permeability.synthetic.generator import generate_lab_data


def test_job_writes_the_real_layout_by_default_and_reports_the_structure_mix(
    settings: Settings, tmp_path: Path
) -> None:
    result = generate_data(settings, rows=400, seed=4, out=tmp_path / "lab.csv")
    frame = pd.read_csv(result.path, dtype=str)
    assert len(frame) == result.rows == 400
    assert (result.format, result.layout, result.seed) == ("csv", "real", 4)
    assert list(frame.columns) == list(REAL_EXPORT_COLUMNS)
    assert frame[CONSECUTIVO].tolist() == [str(i) for i in range(1, 401)]
    assert sum(result.structures.values()) == 400
    known = set(real_catalogue())
    assert all(n in known or is_non_product(n, DEFAULT_NON_PRODUCT) for n in result.structures)
    assert (frame[ESTRUCTURA] != frame[ESTRUCTURA].str.strip().str.upper()).any()  # messy
    log = (settings.paths.logs / "generate.log").read_text(encoding="utf-8")
    assert "wrote 400 rows" in log
    assert "real layout" in log


def test_job_writes_the_seed_layout_on_request(settings: Settings, tmp_path: Path) -> None:
    result = generate_data(settings, rows=400, seed=4, out=tmp_path / "lab.csv", layout="seed")
    frame = pd.read_csv(result.path, dtype=str)
    assert result.layout == "seed"
    assert list(frame.columns) == list(RECORD_COLUMNS)
    assert set(result.structures) <= set(base_mix())  # misspellings counted under their name


def test_tidy_job_writes_canonical_numeric_records(settings: Settings, tmp_path: Path) -> None:
    result = generate_data(
        settings, rows=200, seed=4, out=tmp_path / "lab.db", messy=False, layout="seed"
    )
    assert result.format == "sqlite"
    frame = pd.read_sql_table("muestras", f"sqlite:///{result.path}")
    assert set(frame[ESTRUCTURA]) == set(result.structures)
    assert frame["Permeabilidad"].dtype.kind == "f"


def test_tidy_real_export_in_sqlite_keeps_numbers_numeric(
    settings: Settings, tmp_path: Path
) -> None:
    result = generate_data(settings, rows=300, seed=4, out=tmp_path / "lab.db", messy=False)
    frame = pd.read_sql_table("muestras", f"sqlite:///{result.path}")
    assert list(frame.columns) == list(REAL_EXPORT_COLUMNS)
    for column in ("Calibre1", "Calibre_Prom", "Permeabilidad", "Grados_C"):
        assert frame[column].dtype.kind == "f", column
    assert (frame["Permeabilidad"] == 0).any()


def test_a_second_real_file_continues_record_numbers_and_dates(
    settings: Settings, tmp_path: Path
) -> None:
    first = generate_data(settings, rows=100, seed=1, out=tmp_path / "a.csv")
    earlier = pd.read_csv(first.path)
    second = generate_data(
        settings,
        rows=100,
        seed=2,
        out=tmp_path / "b.csv",
        start_id=int(earlier[CONSECUTIVO].max()) + 1,
        start_date=date(2026, 1, 2),
    )
    later = pd.read_csv(second.path)
    assert later[CONSECUTIVO].iloc[0] == 101
    assert (later[ANIO].iloc[0], later[MES].iloc[0], later[DIA].iloc[0]) == (2026, 1, 2)
    assert later[ANIO].min() > earlier[ANIO].max() or later[MES].min() > earlier[MES].max()


def test_a_second_file_continues_ids_and_dates(settings: Settings, tmp_path: Path) -> None:
    first = generate_data(
        settings, rows=100, seed=1, out=tmp_path / "a.csv", messy=False, layout="seed"
    )
    earlier = pd.read_csv(first.path)
    next_id = int(earlier[MUESTRA].max()) + 1
    second = generate_data(
        settings,
        rows=100,
        seed=2,
        out=tmp_path / "b.csv",
        messy=False,
        start_id=next_id,
        start_date=date(2026, 1, 2),
        layout="seed",
    )
    later = pd.read_csv(second.path)
    assert later[MUESTRA].iloc[0] == next_id
    assert later[FECHA].iloc[0] == "2026-01-02"
    assert later[FECHA].min() > earlier[FECHA].max()


def test_bad_extension_fails_before_generating(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"\.txt"):
        generate_data(settings, rows=10, seed=1, out=tmp_path / "lab.txt")
    assert not (tmp_path / "lab.txt").exists()
    assert not (settings.paths.logs / "generate.log").exists()


def test_cli_prints_one_json_object_on_the_last_line(tmp_path: Path) -> None:
    out = tmp_path / "lab.xlsx"
    result = CliRunner().invoke(
        app,
        [
            "generate-data",
            "--out",
            str(out),
            "--rows",
            "150",
            "--seed",
            "3",
            "--start-id",
            "900",
            "--start-date",
            "2025-06-01",
            "--layout",
            "seed",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["rows"] == 150
    assert payload["format"] == "xlsx"
    assert payload["layout"] == "seed"
    assert Path(payload["path"]) == out.absolute()
    frame = pd.read_excel(out)
    assert frame[MUESTRA].iloc[0] == 900
    assert frame[FECHA].iloc[0] == "2025-06-01"


def test_cli_writes_the_real_layout_by_default(tmp_path: Path) -> None:
    out = tmp_path / "lab.xlsx"
    result = CliRunner().invoke(
        app, ["generate-data", "--out", str(out), "--rows", "120", "--start-id", "7", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["layout"] == "real"
    frame = pd.read_excel(out)
    assert list(frame.columns) == list(REAL_EXPORT_COLUMNS)
    assert frame[CONSECUTIVO].tolist() == list(range(7, 127))
    assert set(frame[MUESTRA]) <= {1, 2, 3, 4}


def test_cli_seed_layout_writes_today_s_export_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "lab.csv"
    args = ["generate-data", "--out", str(out), "--rows", "500", "--seed", "9"]
    result = CliRunner().invoke(app, [*args, "--layout", "seed"])
    assert result.exit_code == 0, result.output
    expected = write_lab_export(generate_lab_data(500, 9), tmp_path / "expected.csv")
    assert out.read_bytes() == expected.read_bytes()


def test_cli_refuses_an_unknown_layout(tmp_path: Path) -> None:
    out = tmp_path / "lab.csv"
    result = CliRunner().invoke(app, ["generate-data", "--out", str(out), "--layout", "wide"])
    assert result.exit_code != 0
    assert not out.exists()


def test_job_refuses_an_unknown_layout_before_generating(
    settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match="layout"):
        generate_data(settings, rows=10, seed=1, out=tmp_path / "lab.csv", layout="wide")
    assert not (tmp_path / "lab.csv").exists()


def test_cli_bad_extension_exits_non_zero_with_one_line_reason(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["generate-data", "--out", str(tmp_path / "lab.parquet")])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error:")
    assert ".parquet" in lines[0]
    assert ".csv" in lines[0]
