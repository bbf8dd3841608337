"""Replays of issue 13's hostile sources (items 3, 8 and 10).

* 3: ``--query "SELECT * FROM t /*! INTO OUTFILE '/tmp/x' */"`` passed the read-only check and
  MariaDB wrote the file (a read-only transaction does not stop INTO OUTFILE); the CLI then
  died with a traceback. Now: refused in one line, and the server writes nothing.
* 8: Excel's "Unicode text" (UTF-16 LE with BOM, tab-separated) was read as garbled column
  names; a zip of junk named ``.xlsx`` gave ``ParseError: syntax error`` and a traceback.
* 10: an acquisition killed right after its Delta commit never wrote its rejected rows.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import subprocess
import sys
import textwrap
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from deltalake import DeltaTable
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from permeability.cli.main import app
from permeability.io.exports import write_lab_export
from permeability.io.feature_store import METADATA_KEY, FeatureStore
from permeability.pipelines.acquisition import acquire
from permeability.runtime.scheduler import ScheduledJobError, run_scheduler
from permeability.settings import Settings
from permeability.synthetic.generator import generate_lab_data
from tests.builders import SEED_HEADER

HEADER = list(SEED_HEADER)


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def acquire_log(home: Path) -> str:
    return (home / "logs" / "acquire.log").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- item 3: MariaDB


@pytest.fixture
def server_dir(mariadb_url: str) -> Path:
    """Where the MariaDB server may write files (``secure_file_priv``, or anywhere: /tmp)."""
    engine = create_engine(mariadb_url)
    with engine.connect() as connection:
        allowed = connection.execute(text("SELECT @@secure_file_priv")).scalar()
    engine.dispose()
    return Path(allowed) if allowed else Path("/tmp")


@pytest.fixture
def one_row_table(mariadb_url: str) -> Iterator[str]:
    name = f"hostile_{uuid.uuid4().hex[:10]}"
    engine = create_engine(mariadb_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE TABLE {name} (Muestra INT, Estructura VARCHAR(40))")
        connection.exec_driver_sql(f"INSERT INTO {name} VALUES (1, 'BOPP')")  # noqa: S608
    try:
        yield name
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP TABLE {name}")
        engine.dispose()


@pytest.fixture
def server_file(server_dir: Path) -> Iterator[Path]:
    """A path the server would write to; removed afterwards whoever wrote it."""
    path = server_dir / f"permeability-hostile-{uuid.uuid4().hex}"
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.integration
def test_control_the_server_does_write_outfiles_for_a_plain_connection(
    mariadb_url: str, one_row_table: str, server_file: Path
) -> None:
    """Without the guards the attack works on this server, so "no file" below means something."""
    engine = create_engine(mariadb_url)
    with engine.connect() as connection:
        connection.exec_driver_sql("START TRANSACTION READ ONLY")  # no help against OUTFILE
        connection.exec_driver_sql(f"SELECT * FROM {one_row_table} INTO OUTFILE '{server_file}'")  # noqa: S608
        connection.rollback()
    engine.dispose()
    assert server_file.read_text(encoding="utf-8").strip() == "1\tBOPP"


@pytest.mark.integration
@pytest.mark.parametrize(
    "template",
    [
        "SELECT * FROM {t} /*! INTO OUTFILE '{path}' */",  # the command
        "SELECT * FROM {t} /*M!100000 INTO OUTFILE '{path}' */",
        "SELECT * FROM {t} /*!50000 INTO DUMPFILE '{path}' */",
        "SELECT * FROM {t} WHERE 1--1 INTO OUTFILE '{path}'",  # '1--1' is 1 - -1: no comment
        "SELECT \"a\\\"'\" AS x FROM {t} INTO OUTFILE '{path}' -- '",  # "a\"'" is one string
        "SELECT * FROM {t} INTO OUTFILE '{path}'",
    ],
)
def test_mariadb_file_writes_are_refused_in_one_line_and_no_file_appears(
    home: Path, mariadb_url: str, one_row_table: str, server_file: Path, template: str
) -> None:
    query = template.format(t=one_row_table, path=server_file)
    code, stdout, stderr = cli("acquire", "--source", mariadb_url, "--query", query, "--json")
    assert not server_file.exists()
    assert code == 1
    assert not stdout.strip()
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: --query ")
    assert "OUTFILE" in last or "DUMPFILE" in last or "executable comment" in last
    assert "Traceback" not in stderr
    assert "Traceback" not in acquire_log(home)


# --------------------------------------------------------------------------- item 8: encodings


def unicode_text_export(path: Path, bom: bytes, codec: str, sep: str) -> Path:
    """Four records as Excel's "Save as Unicode text" writes them (CRLF, BOM), one impossible."""
    rows = [
        ["1", "25,6", "90", "Bopp metalizado", "16,4 µm", "16,4", "16,4", "16,4", "16,4", "16,4"],
        ["2", "38", "90", "PET", "12", "12", "12", "12", "12", "12"],
        ["3", "38", "120", "PET", "12", "12", "12", "12", "12", "12"],  # humidity over 100 %
        ["4", "23", "50", "BOPP", "20", "20", "20", "20", "20", "20"],
    ]
    tails = [
        ["0,31", "2024-01-10"],
        ["5", "2024-01-11"],
        ["5", "2024-01-12"],
        ["4,5", "2024-01-13"],
    ]
    lines = [sep.join(HEADER), *[sep.join(r + t) for r, t in zip(rows, tails, strict=True)]]
    path.write_bytes(bom + ("\r\n".join(lines) + "\r\n").encode(codec))
    return path


