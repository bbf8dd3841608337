"""Delimited text files: encoding and delimiter sniffed, everything read as text, ragged lines kept."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from permeability.errors import InvalidInputError
from permeability.io.sources.csv import sniff_delimiter, sniff_encoding
from permeability.io.sources.opening import open_source
from tests.unit.io.sources.source_support import HEADER, SEED_COLUMNS, read_all, row, write_text


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
