"""Evaluation figures: error over time, interval coverage per structure, residuals.

They answer the three questions a lab asks of a guide value that has been in use for a while:
is it getting worse (error per period, with the coverage of its intervals beside it), can its
intervals be trusted for every film (coverage per structure against the promised level), and
is it biased for some films (log residuals per structure).

Input is a table of scored rows (``permeability.monitoring.scored_rows.SCORED_COLUMNS``).
Figures are drawn on an Agg canvas without ``pyplot`` (no global state: safe in a server thread).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter, PercentFormatter

from permeability.monitoring.reports import StructureScore
from permeability.record.schema import UNITS

WVTR_UNIT: Final = UNITS["Permeabilidad"]
_DPI: Final = 110
#: A coverage within this many points of the promised level is on target (the service's bar).
COVERAGE_BAND: Final = 0.03
#: Periods with fewer rows than this are drawn hollow: their error says little.
MIN_ROWS_PER_PERIOD: Final = 10


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(figure)
    figure.subplots_adjust(left=0.13, right=0.97, bottom=0.14, top=0.9, wspace=0.3, hspace=0.35)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _plain_log_ticks(axes: Axes) -> None:
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())


def period_frequency(when: pd.Series) -> str:
    """Weeks for a window of up to four months, months beyond (about 4 to 30 points)."""
    valid = pd.to_datetime(when, errors="coerce").dropna()
    if valid.empty:
        return "W"
    return "W" if (valid.max() - valid.min()) <= pd.Timedelta(days=120) else "M"


def errors_by_period(scored: pd.DataFrame, frequency: str | None = None) -> pd.DataFrame:
    """Per period: rows, MAPE, median absolute % error and interval coverage."""
    when = pd.to_datetime(scored["when"], errors="coerce")
    keep = when.notna().to_numpy()
    rows = scored.loc[keep]
    chosen = frequency or period_frequency(when)
    measured = rows["measured"].to_numpy(dtype=np.float64)
    predicted = rows["predicted"].to_numpy(dtype=np.float64)
    table = pd.DataFrame(
        {
            "period": when[keep].dt.to_period(chosen).dt.start_time.to_numpy(),
            "ape": np.abs(measured - predicted) / measured * 100.0,
            "covered": (
                (measured >= rows["lower"].to_numpy(dtype=np.float64))
                & (measured <= rows["upper"].to_numpy(dtype=np.float64))
            ).astype(np.float64),
        }
    )
    grouped = table.groupby("period", sort=True).agg(
        n=("ape", "size"),
        mape=("ape", "mean"),
        median_ape=("ape", "median"),
        coverage=("covered", "mean"),
    )
    return grouped.reset_index()


def error_over_time(scored: pd.DataFrame, path: Path, *, title: str, level: float) -> Path:
    """MAPE and median % error per period (top) and interval coverage per period (bottom)."""
    table = errors_by_period(scored)
    figure = _new_figure(8.0, 6.0)
    error_axes, coverage_axes = figure.subplots(2, 1, sharex=True)
    solid = table["n"] >= MIN_ROWS_PER_PERIOD
    for column, colour, label in (
        ("mape", "tab:red", "MAPE"),
        ("median_ape", "tab:blue", "median |% error|"),
    ):
        error_axes.plot(table["period"], table[column], color=colour, linewidth=1, label=label)
        error_axes.scatter(table["period"][solid], table[column][solid], color=colour, s=18)
        error_axes.scatter(
            table["period"][~solid],
            table[column][~solid],
            facecolors="none",
            edgecolors=colour,
            s=18,
        )
    error_axes.set_ylabel("% error")
    error_axes.set_title(title)
    error_axes.legend(fontsize="small", loc="upper left")
    error_axes.grid(True, alpha=0.3)
    coverage_axes.plot(table["period"], table["coverage"], marker="o", color="tab:green")
    coverage_axes.axhline(level, color="black", linewidth=1)
    coverage_axes.axhspan(level - COVERAGE_BAND, level + COVERAGE_BAND, color="grey", alpha=0.2)
    lowest = float(np.min(table["coverage"].to_numpy(dtype=np.float64), initial=1.0))
    coverage_axes.set_ylim(max(0.0, min(level - 0.2, lowest - 0.05)), 1.02)
    coverage_axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    coverage_axes.set_ylabel(f"interval coverage\n(promised {level:.0%})")
    coverage_axes.grid(True, alpha=0.3)
    figure.autofmt_xdate()
    return _save(figure, path)


def coverage_per_structure(
    scores: Sequence[StructureScore], path: Path, *, title: str, level: float
) -> Path:
    """Horizontal bars of each structure's coverage, the promised level and a ±3-point band."""
    ordered = sorted(scores, key=lambda s: s.structure, reverse=True)
    names = [f"{s.structure} (n={s.n})" for s in ordered]
    values = [s.coverage for s in ordered]
    colours = [
        "tab:green" if abs(v - level) <= COVERAGE_BAND else "tab:orange" if v > level else "tab:red"
        for v in values
    ]
    figure = _new_figure(7.5, 1.2 + 0.32 * max(len(ordered), 1))
    figure.subplots_adjust(left=0.32)
    axes = figure.add_subplot()
    axes.barh(names, values, color=colours)
    axes.axvline(level, color="black", linewidth=1)
    axes.axvspan(level - COVERAGE_BAND, level + COVERAGE_BAND, color="grey", alpha=0.2)
    axes.set_xlim(max(0.0, min([level - 0.2, *values]) - 0.05), 1.0)
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_xlabel(
        f"share of measured values inside the interval (promised {level:.0%}; "
        "green within ±3 points, red below, orange above)",
        fontsize="small",
    )
    axes.set_title(title)
    axes.grid(True, axis="x", alpha=0.3)
    return _save(figure, path)