@pytest.mark.parametrize(
    ("bom", "codec", "sep"),
    [
        (codecs.BOM_UTF16_LE, "utf-16-le", "\t"),  # the file
        (codecs.BOM_UTF16_BE, "utf-16-be", "\t"),
        (codecs.BOM_UTF8, "utf-8", ";"),
    ],
)
def test_a_unicode_text_export_loads_with_the_right_columns_and_values(
    home: Path, tmp_path: Path, bom: bytes, codec: str, sep: str
) -> None:
    path = unicode_text_export(tmp_path / "lab.txt", bom, codec, sep)
    code, stdout, stderr = cli("acquire", "--source", str(path), "--json")
    assert code == 0, stderr
    report = json.loads(stdout.strip().splitlines()[-1])
    assert (report["rows_read"], report["rows_loaded"], report["rows_rejected"]) == (4, 3, 1)
    assert report["ignored_columns"] == []
    frame = FeatureStore(Settings(home=home).resolved_feature_store_uri).read().frame
    stored = frame.set_index("Muestra")
    assert stored.loc[1, "Grados_C"] == 25.6
    assert stored.loc[1, "Calibre1"] == 16.4
    assert stored.loc[1, "Estructura"] == "BOPP/MET"
    assert stored.loc[1, "Permeabilidad"] == 0.31
    assert stored.loc[4, "Porc_Humedad"] == 50.0
    rejected = pd.read_csv(report["rejected_file"], dtype=str)
    assert rejected["source_row"].tolist() == ["3"]
    assert "Porc_Humedad '120' is outside" in str(rejected.loc[0, "reason"])


def junk_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", b"garbage")
        archive.writestr("xl/workbook.xml", os.urandom(64))
    return buffer.getvalue()


JUNK_WORKBOOKS = {
    "zip-of-junk": (junk_zip(), "it is a zip archive without a readable workbook inside"),
    "random-bytes": (b"\x89\x13\x00\xfe" + os.urandom(2048), "it is unrecognised binary content"),
    "html-page": (b"<!DOCTYPE html><html><body>Report</body></html>", "it is an HTML page"),
}


