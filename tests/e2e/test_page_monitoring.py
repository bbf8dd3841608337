"""The lab page's monitoring view in headless Chromium against the real inference service.

The session's service (conftest.py) gets a realistic snapshot in its storage
(``tests/monitoring_snapshots.py``: a champion three months into production, drift in one
feature, a new structure, two reference films on the control chart, one out of control); the
view must show every figure with its window and sample size, draw the control chart with its
violations, in English and Spanish, and say what to run while there is no snapshot.

Screenshots go to the test artifacts; with ``PERMEABILITY_TEST_DOC_IMAGES=1`` the two of the
realistic snapshot are also written to ``docs/images/monitoring-{en,es}.png`` (docs/page.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from permeability.io.monitoring_snapshot import snapshot_path, write_snapshot
from permeability.monitoring.reports import ChartPoint, ChartSeries
from permeability.monitoring.snapshot import MonitoringSnapshot
from permeability.settings import Settings
from tests.e2e.conftest import REPO_ROOT, LabService
from tests.monitoring_snapshots import (
    CENSORED_INDEX,
    FLAGGED_FEATURE,
    IN_CONTROL,
    NEW_STRUCTURE,
    OUT_OF_CONTROL,
    RECENT_ROWS,
    RECENT_TESTS,
    VIOLATION_INDEX,
    VIOLATIONS,
    bare_snapshot,
    realistic_snapshot,
)

pytestmark = pytest.mark.e2e

DOC_IMAGES: Final = REPO_ROOT / "docs" / "images"
#: The documentation's screenshots must stay small enough to commit.
DOC_IMAGE_MAX_BYTES: Final = 300_000
#: Every part of the view that shows figures, each with its own window line.
FIGURE_PARTS: Final = (
    "#mon-window",
    "#mon-errors",
    "#mon-coverage",
    "#mon-decisions",
    "#mon-drift",
)


def _monitoring_folder(lab_service: LabService) -> Path:
    return Settings(home=lab_service.home).paths.monitoring


@pytest.fixture
def snapshot(lab_service: LabService) -> Iterator[MonitoringSnapshot]:
    """The realistic snapshot of the service's champion, removed afterwards."""
    folder = _monitoring_folder(lab_service)
    written = realistic_snapshot(champion=lab_service.version, run_id=lab_service.run_id)
    write_snapshot(folder, written)
    yield written
    snapshot_path(folder).unlink(missing_ok=True)


@pytest.fixture
def sparse_snapshot(lab_service: LabService) -> Iterator[MonitoringSnapshot]:
    """A first evaluation with nothing to judge yet: no new results, no drift, a reference film
    with too few results for limits (one of them undated), no events."""
    folder = _monitoring_folder(lab_service)
    points = [
        ChartPoint(
            when=when,
            record=f"24-{i:04d}",
            measured=4.0 + i / 10,
            value=4.0 + i / 10,
            censored=False,
            baseline=True,
            violations=[],
        )
        for i, when in enumerate(["2024-03-01", "2024-03-08", ""])
    ]
    written = bare_snapshot(
        lab_service.version,
        evaluation_id="eval-first",
        control_chart=[
            ChartSeries(
                reference="CALIBRACION",
                series="",
                scale="linear",
                center=None,
                sigma=None,
                lower_limit=None,
                upper_limit=None,
                baseline_points=0,
                points=points,
                status="too_few_points",
                note="3 results; limits need 8",
            )
        ],
    )
    write_snapshot(folder, written)
    yield written
    snapshot_path(folder).unlink(missing_ok=True)


@pytest.fixture
def no_snapshot(lab_service: LabService) -> None:
    snapshot_path(_monitoring_folder(lab_service)).unlink(missing_ok=True)


@pytest.fixture
def open_monitoring(browser: Any, lab_service: LabService) -> Iterator[Any]:
    """A fresh tab in ``locale`` on the lab page, switched to the monitoring view by its tab
    (or opened at ``#monitoring``), recording requests and script errors."""
    contexts: list[Any] = []

    def opener(locale: str = "en-US", *, by_address: bool = False, state: str = "loaded") -> Any:
        context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.requested = []
        page.on("request", lambda request: page.requested.append(request.url))
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.goto(f"{lab_service.url}/{'#monitoring' if by_address else ''}")
        page.wait_for_selector("body[data-ready='true']", timeout=15_000)
        if not by_address:
            assert page.is_visible("#view-guide")
            page.click("#tab-monitoring")
        page.wait_for_selector(f"#view-monitoring[data-state='{state}']", timeout=15_000)
        assert page.is_hidden("#view-guide")
        return page

    yield opener
    for context in contexts:
        context.close()


def _text(page: Any, selector: str) -> str:
    return " ".join((page.text_content(selector) or "").split())


def _save_screenshot(page: Any, screenshots: Path, name: str) -> None:
    path = screenshots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("PERMEABILITY_TEST_DOC_IMAGES") == "1":
        _write_doc_image(path, DOC_IMAGES / f"{name}.png")