def residuals(scored: pd.DataFrame, path: Path, *, title: str) -> Path:
    """ln(measured / predicted) against the prediction (log axis) and per structure (boxes)."""
    measured = scored["measured"].to_numpy(dtype=np.float64)
    predicted = scored["predicted"].to_numpy(dtype=np.float64)
    log_residual = np.log(measured) - np.log(predicted)
    names = scored["structure"].astype(str).to_numpy()
    figure = _new_figure(11.0, 4.8)
    figure.subplots_adjust(bottom=0.3)
    scatter_axes, box_axes = figure.subplots(1, 2, width_ratios=(1, 1))
    scatter_axes.scatter(predicted, log_residual, s=10, alpha=0.6)
    scatter_axes.axhline(0.0, color="black", linewidth=1)
    scatter_axes.set_xscale("log")
    _plain_log_ticks(scatter_axes)
    scatter_axes.set_xlabel(f"predicted WVTR ({WVTR_UNIT})")
    scatter_axes.set_ylabel("ln(measured / predicted)")
    scatter_axes.set_title(title)
    scatter_axes.grid(True, alpha=0.3)
    labels = sorted(set(names))
    box_axes.boxplot([log_residual[names == n] for n in labels], showfliers=False)
    box_axes.set_xticks(range(1, len(labels) + 1), labels, rotation=60, ha="right", fontsize=7)
    box_axes.axhline(0.0, color="black", linewidth=1)
    box_axes.set_ylabel("ln(measured / predicted)")
    box_axes.set_title("per structure (bias = box off the line)")
    box_axes.grid(True, axis="y", alpha=0.3)
    return _save(figure, path)


def evaluation_figures(
    scored: pd.DataFrame,
    scores: Sequence[StructureScore],
    out_dir: Path,
    *,
    heading: str,
    level: float,
    prefix: str = "",
) -> list[Path]:
    """The three evaluation figures of one version on one set of rows, under ``out_dir``."""
    return [
        error_over_time(
            scored, out_dir / f"{prefix}error_over_time.png", title=heading, level=level
        ),
        coverage_per_structure(
            scores, out_dir / f"{prefix}coverage_per_structure.png", title=heading, level=level
        ),
        residuals(scored, out_dir / f"{prefix}residuals.png", title=heading),
    ]
