"""Word an :class:`~permeability.monitoring.events.Event` for people, in Spanish or English.

A message is short: a title (the e-mail subject, the card's heading), what happened in one
sentence, the figures, what to do, and the links (the MLflow run that found it, the lab page).
The sentences are in :mod:`~permeability.monitoring.message_templates` (one per kind and
language); the figures each kind carries are declared once here, with their labels and formats,
in :data:`FIGURE_KEYS` and :data:`FIGURES` (docs/monitoring.md lists them for whoever raises
events).

Producers of events live in several modules and may leave a figure out: the wording never
fails on a missing figure. The sentence that needs it falls back to a plainer one that only
names the subject, the figures shown are those present, and a figure no table knows is still
shown under its own key (nothing an event carries is silently dropped).

Pure: text in, text out; URLs are given by the caller.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from permeability.monitoring.events import Event, EventKind, Figure, Severity
from permeability.monitoring.message_templates import TEMPLATES, WORDS, Language

#: How a figure is shown: a count, a measured number, a fraction as a percentage, a relative
#: change with its sign, a metric's name, a comma list read aloud ("1,4" → "1 y 4": a Spanish
#: reader would take "1,4" for a number), or text as given.
FigureFormat = Literal["count", "number", "percent", "change", "metric", "list", "text"]


@dataclass(frozen=True)
class FigureSpec:
    """A figure key's label in each language and how its value is written."""

    format: FigureFormat
    es: str
    en: str

    def label(self, language: Language) -> str:
        return self.es if language == "es" else self.en


#: Every figure key any event kind carries: label and format (one place for all kinds).
FIGURES: Final[Mapping[str, FigureSpec]] = {
    "version": FigureSpec("text", "Versión", "Version"),
    "features": FigureSpec("text", "Variables con deriva", "Drifting features"),
    "new_structures": FigureSpec("text", "Estructuras nuevas", "New structures"),
    "rows": FigureSpec("count", "Filas", "Rows"),
    "reference_rows": FigureSpec("count", "Filas de referencia", "Reference rows"),
    "metric": FigureSpec("metric", "Métrica", "Metric"),
    "recent": FigureSpec("number", "Reciente", "Recent"),
    "trained": FigureSpec("number", "En el entrenamiento", "At training"),
    "change": FigureSpec("change", "Cambio", "Change"),
    "tests": FigureSpec("count", "Ensayos", "Tests"),
    "coverage": FigureSpec("percent", "Cobertura", "Coverage"),
    "level": FigureSpec("percent", "Nivel", "Level"),
    "band_low": FigureSpec("percent", "Banda, mínimo", "Band, low"),
    "band_high": FigureSpec("percent", "Banda, máximo", "Band, high"),
    "structures": FigureSpec("text", "Estructuras", "Structures"),
    "job": FigureSpec("text", "Tarea", "Job"),
    "kind": FigureSpec("text", "Tipo", "Kind"),
    "error": FigureSpec("text", "Error", "Error"),
    "previous": FigureSpec("text", "Campeón anterior", "Previous champion"),
    "reason": FigureSpec("text", "Motivo", "Reason"),
    "value": FigureSpec("number", "Valor", "Value"),
    "reference": FigureSpec("text", "Referencia", "Reference"),
    "series": FigureSpec("text", "Serie", "Series"),
    "rules": FigureSpec("list", "Reglas incumplidas", "Rules broken"),
    "lower": FigureSpec("number", "Límite inferior", "Lower limit"),
    "upper": FigureSpec("number", "Límite superior", "Upper limit"),
    "when": FigureSpec("text", "Fecha", "Date"),
    "points": FigureSpec("count", "Puntos", "Points"),
    "challenger": FigureSpec("text", "Retador", "Challenger"),
    "champion": FigureSpec("text", "Campeón", "Champion"),
    "challenger_value": FigureSpec("number", "Retador, valor", "Challenger, value"),
    "champion_value": FigureSpec("number", "Campeón, valor", "Champion, value"),
    "improvement": FigureSpec("percent", "Mejora", "Improvement"),
    "channel": FigureSpec("text", "Canal", "Channel"),
    "largest_psi": FigureSpec("number", "PSI máximo", "Largest PSI"),
    "margin": FigureSpec("percent", "Margen", "Margin"),
    "p_value": FigureSpec("number", "Valor p", "p-value"),
    "first": FigureSpec("text", "Primer resultado", "First result"),
    "last": FigureSpec("text", "Último resultado", "Last result"),
    "center": FigureSpec("number", "Centro", "Centre"),
    "record": FigureSpec("text", "Registro", "Record"),
}

