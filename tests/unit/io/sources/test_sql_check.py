"""The --query text check: executable comments, INTO OUTFILE/DUMPFILE, and splitting the text
the way each server does (a checker that splits differently can be walked around)."""

from __future__ import annotations

import pytest

from permeability.errors import InvalidInputError
from permeability.io.sources.sql_check import LEXINGS, check_read_only_query, split_code

DIALECTS = ["mysql", "mariadb", "postgresql", "sqlite", None]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM t /*! INTO OUTFILE '/tmp/x' */",
        "SELECT * FROM t /*!50000 INTO OUTFILE '/tmp/x' */",
        "SELECT * FROM t /*M! INTO DUMPFILE '/tmp/x' */",
        "SELECT * FROM t /*M!100000 INTO OUTFILE '/tmp/x' */",
        "SELECT * FROM t /*!*/",
        "/*!SELECT*/ 1",
    ],
)
def test_executable_comments_are_refused_naming_the_query(dialect: str | None, query: str) -> None:
    with pytest.raises(InvalidInputError, match=r"^--query holds a MariaDB/MySQL executable"):
        check_read_only_query(query, dialect)


@pytest.mark.parametrize("dialect", ["mysql", None])
def test_outfile_inside_an_executable_comment_is_named_too(dialect: str | None) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_read_only_query("SELECT * FROM t /*! INTO OUTFILE '/tmp/x' */", dialect)
    message = str(caught.value)
    assert "executable comment" in message
    assert "INTO, OUTFILE" in message
    assert "write a file" in message
    assert "\n" not in message


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM t INTO OUTFILE '/tmp/x'",
        "SELECT a INTO DUMPFILE '/tmp/x' FROM t",
        "SELECT * FROM t UNION SELECT * FROM u INTO OUTFILE '/tmp/x'",
        "SELECT * FROM t INTO/**/OUTFILE '/tmp/x'",
        "SELECT * FROM t\nINTO\tOUTFILE '/tmp/x' FIELDS TERMINATED BY ','",
        "select * from t into outfile '/tmp/x'",
    ],
)
def test_into_outfile_or_dumpfile_is_refused_anywhere(dialect: str | None, query: str) -> None:
    with pytest.raises(InvalidInputError, match=r"--query must only read; it uses .*FILE"):
        check_read_only_query(query, dialect)


@pytest.mark.parametrize(
    ("dialect", "query"),
    [
        # MariaDB: '--' is a comment only before a space; '1--1' is 1 - -1 and the rest runs.
        ("mysql", "SELECT * FROM t WHERE 1--1 INTO OUTFILE '/tmp/x'"),
        # MariaDB with NO_BACKSLASH_ESCAPES: 'a\' ends at the second quote.
        ("mysql", "SELECT 'a\\' INTO OUTFILE '/tmp/x' -- '"),
        # MariaDB by default: "..." is a string with backslash escapes, so "a\"'" is one string.
        ("mariadb", "SELECT \"a\\\"'\" INTO OUTFILE '/tmp/x' -- '"),
        # PostgreSQL: '#' is an operator, not a comment.
        ("postgresql", "SELECT 1 # 2, lo_export(1, '/tmp/x')"),
        # PostgreSQL ends a '--' comment at a carriage return.
        ("postgresql", "SELECT 1 -- note\r, lo_export(1, '/tmp/x')"),
        # PostgreSQL nests block comments.
        ("postgresql", "SELECT /* /* */ ' */ , lo_export(1, '/tmp/x') -- ' */"),
        # PostgreSQL with standard_conforming_strings: 'a\' ends at the second quote.
        ("postgresql", "SELECT 'a\\' , lo_export(1, '/tmp/x') -- '"),
        # PostgreSQL dollar quotes hide a quote from a checker that does not know them.
        ("postgresql", "SELECT $$'$$, lo_export(1, '/tmp/x') --'"),
        ("postgresql", "SELECT $q$'$q$, lo_export(1, '/tmp/x') --'"),
    ],
)
def test_text_a_server_splits_differently_cannot_hide_code(dialect: str, query: str) -> None:
    with pytest.raises(InvalidInputError, match="--query"):
        check_read_only_query(query, dialect)
    with pytest.raises(InvalidInputError, match="--query"):
        check_read_only_query(query)  # unknown dialect: every split must pass


