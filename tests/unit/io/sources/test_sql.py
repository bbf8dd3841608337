"""A SQLite table or query read as text; hostile names, bad options and unknown dialects refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from permeability.errors import InvalidInputError, NotFoundError
from permeability.io.sources.opening import open_source
from tests.unit.io.sources.source_support import SEED_COLUMNS, read_all


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    path = tmp_path / "lims.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE muestras (Muestra INTEGER, Grados_C TEXT, Porc_Humedad REAL,"
            " Estructura TEXT, Calibre1 REAL, Calibre2 REAL, Calibre3 REAL, Calibre4 REAL,"
            " Calibre5 REAL, CalibreProm REAL, Permeabilidad TEXT, Fecha TEXT)"
        )
        connection.executemany(
            "INSERT INTO muestras VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (1, "25,6", 90.0, "BOPP", 20, 20, 20, 20, 20, 20.0, "5,1", "2024-01-01"),
                (2, "38", 90.5, "'; DROP TABLE muestras; --", 20, 20, 20, 20, 20, 20, "5", None),
            ],
        )
        connection.execute("CREATE TABLE vacia AS SELECT * FROM muestras WHERE 0")
    return f"sqlite:///{path}"


def test_sqlite_table_is_read_as_text(sqlite_url: str) -> None:
    with open_source(sqlite_url, table="muestras") as source:
        records, _ = read_all(source)
    assert records["Grados_C"].tolist() == ["25,6", "38"]
    assert records["Porc_Humedad"].tolist() == ["90.0", "90.5"]
    assert records["Estructura"].tolist()[1] == "'; DROP TABLE muestras; --"
    assert records["source_row"].tolist() == [1, 2]


def test_sqlite_query_and_schema_qualified_table(sqlite_url: str) -> None:
    with open_source(sqlite_url, query="SELECT * FROM muestras WHERE Muestra = 2") as source:
        records, _ = read_all(source)
    assert records["Muestra"].tolist() == ["2"]
    with open_source(sqlite_url, table="main.muestras") as source:
        assert len(read_all(source)[0]) == 2


def test_hostile_table_name_is_not_found_and_nothing_runs(sqlite_url: str) -> None:
    with (
        pytest.raises(NotFoundError) as caught,
        open_source(sqlite_url, table="muestras; DROP TABLE muestras"),
    ):
        pass
    assert "tables found: muestras, vacia" in str(caught.value)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as connection:
        assert connection.execute("SELECT count(*) FROM muestras").fetchone() == (2,)


def test_a_zero_row_table_yields_one_empty_chunk(sqlite_url: str) -> None:
    with open_source(sqlite_url, table="vacia") as source:
        chunks = list(source.chunks(SEED_COLUMNS))
    assert len(chunks) == 1
    assert chunks[0].records.empty


@pytest.mark.parametrize(
    ("table", "query"),
    [(None, None), ("muestras", "SELECT * FROM muestras")],
)
def test_sql_needs_exactly_one_of_table_and_query(
    sqlite_url: str, table: str | None, query: str | None
) -> None:
    with (
        pytest.raises(InvalidInputError, match="exactly one"),
        open_source(sqlite_url, table=table, query=query),
    ):
        pass


def test_a_failing_query_is_reported_and_nothing_is_written(sqlite_url: str) -> None:
    with (
        pytest.raises(InvalidInputError, match="no such table"),
        open_source(sqlite_url, query="SELECT * FROM nada"),
    ):
        pass


def test_unknown_dialect_is_reported_with_the_password_masked() -> None:
    with (
        pytest.raises(InvalidInputError) as caught,
        open_source("nosuchdb://user:hunter2@localhost/db", table="t"),
    ):
        pass
    assert "hunter2" not in str(caught.value)
    assert "***" in str(caught.value)