def _write_doc_image(source: Path, target: Path) -> None:
    """The screenshot with a 256-colour palette: the page's flat colours survive it, and the
    file is a fraction of the size."""
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
            target, optimize=True
        )
    assert target.stat().st_size < DOC_IMAGE_MAX_BYTES, target.stat().st_size


def test_every_figure_shows_its_window_and_sample_size(
    open_monitoring: Any, lab_service: LabService, snapshot: MonitoringSnapshot, screenshots: Path
) -> None:
    page = open_monitoring()
    assert page.url.endswith("#monitoring")
    facts = _text(page, "#mon-facts")
    assert lab_service.version in facts
    assert "v3" in facts
    link = page.get_attribute("#mon-facts a", "href")
    assert link is not None
    assert link.endswith(f"/#/runs/{lab_service.run_id}")
    header = page.locator("#mon-window p.window")
    assert header.get_attribute("data-rows") == str(RECENT_ROWS)
    assert header.get_attribute("data-tests") == str(RECENT_TESTS)
    assert header.get_attribute("data-since") == "2024-01-01"
    text = " ".join((header.text_content() or "").split())
    assert f"{RECENT_ROWS} results" in text
    assert f"{RECENT_TESTS} tests" in text
    assert "Jan 8, 2024 – Mar 27, 2024" in text
    assert "since Jan 1, 2024" in text
    for part in FIGURE_PARTS:
        assert page.locator(f"{part} p.window[data-rows]").count() >= 1, part
    # The served guide values have their own window and size, not the recent one's.
    served = page.locator("#mon-errors p.window").nth(1)
    assert served.get_attribute("data-rows") == "57"
    assert served.get_attribute("data-first") == "2024-02-02"
    page.screenshot(path=str(screenshots / "10-monitoring-full.png"), full_page=True)
    assert [url for url in page.requested if not url.startswith(lab_service.url)] == []
    assert page.errors == []


def test_errors_coverage_decisions_and_drift_are_shown(
    open_monitoring: Any, snapshot: MonitoringSnapshot
) -> None:
    page = open_monitoring()
    mae = page.locator("#mon-errors-table tr[data-metric='mae'] td")
    assert [" ".join((mae.nth(i).text_content() or "").split()) for i in range(4)] == [
        "1.42 g/m²·day",
        "1.51 g/m²·day",
        "1.12 g/m²·day",
        "+27%",
    ]
    assert "worse" in (mae.nth(3).get_attribute("class") or "")
    assert _text(page, "#mon-errors-table tr[data-metric='median_ape'] td").startswith("11.2 %")
    coverage = _text(page, "#mon-coverage")
    assert "84% of the results fell inside their 90% interval" in coverage
    assert "Difference from its level: −6 points" in coverage
    assert page.locator("#mon-coverage .status.warn").count() == 1  # the coverage event
    approve = page.locator("#mon-decisions .badge[data-decision='approve']").first
    assert approve.get_attribute("data-count") == "81"
    decisions = _text(page, "#mon-decisions")
    assert "Wrong approvals: 2 of 81 approved samples measured above their limit" in decisions
    assert "Wrong rejections: 1 of 22 rejected samples" in decisions
    flagged = page.locator(f"#mon-drift tr.flagged[data-feature='{FLAGGED_FEATURE}']").first
    cells = " ".join((flagged.text_content() or "").split())
    assert "Mean caliper" in cells
    assert "0.41" in cells
    assert "2.4e-8" in cells
    assert "Drift flagged in 2 of 6 comparisons." in _text(page, "#mon-drift")
    assert page.get_attribute("#mon-new-structures li", "data-structure") == NEW_STRUCTURE
    assert "BOPP/MET/PE: 9 results" in _text(page, "#mon-new-structures")


def test_the_control_chart_marks_violations_and_censored_results(
    open_monitoring: Any, snapshot: MonitoringSnapshot, screenshots: Path
) -> None:
    page = open_monitoring()
    out = page.locator(f"#mon-chart figure.series[data-reference='{OUT_OF_CONTROL[0]}']")
    steady = page.locator(f"#mon-chart figure.series[data-reference='{IN_CONTROL[0]}']")
    assert out.get_attribute("data-status") == "out_of_control"
    assert "Out of control" in (out.locator(".badge").text_content() or "")
    assert steady.get_attribute("data-status") == "in_control"
    charted = snapshot.control_chart[0]
    assert out.locator("svg g.chart-point").count() == len(charted.points)
    assert out.locator("svg g.chart-point.violation").count() == VIOLATIONS
    assert out.locator("svg g.chart-point.violation circle.ring").count() == VIOLATIONS
    assert out.locator("svg line.control-limit").count() == 2
    assert out.locator("svg line.centre").count() == 1
    beyond = out.locator("svg g.chart-point").nth(VIOLATION_INDEX)
    assert beyond.get_attribute("data-violations") == "1,2,3"
    title = " ".join((beyond.locator("title").text_content() or "").split())
    point = charted.points[VIOLATION_INDEX]
    assert f"{point.measured:.3g} g/m²·day" in title
    assert "rule 1: beyond 3σ" in title
    assert "Mar" in title  # its date, in words
    # The point is drawn above the upper control limit (SVG y grows downwards).
    limit_y = min(
        float(out.locator("svg line.control-limit").nth(i).get_attribute("y1") or 0)
        for i in range(2)
    )
    assert float(beyond.locator("circle.dot").get_attribute("cy") or 0) < limit_y
    assert steady.locator("svg g.chart-point.violation").count() == 0
    censored = steady.locator("svg g.chart-point.censored")
    assert censored.count() == 1
    assert (
        censored.get_attribute("data-when") == snapshot.control_chart[1].points[CENSORED_INDEX].when
    )
    fill = censored.locator("circle.dot").evaluate("c => getComputedStyle(c).fill")
    assert fill in ("rgb(255, 255, 255)", "#ffffff")  # hollow
    assert out.locator("p.window").get_attribute("data-rows") == str(len(charted.points))
    assert "the first 20 set the limits" in (out.locator("p.window").text_content() or "")
    assert snapshot.control_chart[0].note in (out.locator("figcaption").text_content() or "")
    events = page.locator("#mon-events li.event")
    assert events.count() == len(snapshot.events)
    assert events.first.get_attribute("data-kind") == "reference_out_of_control"
    assert events.first.get_attribute("data-severity") == "critical"
    assert _text(page, "#mon-flag") == "3"  # warnings and critical events, on the tab
    out.screenshot(path=str(screenshots / "11-control-chart.png"))


