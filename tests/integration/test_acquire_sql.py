"""Acquisition from real PostgreSQL and MariaDB tables: --table, --query, hostile input, masking."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import (
    Column,
    Date,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    func,
    select,
    update,
)
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from permeability.cli.main import app
from permeability.errors import InvalidInputError, NotFoundError
from permeability.io.feature_store import FeatureStore
from permeability.pipelines.acquisition import acquire
from permeability.settings import Settings

pytestmark = pytest.mark.integration

SECRET = "s3cret-pw-do-not-log"


@dataclass(frozen=True)
class LabTable:
    url: str
    name: str
    schema: str
    table: Table

    def column(self, name: str) -> str:
        """A column name quoted for this database (PostgreSQL folds unquoted names)."""
        engine = create_engine(self.url)
        try:
            return str(engine.dialect.identifier_preparer.quote(name))
        finally:
            engine.dispose()

    def count(self) -> int:
        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                return int(
                    connection.execute(select(func.count()).select_from(self.table)).scalar_one()
                )
        finally:
            engine.dispose()


def _rows() -> list[dict[str, object]]:
    base = {
        "CONSECUTIVO": 0,
        "Muestra": 0,
        "Grados_C": "38",
        "Porc_Humedad": Decimal("90.00"),
        "Estructura": "BOPP",
        **{f"Calibre{i}": 20.0 for i in range(1, 6)},
        "CalibreProm": "20,0",
        "Permeabilidad": "5.1",
        "Fecha": date(2024, 1, 10),
    }

    def row(muestra: int, **changes: object) -> dict[str, object]:
        return {**base, "CONSECUTIVO": muestra, "Muestra": muestra, **changes}

    return [
        row(1, Grados_C="25,6", Estructura="Bopp metalizado", Permeabilidad="0,31"),
        row(2, Estructura="'; DROP TABLE muestras; --"),
        row(3, Porc_Humedad=Decimal("120.00")),  # impossible humidity
        row(4, Estructura="PET", Calibre2=None, CalibreProm=None),  # filled and computed
        row(5, Grados_C="abc"),  # not a number
        row(6, Permeabilidad="2.0", Fecha=date(2024, 1, 1)),
        row(6, Permeabilidad="2.5", Fecha=date(2024, 2, 1)),  # re-measured later: wins
    ]


@pytest.fixture(params=["postgres", "mariadb"])
def lab_table(request: pytest.FixtureRequest) -> Iterator[LabTable]:
    url: str = request.getfixturevalue(f"{request.param}_url")
    schema = "public" if request.param == "postgres" else "test"
    name = f"muestras_{uuid.uuid4().hex[:10]}"
    table = Table(
        name,
        MetaData(),
        Column("CONSECUTIVO", Integer),
        Column("Muestra", Integer),
        Column("Grados_C", String(20)),
        Column("Porc_Humedad", Numeric(6, 2)),
        Column("Estructura", String(80)),
        *[Column(f"Calibre{i}", Float) for i in range(1, 6)],
        Column("CalibreProm", String(20)),
        Column("Permeabilidad", String(20)),
        Column("Fecha", Date),
    )
    engine = create_engine(url)
    table.create(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), _rows())
    try:
        yield LabTable(url, name, schema, table)
    finally:
        table.drop(engine, checkfirst=True)
        engine.dispose()


def with_password(url: str) -> str:
    return make_url(url).set(password=SECRET).render_as_string(hide_password=False)


def store(settings: Settings) -> FeatureStore:
    return FeatureStore(settings.resolved_feature_store_uri)


def test_a_table_is_cleaned_and_loaded(settings: Settings, lab_table: LabTable) -> None:
    report = acquire(settings, lab_table.url, table=lab_table.name)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (7, 4, 2)
    assert report.duplicates.superseded_in_batch == 1
    assert report.calipers_imputed == 1
    frame = store(settings).read().frame.set_index("Muestra")
    assert frame.index.tolist() == [1, 2, 4, 6]
    assert frame.loc[1, "Grados_C"] == 25.6
    assert frame.loc[1, "Estructura"] == "BOPP/MET"
    assert frame.loc[2, "Estructura"] == "';-DROP-TABLE-MUESTRAS;"
    assert frame.loc[4, "CalibreProm"] == pytest.approx(20.0)
    assert frame.loc[6, "Permeabilidad"] == 2.5
    assert lab_table.count() == 7


def test_a_read_only_query_is_loaded(settings: Settings, lab_table: LabTable) -> None:
    muestra = lab_table.column("Muestra")
    query = f"SELECT * FROM {lab_table.name} WHERE {muestra} <= 3"  # noqa: S608 (test's own table)
    report = acquire(settings, lab_table.url, query=query)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (3, 2, 1)


def test_a_schema_qualified_table_name_works(settings: Settings, lab_table: LabTable) -> None:
    report = acquire(settings, lab_table.url, table=f"{lab_table.schema}.{lab_table.name}")
    assert report.rows_loaded == 4


def test_a_hostile_table_name_is_refused_and_the_table_survives(
    settings: Settings, lab_table: LabTable
) -> None:
    hostile = f"{lab_table.name}; DROP TABLE {lab_table.name}"
    with pytest.raises(NotFoundError, match="does not exist"):
        acquire(settings, lab_table.url, table=hostile)
    assert lab_table.count() == 7
    assert store(settings).current_version() is None


@pytest.mark.parametrize(
    "template",
    [
        "DELETE FROM {t}",
        "SELECT * FROM {t}; DROP TABLE {t}",
        "WITH gone AS (DELETE FROM {t} RETURNING *) SELECT * FROM gone",
        "UPDATE {t} SET Permeabilidad = '0'",
    ],
)
def test_queries_that_write_are_refused_and_nothing_changes(
    settings: Settings, lab_table: LabTable, template: str
) -> None:
    with pytest.raises(InvalidInputError, match="--query"):
        acquire(settings, lab_table.url, query=template.format(t=lab_table.name))
    assert lab_table.count() == 7


def test_a_zero_row_result_is_a_successful_empty_run(
    settings: Settings, lab_table: LabTable
) -> None:
    query = f"SELECT * FROM {lab_table.name} WHERE 1 = 0"  # noqa: S608 (test's own table)
    report = acquire(settings, lab_table.url, query=query)
    assert report.rows_read == report.rows_loaded == 0
    assert report.feature_set_version is None


def test_rerun_is_idempotent_and_a_changed_row_is_an_update(
    settings: Settings, lab_table: LabTable
) -> None:
    first = acquire(settings, lab_table.url, table=lab_table.name)
    again = acquire(settings, lab_table.url, table=lab_table.name)
    assert again.rows_loaded == 0
    assert again.duplicates.unchanged == first.rows_loaded
    assert again.feature_set_version == 0
    engine = create_engine(lab_table.url)
    with engine.begin() as connection:
        connection.execute(
            update(lab_table.table)
            .where(lab_table.table.c.Muestra == 2)
            .values(Permeabilidad="9,75")
        )
    engine.dispose()
    changed = acquire(settings, lab_table.url, table=lab_table.name)
    assert (changed.rows_updated, changed.rows_inserted, changed.feature_set_version) == (1, 0, 1)
    now = store(settings).read().frame.set_index("Muestra")
    then = store(settings).read(0).frame.set_index("Muestra")
    assert now.loc[2, "Permeabilidad"] == 9.75
    assert then.loc[2, "Permeabilidad"] == 5.1


def test_passwords_never_reach_reports_or_logs(settings: Settings, lab_table: LabTable) -> None:
    url = with_password(lab_table.url)
    try:
        report = acquire(settings, url, table=lab_table.name)
        shown = report.source
    except InvalidInputError as exc:  # MariaDB's root has no password: the login fails
        shown = str(exc)
        assert "cannot connect" in shown
    assert SECRET not in shown
    assert ":***@" in shown
    log = (settings.paths.logs / "acquire.log").read_text(encoding="utf-8")
    assert SECRET not in log
    assert ":***@" in log


def test_an_unreachable_server_is_reported_with_the_password_masked(
    settings: Settings, lab_table: LabTable
) -> None:
    url = make_url(with_password(lab_table.url)).set(port=1)
    with pytest.raises(InvalidInputError, match="cannot connect") as caught:
        acquire(settings, url.render_as_string(hide_password=False), table=lab_table.name)
    assert SECRET not in str(caught.value)
    assert SECRET not in (settings.paths.logs / "acquire.log").read_text(encoding="utf-8")


def test_cli_reads_a_sql_table_as_json(lab_table: LabTable) -> None:
    result = CliRunner().invoke(
        app, ["acquire", "--source", lab_table.url, "--table", lab_table.name, "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["rows_loaded"] == 4
    assert payload["rows_rejected"] == 2


def test_cli_needs_exactly_one_of_table_and_query(lab_table: LabTable) -> None:
    result = CliRunner().invoke(app, ["acquire", "--source", lab_table.url])
    assert result.exit_code == 1
    assert "exactly one of --table or --query" in result.stderr


# --------------------------------------------------------------------------- read-only guards


@pytest.fixture
def writing_function(lab_table: LabTable) -> Iterator[str]:
    """A stored function that inserts a row into the lab table: ``SELECT f()`` passes the text
    check (nothing in it writes), so only the read-only transaction can stop it."""
    name = f"f_{uuid.uuid4().hex[:10]}"
    muestra = lab_table.column("Muestra")
    engine = create_engine(lab_table.url)
    if engine.dialect.name == "postgresql":
        body = f"INSERT INTO {lab_table.name} ({muestra}) VALUES (99); SELECT 1"  # noqa: S608
        create = f"CREATE FUNCTION {name}() RETURNS integer LANGUAGE sql AS $${body}$$"
    else:
        insert = f"INSERT INTO {lab_table.name} ({muestra}) VALUES (99)"  # noqa: S608
        create = (
            f"CREATE FUNCTION {name}() RETURNS INT MODIFIES SQL DATA NOT DETERMINISTIC "
            f"BEGIN {insert}; RETURN 1; END"
        )
    with engine.begin() as connection:
        connection.exec_driver_sql(create)
    try:
        yield name
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP FUNCTION {name}")
        engine.dispose()


def test_a_query_that_writes_through_a_function_is_stopped_by_the_read_only_transaction(
    settings: Settings, lab_table: LabTable, writing_function: str
) -> None:
    with pytest.raises(InvalidInputError, match=r"(?i)read[- ]only transaction"):
        acquire(settings, lab_table.url, query=f"SELECT {writing_function}() AS written")
    assert lab_table.count() == 7
    assert "Traceback" not in (settings.paths.logs / "acquire.log").read_text(encoding="utf-8")


def test_the_same_function_writes_outside_the_read_only_transaction(
    lab_table: LabTable, writing_function: str
) -> None:
    """Control: the function really writes, so the test above proves the transaction."""
    engine = create_engine(lab_table.url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"SELECT {writing_function}()")
    engine.dispose()
    assert lab_table.count() == 8


@pytest.mark.parametrize(
    "template",
    [
        "SELECT * FROM {t} /*! WHERE 1 = 0 */",
        "SELECT * FROM {t} /*M!100000 WHERE 1 = 0 */",
        "SELECT * FROM {t} WHERE 1 = 1 /*!50000 AND 1 = 0 */",
    ],
)
def test_executable_comments_are_refused_on_every_database(
    settings: Settings, lab_table: LabTable, template: str
) -> None:
    with pytest.raises(InvalidInputError, match=r"^--query holds a MariaDB/MySQL executable"):
        acquire(settings, lab_table.url, query=template.format(t=lab_table.name))
    assert store(settings).current_version() is None


def test_a_statement_without_a_result_set_is_refused_in_one_sentence(
    settings: Settings, mariadb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind the text check: were it ever bypassed, a statement that returns no rows (here
    ``SELECT ... INTO @variable``) gives a clear refusal, not a ResourceClosedError traceback."""
    from permeability.io.sources import sql as sql_source

    monkeypatch.setattr(sql_source, "check_read_only_query", lambda sql, dialect: sql)
    with pytest.raises(InvalidInputError, match="returned no result set"):
        acquire(settings, mariadb_url, query="SELECT 1 INTO @permeability_probe")
    assert "Traceback" not in (settings.paths.logs / "acquire.log").read_text(encoding="utf-8")
