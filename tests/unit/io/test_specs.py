"""Reading the specs YAML: the embedded default, a lab file, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from permeability.config import InferenceParams, ProjectConfig
from permeability.errors import InvalidInputError
from permeability.io.specs import (
    EMBEDDED_SOURCE,
    load_configured_specs,
    load_specs,
    specs_path,
)
from permeability.settings import Settings

GENERATED_STRUCTURES = {
    "BOPP",
    "BOPP/MET",
    "PET",
    "PET/MET",
    "LDPE",
    "HDPE",
    "PPC",
    "NY",
    "BOPP/PVDC",
    "PET/LDPE",
    "BOPP/BOPP/MET",
    "PET/MET/LDPE",
    "NY/LDPE",
}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "specs.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_embedded_default_covers_the_catalogue_and_the_domain_example() -> None:
    specs = load_specs(None)
    assert specs.source == EMBEDDED_SOURCE
    assert set(specs.structures) == GENERATED_STRUCTURES
    match = specs.match("BOPP", 38.0, 90.0, 21.0)
    assert match.limit is not None
    assert match.limit.max_permeability == 6.0


def test_lab_file_with_aliases_is_normalised(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "limits:\n"
        "  - {structure: 'Bopp metalizado ', max_permeability: 0.5, temperature_c: 38, humidity_pct: 90}\n"
        "  - {structure: 'mi film', max_permeability: 3, temperature_c: 23, humidity_pct: 50,"
        " humidity_tolerance_pct: 5}\n",
    )
    specs = load_specs(path, {"mi film": "MYFILM"})
    assert specs.structures == ["BOPP/MET", "MYFILM"]
    assert specs.source == str(path.resolve())
    assert specs.match("MYFILM", 23.5, 54.0, 20.0).limit is not None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "limits:\n  - {structure: PET, max_permeability: -3, temperature_c: 38, humidity_pct: 90}\n",
            "entry 1 (PET): max_permeability",
        ),
        (
            "limits:\n  - {structure: PET, max_permeability: 3, temperature_c: 38}\n",
            "entry 1 (PET): humidity_pct: Field required",
        ),
        (
            "limits:\n  - {structure: PET, max_permeability: 3, temperature_c: 38, humidity_pct: 90}\n"
            "  - {structure: LDPE, max_permeability: 3, temperature_c: 38, humidity_pct: 90, colour: red}\n",
            "entry 2 (LDPE): colour: Extra inputs are not permitted",
        ),
        ("limits:\n  - [1, 2]\n", "entry 1 must be a mapping"),
        ("limits: 3\n", "'limits' must be a list"),
        ("[1, 2]\n", "mapping with a 'limits' list"),
        ("limits: []\nextra: 1\n", "unknown top-level keys ['extra']"),
        ("version: 2\nlimits: []\n", "version must be 1"),
        ("limits: [\n", "not valid YAML"),
        (
            "limits:\n  - {structure: PET, max_permeability: 3, temperature_c: 38, humidity_pct: 90}\n"
            "  - {structure: bopet, max_permeability: 4, temperature_c: 38, humidity_pct: 90}\n",
            "two entries for PET",
        ),
    ],
)
def test_bad_files_name_the_entry_and_field(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        load_specs(_write(tmp_path, body))
    assert expected in str(caught.value)
    assert str(tmp_path) in str(caught.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_specs(tmp_path / "nope.yaml")


def test_environment_file_overrides_config_file(tmp_path: Path, settings: Settings) -> None:
    from_config = _write(tmp_path, "limits: []\n")
    config = ProjectConfig(inference=InferenceParams(specs_file=from_config))
    assert specs_path(settings, config) == from_config
    from_env = tmp_path / "env.yaml"
    from_env.write_text(
        "limits:\n  - {structure: PET, max_permeability: 3, temperature_c: 38, humidity_pct: 90}\n",
        encoding="utf-8",
    )
    overridden = settings.model_copy(update={"specs_file": from_env})
    specs = load_configured_specs(overridden, config)
    assert specs.structures == ["PET"]
    assert load_configured_specs(settings, ProjectConfig()).source == EMBEDDED_SOURCE


def test_embedded_file_ships_inside_the_package() -> None:
    from importlib import resources

    assert resources.files("permeability.resources").joinpath("specs.yaml").is_file()
