"""Opening a source by what it is: missing files, legacy workbooks and SQL options on a file are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from permeability.errors import InvalidInputError, NotFoundError
from permeability.io.sources.opening import open_source
from tests.unit.io.sources.source_support import HEADER, write_text


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
