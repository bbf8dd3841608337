from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from permeability.features.pca import CaliperPCA, fit_caliper_pca
from permeability.io.feature_store_files import PcaFiles, join_uri
from tests.object_store import moto_s3

PLOT = b"\x89PNG\r\n\x1a\n drawn by the acquisition"


@pytest.fixture
def pca() -> CaliperPCA:
    rng = np.random.default_rng(0)
    thickness = rng.uniform(15, 60, size=(40, 1))
    return fit_caliper_pca(thickness + rng.normal(0, 0.2, size=(40, 5)), 0.99)


def test_pca_files_are_saved_with_the_version(tmp_path: Path, pca: CaliperPCA) -> None:
    files = PcaFiles(str(tmp_path / "store"))
    assert not files.complete(0)
    assert files.read_pca(0) is None
    folder = Path(files.save(0, pca, PLOT))
    assert folder == tmp_path / "store" / "pca" / "v0"
    table = pd.read_csv(folder / "explained_variance.csv")
    assert table["explained_variance_ratio"].tolist() == pytest.approx(
        list(pca.explained_variance_ratio)
    )
    assert json.loads((folder / "explained_variance.json").read_text())[0]["component"] == 1
    assert CaliperPCA.from_dict(json.loads((folder / "pca.json").read_text())) == pca
    assert (folder / "explained_variance.png").read_bytes() == PLOT
    assert not list(folder.glob("*.partial"))
    assert files.complete(0)
    assert files.read_pca(0) == pca


def test_a_folder_without_its_plot_is_incomplete(tmp_path: Path, pca: CaliperPCA) -> None:
    files = PcaFiles(f"file://{tmp_path}")
    folder = Path(files.save(3, pca, PLOT))
    (folder / "explained_variance.png").unlink()
    assert not files.complete(3)
    assert files.read_pca(3) == pca


def test_uris_join_as_paths_or_as_urls(tmp_path: Path) -> None:
    assert join_uri(str(tmp_path), "samples") == str(tmp_path / "samples")
    assert join_uri(f"file://{tmp_path}", "pca", "v1") == str(tmp_path / "pca" / "v1")
    assert join_uri("s3://bucket/permeability/", "samples") == "s3://bucket/permeability/samples"


@pytest.fixture
def s3_options() -> Iterator[dict[str, str]]:
    with moto_s3() as options:
        yield options


def test_pca_files_are_saved_on_object_storage(s3_options: dict[str, str], pca: CaliperPCA) -> None:
    """pyarrow writes Arrow buffers, which deltalake's own S3 stream refused (no PCA file
    could be written to S3): the store's handler hands them over as bytes."""
    files = PcaFiles("s3://store/features", s3_options)
    assert files.save(2, pca, PLOT) == "s3://store/features/pca/v2"
    assert files.complete(2)
    assert files.read_pca(2) == pca
    listed = httpx.get(f"{s3_options['AWS_ENDPOINT_URL']}/store", timeout=10).text
    assert "features/pca/v2/explained_variance.png" in listed
    assert ".partial" not in listed