#: The figures of each kind, in the order a message shows them. Producers use these keys; the
#: ones after the first few of a kind are optional extras (``metric`` and ``value`` of
#: ``promoted``; ``largest_psi``; ``margin``, ``p_value``, ``first`` and ``last`` of the window;
#: ``center`` and ``record`` of a chart point). ``value``, ``center``, ``lower`` and ``upper`` of a
#: reference film are WVTR in g/m²·day; ``coverage``, ``level``, ``band_*``, ``change``,
#: ``margin`` and ``improvement`` are fractions (0.31 is 31 %).
FIGURE_KEYS: Final[Mapping[EventKind, tuple[str, ...]]] = {
    "drift": ("version", "features", "new_structures", "rows", "reference_rows", "largest_psi"),
    "degradation": (
        "version",
        "metric",
        "recent",
        "trained",
        "change",
        "rows",
        "tests",
        "margin",
        "first",
        "last",
    ),
    "coverage": (
        "version",
        "coverage",
        "level",
        "band_low",
        "band_high",
        "rows",
        "tests",
        "p_value",
        "first",
        "last",
    ),
    "new_structure": ("structures", "rows", "version"),
    "job_failed": ("job", "kind", "error", "when"),
    "promoted": ("version", "previous", "reason", "metric", "value"),
    "reference_out_of_control": (
        "reference",
        "series",
        "rules",
        "value",
        "lower",
        "upper",
        "when",
        "points",
        "center",
        "record",
    ),
    "approval_needed": (
        "challenger",
        "champion",
        "metric",
        "challenger_value",
        "champion_value",
        "improvement",
        "tests",
        "reason",
    ),
    "test": ("channel",),
}

#: Units written after a figure's value, per kind (the reference film's WVTR).
_UNITS: Final[Mapping[EventKind, Mapping[str, Mapping[Language, str]]]] = {
    "reference_out_of_control": {
        key: {"es": "g/m²·día", "en": "g/m²·day"} for key in ("value", "center", "lower", "upper")
    },
}

_METRIC_NAMES: Final = {
    "mae": "MAE",
    "mse": "MSE",
    "rmse": "RMSE",
    "mape": "MAPE",
    "median_ape": "median APE",
    "r2": "R²",
    "r2_log": "R² (log)",
}


class ShownFigure(BaseModel):
    """One figure as the message shows it."""

    model_config = ConfigDict(frozen=True)

    key: str
    label: str
    value: str


