"""PCA over the five caliper readings, its size chosen by cumulative explained variance.

The readings of one sample are strongly correlated (they measure one film), so one or two
components carry almost all their information (the seed: "with just one component, 100 % of
the variance can be captured"). The fitted transform is plain arrays so it can be stored
with a feature-set version and applied identically by training and inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from permeability.errors import InvalidInputError
from permeability.record.schema import CALIBRES


@dataclass(frozen=True)
class CaliperPCA:
    """A fitted caliper PCA: centre, kept components and the full explained-variance table."""

    mean: tuple[float, ...]
    components: tuple[tuple[float, ...], ...]  # (n_components, 5)
    explained_variance_ratio: tuple[float, ...]  # every component, not only the kept ones
    threshold: float
    n_samples: int

    @property
    def n_components(self) -> int:
        return len(self.components)

    @property
    def output_columns(self) -> tuple[str, ...]:
        return tuple(f"pc_{i + 1}" for i in range(self.n_components))

    @property
    def cumulative_explained_variance(self) -> tuple[float, ...]:
        return tuple(float(v) for v in np.cumsum(self.explained_variance_ratio))

    def transform(self, calipers: ArrayLike) -> NDArray[np.float64]:
        """Project an (n, 5) array of readings onto the kept components."""
        values = np.asarray(calipers, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(CALIBRES):
            raise InvalidInputError(
                f"caliper PCA expects {len(CALIBRES)} readings per row, got shape {values.shape}"
            )
        centred = values - np.asarray(self.mean)
        return np.asarray(centred @ np.asarray(self.components).T, dtype=np.float64)

    def variance_table(self) -> list[dict[str, float | int | bool]]:
        """One row per component: its share, the running total and whether it was kept."""
        cumulative = self.cumulative_explained_variance
        return [
            {
                "component": i + 1,
                "explained_variance_ratio": float(ratio),
                "cumulative": cumulative[i],
                "kept": i < self.n_components,
            }
            for i, ratio in enumerate(self.explained_variance_ratio)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": list(self.mean),
            "components": [list(c) for c in self.components],
            "explained_variance_ratio": list(self.explained_variance_ratio),
            "threshold": self.threshold,
            "n_samples": self.n_samples,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaliperPCA:
        return cls(
            mean=tuple(float(v) for v in data["mean"]),
            components=tuple(tuple(float(v) for v in row) for row in data["components"]),
            explained_variance_ratio=tuple(float(v) for v in data["explained_variance_ratio"]),
            threshold=float(data["threshold"]),
            n_samples=int(data["n_samples"]),
        )


def fit_caliper_pca(calipers: ArrayLike, threshold: float) -> CaliperPCA:
    """Fit on an (n, 5) array; keep the fewest components whose cumulative share ≥ threshold.

    Computed by SVD of the centred readings (what scikit-learn's PCA does), with the sign of
    each component fixed so that its largest loading is positive: refits on the same data
    then give the same transform, and PC1 grows with thickness.
    """
    if not 0.0 < threshold <= 1.0:
        raise InvalidInputError(f"variance_threshold must be in (0, 1], got {threshold}")
    values = np.asarray(calipers, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(CALIBRES):
        raise InvalidInputError(f"caliper PCA needs an (n, 5) array, got shape {values.shape}")
    if values.shape[0] < 2:
        raise InvalidInputError("caliper PCA needs at least 2 samples")
    if not np.isfinite(values).all():
        raise InvalidInputError("caliper PCA got missing or infinite readings")
    mean = values.mean(axis=0)
    _, singular, vt = np.linalg.svd(values - mean, full_matrices=False)
    variance = singular**2
    total = variance.sum()
    ratio = variance / total if total > 0 else np.r_[1.0, np.zeros(len(variance) - 1)]
    signs = np.sign(vt[np.arange(vt.shape[0]), np.argmax(np.abs(vt), axis=1)])
    vt = vt * np.where(signs == 0, 1.0, signs)[:, None]
    # 1e-12 absorbs rounding so that threshold 1.0 keeps every component that carries variance.
    kept = int(np.searchsorted(np.cumsum(ratio), threshold - 1e-12) + 1)
    kept = min(kept, vt.shape[0])
    return CaliperPCA(
        mean=tuple(float(v) for v in mean),
        components=tuple(tuple(float(v) for v in row) for row in vt[:kept]),
        explained_variance_ratio=tuple(float(v) for v in ratio),
        threshold=threshold,
        n_samples=int(values.shape[0]),
    )
