"""``permeability generate-data``: the job writes the export and says what it wrote."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from permeability.cli import app
from permeability.domain.schema import ESTRUCTURA, FECHA, MUESTRA, RECORD_COLUMNS
from permeability.domain.synthetic import base_mix
from permeability.errors import InvalidInputError
from permeability.jobs.synthetic import generate_data
from permeability.settings import Settings


def test_job_writes_the_export_and_reports_the_structure_mix(
    settings: Settings, tmp_path: Path
) -> None:
    result = generate_data(settings, rows=400, seed=4, out=tmp_path / "lab.csv")
    frame = pd.read_csv(result.path, dtype=str)
    assert len(frame) == result.rows == 400
    assert result.format == "csv"
    assert result.seed == 4
    assert list(frame.columns) == list(RECORD_COLUMNS)
    assert sum(result.structures.values()) == 400
    assert set(result.structures) <= set(base_mix())  # misspellings counted under their name
    assert (frame[ESTRUCTURA] != frame[ESTRUCTURA].str.strip().str.upper()).any()  # messy
    log = (settings.paths.logs / "generate.log").read_text(encoding="utf-8")
    assert "wrote 400 rows" in log


def test_tidy_job_writes_canonical_numeric_records(settings: Settings, tmp_path: Path) -> None:
    result = generate_data(settings, rows=200, seed=4, out=tmp_path / "lab.db", messy=False)
    assert result.format == "sqlite"
    frame = pd.read_sql_table("muestras", f"sqlite:///{result.path}")
    assert set(frame[ESTRUCTURA]) == set(result.structures)
    assert frame["Permeabilidad"].dtype.kind == "f"


def test_a_second_file_continues_ids_and_dates(settings: Settings, tmp_path: Path) -> None:
    first = generate_data(settings, rows=100, seed=1, out=tmp_path / "a.csv", messy=False)
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
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["rows"] == 150
    assert payload["format"] == "xlsx"
    assert Path(payload["path"]) == out.absolute()
    frame = pd.read_excel(out)
    assert frame[MUESTRA].iloc[0] == 900
    assert frame[FECHA].iloc[0] == "2025-06-01"


def test_cli_bad_extension_exits_non_zero_with_one_line_reason(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["generate-data", "--out", str(tmp_path / "lab.parquet")])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error:")
    assert ".parquet" in lines[0]
    assert ".csv" in lines[0]
