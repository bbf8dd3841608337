"""Lab exports: each format reads back as written, truth never leaks, writes are atomic."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.io.exports import SQLITE_TABLE, export_format, write_lab_export
from permeability.record.schema import CALIBRES, ESTRUCTURA, GRADOS_C, MUESTRA, RECORD_COLUMNS
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec


@pytest.fixture(scope="module")
def messy() -> pd.DataFrame:
    return generate_lab_data(1_500, 3, with_truth=True)


@pytest.fixture(scope="module")
def tidy() -> pd.DataFrame:
    return generate_lab_data(300, 3, mess=MessSpec.none())


def _as_written(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as the text a file holds; missing cells stay missing."""

    def text(value: object) -> object:
        if isinstance(value, float) and math.isnan(value):
            return np.nan
        return value if isinstance(value, str) else repr(value)

    lab = frame[list(RECORD_COLUMNS)]
    return lab.astype(object).map(text).astype(object)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_csv_round_trips_a_tidy_export(tmp_path: Path, tidy: pd.DataFrame) -> None:
    path = write_lab_export(tidy, tmp_path / "lab.csv")
    pd.testing.assert_frame_equal(pd.read_csv(path), tidy)


def test_csv_keeps_every_messy_cell_and_drops_truth(tmp_path: Path, messy: pd.DataFrame) -> None:
    path = write_lab_export(messy, tmp_path / "lab.csv")
    back = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    assert list(back.columns) == list(RECORD_COLUMNS)
    expected = _as_written(messy)
    expected[MUESTRA] = messy[MUESTRA].astype(str)
    pd.testing.assert_frame_equal(back.astype(object), expected, check_dtype=False)
    assert '"' in path.read_text(encoding="utf-8")  # decimal-comma cells are quoted


def test_xlsx_round_trips_numbers_and_text(tmp_path: Path, messy: pd.DataFrame) -> None:
    sample = messy.head(400)
    path = write_lab_export(sample, tmp_path / "lab.xlsx")
    back = pd.read_excel(path, sheet_name=SQLITE_TABLE, dtype=object)
    assert list(back.columns) == list(RECORD_COLUMNS)
    for column in RECORD_COLUMNS:
        for written, read in zip(sample[column], back[column], strict=True):
            if isinstance(written, str):
                assert read == written, column
            elif isinstance(written, float) and math.isnan(written):
                assert isinstance(read, float), column
                assert math.isnan(read), column
            else:
                assert float(read) == pytest.approx(float(written)), column


def test_sqlite_stores_mixed_columns_as_text(tmp_path: Path, messy: pd.DataFrame) -> None:
    path = write_lab_export(messy, tmp_path / "lab.db")
    with sqlite3.connect(path) as connection:
        columns = {
            row[1]: row[2] for row in connection.execute(f"PRAGMA table_info({SQLITE_TABLE})")
        }
        back = pd.read_sql_query(f"SELECT * FROM {SQLITE_TABLE}", connection)  # noqa: S608
    assert list(columns) == list(RECORD_COLUMNS)
    assert columns[MUESTRA] == "INTEGER"
    assert columns[GRADOS_C] == "TEXT"
    expected = _as_written(messy)
    expected[MUESTRA] = messy[MUESTRA]
    assert back[MUESTRA].tolist() == messy[MUESTRA].tolist()
    for column in CALIBRES:
        assert back[column].isna().tolist() == messy[column].isna().tolist()
        present = messy[column].notna()
        assert back.loc[present, column].tolist() == expected.loc[present, column].tolist()
    assert back[ESTRUCTURA].tolist() == messy[ESTRUCTURA].tolist()


def test_sqlite_tidy_export_keeps_numeric_types(tmp_path: Path, tidy: pd.DataFrame) -> None:
    path = write_lab_export(tidy, tmp_path / "lab.sqlite3")
    with sqlite3.connect(path) as connection:
        back = pd.read_sql_query(f"SELECT * FROM {SQLITE_TABLE}", connection)  # noqa: S608
    pd.testing.assert_frame_equal(back, tidy, check_dtype=False)
    assert back[GRADOS_C].dtype == np.float64


def test_sqlite_replaces_the_table_and_keeps_other_tables(
    tmp_path: Path, tidy: pd.DataFrame
) -> None:
    path = tmp_path / "lab.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
        connection.execute("INSERT INTO notes VALUES ('keep me')")
    connection.close()
    write_lab_export(tidy, path)
    write_lab_export(tidy.head(10), path)
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT COUNT(*) FROM muestras").fetchone()[0]
        notes = connection.execute("SELECT text FROM notes").fetchall()
    connection.close()
    assert rows == 10
    assert notes == [("keep me",)]


def test_unknown_extension_is_refused_naming_the_allowed_ones(
    tmp_path: Path, tidy: pd.DataFrame
) -> None:
    with pytest.raises(InvalidInputError, match=r"\.txt.*\.csv, \.xlsx, \.db, \.sqlite"):
        write_lab_export(tidy, tmp_path / "lab.txt")
    assert list(tmp_path.iterdir()) == []


def test_extension_decides_the_format_case_insensitively() -> None:
    assert export_format(Path("a.CSV")) == "csv"
    assert export_format(Path("a.xlsx")) == "xlsx"
    assert export_format(Path("a.db")) == "sqlite"


def test_parent_folders_are_created(tmp_path: Path, tidy: pd.DataFrame) -> None:
    path = write_lab_export(tidy, tmp_path / "new" / "deeper" / "lab.csv")
    assert path.is_file()
    assert path.stat().st_mode & 0o644 == 0o644


def test_failed_write_leaves_the_previous_file_intact(tmp_path: Path, tidy: pd.DataFrame) -> None:
    path = write_lab_export(tidy.head(5), tmp_path / "lab.db")
    before = path.read_bytes()
    unwritable = tidy.head(5).astype({ESTRUCTURA: object})
    unwritable[ESTRUCTURA] = pd.Series([{"not": "storable"}] * 5, dtype=object)
    with pytest.raises(pd.errors.DatabaseError):
        write_lab_export(unwritable, path)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_xlsx_refuses_more_rows_than_a_sheet_holds(tmp_path: Path) -> None:
    huge = pd.DataFrame({MUESTRA: np.arange(1_048_576)})
    with pytest.raises(InvalidInputError, match=r"\.csv or \.db"):
        write_lab_export(huge, tmp_path / "big.xlsx")
    assert list(tmp_path.iterdir()) == []