def test_both_languages_and_the_documentation_screenshots(
    open_monitoring: Any, snapshot: MonitoringSnapshot, screenshots: Path
) -> None:
    page = open_monitoring("es-ES", by_address=True)
    assert _text(page, "#tab-monitoring").startswith("Seguimiento")
    header = _text(page, "#mon-window")
    assert f"{RECENT_ROWS} resultados" in header
    assert f"{RECENT_TESTS} ensayos" in header
    assert "desde 1 ene 2024" in header
    assert "Fuera de control" in _text(page, "#mon-chart")
    assert "Bajo control" in _text(page, "#mon-chart")
    assert "Aprobar: 81" in _text(page, "#mon-decisions")
    assert "Calibre promedio" in _text(page, "#mon-drift")
    assert "1,42 g/m²·día" in _text(page, "#mon-errors-table")
    _save_screenshot(page, screenshots, "monitoring-es")
    page.click("[data-lang='en']")
    assert _text(page, "#tab-monitoring").startswith("Monitoring")
    assert f"{RECENT_ROWS} results" in _text(page, "#mon-window")
    assert "Out of control" in _text(page, "#mon-chart")
    assert "1.42 g/m²·day" in _text(page, "#mon-errors-table")
    _save_screenshot(page, screenshots, "monitoring-en")
    assert page.errors == []


def test_a_first_evaluation_with_nothing_to_judge_says_what_is_missing(
    open_monitoring: Any, sparse_snapshot: MonitoringSnapshot
) -> None:
    page = open_monitoring()
    assert "No new lab results to judge the champion on yet." in _text(page, "#mon-coverage")
    assert "No new lab results" in _text(page, "#mon-decisions")
    assert "Drift was not assessed" in _text(page, "#mon-drift")
    assert "dates unknown" in _text(page, "#mon-window")
    assert page.locator("#mon-errors-table tr[data-metric='mae'] td").first.text_content() == "–"
    chart = page.locator("#mon-chart figure.series")
    assert chart.get_attribute("data-status") == "too_few_points"
    assert "Too few results for limits" in _text(page, "#mon-chart")
    assert "3 results; limits need 8" in _text(page, "#mon-chart")
    assert chart.locator("svg g.chart-point").count() == 3
    assert chart.locator("svg line.control-limit").count() == 0
    assert "Nothing to report" in _text(page, "#mon-events")
    assert page.is_hidden("#mon-flag")
    assert page.errors == []


@pytest.mark.parametrize(
    ("locale", "sentence"),
    [
        ("en-US", "No evaluation to show yet. Run `permeability evaluate` (or schedule it)"),
        (
            "es-ES",
            "Todavía no hay ninguna evaluación que mostrar. Ejecute `permeability evaluate`",
        ),
    ],
)
def test_without_a_snapshot_the_view_says_what_to_run(
    open_monitoring: Any, no_snapshot: None, screenshots: Path, locale: str, sentence: str
) -> None:
    page = open_monitoring(locale, state="empty")
    assert page.is_visible("#mon-empty")
    assert sentence in _text(page, "#mon-empty")
    # The service's own sentence (NoSnapshotError) is shown too, for a file that cannot be read.
    assert "no evaluation has been recorded yet" in _text(page, "#mon-empty .detail")
    assert page.is_hidden("#mon-body")
    assert page.is_hidden("#mon-flag")
    page.click("#tab-guide")
    assert page.is_visible("#view-guide")
    assert page.is_hidden("#view-monitoring")
    assert not page.url.endswith("#monitoring")
    page.click("#tab-monitoring")
    page.screenshot(path=str(screenshots / f"12-monitoring-empty-{locale}.png"), full_page=True)
    assert page.errors == []
