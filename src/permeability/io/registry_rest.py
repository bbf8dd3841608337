"""The MLflow registry of a tracking *server*, read over its REST API without importing MLflow.

Why: a replica of the inference service needs two things from the registry, which label
carries the ``champion`` alias and that version's files, and ``import mlflow`` alone costs
about a second of its start. Both are plain HTTP calls to ``mlflow server``:

- ``GET /api/2.0/mlflow/registered-models/alias`` (the champion), ``.../model-versions/search``
  (a version by its ``version_label`` tag);
- the version's source is MLflow 3's ``models:/<model_id>``: ``GET .../logged-models/<id>``
  gives its artifact URI, and ``metadata.json`` sits in the training run's artifacts
  (``GET .../runs/get``);
- files come through the server's artifact proxy (``mlflow-artifacts:/...``, served by
  ``mlflow server``, the default ``--serve-artifacts``, whatever store is behind it: a folder,
  S3...).

A fetched version is written like a trained one (:mod:`permeability.io.model_store`): into a
staging folder of its own, every file's size checked against the server's listing,
``metadata.json`` last, then renamed into place, so readers see all of it or nothing, and two
workers fetching at once both end with the same folder. The load check (the model file
unpickles into a model) is the model cache's. The folder is a cache: deleted, it is fetched
again.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final
from urllib.parse import quote, urlsplit

import httpx

from permeability.errors import NotFoundError, PermeabilityError
from permeability.io.durable import fsync_dir, fsync_file, write_text_durably
from permeability.io.model_store import METADATA_FILE, ModelStore, validate_label
from permeability.io.registry import CHAMPION_ALIAS, LABEL_TAG
from permeability.io.tracking import REGISTERED_MODEL_NAME, filter_literal
from permeability.settings import Settings

API: Final = "/api/2.0/mlflow"
ARTIFACTS_API: Final = "/api/2.0/mlflow-artifacts/artifacts"
#: A registry that does not answer within this is unreachable (the refresher tries again).
TIMEOUT: Final = httpx.Timeout(15.0, connect=3.0)
_PROXIED_SCHEME: Final = "mlflow-artifacts"
_CHUNK: Final = 1 << 20


class RegistryRequestError(PermeabilityError):
    """The tracking server could not be reached or answered an error; says which call."""


@dataclass(frozen=True)
class RemoteVersion:
    """A registered model version as the REST API describes it."""

    version: str
    label: str | None
    run_id: str | None
    source: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> RemoteVersion:
        tags = {t.get("key"): t.get("value") for t in body.get("tags", ())}
        return cls(
            version=str(body.get("version")),
            label=tags.get(LABEL_TAG),
            run_id=body.get("run_id") or None,
            source=str(body.get("source", "")),
        )


class RemoteRegistry:
    """Champion and version files of registered model ``model_name`` on an MLflow server."""

    def __init__(
        self,
        base_url: str,
        model_name: str = REGISTERED_MODEL_NAME,
        *,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.client = client if client is not None else _client_for(self.base_url)

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteRegistry:
        return cls(settings.resolved_tracking_uri)

    def close(self) -> None:
        self.client.close()

    # -- the registry ---------------------------------------------------------------------

    def champion(self) -> RemoteVersion | None:
        """The version carrying the ``champion`` alias; ``None`` when no version (or no
        registered model) does."""
        body = self._get_json(
            f"{API}/registered-models/alias",
            {"name": self.model_name, "alias": CHAMPION_ALIAS},
            absent_ok=True,
        )
        if body is None:
            return None
        return RemoteVersion.from_json(_field(body, ("model_version",), "the alias lookup"))

    def champion_label(self) -> str | None:
        """The champion's label (what :class:`~permeability.io.model_cache.ModelCache` asks)."""
        champion = self.champion()
        return None if champion is None else champion.label

    def version_labelled(self, label: str) -> RemoteVersion | None:
        """The (oldest) version whose ``version_label`` tag is ``label``."""
        query = (
            f"name={filter_literal(self.model_name)} and "
            f"tags.{LABEL_TAG}={filter_literal(validate_label(label))}"
        )
        body = self._get_json(f"{API}/model-versions/search", {"filter": query})
        found = [RemoteVersion.from_json(v) for v in (body or {}).get("model_versions", ())]
        found = [v for v in found if v.label == label]
        return min(found, key=lambda v: int(v.version)) if found else None

    # -- files ----------------------------------------------------------------------------

    def fetch_label(self, label: str, store: ModelStore) -> Path:
        """Make sure version ``label`` is in ``store`` (fetched from the server when missing)."""
        target = store.path_of(label)
        if target.is_dir():
            return target
        version = self.version_labelled(label)
        if version is None:
            raise NotFoundError(
                f"version '{label}' is not registered in model '{self.model_name}' on "
                f"{self.base_url}"
            )
        return self.fetch(version, store)

    def fetch(self, version: RemoteVersion, store: ModelStore) -> Path:
        """Download ``version``'s model folder and metadata into ``store`` and publish it."""
        if version.label is None:
            raise RegistryRequestError(
                f"registry version {version.version} has no '{LABEL_TAG}' tag: it was not "
                "registered by the training service"
            )
        target = store.path_of(version.label)
        model_path = self._model_artifacts(version)
        metadata = self._metadata(version)
        staging = store.root / ".staging" / f"{version.label}.fetch-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            self._download_tree(model_path, staging)
            write_text_durably(
                staging / METADATA_FILE,
                json.dumps(metadata, indent=2, ensure_ascii=False, sort_keys=True) + "\n",
            )
            try:
                os.rename(staging, target)
            except OSError:
                if not target.is_dir():  # not "another worker published it first"
                    raise
            fsync_dir(target.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _model_artifacts(self, version: RemoteVersion) -> str:
        """The proxied artifact path of the version's logged model (``models:/<model_id>``)."""
        if not version.source.startswith("models:/"):
            raise RegistryRequestError(
                f"registry version {version.version} has source {version.source!r}; only "
                "MLflow 3 logged models (models:/<model_id>) are fetched"
            )
        model_id = version.source.removeprefix("models:/").strip("/")
        body = self._get_json(f"{API}/logged-models/{quote(model_id, safe='')}", {}) or {}
        return _proxied_path(_field(body, ("model", "info", "artifact_uri"), "logged model"))

    def _metadata(self, version: RemoteVersion) -> dict[str, Any]:
        """``metadata.json`` as the training run logged it; it must describe this label."""
        if version.run_id is None:
            raise RegistryRequestError(f"registry version {version.version} names no run")
        body = self._get_json(f"{API}/runs/get", {"run_id": version.run_id}) or {}
        run_artifacts = _proxied_path(_field(body, ("run", "info", "artifact_uri"), "runs/get"))
        url = f"{ARTIFACTS_API}/{_quoted(run_artifacts)}/{METADATA_FILE}"
        response = self._request(url, {})
        _raise_for(response, self.base_url + url)
        try:
            metadata = json.loads(response.content)
        except ValueError as exc:
            raise RegistryRequestError(
                f"{METADATA_FILE} of run {version.run_id} is not JSON"
            ) from exc
        if not isinstance(metadata, dict) or metadata.get("version") != version.label:
            raise RegistryRequestError(
                f"{METADATA_FILE} of run {version.run_id} does not describe version "
                f"'{version.label}'"
            )
        return metadata

    def _download_tree(self, remote: str, local: Path) -> None:
        """Every file below ``remote`` into ``local``, each checked against its listed size."""
        body = self._get_json(ARTIFACTS_API, {"path": remote})
        for entry in (body or {}).get("files", ()):
            name = _safe_name(str(entry.get("path", "")), remote)
            if entry.get("is_dir"):
                (local / name).mkdir()
                self._download_tree(f"{remote}/{name}", local / name)
                continue
            self._download_file(f"{remote}/{name}", local / name, entry.get("file_size"))

    def _download_file(self, remote: str, local: Path, size: Any) -> None:
        url = self.base_url + f"{ARTIFACTS_API}/{_quoted(remote)}"
        try:
            with self.client.stream("GET", url) as response:
                _raise_for(response, url)
                with open(local, "wb") as sink:
                    for chunk in response.iter_bytes(_CHUNK):
                        sink.write(chunk)
        except httpx.HTTPError as exc:
            raise RegistryRequestError(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc
        written = local.stat().st_size
        if size is not None and written != int(size):
            raise RegistryRequestError(
                f"{remote}: received {written} bytes, the server lists {size} (transfer cut?)"
            )
        fsync_file(local)

    # -- HTTP -----------------------------------------------------------------------------

    def _get_json(
        self, path: str, params: Mapping[str, str], *, absent_ok: bool = False
    ) -> dict[str, Any] | None:
        response = self._request(path, params)
        if absent_ok and _is_absent(response):
            return None
        _raise_for(response, self.base_url + path)
        try:
            body = response.json()
        except ValueError as exc:
            raise RegistryRequestError(f"GET {path} answered something that is not JSON") from exc
        if not isinstance(body, dict):
            raise RegistryRequestError(f"GET {path} answered {type(body).__name__}, not an object")
        return body

    def _request(self, path: str, params: Mapping[str, str]) -> httpx.Response:
        """One GET; a server that cannot be reached is :class:`RegistryRequestError`."""
        try:
            return self.client.get(self.base_url + path, params=dict(params))
        except httpx.HTTPError as exc:
            raise RegistryRequestError(
                f"tracking server {self.base_url} unreachable (GET {path}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc


def _client_for(base_url: str) -> httpx.Client:
    """Credentials as MLflow takes them: in the URI, or ``MLFLOW_TRACKING_TOKEN`` /
    ``MLFLOW_TRACKING_USERNAME`` + ``MLFLOW_TRACKING_PASSWORD``."""
    parts = urlsplit(base_url)
    headers: dict[str, str] = {}
    auth: httpx.BasicAuth | None = None
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    user = parts.username or os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = parts.password or os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif user is not None and password is not None:
        auth = httpx.BasicAuth(user, password)
    return httpx.Client(timeout=TIMEOUT, headers=headers, auth=auth, follow_redirects=False)


def _field(body: Any, keys: tuple[str, ...], call: str) -> Any:
    """``body[k1][k2]...``, or a clear error naming what the server left out."""
    for key in keys:
        if not isinstance(body, dict) or key not in body:
            raise RegistryRequestError(f"{call}: the server's answer has no {'.'.join(keys)}")
        body = body[key]
    return body


def _is_absent(response: httpx.Response) -> bool:
    """No such alias or registered model (MLflow answers 400 or 404 with an error code)."""
    if response.status_code not in (400, 404):
        return False
    try:
        code = response.json().get("error_code")
    except ValueError:
        return False
    return code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def _raise_for(response: httpx.Response, url: str) -> None:
    if response.is_success:
        return
    response.read()
    detail = response.text[:300]
    raise RegistryRequestError(f"GET {url} answered {response.status_code}: {detail}")


def _proxied_path(artifact_uri: str) -> str:
    """``mlflow-artifacts:/1/models/m-1/artifacts`` -> ``1/models/m-1/artifacts``."""
    parts = urlsplit(artifact_uri)
    if parts.scheme != _PROXIED_SCHEME:
        raise RegistryRequestError(
            f"artifact URI {artifact_uri!r} is not served by the tracking server; start "
            "`mlflow server` with artifact proxying (--serve-artifacts, the default, with "
            "--artifacts-destination) so replicas can fetch models through it"
        )
    return parts.path.strip("/")


def _quoted(path: str) -> str:
    return quote(path, safe="/")


def _safe_name(name: str, remote: str) -> str:
    """One path component from a listing (a hostile listing must not escape the folder).

    The proxy lists names relative to the folder asked for; some stores list the full path."""
    base = PurePosixPath(name).name
    if base in ("", ".", "..") or (
        name != base and PurePosixPath(name).parent.as_posix() != remote
    ):
        raise RegistryRequestError(f"the artifact listing of {remote} names {name!r}")
    return base
