"""The lab page: served at ``/`` with its assets, self-contained (works offline), bilingual."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from permeability.services.inference import page
from permeability.settings import Settings

STATIC = page.STATIC_DIR
#: XML namespaces are identifiers, never fetched; anything else that looks like a URL is.
_NAMESPACES = ("http://www.w3.org/2000/svg",)
_EXTERNAL = re.compile(
    r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}|@import|url\(\s*['\"]?(?:https?:)?//"
)


class _References(HTMLParser):
    """Every src/href in the page, and every data-i18n key."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.keys: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)
            if name == "data-i18n" and value:
                self.keys.add(value)


def _references() -> _References:
    parser = _References()
    parser.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    return parser


def _strings() -> dict[str, dict[str, str]]:
    strings: dict[str, dict[str, str]] = json.loads(
        (STATIC / "i18n.json").read_text(encoding="utf-8")
    )
    return strings


@pytest.fixture
def client(settings: Settings) -> TestClient:
    app = FastAPI()
    app.state.settings = settings
    app.include_router(page.router)
    return TestClient(app)


def test_root_serves_the_page_html(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="sample-form"' in response.text
    assert 'id="batch-form"' in response.text


def test_every_asset_the_page_references_is_served_with_its_type(client: TestClient) -> None:
    urls = _references().urls
    assert "static/app.js" in urls
    assert "static/app.css" in urls
    expected_types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for url in urls:
        response = client.get(f"/{url}")
        assert response.status_code == 200, url
        assert response.headers["content-type"].startswith(expected_types[Path(url).suffix]), url
    strings = client.get("/static/i18n.json")
    assert strings.status_code == 200
    assert set(strings.json()) == {"en", "es"}


@pytest.mark.parametrize(
    "path", ["/static/page.py", "/static/..%2fpage.py", "/static/%2e%2e%2f__init__.py", "/static/"]
)
def test_only_listed_assets_are_public(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_every_static_file_is_listed_and_no_listed_file_is_missing() -> None:
    on_disk = {p.name for p in STATIC.iterdir() if p.is_file()} - {"index.html"}
    assert on_disk == set(page.ASSETS)


@pytest.mark.parametrize("name", sorted([*page.ASSETS, "index.html"]))
def test_no_asset_loads_anything_from_the_internet(name: str) -> None:
    text = (STATIC / name).read_text(encoding="utf-8")
    for namespace in _NAMESPACES:
        text = text.replace(namespace, "")
    assert _EXTERNAL.findall(text) == []


def test_external_url_check_catches_a_cdn_link() -> None:
    assert _EXTERNAL.findall('<script src="https://cdn.example.com/x.js"></script>')
    assert _EXTERNAL.findall("@import url(//fonts.example.org/css);")


def test_both_languages_have_the_same_strings_and_none_is_empty() -> None:
    strings = _strings()
    assert set(strings["en"]) == set(strings["es"])
    for language, table in strings.items():
        assert all(text.strip() for text in table.values()), language


def test_placeholders_match_between_languages() -> None:
    strings = _strings()
    placeholder = re.compile(r"\{(\w+)\}")
    for key, english in strings["en"].items():
        assert set(placeholder.findall(english)) == set(placeholder.findall(strings["es"][key])), (
            key
        )


def test_every_text_the_page_and_script_use_is_translated() -> None:
    strings = _strings()["en"]
    script = (STATIC / "app.js").read_text(encoding="utf-8")
    used = _references().keys | set(re.findall(r"\bt\(\"([\w.]+)\"", script))
    # Keys the script builds from API values: decision words and their explanations.
    for decision in ("approve", "reject", "retest", "none"):
        used.add(f"decision.{decision}")
    for decision in ("approve", "reject", "retest"):
        used.add(f"decision.{decision}.text")
    used |= {"error.range.Grados_C", "error.range.Porc_Humedad"}
    missing = sorted(key for key in used if key not in strings)
    assert missing == []


def test_spanish_range_message_speaks_plainly() -> None:
    strings = _strings()
    assert strings["en"]["error.range.Porc_Humedad"].startswith(
        "Humidity must be between 0 and 100"
    )
    assert strings["es"]["error.range.Porc_Humedad"].startswith(
        "La humedad debe estar entre 0 y 100"
    )


def test_page_config_prefers_the_configured_mlflow_ui(home: Path) -> None:
    configured = Settings(home=home, mlflow_ui_url="http://mlflow.lab:5000/")
    assert page.mlflow_ui_url(configured) == "http://mlflow.lab:5000"


def test_page_config_links_a_tracking_server_without_its_password(home: Path) -> None:
    remote = Settings.model_validate(
        {"home": home, "MLFLOW_TRACKING_URI": "https://bot:s3cret@mlflow.lab:8443/tracking"}
    )
    assert page.mlflow_ui_url(remote) == "https://mlflow.lab:8443/tracking"


def test_page_config_has_no_ui_url_for_the_embedded_store(client: TestClient) -> None:
    response = client.get("/page/config")
    assert response.status_code == 200
    assert response.json() == {"mlflow_ui_url": None, "mlflow_ui_port": page.DEFAULT_MLFLOW_UI_PORT}


def test_page_routes_stay_out_of_the_openapi_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not any(p == "/" or p.startswith(("/static", "/page")) for p in paths)
