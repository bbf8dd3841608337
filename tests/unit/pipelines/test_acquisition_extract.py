from __future__ import annotations

from pathlib import Path

import pytest

from permeability.errors import InvalidInputError
from permeability.pipelines.acquisition_extract import Extracted, extract
from permeability.pipelines.base import job_context
from permeability.settings import Settings
from tests.unit.pipelines.test_acquisition import HEADER, line, write_csv


def extracted(settings: Settings, path: Path) -> Extracted:
    with job_context("acquire", settings) as ctx:
        return extract(ctx, str(path), None, None)


def test_clean_and_rejected_rows_come_out_in_source_order(
    settings: Settings, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "lab.csv",
        line(1, Calibre2="", CalibreProm=""),
        line(2, Porc_Humedad="120"),  # impossible: rejected
        line(3),
        line(3),  # a repeat stays: deduplication is the load's job
    )
    result = extracted(settings, path)
    assert result.rows_read == 4
    assert result.clean["source_row"].tolist() == [1, 3, 4]
    assert result.calipers_imputed == 1
    assert result.rejected["source_row"].tolist() == [2]
    assert result.rejected.loc[0, "Porc_Humedad"] == "120"
    assert "Porc_Humedad '120' is outside (0, 100]" in str(result.rejected.loc[0, "reason"])
    assert result.record_key[0] == "CONSECUTIVO"
    assert result.ignored_columns == []


def test_rejected_rows_keep_the_source_column_names_and_ignored_columns_are_listed(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "export.csv"
    header = ",".join(h if h != "Porc_Humedad" else "PORC HUMEDAD" for h in HEADER)
    rows = [line(1), line(2, Porc_Humedad="120")]
    path.write_text(
        "\n".join([header + ",Notes", *(",".join(r) + ",x" for r in rows)]) + "\n",
        encoding="utf-8",
    )
    result = extracted(settings, path)
    assert result.ignored_columns == ["Notes"]
    assert list(result.rejected.columns[:2]) == ["source_row", "reason"]
    assert result.rejected.loc[0, "PORC HUMEDAD"] == "120"


def test_a_ragged_line_is_rejected_with_its_field_count(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    unquoted = ";".join(line(2, Estructura="BOPP; DROP TABLE x"))
    path.write_text(
        "\n".join([";".join(HEADER), ";".join(line(1)), unquoted, ";".join(line(3))]) + "\n",
        encoding="utf-8",
    )
    result = extracted(settings, path)
    assert result.rows_read == 3
    assert len(result.clean) == 2
    assert result.rejected["source_row"].tolist() == [2]
    assert "row has 14 fields but the header has 13" in str(result.rejected.loc[0, "reason"])


def test_an_empty_file_fails_clearly(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "nothing.csv"
    path.write_bytes(b"")
    with pytest.raises(InvalidInputError, match="is empty"):
        extracted(settings, path)


def test_a_configured_record_key_the_source_lacks_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("acquisition:\n  record_key: [CONSECUTIVO, Referencia]\n", encoding="utf-8")
    settings = Settings(home=tmp_path / "home", config_file=config)
    path = write_csv(tmp_path / "lab.csv", line(1), line(2))
    with pytest.raises(
        InvalidInputError, match=r"acquisition\.record_key names Referencia, which source"
    ):
        extracted(settings, path)
