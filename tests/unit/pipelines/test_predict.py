"""``permeability predict``: a whole lab file scored, written and logged; the CLI around it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from permeability.cli.main import app
from permeability.errors import InvalidInputError
from permeability.io.model_cache import NoChampionError
from permeability.io.predictions.reader import read_predictions
from permeability.pipelines.predict import predict_file
from permeability.settings import Settings
from tests.unit.scoring.batch_support import sample_with_readings
from tests.unit.services.inference_support import (
    Champion,
    lab_frame,
    patch_registry,
    publish_version,
    tiny_model,
)


@pytest.fixture
def served(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Champion:
    champion = Champion()
    patch_registry(monkeypatch, champion)
    publish_version(settings, "0.1", tiny_model())
    return champion


def _lab_csv(path: Path, rows: int = 300) -> Path:
    frame = lab_frame().head(rows).copy()
    frame.loc[3, "Porc_Humedad"] = 140.0
    frame.to_csv(path, index=False)
    return path


def test_predict_file_writes_every_row_and_logs_the_predictions(
    settings: Settings, served: Champion, tmp_path: Path
) -> None:
    source = _lab_csv(tmp_path / "in.csv")
    out = tmp_path / "out" / "scored.csv"
    result = predict_file(settings, input_path=source, output_path=out, version="0.1")
    written = pd.read_csv(out, keep_default_na=False)
    original = pd.read_csv(source)
    assert written["Muestra"].tolist() == original["Muestra"].tolist()
    assert result.rows == 300
    assert result.failed == 1
    assert result.predicted == 299
    assert "Porc_Humedad '140.0' is outside (0, 100] % RH" in str(written.loc[3, "error"])
    assert written.loc[3, "prediction"] == ""
    logged = read_predictions(settings.resolved_feature_store_uri)
    assert len(logged) == 299
    assert set(logged["endpoint"]) == {"cli"}
    assert set(logged["version"]) == {"0.1"}


def test_predict_file_uses_the_champion_by_default(
    settings: Settings, served: Champion, tmp_path: Path
) -> None:
    source = _lab_csv(tmp_path / "in.csv", rows=20)
    with pytest.raises(NoChampionError):
        predict_file(settings, input_path=source, output_path=tmp_path / "o.csv")
    served.label = "0.1"
    assert (
        predict_file(settings, input_path=source, output_path=tmp_path / "o.csv").version == "0.1"
    )


def test_predict_file_xlsx_round_trip(settings: Settings, served: Champion, tmp_path: Path) -> None:
    source = tmp_path / "in.xlsx"
    lab_frame().head(15).to_excel(source, index=False)
    out = tmp_path / "out.xlsx"
    result = predict_file(settings, input_path=source, output_path=out, version="0.1")
    assert result.rows == 15
    assert result.failed == 0
    assert len(pd.read_excel(out)) == 15


def test_predict_file_refuses_to_overwrite_its_input(
    settings: Settings, served: Champion, tmp_path: Path
) -> None:
    source = _lab_csv(tmp_path / "in.csv", rows=5)
    with pytest.raises(InvalidInputError, match="overwrite"):
        predict_file(settings, input_path=source, output_path=source, version="0.1")


def test_cli_predict_json(settings: Settings, served: Champion, tmp_path: Path) -> None:
    source = _lab_csv(tmp_path / "in.csv", rows=40)
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        app,
        ["predict", "--version", "0.1", "--input", str(source), "--output", str(out), "--json"],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["rows"] == 40
    assert payload["failed"] == 1
    assert payload["version"] == "0.1"
    assert out.is_file()


def test_cli_predict_unknown_version_fails_with_one_line(
    settings: Settings, served: Champion, tmp_path: Path
) -> None:
    source = _lab_csv(tmp_path / "in.csv", rows=5)
    result = CliRunner().invoke(
        app,
        ["predict", "--version", "7", "--input", str(source), "--output", str(tmp_path / "o.csv")],
    )
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == "error: version '7' does not exist; available versions: 0.1"


def test_predict_file_and_the_cli_report_the_filled_rows(
    settings: Settings, served: Champion, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    pd.DataFrame(
        [sample_with_readings(1), sample_with_readings(2, Calibre4=None, CalibreProm=16.35)]
    ).to_csv(source, index=False)
    out = tmp_path / "out.csv"
    result = predict_file(settings, input_path=source, output_path=out, version="0.1")
    assert (result.rows, result.failed, result.filled_rows) == (2, 0, 1)
    written = pd.read_csv(out, keep_default_na=False)
    assert written["filled"].tolist() == [
        "",
        "Calibre4 filled with the mean of Calibre1, Calibre2, Calibre3, Calibre5",
    ]
    cli = CliRunner().invoke(
        app,
        ["predict", "--version", "0.1", "--input", str(source), "--output", str(out), "--json"],
    )
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout.strip().splitlines()[-1])["filled_rows"] == 1