@pytest.mark.parametrize(
    ("dialect", "query"),
    [
        ("mysql", "SELECT * FROM t WHERE note = 'into outfile' -- into outfile"),
        ("mysql", "SELECT * FROM t WHERE a = 'it''s' AND b = 'x' # delete\n"),
        ("mysql", 'SELECT `update`, "a;b" FROM t WHERE c = 1 - -1'),
        ("mariadb", "SELECT * FROM t /* INTO OUTFILE '/tmp/x' */ WHERE a > 0"),
        ("postgresql", "SELECT 5 # 3 AS xor, E'it\\'s' AS e FROM t -- delete"),
        ("postgresql", "SELECT \"update\", 'a;b' FROM t /* a /* nested */ comment */"),
        ("sqlite", "SELECT [update], `drop` FROM t WHERE a = 'x;y'"),
        (None, "WITH a AS (SELECT 1 AS x) SELECT x FROM a"),
        (None, "SELECT 'O''Brien' AS name"),
    ],
)
def test_ordinary_read_only_queries_pass(dialect: str | None, query: str) -> None:
    assert check_read_only_query(query + " ;", dialect) == query.strip()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT 'abc FROM t", "unterminated string"),
        ('SELECT "abc FROM t', "unterminated"),
        ("SELECT 1 /* never closed", "unterminated /\\* comment"),
        ("SELECT 1 /*! never closed", "unterminated"),
        ("SELECT 1 FROM t\x00; DELETE FROM t", "NUL character"),
    ],
)
def test_what_cannot_be_split_with_certainty_is_refused(query: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        check_read_only_query(query, "mysql")


def test_a_number_run_into_an_e_string_is_refused_on_postgresql() -> None:
    with pytest.raises(InvalidInputError, match="number run straight into a string"):
        check_read_only_query("SELECT 1E'a' FROM t", "postgresql")
    assert check_read_only_query("SELECT namE'a' FROM t", "postgresql")


def test_every_mariadb_split_is_checked() -> None:
    """ANSI_QUOTES x NO_BACKSLASH_ESCAPES: the four ways MariaDB may split a statement."""
    splits = {
        (lexing.backslash_escapes, lexing.double_quoted_strings) for lexing in LEXINGS["mariadb"]
    }
    assert splits == {(True, True), (True, False), (False, True), (False, False)}
    query = "SELECT 'a\\' INTO OUTFILE '/tmp/x' -- '"
    hidden = [
        lexing.name for lexing in LEXINGS["mariadb"] if "INTO" in split_code(query, lexing).code
    ]
    assert hidden  # some splits see the INTO OUTFILE as code...
    assert len(hidden) < len(LEXINGS["mariadb"])  # ...others think it is inside a string


def test_a_backslash_before_a_quote_is_refused_with_advice_on_mariadb() -> None:
    """'it\\'s' is one string or an open one, depending on the server's sql_mode."""
    with pytest.raises(InvalidInputError, match="write a quote inside a string as ''"):
        check_read_only_query("SELECT * FROM t WHERE a = 'it\\'s' AND b = 'x'", "mariadb")


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM muestras",
        "  select Muestra, Grados_C from muestras where Estructura = '; DROP TABLE x' ;",
        "WITH t AS (SELECT * FROM muestras) SELECT * FROM t",
        'SELECT "update" FROM muestras -- delete everything',
    ],
)
def test_read_only_queries_pass(query: str) -> None:
    assert check_read_only_query(query).rstrip().endswith(("muestras", "x'", "t", "everything"))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT 1; DROP TABLE muestras", "single statement"),
        ("DROP TABLE muestras", "start with SELECT"),
        ("DELETE FROM muestras", "start with SELECT"),
        ("WITH d AS (DELETE FROM muestras RETURNING *) SELECT * FROM d", "DELETE"),
        ("SELECT * INTO copia FROM muestras", "INTO"),
        ("SELECT pg_sleep(100)", "PG_SLEEP"),
        ("   ", "empty"),
    ],
)
def test_writing_or_chained_queries_are_refused(query: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        check_read_only_query(query)
