"""Where a message links: the MLflow run (found as the lab page finds the UI) and the page."""

from __future__ import annotations

from pathlib import Path

from permeability.io.notifications.links import Links
from permeability.monitoring.events import Event
from permeability.settings import Settings

EVENT = Event(kind="drift", severity="warning", subject="1.3", run_id="8f2c/1d")


def test_a_configured_ui_and_page(home: Path) -> None:
    settings = Settings(
        home=home, mlflow_ui_url="http://mlflow.lab:5000/", page_url="http://lab:8001"
    )
    links = Links.from_settings(settings)
    assert links == Links(mlflow_ui="http://mlflow.lab:5000", page="http://lab:8001/")
    assert links.run_url(EVENT) == "http://mlflow.lab:5000/#/runs/8f2c%2F1d"


def test_a_tracking_server_is_its_own_ui_without_its_password(home: Path) -> None:
    settings = Settings.model_validate(
        {"home": home, "MLFLOW_TRACKING_URI": "https://bot:s3cret@mlflow.lab:8443/tracking"}
    )
    assert Links.from_settings(settings) == Links("https://mlflow.lab:8443/tracking", None)


def test_the_embedded_store_links_port_5000_of_the_pages_host_like_the_page(home: Path) -> None:
    settings = Settings(home=home, page_url="https://lab-server:8001/")
    assert Links.from_settings(settings).mlflow_ui == "https://lab-server:5000"
    ipv6 = Settings(home=home, page_url="http://[fd00::1]:8001/")
    assert Links.from_settings(ipv6).mlflow_ui == "http://[fd00::1]:5000"


def test_nothing_configured_means_no_links(home: Path) -> None:
    links = Links.from_settings(Settings(home=home))
    assert links == Links(None, None)
    assert links.run_url(EVENT) is None


def test_an_event_without_a_run_has_no_run_link() -> None:
    links = Links("http://mlflow.lab:5000", None)
    assert links.run_url(EVENT.model_copy(update={"run_id": None})) is None
