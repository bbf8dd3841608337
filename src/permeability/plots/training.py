"""Training figures: predicted vs measured, residuals, the per-structure error table, PCA variance.

WVTR spans four orders of magnitude across films (metallized ≈ 0.1, nylon ≈ 300 g/m²·day),
so measured-vs-predicted is drawn log-log and residuals are log ratios: a 20 % miss looks
the same for a barrier film and for a breathable one.

Figures are built on an Agg canvas without ``pyplot``: no global figure state, so two
trainings in two threads can draw at the same time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from permeability.features.pca import CaliperPCA
from permeability.record.schema import ESTRUCTURA, UNITS

WVTR_UNIT = UNITS["Permeabilidad"]
_DPI = 90
_MAX_LEGEND_ENTRIES = 12


def _new_figure(width: float, height: float) -> Figure:
    """Fixed margins: a layout engine ("constrained"/"tight") doubles the drawing time."""
    figure = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(figure)
    figure.subplots_adjust(left=0.1, right=0.97, bottom=0.11, top=0.92, wspace=0.25)
    return figure


def _plain_log_ticks(axes: Axes) -> None:
    """Tick labels as plain numbers (0.1, 1, 10): clearer to a lab than 10⁻¹, and faster to
    draw than the default mathtext labels."""
    for axis in (axes.xaxis, axes.yaxis):
        if axis.get_scale() == "log":
            axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            axis.set_minor_formatter(NullFormatter())


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _positive(values: pd.Series) -> np.ndarray:
    """Log axes cannot show values ≤ 0; those rows cannot come from a valid store anyway."""
    array = np.asarray(values, dtype=np.float64)
    return np.where(array > 0, array, np.nan)


def predicted_vs_measured(predictions: pd.DataFrame, path: Path, *, title: str) -> Path:
    """Log-log scatter of held-out predictions, one colour per structure, with the 1:1 line
    and a ×2 band (a guide value off by more than a factor of two is of little use)."""
    measured = _positive(predictions["measured"])
    predicted = _positive(predictions["predicted"])
    figure = _new_figure(7.0, 6.0)
    axes = figure.add_subplot()
    structures = predictions[ESTRUCTURA].astype(str)
    for index, (name, rows) in enumerate(structures.groupby(structures, sort=True)):
        mask = structures.index.isin(rows.index)
        label = str(name) if index < _MAX_LEGEND_ENTRIES else None
        axes.scatter(measured[mask], predicted[mask], s=12, alpha=0.7, label=label)
    finite = np.concatenate([measured[np.isfinite(measured)], predicted[np.isfinite(predicted)]])
    low, high = (finite.min() / 1.5, finite.max() * 1.5) if finite.size else (0.1, 10.0)
    line = np.array([low, high])
    axes.plot(line, line, color="black", linewidth=1, label="1:1")
    axes.plot(line, line * 2, color="grey", linewidth=0.8, linestyle="--", label="×2 / ÷2")
    axes.plot(line, line / 2, color="grey", linewidth=0.8, linestyle="--")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    axes.set_xlabel(f"measured WVTR ({WVTR_UNIT})")
    axes.set_ylabel(f"predicted WVTR ({WVTR_UNIT})")
    axes.set_title(title)
    axes.legend(fontsize="small", loc="upper left")
    axes.grid(True, which="major", alpha=0.3)
    _plain_log_ticks(axes)
    return _save(figure, path)


def residuals(predictions: pd.DataFrame, path: Path, *, title: str) -> Path:
    """Log residuals (ln measured − ln predicted) against the prediction, and their histogram."""
    measured = _positive(predictions["measured"])
    predicted = _positive(predictions["predicted"])
    log_residual = np.log(measured) - np.log(predicted)
    figure = _new_figure(10.0, 4.5)
    scatter_axes, histogram_axes = figure.subplots(1, 2, width_ratios=(2, 1))
    scatter_axes.scatter(predicted, log_residual, s=10, alpha=0.6)
    scatter_axes.axhline(0.0, color="black", linewidth=1)
    scatter_axes.set_xscale("log")
    scatter_axes.set_xlabel(f"predicted WVTR ({WVTR_UNIT})")
    scatter_axes.set_ylabel("ln(measured / predicted)")
    scatter_axes.set_title(title)
    scatter_axes.grid(True, alpha=0.3)
    _plain_log_ticks(scatter_axes)
    finite = log_residual[np.isfinite(log_residual)]
    histogram_axes.hist(finite, bins=min(40, max(5, finite.size // 5)), color="tab:blue")
    histogram_axes.axvline(0.0, color="black", linewidth=1)
    histogram_axes.set_xlabel("ln(measured / predicted)")
    histogram_axes.set_ylabel("samples")
    return _save(figure, path)


def error_table(table: pd.DataFrame, path: Path, *, title: str) -> Path:
    """The per-structure error table rendered as a figure (numbers rounded for reading)."""
    shown = table.copy()
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].map(lambda v: f"{v:.4g}")
    height = 1.0 + 0.3 * (len(shown) + 1)
    figure = _new_figure(max(6.0, 1.3 * len(shown.columns)), height)
    axes = figure.add_subplot()
    axes.axis("off")
    axes.set_title(title)
    cells = shown.astype(str).to_numpy().tolist() or [["—"] * len(shown.columns)]
    drawn = axes.table(cellText=cells, colLabels=list(shown.columns), loc="center")
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(8)
    return _save(figure, path)


def explained_variance(pca: CaliperPCA, path: Path, *, title: str) -> Path:
    """Each caliper component's share and the running total against the kept threshold."""
    table = pd.DataFrame(pca.variance_table())
    figure = _new_figure(6.5, 4.5)
    axes = figure.add_subplot()
    colours = ["tab:blue" if kept else "lightgrey" for kept in table["kept"]]
    axes.bar(table["component"], table["explained_variance_ratio"], color=colours)
    axes.plot(table["component"], table["cumulative"], marker="o", color="tab:orange")
    axes.axhline(pca.threshold, color="grey", linestyle="--", linewidth=1)
    axes.set_xticks(list(table["component"]))
    axes.set_xlabel("caliper principal component (blue: kept)")
    axes.set_ylabel("explained variance ratio (line: cumulative)")
    axes.set_ylim(0.0, 1.05)
    axes.set_title(title)
    return _save(figure, path)


def variance_frame(pca: CaliperPCA) -> pd.DataFrame:
    return pd.DataFrame(pca.variance_table())


def training_figures(
    predictions: pd.DataFrame,
    per_structure: pd.DataFrame,
    pca: CaliperPCA,
    out_dir: Path,
    *,
    label: str,
    model_name: str,
) -> Sequence[Path]:
    """Every training figure for one version, written under ``out_dir``."""
    heading = f"version {label}: {model_name}"
    return (
        predicted_vs_measured(predictions, out_dir / "predicted_vs_measured.png", title=heading),
        residuals(predictions, out_dir / "residuals.png", title=heading),
        error_table(per_structure, out_dir / "per_structure_errors.png", title=heading),
        explained_variance(
            pca, out_dir / "pca_explained_variance.png", title="caliper PCA, explained variance"
        ),
    )
