"""Messages: every kind worded in both languages, with its figures, links and what to do."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from permeability.monitoring.events import EVENT_KINDS, Event, EventKind, Figure
from permeability.monitoring.message_templates import LANGUAGES, TEMPLATES, Language
from permeability.monitoring.messages import FIGURE_KEYS, FIGURES, format_figure, render

RUN_URL = "http://mlflow.lab:5000/#/runs/8f2c1d9e"
PAGE_URL = "http://lab-server:8001/"

#: Every kind with every figure its producers give (the contract in FIGURE_KEYS).
FULL: dict[EventKind, dict[str, Figure]] = {
    "drift": {
        "version": "1.3",
        "features": "Grados_C, Porc_Humedad",
        "new_structures": "PET/ALU-X",
        "rows": 212,
        "reference_rows": 4810,
        "largest_psi": 0.4132,
    },
    "degradation": {
        "version": "1.3",
        "metric": "mae",
        "recent": 0.4213,
        "trained": 0.3215,
        "change": 0.31,
        "rows": 96,
        "tests": 31,
        "margin": 0.25,
        "first": "2026-02-01",
        "last": "2026-03-01",
    },
    "coverage": {
        "version": "1.3",
        "coverage": 0.71,
        "level": 0.9,
        "band_low": 0.85,
        "band_high": 0.95,
        "rows": 120,
        "tests": 40,
        "p_value": 0.00042,
        "first": "2026-02-01",
        "last": "2026-03-01",
    },
    "new_structure": {"structures": "PET/ALU-X (12)", "rows": 12, "version": "1.3"},
    "job_failed": {
        "job": "nightly",
        "kind": "evaluate",
        "error": "feature store locked",
        "when": "2026-03-04T02:00:00+00:00",
    },
    "promoted": {
        "version": "1.4",
        "previous": "1.3",
        "reason": "MAE 0.2871 < 0.3356",
        "metric": "mae",
        "value": 0.2871,
    },
    "reference_out_of_control": {
        "reference": "NIST-ROJA",
        "series": "lote 7",
        "rules": "1,4",
        "value": 12.84,
        "lower": 9.71,
        "upper": 12.2,
        "when": "2026-03-03",
        "points": 27,
        "center": 10.9,
        "record": "48213",
    },
    "approval_needed": {
        "challenger": "1.4",
        "champion": "1.3",
        "metric": "mae",
        "challenger_value": 0.2871,
        "champion_value": 0.3356,
        "improvement": 0.1445,
        "tests": 18,
        "reason": "MAE 0.2871 < 0.3356 - 5 %",
    },
    "test": {"channel": "lab-mail"},
}
SUBJECTS: dict[EventKind, str] = {
    "drift": "1.3",
    "degradation": "1.3",
    "coverage": "1.3",
    "new_structure": "PET/ALU-X",
    "job_failed": "nightly",
    "promoted": "1.4",
    "reference_out_of_control": "NIST-ROJA / lote 7",
    "approval_needed": "1.4",
    "test": "lab-mail",
}
WHEN = datetime(2026, 3, 4, 2, 15, tzinfo=UTC)


def full_event(kind: EventKind, **extra: object) -> Event:
    return Event.model_validate(
        {
            "kind": kind,
            "severity": "warning",
            "subject": SUBJECTS[kind],
            "figures": FULL[kind],
            "run_id": "8f2c1d9e",
            "occurred_at": WHEN,
            **extra,
        }
    )


def test_the_tables_cover_every_kind_and_language() -> None:
    assert set(FULL) == set(EVENT_KINDS) == set(FIGURE_KEYS)
    for language in LANGUAGES:
        assert set(TEMPLATES[language]) == set(EVENT_KINDS)
    for kind, keys in FIGURE_KEYS.items():
        assert set(keys) <= set(FIGURES), kind
        assert set(FULL[kind]) == set(keys), kind


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_every_kind_shows_its_figures_links_and_what_to_do(
    kind: EventKind, language: Language
) -> None:
    message = render(full_event(kind), language, run_url=RUN_URL, page_url=PAGE_URL)
    text = message.text()

    assert [f.key for f in message.figures] == list(FIGURE_KEYS[kind])
    for figure in message.figures:
        assert f"{figure.label}: {figure.value}" in text
        assert figure.label == FIGURES[figure.key].label(language)
    template = TEMPLATES[language][kind]
    assert message.summary != template.what_short.format(subject=SUBJECTS[kind])
    assert "{" not in text
    assert "}" not in text
    assert SUBJECTS[kind] in message.title
    assert RUN_URL in text
    assert PAGE_URL in text
    assert [link.url for link in message.links] == [RUN_URL, PAGE_URL]
    assert message.action
    assert message.action in text
    assert message.subject_line.startswith("[permeability] ")
    assert "2026-03-04 02:15 UTC" in message.footer


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_spanish_messages_are_in_spanish_and_english_ones_in_english(kind: EventKind) -> None:
    es = render(full_event(kind), "es", run_url=RUN_URL, page_url=PAGE_URL).text()
    en = render(full_event(kind), "en", run_url=RUN_URL, page_url=PAGE_URL).text()

    assert "Qué hacer:" in es
    assert "Ejecución en MLflow" in es
    assert "Página del laboratorio" in es
    assert "What to do:" in en
    assert "MLflow run" in en
    assert "Lab page" in en
    spanish = {" de ", " el ", " la ", " los ", " las ", " en ", " del ", " que ", " su ", " con "}
    english = {" the ", " of ", " and ", " with ", " is ", " was ", " to ", " you "}
    es_words, en_words = f" {es.lower()} ", f" {en.lower()} "
    assert any(w in es_words for w in spanish)
    assert not any(w in es_words for w in english - {" is "}), es
    assert any(w in en_words for w in english)
    assert "Qué" not in en


def test_figures_are_written_in_each_language_notation() -> None:
    degradation = full_event("degradation")
    es = render(degradation, "es")
    en = render(degradation, "en")
    assert es.summary == (
        "En 31 ensayos nuevos (96 filas) su MAE es 0,4213, frente a 0,3215 en el "
        "entrenamiento (+31 %)."
    )
    assert en.summary == (
        "On 31 new tests (96 rows) its MAE is 0.4213, against 0.3215 at training (+31%)."
    )
    drift_en = render(full_event("drift"), "en")
    drift_es = render(full_event("drift"), "es")
    assert "4,810 rows" in drift_en.summary
    assert "4810 filas" in drift_es.summary


@pytest.mark.parametrize(
    ("key", "value", "es", "en"),
    [
        ("rows", 12345, "12.345", "12,345"),
        ("rows", 1234, "1234", "1,234"),
        ("recent", 0.0123456, "0,01235", "0.01235"),
        ("recent", 2.0, "2", "2"),
        ("recent", 1234.5, "1234", "1,234"),
        ("coverage", 0.875, "88 %", "88%"),
        ("coverage", 0.05, "5 %", "5%"),
        ("coverage", 0.005, "0,5 %", "0.5%"),
        ("change", -0.12, "-12 %", "-12%"),
        ("change", 0.31, "+31 %", "+31%"),
        ("metric", "r2", "R²", "R²"),
        ("metric", "pinball", "pinball", "pinball"),
        ("rules", "1,4", "1 y 4", "1 and 4"),
        ("rules", "1,2,4", "1, 2 y 4", "1, 2 and 4"),
        ("rules", "3", "3", "3"),
        ("version", None, "—", "—"),
        ("unlisted", 3.14159, "3,142", "3.142"),
    ],
)
def test_format_figure(key: str, value: Figure, es: str, en: str) -> None:
    assert format_figure(key, value, "es") == es
    assert format_figure(key, value, "en") == en


def test_reference_values_carry_their_unit() -> None:
    message = render(full_event("reference_out_of_control"), "es")
    shown = {f.key: f.value for f in message.figures}
    assert shown["value"] == "12,84 g/m²·día"
    assert shown["lower"] == "9,71 g/m²·día"
    assert shown["rules"] == "1 y 4"
    assert "regla(s) 1 y 4" in message.summary


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_missing_figures_fall_back_to_a_plainer_sentence(
    kind: EventKind, language: Language
) -> None:
    bare = Event(kind=kind, severity="info", subject=SUBJECTS[kind], occurred_at=WHEN)
    message = render(bare, language)
    template = TEMPLATES[language][kind]

    assert message.figures == ()
    assert message.summary == template.what_short.format(subject=SUBJECTS[kind])
    assert "{" not in message.text()
    assert message.links == ()


def test_a_partial_event_shows_what_is_there_and_keeps_unknown_figures() -> None:
    partial = Event(
        kind="degradation",
        severity="critical",
        subject="1.3",
        figures={"version": "1.3", "recent": 0.42, "shift": "night"},
        occurred_at=WHEN,
    )
    message = render(partial, "en")
    assert [(f.key, f.label, f.value) for f in message.figures] == [
        ("version", "Version", "1.3"),
        ("recent", "Recent", "0.42"),
        ("shift", "shift", "night"),
    ]
    assert message.summary == "Champion 1.3 does worse on new lab results than at its training."
    assert message.severity_label == "Critical"


def test_an_empty_figure_does_not_leave_a_hole_in_the_sentence() -> None:
    figures = {**FULL["drift"], "features": ""}
    event = Event(kind="drift", severity="warning", subject="1.3", figures=figures)
    summary = render(event, "en").summary
    assert summary == "Recent lab results differ from the data model 1.3 was trained on."


def test_without_a_run_link_the_run_id_is_still_named() -> None:
    message = render(full_event("promoted"), "en", page_url=PAGE_URL)
    assert [link.label for link in message.links] == ["Lab page"]
    assert "Run 8f2c1d9e" in message.footer
    assert "`permeability promote 1.3`" in message.action
