from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from permeability.cli.main import app
from permeability.errors import InvalidInputError
from permeability.io.exports import write_lab_export
from permeability.io.feature_store import FeatureStore
from permeability.pipelines.acquisition import acquire
from permeability.pipelines.acquisition_report import AcquisitionReport
from permeability.record.schema import CALIBRES
from permeability.settings import Settings
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec
from tests.builders import SEED_HEADER

HEADER = (
    "CONSECUTIVO",
    *SEED_HEADER,
)


def line(muestra: int, **values: str) -> list[str]:
    """A record numbered ``muestra`` (CONSECUTIVO, the record key), replicate ``muestra``."""
    cells = {
        "CONSECUTIVO": str(muestra),
        "Muestra": str(muestra),
        "Grados_C": "38",
        "Porc_Humedad": "90",
        "Estructura": "BOPP",
        **dict.fromkeys(CALIBRES, "20.0"),
        "CalibreProm": "20.0",
        "Permeabilidad": "5.0",
        "Fecha": "2024-01-10",
    }
    cells.update(values)
    return [cells[h] for h in HEADER]


def write_csv(path: Path, *lines: list[str]) -> Path:
    """A semicolon export, quoted where a value holds a ';' (as Excel writes it)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(HEADER)
        writer.writerows(lines)
    return path


def reconciles(report: AcquisitionReport) -> bool:
    return report.rows_read == (
        report.rows_loaded + report.rows_rejected + report.duplicates_skipped
    )


@pytest.fixture
def messy_csv(tmp_path: Path) -> Path:
    return write_csv(
        tmp_path / "lab.csv",
        line(1, Grados_C="25,6", Porc_Humedad="23", Calibre1="16.4 µm", CalibreProm="19.28"),
        line(2, Estructura="Bopp metalizado", Calibre2="", CalibreProm=""),
        line(3, Porc_Humedad="120", Permeabilidad="-1"),  # impossible: rejected
        line(4, Estructura="'; DROP TABLE muestras; --"),
        line(4, Estructura="'; DROP TABLE muestras; --"),  # exact repeat
        line(5, Permeabilidad="6,0", Fecha="2024-01-09"),  # older test of 5 ...
        line(5, Permeabilidad="6,5", Fecha="2024-01-11"),  # ... superseded by this one
    )


def test_a_messy_file_is_loaded_rejected_and_reconciled(
    settings: Settings, messy_csv: Path
) -> None:
    report = acquire(settings, str(messy_csv))
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (7, 4, 1)
    assert report.duplicates_skipped == 2
    assert report.duplicates.exact_repeats == 1
    assert report.duplicates.superseded_in_batch == 1
    assert report.calipers_imputed == 1
    assert report.feature_set_version == 0
    assert report.new_version
    assert reconciles(report)
    frame = FeatureStore(settings.resolved_feature_store_uri).read().frame.set_index("Muestra")
    assert frame.loc[1, "Grados_C"] == 25.6
    assert frame.loc[2, "Estructura"] == "BOPP/MET"
    assert frame.loc[2, "n_calibres_imputados"] == 1
    assert frame.loc[4, "Estructura"] == "';-DROP-TABLE-MUESTRAS;"
    assert frame.loc[5, "Permeabilidad"] == 6.5
    assert 3 not in frame.index


def test_rejected_rows_are_written_as_typed_with_row_and_reasons(
    settings: Settings, messy_csv: Path
) -> None:
    report = acquire(settings, str(messy_csv))
    assert report.rejected_file is not None
    path = Path(report.rejected_file)
    assert path.parent == settings.paths.rejected
    assert path.name.endswith(f"_{report.run_id}.csv")
    rejected = pd.read_csv(path, dtype=str)
    assert rejected["source_row"].tolist() == ["3"]
    assert rejected.loc[0, "Porc_Humedad"] == "120"
    reason = str(rejected["reason"].iloc[0])
    assert "Porc_Humedad '120' is outside (0, 100]" in reason
    assert "Permeabilidad '-1' is outside" in reason


def test_rerunning_the_same_source_loads_nothing_and_keeps_the_version(
    settings: Settings, messy_csv: Path
) -> None:
    acquire(settings, str(messy_csv))
    again = acquire(settings, str(messy_csv))
    assert again.rows_loaded == 0
    assert not again.new_version
    assert again.feature_set_version == 0
    assert again.duplicates.unchanged == 4
    assert again.duplicates_skipped == 6
    assert reconciles(again)
    assert FeatureStore(settings.resolved_feature_store_uri).current_version() == 0


def test_changed_and_stale_records(settings: Settings, tmp_path: Path) -> None:
    acquire(settings, str(write_csv(tmp_path / "a.csv", line(1), line(2, Fecha="2024-03-01"))))
    later = write_csv(
        tmp_path / "b.csv",
        line(1, Permeabilidad="7,5"),  # same sample, new value: update
        line(2, Permeabilidad="1", Fecha="2024-02-01"),  # older than the stored test: stale
        line(3),  # new
    )
    report = acquire(settings, str(later))
    assert (report.rows_inserted, report.rows_updated, report.duplicates.stale) == (1, 1, 1)
    assert report.feature_set_version == 1
    store = FeatureStore(settings.resolved_feature_store_uri)
    now = store.read().frame.set_index("Muestra")["Permeabilidad"].to_dict()
    then = store.read(0).frame.set_index("Muestra")["Permeabilidad"].to_dict()
    assert now == {1: 7.5, 2: 5.0, 3: 5.0}
    assert then == {1: 5.0, 2: 5.0}


def test_a_header_only_file_is_a_successful_empty_run(settings: Settings, tmp_path: Path) -> None:
    report = acquire(settings, str(write_csv(tmp_path / "empty.csv")))
    assert report.rows_read == report.rows_loaded == report.rows_rejected == 0
    assert report.feature_set_version is None
    assert report.rejected_file is None


def test_missing_columns_fail_listing_what_was_found(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "partial.csv"
    path.write_text("Muestra,Estructura\n1,BOPP\n", encoding="utf-8")
    with pytest.raises(
        InvalidInputError, match=r"Grados_C.*columns found: 'Muestra', 'Estructura'"
    ):
        acquire(settings, str(path))
    assert FeatureStore(settings.resolved_feature_store_uri).current_version() is None


def test_a_single_valid_sample_cannot_start_a_store(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="at least 2 valid samples"):
        acquire(settings, str(write_csv(tmp_path / "one.csv", line(1))))


def test_column_map_and_aliases_come_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "acquisition": {
                    "column_map": {"Sample": "Muestra", "WVTR (g/m2.d)": "Permeabilidad"},
                    "structure_aliases": {"polipropileno": "BOPP"},
                }
            }
        ),
        encoding="utf-8",
    )
    path = tmp_path / "export.csv"
    header = "Sample,grados c,PORC HUMEDAD,Estructura," + ",".join(CALIBRES) + ",WVTR (g/m2.d)"
    path.write_text(
        f"{header}\n1,38,90,Polipropileno,20,20,20,20,20,5\n2,38,90,PET,20,20,20,20,20,6\n",
        encoding="utf-8",
    )
    settings = Settings(home=tmp_path / "storage", config_file=config)
    report = acquire(settings, str(path))
    assert report.rows_loaded == 2
    frame = FeatureStore(settings.resolved_feature_store_uri).read().frame
    assert frame.sort_values("Muestra")["Estructura"].tolist() == ["BOPP", "PET"]
    assert report.record_key == [
        "Fecha",
        "Referencia",
        "Estructura",
        "Muestra",
        "Grados_C",
        "Porc_Humedad",
    ]


def test_each_load_stores_its_pca_and_logs_its_counts(settings: Settings, messy_csv: Path) -> None:
    report = acquire(settings, str(messy_csv))
    assert report.pca_dir is not None
    assert (Path(report.pca_dir) / "explained_variance.png").read_bytes()[:4] == b"\x89PNG"
    assert (
        report.pca_components
        == FeatureStore(settings.resolved_feature_store_uri).pca(0).n_components
    )
    log = (settings.paths.logs / "acquire.log").read_text(encoding="utf-8")
    assert f"run={report.run_id}" in log
    assert "rows_read=7 rows_loaded=4" in log
    assert "chunk 1:" in log


def test_new_structures_are_reported(settings: Settings, tmp_path: Path) -> None:
    acquire(settings, str(write_csv(tmp_path / "a.csv", line(1), line(2))))
    report = acquire(settings, str(write_csv(tmp_path / "b.csv", line(3, Estructura="evoh"))))
    assert report.new_structures == ["EVOH"]


def test_generated_lab_data_round_trips(settings: Settings, tmp_path: Path) -> None:
    frame = generate_lab_data(3000, seed=7)
    path = write_lab_export(frame, tmp_path / "generated.csv")
    report = acquire(settings, str(path))
    assert reconciles(report)
    assert report.rows_rejected > 0  # the generator's impossible values
    assert report.duplicates_skipped > 0  # its repeated rows
    assert report.rows_loaded > 2800
    again = acquire(settings, str(path))
    assert again.rows_loaded == 0
    assert again.feature_set_version == report.feature_set_version


def test_clean_generated_data_loads_every_row(settings: Settings, tmp_path: Path) -> None:
    path = write_lab_export(
        generate_lab_data(500, seed=3, mess=MessSpec.none()), tmp_path / "c.csv"
    )
    report = acquire(settings, str(path))
    assert report.rows_loaded == 500
    assert report.rows_rejected == 0


# --------------------------------------------------------------------------- CLI


def test_cli_json_is_one_object_on_the_last_line(messy_csv: Path) -> None:
    result = CliRunner().invoke(app, ["acquire", "--source", str(messy_csv), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["rows_loaded"] == 4
    assert payload["feature_set_version"] == 0


def test_cli_failure_is_one_line_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "partial.csv"
    path.write_text("Muestra\n1\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["acquire", "--source", str(path), "--json"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: source")
    assert "lacks required column(s)" in lines[-1]
    assert not result.stdout.strip()


def test_a_ragged_line_is_rejected_and_the_rest_loaded(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    unquoted = ";".join(line(2, Estructura="BOPP; DROP TABLE x"))
    path.write_text(
        "\n".join([";".join(HEADER), ";".join(line(1)), unquoted, ";".join(line(3))]) + "\n",
        encoding="utf-8",
    )
    report = acquire(settings, str(path))
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (3, 2, 1)
    assert report.rejected_file is not None
    rejected = pd.read_csv(report.rejected_file, dtype=str)
    assert rejected["source_row"].tolist() == ["2"]
    assert "row has 14 fields but the header has 13" in str(rejected["reason"].iloc[0])


def test_a_second_load_at_the_same_time_is_refused_and_writes_nothing(
    settings: Settings, messy_csv: Path
) -> None:
    import fcntl

    from permeability.errors import ConflictError
    from permeability.pipelines.acquisition import LOCK_FILE

    lock = settings.paths.ensure().data / LOCK_FILE
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another acquisition is loading
        with pytest.raises(ConflictError, match="another acquisition is loading the feature store"):
            acquire(settings, str(messy_csv))
        fcntl.flock(held, fcntl.LOCK_UN)
    assert FeatureStore(settings.resolved_feature_store_uri).current_version() is None
    assert acquire(settings, str(messy_csv)).feature_set_version == 0


# --------------------------------------------------------------------------- order around commit


def test_rejected_rows_are_on_disk_before_the_commit_that_names_them(
    settings: Settings, messy_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}
    commit = FeatureStore.commit

    def watched(self: FeatureStore, changes: pd.DataFrame, **kwargs: Any) -> int:
        name = kwargs["metadata"].get("rejected_file")
        seen["name"] = name
        seen["rows_on_disk"] = len(pd.read_csv(settings.paths.rejected / name)) if name else 0
        return commit(self, changes, **kwargs)

    monkeypatch.setattr(FeatureStore, "commit", watched)
    report = acquire(settings, str(messy_csv))
    assert report.rejected_file is not None
    assert seen == {"name": Path(report.rejected_file).name, "rows_on_disk": 1}
    assert not list(settings.paths.rejected.glob("*.partial"))


def test_counts_that_do_not_reconcile_stop_the_load_before_anything_is_written(
    settings: Settings, messy_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from permeability.pipelines import acquisition

    counts = acquisition.counts

    def off_by_one(*args: Any) -> dict[str, int]:
        return {**counts(*args), "rows_read": counts(*args)["rows_read"] + 1}

    monkeypatch.setattr(acquisition, "counts", off_by_one)
    with pytest.raises(RuntimeError, match="lost track of rows: read 8, accounted 7"):
        acquire(settings, str(messy_csv))
    assert FeatureStore(settings.resolved_feature_store_uri).current_version() is None
    assert not list(settings.paths.rejected.iterdir())


def test_a_load_refused_before_its_commit_leaves_no_rejected_file(
    settings: Settings, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "one.csv", line(1), line(2, Porc_Humedad="120"))
    with pytest.raises(InvalidInputError, match="at least 2 valid samples"):
        acquire(settings, str(path))
    assert not list(settings.paths.rejected.iterdir())