class Link(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str
    url: str


class Message(BaseModel):
    """An event worded for people; every channel lays out the same parts its own way."""

    model_config = ConfigDict(frozen=True)

    language: Language
    kind: EventKind
    severity: Severity
    severity_label: str
    title: str
    summary: str
    figures: tuple[ShownFigure, ...]
    action_label: str
    action: str
    links: tuple[Link, ...]
    footer: str

    @property
    def subject_line(self) -> str:
        """The e-mail subject: severity, then the title."""
        return f"[permeability] {self.severity_label}: {self.title}"

    def text(self) -> str:
        """The message as plain text (e-mail body, chat fallback)."""
        lines = [self.title, "", self.summary]
        if self.figures:
            lines += ["", *(f"- {f.label}: {f.value}" for f in self.figures)]
        lines += ["", f"{self.action_label}: {self.action}"]
        if self.links:
            lines += ["", *(f"{link.label}: {link.url}" for link in self.links)]
        lines += ["", f"-- {self.footer}"]
        return "\n".join(lines)


def render(
    event: Event, language: Language, *, run_url: str | None = None, page_url: str | None = None
) -> Message:
    """Word ``event`` in ``language``; ``run_url`` and ``page_url`` become its links."""
    template = TEMPLATES[language][event.kind]
    words = WORDS[language]
    # An empty or absent figure leaves a sentence without its number: its plainer form is used.
    shown = {
        key: format_figure(key, value, language)
        for key, value in event.figures.items()
        if value is not None and value != ""
    }
    shown["subject"] = event.subject
    links = [Link(label=words["run"], url=run_url)] if run_url else []
    if page_url:
        links.append(Link(label=words["page"], url=page_url))
    footer = f"{words['sent_by']} · {event.kind} · {event.occurred_at:%Y-%m-%d %H:%M} UTC"
    if event.run_id and not run_url:
        footer += f" · {words['run_id']} {event.run_id}"
    return Message(
        language=language,
        kind=event.kind,
        severity=event.severity,
        severity_label=words[event.severity],
        title=_fill(template.title, shown, fallback=None),
        summary=_fill(template.what, shown, fallback=template.what_short),
        figures=_shown_figures(event, language),
        action_label=words["what_to_do"],
        action=_fill(template.action, shown, fallback=template.action_short),
        links=tuple(links),
        footer=footer,
    )


def format_figure(key: str, value: Figure, language: Language) -> str:
    """A figure's value as the message writes it (numbers in the language's notation)."""
    spec = FIGURES.get(key)
    kind: FigureFormat = spec.format if spec is not None else "number"
    if value is None:
        return "—"
    if isinstance(value, bool):
        return {"es": ("no", "sí"), "en": ("no", "yes")}[language][value]
    if isinstance(value, str):
        if kind == "metric":
            return _METRIC_NAMES.get(value, value)
        return _spoken_list(value, language) if kind == "list" else (value or "—")
    if kind == "count":
        return _number(float(value), language, digits=0)
    if kind in ("percent", "change"):
        return _percent(float(value), language, signed=kind == "change")
    return _significant(float(value), language)


def _shown_figures(event: Event, language: Language) -> tuple[ShownFigure, ...]:
    """The kind's figures in its order, then any other figure under its own key."""
    declared = FIGURE_KEYS[event.kind]
    keys = [k for k in declared if k in event.figures]
    keys += sorted(k for k in event.figures if k not in declared)
    units = _UNITS.get(event.kind, {})
    shown = []
    for key in keys:
        value = format_figure(key, event.figures[key], language)
        if key in units and event.figures[key] is not None:
            value = f"{value} {units[key][language]}"
        label = FIGURES[key].label(language) if key in FIGURES else key
        shown.append(ShownFigure(key=key, label=label, value=value))
    return tuple(shown)


def _fill(text: str, values: Mapping[str, str], *, fallback: str | None) -> str:
    """``text`` with its fields filled, or ``fallback`` filled when a field is missing."""
    fields = {name for _, name, _, _ in string.Formatter().parse(text) if name}
    if fields <= values.keys():
        return text.format_map(values)
    if fallback is None:
        return text.format_map({name: values.get(name, "—") for name in fields})
    return _fill(fallback, values, fallback=None)


def _significant(value: float, language: Language) -> str:
    """Four significant digits, no exponent for the magnitudes of the lab (1e-4 to 1e6)."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, 3 - magnitude)
    text = _number(value, language, digits=decimals)
    return _without_trailing_zeros(text, language) if decimals else text


def _number(value: float, language: Language, *, digits: int) -> str:
    """Fixed decimals; English groups thousands with ',', Spanish with '.' from 10 000 on
    (as the page's ``Intl.NumberFormat`` does) and writes a decimal comma."""
    text = f"{value:,.{digits}f}"
    if language == "en":
        return text
    whole, _, fraction = text.partition(".")
    if len(whole.lstrip("-").replace(",", "")) < 5:
        whole = whole.replace(",", "")
    whole = whole.replace(",", ".")
    return f"{whole},{fraction}" if fraction else whole


def _percent(value: float, language: Language, *, signed: bool) -> str:
    """A fraction as a percentage: ``0.312`` → ``31 %`` (es) / ``31%`` (en); one decimal under 10."""
    if not math.isfinite(value):
        return str(value)
    share = value * 100
    digits = 1 if abs(share) < 10 else 0
    text = _number(abs(share), language, digits=digits)
    text = _without_trailing_zeros(text, language) if digits else text
    sign = "-" if share < 0 else "+" if signed and share > 0 else ""
    return f"{sign}{text} %" if language == "es" else f"{sign}{text}%"


def _without_trailing_zeros(text: str, language: Language) -> str:
    """``1,500`` → ``1,5`` and ``2,0`` → ``2`` (es); the same after a decimal point (en).

    Only for text written with decimals (a decimal separator always has digits after it)."""
    separator = "," if language == "es" else "."
    whole, found, fraction = text.rpartition(separator)
    if not found:
        return text
    fraction = fraction.rstrip("0")
    return f"{whole}{separator}{fraction}" if fraction else whole


def _spoken_list(text: str, language: Language) -> str:
    """``"1,4"`` → ``"1 y 4"`` (es) / ``"1 and 4"`` (en); ``"1,2,4"`` → ``"1, 2 y 4"``."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if len(items) < 2:
        return items[0] if items else "—"
    conjunction = " y " if language == "es" else " and "
    return ", ".join(items[:-1]) + conjunction + items[-1]
