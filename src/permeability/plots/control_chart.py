"""The instrument's control chart: one panel per reference-film series, in one PNG.

Each panel is a Shewhart individuals chart as a lab reads it: results in time order (one point
per test), the centre line, the ±1σ and ±2σ zones the run rules use, the ±3σ control limits,
the baseline that set them shaded, results that break a rule in red with the rules beside them,
and censored results (below the detection limit, an upper bound) as hollow downward triangles.
Values are in g/m²·day on a log axis when the chart is judged on log10, so the lab reads its
own units. A series with too few results shows its points and its note, without limits.

Figures are drawn on an Agg canvas without ``pyplot`` (no global state: safe in a server thread).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from permeability.monitoring.reports import ChartSeries, to_measured
from permeability.record.schema import PERMEABILIDAD, UNITS

WVTR_UNIT: Final = UNITS[PERMEABILIDAD]
_DPI: Final = 100
_PANEL_WIDTH: Final = 7.5
_PANEL_HEIGHT: Final = 2.8
#: Panels a figure holds before series without limits are left out of it (they stay in the
#: run's tables; the figure's title says how many).
MAX_PANELS: Final = 12
#: More series than this are laid out in two columns.
_ONE_COLUMN_MAX: Final = 4
_STATUS_TEXT: Final = {
    "in_control": "in control",
    "out_of_control": "OUT OF CONTROL",
    "too_few_points": "too few results for limits",
}
_STATUS_COLOUR: Final = {
    "in_control": "tab:green",
    "out_of_control": "tab:red",
    "too_few_points": "tab:grey",
}


def _new_figure(panels: int) -> tuple[Figure, list[Axes]]:
    """A figure of ``panels`` axes, fixed margins (a layout engine doubles the drawing time)."""
    columns = 1 if panels <= _ONE_COLUMN_MAX else 2
    rows = -(-panels // columns)
    figure = Figure(figsize=(_PANEL_WIDTH * columns, 0.6 + _PANEL_HEIGHT * rows), dpi=_DPI)
    FigureCanvasAgg(figure)
    figure.subplots_adjust(
        left=0.1 / columns, right=0.98, bottom=0.9 / figure.get_figheight(), top=0.92, hspace=0.75
    )
    grid = figure.subplots(rows, columns, squeeze=False)
    axes = [a for row in grid for a in row]
    for unused in axes[panels:]:
        unused.set_visible(False)
    return figure, axes[:panels]


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _limit_lines(axes: Axes, chart: ChartSeries) -> None:
    """Centre, ±1σ and ±2σ (thin, grey) and the ±3σ control limits (red, dashed)."""
    if chart.center is None or chart.sigma is None:
        return
    axes.axhline(to_measured(chart.center, chart.scale), color="black", linewidth=1)
    for k, style in ((1, ":"), (2, ":"), (3, "--")):
        colour, width = ("tab:red", 1.2) if k == 3 else ("grey", 0.8)
        for side in (-1, 1):
            level = to_measured(chart.center + side * k * chart.sigma, chart.scale)
            axes.axhline(level, color=colour, linewidth=width, linestyle=style)


def _panel(axes: Axes, chart: ChartSeries) -> None:
    points = chart.points
    x = np.arange(1, len(points) + 1)
    y = np.array([p.measured for p in points], dtype=np.float64)
    censored = np.array([p.censored for p in points], dtype=bool)
    broken = np.array([bool(p.violations) for p in points], dtype=bool)
    if chart.scale == "log10":
        axes.set_yscale("log")
    baseline = [i + 1 for i, p in enumerate(points) if p.baseline]
    if baseline:
        axes.axvspan(0.5, max(baseline) + 0.5, color="tab:blue", alpha=0.07, label="baseline")
    _limit_lines(axes, chart)
    axes.plot(x, y, color="tab:blue", linewidth=0.8, zorder=2)
    plain = ~censored & ~broken
    axes.scatter(x[plain], y[plain], color="tab:blue", s=16, zorder=3)
    axes.scatter(
        x[censored],
        y[censored],
        marker="v",
        facecolors="none",
        edgecolors="tab:blue",
        s=30,
        zorder=3,
        label="below detection limit",
    )
    axes.scatter(x[broken], y[broken], color="tab:red", s=30, zorder=4, label="breaks a rule")
    for position in np.flatnonzero(broken):
        axes.annotate(
            ",".join(points[position].violations),
            (x[position], y[position]),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=7,
            color="tab:red",
        )
    axes.set_xlim(0.5, len(points) + 0.5)
    axes.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _tick(chart, value)))
    axes.tick_params(axis="x", labelsize=7)
    axes.set_ylabel(f"WVTR ({WVTR_UNIT})", fontsize=8)
    axes.set_title(
        f"{chart.title}: {_STATUS_TEXT[chart.status]}",
        fontsize=9,
        color=_STATUS_COLOUR[chart.status],
        loc="left",
    )
    axes.text(0.0, -0.3, chart.note, transform=axes.transAxes, fontsize=7, va="top")
    axes.grid(True, axis="y", alpha=0.3)
    if chart.scale == "log10":
        _plain_log_ticks(axes)


def _plain_log_ticks(axes: Axes) -> None:
    """Plain numbers (0.01, 2.5) rather than 10⁻²; minor ticks labelled too when the panel spans
    under one decade (a steady film would otherwise show no number at all)."""
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axes.yaxis.set_major_formatter(plain)
    low, high = axes.get_ylim()
    axes.yaxis.set_minor_formatter(plain if high < 10.0 * low else NullFormatter())
    axes.tick_params(axis="y", which="minor", labelsize=6)


def _tick(chart: ChartSeries, value: float) -> str:
    """The result's test date under its point when it has one, else its position."""
    position = round(value)
    if not 1 <= position <= len(chart.points):
        return ""
    return chart.points[position - 1].when or str(position)


def drawn_series(series: Sequence[ChartSeries]) -> tuple[list[ChartSeries], int]:
    """The series a figure shows, in the order given, and how many it leaves out: every series
    with limits, then those with too few results while fewer than :data:`MAX_PANELS` are drawn
    (a lab whose references carry a new ``Referencia`` each test would get a panel per point)."""
    charted = [s for s in series if s.status != "too_few_points"]
    room = max(MAX_PANELS - len(charted), 0)
    few = [s for s in series if s.status == "too_few_points"][:room]
    keep = {id(s) for s in (*charted, *few)}
    shown = [s for s in series if id(s) in keep]
    return shown, len(series) - len(shown)


def control_chart_figure(series: Sequence[ChartSeries], path: Path, *, title: str) -> Path:
    """The series' charts in one PNG at ``path``, a panel each (see :func:`drawn_series`)."""
    if not series:
        raise ValueError("no control-chart series to draw")
    shown, left_out = drawn_series(series)
    figure, panels = _new_figure(len(shown))
    for axes, chart in zip(panels, shown, strict=True):
        _panel(axes, chart)
    handles, labels = panels[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper right", fontsize=7, ncols=3, frameon=False)
    if left_out:
        title += f"\n({left_out} more series with too few results for limits are in the tables)"
    figure.suptitle(title, fontsize=10, x=0.02, ha="left")
    return _save(figure, path)
