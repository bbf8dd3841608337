"""The files a feature store keeps beside its Delta table (each version's caliper PCA), and
how the store's locations are reached.

Below the store URI, ``pca/v<version>/`` holds pca.json (``CaliperPCA.to_dict()``),
explained_variance.csv and explained_variance.json (``CaliperPCA.variance_table()``) and
explained_variance.png, the plot the acquisition draws (this module writes the bytes it is
given; it draws nothing). Every file is written under a temporary name and then moved, the plot
last, so its presence says the folder is complete. The same commit records the PCA, so a folder
a run left incomplete can always be written again.

The store URI is a local path, a ``file://`` URI or an object-store URI (``s3://``, ``abfss://``,
``gs://``) reached through deltalake's storage handler with the same ``storage_options`` (or
the usual ``AWS_*`` / ``AZURE_*`` / ``GOOGLE_*`` environment variables).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import pandas as pd
import pyarrow.fs as pafs

from permeability.features.pca import CaliperPCA
from permeability.io.cells import csv_text

PCA_FOLDER: Final = "pca"
#: Written last: a folder holding it is complete.
PLOT_NAME: Final = "explained_variance.png"


def join_uri(uri: str, *parts: str) -> str:
    """``parts`` below ``uri``: a local path, or the URI with ``/``-joined parts."""
    if _is_local(uri):
        return str(_local_path(uri).joinpath(*parts))
    return "/".join([uri.rstrip("/"), *parts])


def filesystem(uri: str, storage_options: dict[str, str] | None) -> pafs.FileSystem:
    """A filesystem rooted at ``uri``: the local disk, or object storage through pyarrow's
    own filesystems (S3, GCS, Azure; credentials and endpoint from the environment, or for S3
    from ``storage_options`` in deltalake's ``AWS_*`` names, so one set of options serves the
    Delta table and its files).

    Not deltalake's ``DeltaStorageHandler``: pyarrow hands its output streams Arrow buffers,
    which that handler's streams refuse (deltalake 1.6.6, pyarrow 25: no file could be written
    to object storage)."""
    if _is_local(uri):
        root = _local_path(uri).resolve()
        root.mkdir(parents=True, exist_ok=True)
        return pafs.SubTreeFileSystem(str(root), pafs.LocalFileSystem())
    if storage_options and uri.startswith(("s3://", "s3a://")):
        _, _, path = uri.partition("://")
        return pafs.SubTreeFileSystem(path.rstrip("/"), _s3(storage_options))
    store, path = pafs.FileSystem.from_uri(uri)
    return pafs.SubTreeFileSystem(path.rstrip("/"), store)


def _s3(options: dict[str, str]) -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem for deltalake-style options (``AWS_ENDPOINT_URL``, keys,
    ``AWS_REGION``, ``AWS_ALLOW_HTTP``)."""
    endpoint = options.get("AWS_ENDPOINT_URL") or options.get("aws_endpoint_url")
    parsed = urlsplit(endpoint) if endpoint else None
    return pafs.S3FileSystem(
        access_key=options.get("AWS_ACCESS_KEY_ID"),
        secret_key=options.get("AWS_SECRET_ACCESS_KEY"),
        session_token=options.get("AWS_SESSION_TOKEN"),
        region=options.get("AWS_REGION") or options.get("AWS_DEFAULT_REGION"),
        endpoint_override=parsed.netloc if parsed is not None else None,
        scheme=parsed.scheme if parsed is not None and parsed.scheme else "https",
    )


class PcaFiles:
    """The ``pca/v<version>/`` folders below one feature-store URI."""

    def __init__(self, uri: str, storage_options: dict[str, str] | None = None) -> None:
        self.uri = uri
        self.storage_options = storage_options

    def folder(self, version: int) -> str:
        return join_uri(self.uri, PCA_FOLDER, f"v{version}")

    def complete(self, version: int) -> bool:
        """Whether ``version``'s folder holds every file (its run did not stop before the plot)."""
        plot = f"{PCA_FOLDER}/v{version}/{PLOT_NAME}"
        return self._filesystem().get_file_info(plot).type == pafs.FileType.File

    def save(self, version: int, pca: CaliperPCA, plot_png: bytes) -> str:
        """pca.json, the explained-variance table (CSV, JSON) and ``plot_png``; the folder."""
        folder = f"{PCA_FOLDER}/v{version}"
        table = pd.DataFrame(pca.variance_table())
        self._write_bytes(f"{folder}/pca.json", json.dumps(pca.to_dict(), indent=2).encode())
        self._write_bytes(f"{folder}/explained_variance.csv", csv_text(table).encode())
        self._write_bytes(
            f"{folder}/explained_variance.json", table.to_json(orient="records").encode()
        )
        self._write_bytes(f"{folder}/{PLOT_NAME}", plot_png)
        return self.folder(version)

    def read_pca(self, version: int) -> CaliperPCA | None:
        """The PCA saved in ``version``'s pca.json, or None when there is none."""
        relative = f"{PCA_FOLDER}/v{version}/pca.json"
        filesystem = self._filesystem()
        if filesystem.get_file_info(relative).type != pafs.FileType.File:
            return None
        with filesystem.open_input_stream(relative) as handle:
            return CaliperPCA.from_dict(json.loads(bytes(handle.read()).decode("utf-8")))

    def _write_bytes(self, relative: str, payload: bytes) -> None:
        """Write under a temporary name, then move: a killed writer leaves no half file."""
        filesystem = self._filesystem()
        parent = relative.rpartition("/")[0]
        if parent:
            filesystem.create_dir(parent, recursive=True)
        partial = f"{relative}.partial"
        with filesystem.open_output_stream(partial) as out:
            out.write(payload)
        filesystem.move(partial, relative)

    def _filesystem(self) -> pafs.FileSystem:
        return filesystem(self.uri, self.storage_options)


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def _local_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://")).expanduser()