@pytest.mark.parametrize("kind", JUNK_WORKBOOKS)
def test_a_junk_xlsx_is_one_clear_line_in_the_cli_and_no_traceback(
    home: Path, tmp_path: Path, kind: str
) -> None:
    content, what = JUNK_WORKBOOKS[kind]
    path = tmp_path / "lab.xlsx"
    path.write_bytes(content)
    code, stdout, stderr = cli("acquire", "--source", str(path))
    assert code == 1
    assert not stdout.strip()
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: source {path} is not an Excel workbook (.xlsx): {what}")
    assert "ParseError" not in last
    assert "Traceback" not in stderr
    assert "Traceback" not in acquire_log(home)


def test_a_junk_xlsx_is_one_line_in_the_scheduler_log(tmp_path: Path) -> None:
    path = tmp_path / "lab.xlsx"
    path.write_bytes(junk_zip())
    config = tmp_path / "config.yaml"
    job = {"name": "nightly", "kind": "acquire", "cron": "0 2 * * *", "args": {"source": str(path)}}
    config.write_text(yaml.safe_dump({"schedule": {"jobs": [job]}}), encoding="utf-8")
    settings = Settings(home=tmp_path / "storage", config_file=config)
    with pytest.raises(ScheduledJobError, match="1 of 1"):
        run_scheduler(settings, once=True)
    log = (settings.paths.logs / "schedule.log").read_text(encoding="utf-8")
    failures = [line for line in log.splitlines() if "job nightly failed" in line]
    assert len(failures) == 1
    assert f"source {path} is not an Excel workbook (.xlsx)" in failures[0]
    assert "Traceback" not in log
    assert "Traceback" not in (settings.paths.logs / "acquire.log").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- item 10: crash

#: Runs one acquisition and kills the process the moment its Delta commit returns.
CRASH_RIGHT_AFTER_COMMIT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from permeability.io.feature_store import FeatureStore
    from permeability.pipelines.acquisition import acquire
    from permeability.settings import Settings

    commit = FeatureStore.commit

    def commit_then_die(self, *args, **kwargs):
        commit(self, *args, **kwargs)
        os._exit(137)

    FeatureStore.commit = commit_then_die
    acquire(Settings(home=Path(sys.argv[1])), sys.argv[2])
    """
)


@pytest.mark.slow
def test_a_kill_right_after_the_commit_keeps_every_rejected_row_and_reason(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    source = write_lab_export(generate_lab_data(3000, seed=7), tmp_path / "lab.csv")
    process = subprocess.run(
        [sys.executable, "-c", CRASH_RIGHT_AFTER_COMMIT, str(home), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert process.returncode == 137, process.stderr
    store = FeatureStore(Settings(home=home).resolved_feature_store_uri)
    assert store.current_version() == 0
    commit = next(
        c[METADATA_KEY] for c in DeltaTable(store.table_uri).history() if c.get("version") == 0
    )
    counts = commit["counts"]
    assert counts["rows_rejected"] > 0
    assert counts["rows_read"] == (
        counts["rows_loaded"] + counts["rows_rejected"] + counts["duplicates_skipped"]
    )
    rejected_file = home / "data" / "rejected" / commit["rejected_file"]
    rejected = pd.read_csv(rejected_file, dtype=str, keep_default_na=False)
    assert len(rejected) == counts["rows_rejected"]
    assert rejected["source_row"].is_unique
    assert (rejected["reason"].str.len() > 0).all()
    assert not list(rejected_file.parent.glob("*.partial"))
    # The commit's PCA files were never written; the next acquisition rebuilds them from it.
    pca_folder = home / "data" / "feature_store" / "pca" / "v0"
    assert not (pca_folder / "explained_variance.png").exists()
    rerun = write_lab_export(generate_lab_data(50, seed=8), tmp_path / "more.csv")
    assert acquire(Settings(home=home), str(rerun)).feature_set_version == 1
    rebuilt = json.loads((pca_folder / "pca.json").read_text(encoding="utf-8"))
    assert rebuilt == store.pca(0).to_dict()
    assert (pca_folder / "explained_variance.png").stat().st_size > 0
    assert not list(pca_folder.glob("*.partial"))
