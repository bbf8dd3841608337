from __future__ import annotations

import codecs
import io
import random
import sqlite3
import zipfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import Workbook

from permeability.errors import InvalidInputError, NotFoundError
from permeability.io.sources.base import (
    RawSource,
    cell_text,
    is_sql_url,
    mask_source,
    open_source,
    sniff_delimiter,
    sniff_encoding,
    source_secrets,
)
from permeability.io.sources.sql_check import check_read_only_query
from permeability.record.schema import CALIBRES

HEADER = [
    "Muestra",
    "Grados_C",
    "Porc_Humedad",
    "Estructura",
    *CALIBRES,
    "CalibreProm",
    "Permeabilidad",
    "Fecha",
]
SEED_COLUMNS = {h: h for h in HEADER}


def read_all(source: RawSource) -> tuple[pd.DataFrame, pd.DataFrame]:
    chunks = list(source.chunks(SEED_COLUMNS))
    records = pd.concat([c.records for c in chunks], ignore_index=True)
    malformed = pd.concat([c.malformed for c in chunks], ignore_index=True)
    return records, malformed


def write_text(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def row(muestra: int, sep: str = ",", **values: str) -> str:
    cells = {
        "Muestra": str(muestra),
        "Grados_C": "38",
        "Porc_Humedad": "90",
        "Estructura": "BOPP",
        **dict.fromkeys(CALIBRES, "20"),
        "CalibreProm": "20",
        "Permeabilidad": "5",
        "Fecha": "2024-01-01",
    }
    cells.update(values)
    return sep.join(cells[h] for h in HEADER)


# --------------------------------------------------------------------------- secrets


def test_sql_urls_are_told_from_paths() -> None:
    assert is_sql_url("postgresql+psycopg://u@h/db")
    assert is_sql_url("sqlite:///x.db")
    assert not is_sql_url("file:///tmp/x.csv")
    assert not is_sql_url("C:\\data\\lab.csv")
    assert not is_sql_url("lab.csv")


def test_passwords_are_masked_wherever_they_sit() -> None:
    url = "postgresql://lab:s3cr%21t@db.example:5432/lims?sslpassword=other"
    masked = mask_source(url)
    assert "s3cr" not in masked
    assert "other" not in masked
    assert masked.startswith("postgresql://lab:***@db.example")
    assert source_secrets("/tmp/lab.csv") == []
    assert mask_source("/tmp/lab.csv") == "/tmp/lab.csv"


# --------------------------------------------------------------------------- queries


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


# --------------------------------------------------------------------------- CSV


def test_encoding_is_sniffed(tmp_path: Path) -> None:
    plain = write_text(tmp_path / "a.csv", ["Estructura", "Polietileno baja densidad"])
    bom = tmp_path / "b.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + "Estructura\nµm\n".encode())
    latin = write_text(tmp_path / "c.csv", ["Estructura", "16,4 µm"], encoding="latin-1")
    assert sniff_encoding(plain) == "utf-8"
    assert sniff_encoding(bom) == "utf-8-sig"
    assert sniff_encoding(latin) == "latin-1"


def test_a_utf16_mark_on_text_that_is_not_utf16_is_refused_naming_the_file(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "lab.txt"
    broken.write_bytes(
        codecs.BOM_UTF16_LE + "Muestra\tEstructura\n".encode("utf-16-le") + b"\x00\xd8"
    )
    with pytest.raises(InvalidInputError) as refused:
        sniff_encoding(broken)
    assert str(refused.value).startswith(
        f"source {broken} starts with a UTF-16 byte-order mark but is not valid UTF-16 text ("
    )
    assert str(refused.value).endswith("export it again as UTF-8 or UTF-16")


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed_from_the_header(delimiter: str) -> None:
    assert sniff_delimiter(delimiter.join(HEADER)) == delimiter


def test_semicolon_latin1_file_with_decimal_commas(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "lab.csv",
        [";".join(HEADER), row(1, ";", Grados_C="25,6", Calibre1="16,4 µm"), row(2, ";")],
        encoding="latin-1",
    )
    with open_source(str(path)) as source:
        records, malformed = read_all(source)
    assert records["Grados_C"].tolist() == ["25,6", "38"]
    assert records["Calibre1"].tolist() == ["16,4 µm", "20"]
    assert records["source_row"].tolist() == [1, 2]
    assert malformed.empty


def test_a_bom_before_a_latin1_byte_does_not_spoil_the_header(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    body = ",".join(HEADER) + "\n" + row(1, Calibre1="20 µm") + "\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("latin-1"))
    with open_source(str(path)) as source:
        assert source.headers[0] == "Muestra"
        records, _ = read_all(source)
    assert records["Calibre1"].tolist() == ["20 µm"]


@pytest.mark.parametrize(
    ("bom", "codec", "sep"),
    [
        (codecs.BOM_UTF16_LE, "utf-16-le", "\t"),  # Excel's "Unicode text" export
        (codecs.BOM_UTF16_BE, "utf-16-be", "\t"),
        (codecs.BOM_UTF16_LE, "utf-16-le", ","),
        (codecs.BOM_UTF8, "utf-8", "\t"),
        (codecs.BOM_UTF32_LE, "utf-32-le", ";"),
    ],
)
def test_a_file_is_decoded_by_its_byte_order_mark(
    tmp_path: Path, bom: bytes, codec: str, sep: str
) -> None:
    lines = [
        sep.join(HEADER),
        row(1, sep, Estructura="Polietileno ñ", Calibre1="16.4 µm", Grados_C="25.6"),
        row(2, sep),
    ]
    path = tmp_path / "export.txt"
    path.write_bytes(bom + ("\r\n".join(lines) + "\r\n").encode(codec))
    with open_source(str(path)) as source:
        assert source.headers == tuple(HEADER)
        records, malformed = read_all(source)
    assert records["Estructura"].tolist() == ["Polietileno ñ", "BOPP"]
    assert records["Calibre1"].tolist() == ["16.4 µm", "20"]
    assert records["Grados_C"].tolist() == ["25.6", "38"]
    assert records["Fecha"].tolist() == ["2024-01-01", "2024-01-01"]
    assert records["source_row"].tolist() == [1, 2]
    assert malformed.empty


def test_utf16_bom_is_sniffed_and_a_ragged_utf16_line_is_kept_as_malformed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "unicode.txt"
    lines = ["\t".join(HEADER), row(1, "\t"), "2\t38\tµ", row(3, "\t")]
    path.write_bytes(codecs.BOM_UTF16_LE + ("\r\n".join(lines) + "\r\n").encode("utf-16-le"))
    assert sniff_encoding(path) == "utf-16"
    with open_source(str(path)) as source:
        records, malformed = read_all(source)
    assert records["Muestra"].tolist() == ["1", "3"]
    assert malformed["source_row"].tolist() == [2]
    assert malformed["Porc_Humedad"].tolist() == ["µ"]


def test_a_file_with_a_utf16_mark_that_is_not_utf16_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + "\t".join(HEADER).encode("utf-16-le") + b"\x00")
    with pytest.raises(InvalidInputError) as caught, open_source(str(path)):
        pass
    assert str(caught.value).startswith(f"source {path} starts with a UTF-16 byte-order mark")
    assert "not valid UTF-16 text" in str(caught.value)


def test_everything_is_read_as_text(tmp_path: Path) -> None:
    path = write_text(tmp_path / "lab.csv", [",".join(HEADER), row(1, Muestra="007")])
    with open_source(str(path)) as source:
        records, _ = read_all(source)
    assert records.loc[0, "Muestra"] == "007"
    assert str(records["Grados_C"].dtype) == "str"


def test_ragged_lines_become_malformed_records_and_the_rest_is_kept(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "lab.csv",
        [",".join(HEADER), row(1), "2,38,90", "", row(3), row(4) + ",extra"],
    )
    with open_source(str(path), chunk_rows=2) as source:
        records, malformed = read_all(source)
    assert records["Muestra"].tolist() == ["1", "3"]
    assert records["source_row"].tolist() == [1, 3]
    assert malformed["source_row"].tolist() == [2, 4]
    reasons = malformed["reason"].tolist()
    assert "row has 3 fields but the header has 12" in reasons[0]
    assert reasons[1].endswith(",extra'")
    assert malformed["Porc_Humedad"].tolist()[0] == "90"


def test_chunks_keep_counting_source_rows(tmp_path: Path) -> None:
    path = write_text(tmp_path / "lab.csv", [",".join(HEADER), *[row(i) for i in range(1, 8)]])
    with open_source(str(path), chunk_rows=3) as source:
        chunks = list(source.chunks(SEED_COLUMNS))
    assert [len(c.records) for c in chunks] == [3, 3, 1]
    assert chunks[2].records["source_row"].tolist() == [7]


def test_only_mapped_columns_are_read_under_seed_names(tmp_path: Path) -> None:
    path = write_text(tmp_path / "lab.csv", ["id,notes,temp", "1,hello,38"])
    with open_source(str(path)) as source:
        assert source.headers == ("id", "notes", "temp")
        chunk = next(iter(source.chunks({"id": "Muestra", "temp": "Grados_C"})))
    assert list(chunk.records.columns) == ["Muestra", "Grados_C", "source_row"]


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_an_empty_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match="is empty"), open_source(str(path)):
        pass


def test_a_header_only_file_has_no_records(tmp_path: Path) -> None:
    path = write_text(tmp_path / "lab.csv", [",".join(HEADER)])
    with open_source(str(path)) as source:
        records, malformed = read_all(source)
    assert records.empty
    assert malformed.empty
    assert "Muestra" in records.columns


def test_missing_files_and_old_workbooks_are_refused(tmp_path: Path) -> None:
    with (
        pytest.raises(NotFoundError, match="does not exist"),
        open_source(str(tmp_path / "no.csv")),
    ):
        pass
    old = tmp_path / "lab.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(InvalidInputError, match=r"\.xls"), open_source(str(old)):
        pass


def test_table_or_query_with_a_file_is_refused(tmp_path: Path) -> None:
    path = write_text(tmp_path / "lab.csv", [",".join(HEADER)])
    with pytest.raises(InvalidInputError, match="SQL sources"), open_source(str(path), table="t"):
        pass


# --------------------------------------------------------------------------- Excel


def test_cell_values_become_the_text_a_person_would_type() -> None:
    assert cell_text(16.4) == "16.4"
    assert cell_text(0.1 + 0.2) == "0.30000000000000004"
    assert cell_text(7) == "7"
    assert cell_text(Decimal("16.40")) == "16.40"
    assert cell_text(datetime(2024, 1, 2, 0, 0)) == "2024-01-02 00:00:00"
    assert cell_text(date(2024, 1, 2)) == "2024-01-02"
    assert cell_text(None) is None


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


# --------------------------------------------------------------------------- SQL (SQLite)


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
