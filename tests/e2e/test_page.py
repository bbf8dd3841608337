"""The lab page in headless Chromium against a real inference service (see conftest.py).

A technician's three jobs: fill the form and read the decision, see a bad value explained
next to its field, upload a file and download the scored result. Each state is saved as a
screenshot under the test artifacts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.e2e.conftest import LabService, sample

pytestmark = pytest.mark.e2e

DECISION_WORDS = {
    "en": {"approve": "Approve", "reject": "Reject", "retest": "Retest", "none": "No decision"},
    "es": {
        "approve": "Aprobar",
        "reject": "Rechazar",
        "retest": "Reensayar",
        "none": "Sin decisión",
    },
}
SCORED_COLUMNS = ["prediction", "lower", "upper", "p_exceed", "decision", "error"]


@pytest.fixture
def open_page(browser: Any, lab_service: LabService) -> Iterator[Any]:
    """A fresh browser tab in the given locale on the lab page, recording every request."""
    contexts: list[Any] = []

    def opener(locale: str = "en-US") -> Any:
        context = browser.new_context(
            locale=locale, viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.requested = []
        page.on("request", lambda request: page.requested.append(request.url))
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.goto(f"{lab_service.url}/")
        page.wait_for_selector("body[data-ready='true']", timeout=15_000)
        return page

    yield opener
    for context in contexts:
        context.close()


def fill_sample(page: Any, record: dict[str, Any], *, typed_mean: str | None = None) -> None:
    page.fill("#f-Muestra", str(record["Muestra"]))
    page.select_option("#f-Estructura", record["Estructura"])
    page.fill("#f-Grados_C", str(record["Grados_C"]))
    page.fill("#f-Porc_Humedad", str(record["Porc_Humedad"]))
    for i in range(1, 6):
        page.fill(f"#f-Calibre{i}", str(record[f"Calibre{i}"]))
    if typed_mean is not None:
        page.fill("#f-CalibreProm", typed_mean)


def submit_and_wait_for_answer(page: Any) -> None:
    page.click("#predict")
    page.wait_for_selector("#result-body:not([hidden])", timeout=15_000)


def number_in(text: str) -> float:
    match = re.search(r"\d[\d,]*(?:\.\d+)?", text)
    assert match, text
    return float(match.group(0).replace(",", ""))


def test_page_loads_offline_with_the_champion_and_its_context(
    open_page: Any, lab_service: LabService, screenshots: Path
) -> None:
    page = open_page()
    assert page.input_value("#version") == lab_service.version
    assert "champion" in page.text_content("#version option:checked")
    structures = page.eval_on_selector_all("#f-Estructura option", "os => os.map(o => o.value)")
    assert {"BOPP", "LDPE"} <= set(structures)
    assert f"{lab_service.n_train:,}" in page.text_content("#fact-n-train")
    assert "g/m²·day" in page.text_content("#fact-mae")
    assert "%" in page.text_content("#fact-coverage")
    assert page.text_content("#fact-trained") != "–"
    link = page.get_attribute("#fact-run a", "href")
    assert link is not None
    assert link.endswith(f"/#/runs/{lab_service.run_id}")
    page.screenshot(path=str(screenshots / "01-page-loaded.png"), full_page=True)
    foreign = [url for url in page.requested if not url.startswith(lab_service.url)]
    assert foreign == []
    assert page.errors == []


@pytest.mark.parametrize("decision", ["approve", "reject", "retest", "none"])
def test_one_sample_shows_the_decision_in_words_and_colour(
    open_page: Any, lab_service: LabService, screenshots: Path, decision: str
) -> None:
    record = lab_service.samples[decision]
    expected = lab_service.infer(record)
    assert (expected["decision"] or "none") == decision  # the fixture's limits work as meant
    page = open_page()
    fill_sample(page, record)
    assert number_in(page.input_value("#f-CalibreProm")) == record["CalibreProm"]
    submit_and_wait_for_answer(page)
    box = page.locator("#decision")
    assert box.get_attribute("data-decision") == decision
    assert decision in (box.get_attribute("class") or "").split()
    assert page.text_content("#decision-word") == DECISION_WORDS["en"][decision]
    shown = number_in(page.text_content("#r-prediction") or "")
    assert shown == pytest.approx(expected["prediction"]["value"], rel=0.01)
    assert "g/m²·day" in (page.text_content("#r-prediction") or "")
    interval = page.text_content("#r-interval") or ""
    assert "–" in interval
    assert "90%" in (page.text_content("#r-interval-label") or "")
    explanation = page.text_content("#decision-text") or ""
    if decision == "none":
        assert "no specification limit for LDPE" in explanation
        assert page.locator("#chart line.limit").count() == 0
    else:
        assert "%" in explanation
        assert "%" in (page.text_content("#r-p-exceed") or "")
        assert number_in(page.text_content("#r-limit") or "") == pytest.approx(
            expected["specification"]["limit"], rel=0.01
        )
        assert page.locator("#chart line.limit").count() == 1
    assert page.locator("#chart rect.band").count() == 1
    page.screenshot(path=str(screenshots / f"02-one-sample-{decision}.png"), full_page=True)


def test_no_decision_says_when_the_test_conditions_do_not_match_the_limit(
    open_page: Any, lab_service: LabService
) -> None:
    page = open_page()
    record = {**lab_service.samples["approve"], "Grados_C": 23.0, "Porc_Humedad": 50.0}
    fill_sample(page, record)
    submit_and_wait_for_answer(page)
    assert page.get_attribute("#decision", "data-decision") == "none"
    explanation = page.text_content("#decision-text") or ""
    assert "stated at 38 ± 1 °C / 90 ± 2 % RH" in explanation
    assert "tested at 23 °C / 50 % RH" in explanation
    assert page.text_content("#r-limit") == "none for this sample"


@pytest.mark.parametrize(
    ("locale", "message"),
    [
        ("en-US", "Humidity must be between 0 and 100 % (above 0)."),
        ("es-ES", "La humedad debe estar entre 0 y 100 % (mayor que 0)."),
    ],
)
def test_a_bad_humidity_is_explained_next_to_its_field(
    open_page: Any, lab_service: LabService, screenshots: Path, locale: str, message: str
) -> None:
    page = open_page(locale)
    fill_sample(page, {**lab_service.samples["approve"], "Porc_Humedad": 120})
    page.click("#predict")
    error = page.locator("#e-Porc_Humedad")
    error.wait_for(state="visible", timeout=15_000)
    assert error.text_content() == message
    assert "invalid" in (page.get_attribute("[data-field='Porc_Humedad']", "class") or "")
    assert page.get_attribute("#f-Porc_Humedad", "aria-invalid") == "true"
    assert page.is_hidden("#result-body")
    assert page.text_content("#e-Grados_C") == ""
    page.screenshot(path=str(screenshots / f"03-field-error-{locale}.png"), full_page=True)


def test_a_typed_mean_that_disagrees_is_flagged_at_once_and_by_the_service(
    open_page: Any, lab_service: LabService, screenshots: Path
) -> None:
    page = open_page()
    record = sample(20.0, muestra=77)
    fill_sample(page, record, typed_mean="25")
    note = page.text_content("#mean-note") or ""
    assert "Differs from the mean of the readings (20 µm)" in note
    page.click("#predict")
    error = page.locator("#e-CalibreProm")
    error.wait_for(state="visible", timeout=15_000)
    assert error.text_content() == "Does not match the readings: their mean is 20 µm."
    page.screenshot(path=str(screenshots / "04-caliper-mean-error.png"), full_page=True)
    page.click("#use-mean")
    assert number_in(page.input_value("#f-CalibreProm")) == 20.0
    assert "Differs" not in (page.text_content("#mean-note") or "")


def test_text_in_a_number_field_and_an_empty_field_are_named(
    open_page: Any, lab_service: LabService
) -> None:
    page = open_page()
    fill_sample(page, {**lab_service.samples["approve"], "Grados_C": "warm"})
    page.fill("#f-Calibre3", "")
    page.click("#predict")
    page.locator("#e-Grados_C").wait_for(state="visible", timeout=15_000)
    assert page.text_content("#e-Grados_C") == "Enter a number, e.g. 25.6."
    assert page.text_content("#e-Calibre3") == "Required."


def _lab_file(service: LabService) -> pd.DataFrame:
    bad = {**service.samples["approve"], "Muestra": 903, "Porc_Humedad": 150}
    gap = {**service.samples["none"], "Muestra": 905, "Calibre3": None}
    rows = [service.samples[d] for d in ("approve", "reject")] + [bad, service.samples["none"]]
    rows.append(gap)
    columns = ["Muestra", "Grados_C", "Porc_Humedad", "Estructura"]
    columns += [f"Calibre{i}" for i in range(1, 6)] + ["CalibreProm"]
    return pd.DataFrame(rows)[columns]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_whole_file_is_scored_shown_and_downloaded(
    open_page: Any, lab_service: LabService, screenshots: Path, tmp_path: Path, suffix: str
) -> None:
    frame = _lab_file(lab_service)
    upload = tmp_path / f"lab_export{suffix}"
    if suffix == ".csv":
        frame.to_csv(upload, index=False)
    else:
        frame.to_excel(upload, index=False)
    page = open_page()
    page.set_input_files("#batch-file", str(upload))
    page.click("#batch-submit")
    page.wait_for_selector("#batch-table:not([hidden])", timeout=30_000)
    rows = page.locator("#batch-table tbody tr")
    assert rows.count() == len(frame)
    first_cells = [rows.nth(i).locator("td").first.text_content() for i in range(rows.count())]
    assert first_cells == [str(m) for m in frame["Muestra"]]
    badges = [rows.nth(i).locator(".badge").all_text_contents() for i in range(rows.count())]
    assert badges == [["✓ Approve"], ["✗ Reject"], [], ["– No decision"], ["– No decision"]]
    assert "failed" in (rows.nth(2).get_attribute("class") or "")
    shown_error = rows.nth(2).locator("td.row-error")
    assert (
        shown_error.text_content()
        == "Porc_Humedad: Humidity must be between 0 and 100 % (above 0)."
    )
    assert "150" in (shown_error.get_attribute("title") or "")  # the service's own words
    assert rows.nth(4).locator("td.row-note").text_content() == (
        "Calibre3 missing: filled with the mean of the other readings."
    )
    summary = page.text_content("#batch-summary") or ""
    assert "5 rows" in summary
    assert "1 with errors" in summary
    page.screenshot(path=str(screenshots / f"05-file-scored{suffix}.png"), full_page=True)

    with page.expect_download() as download_info:
        page.click("#batch-download")
    download = download_info.value
    assert download.suggested_filename == "lab_export_scored.csv"
    saved = tmp_path / "downloaded.csv"
    download.save_as(str(saved))
    result = pd.read_csv(saved, encoding="utf-8-sig", keep_default_na=False)
    assert list(result["Muestra"].astype(int)) == list(frame["Muestra"])
    assert set(SCORED_COLUMNS) <= set(result.columns)
    assert list(result["decision"]) == ["approve", "reject", "", "", ""]
    errors = list(result["error"])
    assert errors[0] == errors[1] == errors[3] == errors[4] == ""
    assert str(result.loc[4, "filled"]).startswith("Calibre3 filled with the mean")
    assert "Porc_Humedad" in errors[2]
    assert result.loc[2, "prediction"] == ""
    assert float(str(result.loc[0, "prediction"])) > 0


def test_a_long_file_shows_its_first_rows_and_downloads_them_all(
    open_page: Any, lab_service: LabService, tmp_path: Path
) -> None:
    frame = pd.concat([_lab_file(lab_service)] * 300, ignore_index=True)
    frame["Muestra"] = range(10_000, 10_000 + len(frame))
    upload = tmp_path / "back_catalogue.csv"
    frame.to_csv(upload, index=False)
    page = open_page()
    page.set_input_files("#batch-file", str(upload))
    page.click("#batch-submit")
    page.wait_for_selector("#batch-table:not([hidden])", timeout=60_000)
    assert page.locator("#batch-table tbody tr").count() == 1000
    assert page.text_content("#batch-truncated") == (
        "Showing the first 1,000 of 1,500 rows; the download has them all."
    )
    assert "1,500 rows scored" in (page.text_content("#batch-summary") or "")
    with page.expect_download() as download_info:
        page.click("#batch-download")
    saved = tmp_path / "all.csv"
    download_info.value.save_as(str(saved))
    result = pd.read_csv(saved, encoding="utf-8-sig", keep_default_na=False)
    assert list(result["Muestra"]) == list(frame["Muestra"])


def test_the_file_section_says_what_is_missing(open_page: Any, lab_service: LabService) -> None:
    page = open_page()
    page.click("#batch-submit")
    assert page.text_content("#batch-error") == "Choose a .csv or .xlsx file first."
    assert page.is_disabled("#batch-download")


def test_spanish_follows_the_browser_and_the_switch_changes_it(
    open_page: Any, lab_service: LabService, screenshots: Path
) -> None:
    page = open_page("es-ES")
    assert page.text_content("h1") == "Permeabilidad al vapor de agua: valor guía"
    assert page.get_attribute("html", "lang") == "es"
    fill_sample(page, lab_service.samples["approve"])
    submit_and_wait_for_answer(page)
    assert page.text_content("#decision-word") == DECISION_WORDS["es"]["approve"]
    assert "g/m²·día" in (page.text_content("#r-prediction") or "")
    assert "% HR" in (page.text_content("#r-limit") or "")
    page.screenshot(path=str(screenshots / "06-one-sample-es.png"), full_page=True)
    page.click("[data-lang='en']")
    assert page.text_content("h1") == "Water-vapour permeability: guide value"
    assert page.text_content("#decision-word") == DECISION_WORDS["en"]["approve"]
    page.reload()
    page.wait_for_selector("body[data-ready='true']")
    assert page.get_attribute("html", "lang") == "en"  # the choice is remembered
