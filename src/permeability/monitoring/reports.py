"""What monitoring reports: the evaluation's metrics, the drift report, the control chart.

Plain pydantic models, apart from the code that computes them (:mod:`.evaluation`,
:mod:`.drift`, :mod:`.control_chart`, which need pandas, SciPy and the full model): the
inference service declares ``GET /monitoring`` with them (:mod:`.snapshot`) and must not import
those libraries when it starts (docs/deploy.md, "Replicas that start fast"). The two table
methods import pandas when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import pandas as pd


# -- evaluation ---------------------------------------------------------------------------


class StructureScore(BaseModel):
    """Errors, coverage and decisions of one structure."""

    model_config = ConfigDict(frozen=True)

    structure: str
    n: int
    mae: float
    mape: float
    rmse: float
    bias_log: float
    coverage: float
    mean_width: float
    wrong_approvals: int
    wrong_rejections: int


class EvaluationMetrics(BaseModel):
    """Everything the evaluation of one version on one set of rows found."""

    model_config = ConfigDict(frozen=True)

    n: int
    tests: int | None = None
    level: float
    metrics: dict[str, float]
    per_structure: list[StructureScore]
    decisions: dict[str, int]
    first: str | None
    last: str | None

    def structure_table(self) -> pd.DataFrame:
        import pandas as pd

        columns = list(StructureScore.model_fields)
        return pd.DataFrame([s.model_dump() for s in self.per_structure], columns=columns)


# -- drift ---------------------------------------------------------------------------------

#: The structure label of comparisons over all rows.
ALL_STRUCTURES: Final = "ALL"

Kind = Literal["numeric", "categorical", "target"]
Test = Literal["ks", "chi2"]


class DriftThresholds(BaseModel):
    """When a difference counts as drift (the rule: :mod:`permeability.monitoring.drift`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    psi: float = Field(default=0.2, gt=0.0, description="Smallest PSI that counts as drift.")
    alpha: float = Field(
        default=0.01, gt=0.0, lt=1.0, description="Family-wise false-alarm rate of one report."
    )
    min_rows: int = Field(
        default=30, ge=5, description="Rows a structure needs on each side to be compared."
    )
    bins: int = Field(default=10, ge=2, le=50, description="PSI bins (reference quantiles).")
    min_new_structure_rows: int = Field(
        default=1, ge=1, description="Rows of an unseen structure that flag it as new."
    )


class DriftTest(BaseModel):
    """One comparison of one feature (over all rows or within one structure)."""

    model_config = ConfigDict(frozen=True)

    feature: str
    structure: str
    kind: Kind
    test: Test
    n_reference: int
    n_current: int
    psi: float
    statistic: float
    p_value: float
    drifted: bool = False


class DriftReport(BaseModel):
    """Every comparison made, the new structures, and what was flagged."""

    model_config = ConfigDict(frozen=True)

    thresholds: DriftThresholds
    n_reference: int
    n_current: int
    tests: list[DriftTest]
    new_structures: dict[str, int]
    missing_structures: list[str]
    corrected_alpha: float

    @property
    def flagged(self) -> list[DriftTest]:
        return [t for t in self.tests if t.drifted]

    @property
    def flagged_new_structures(self) -> dict[str, int]:
        least = self.thresholds.min_new_structure_rows
        return {name: n for name, n in self.new_structures.items() if n >= least}

    @property
    def drifted(self) -> bool:
        return bool(self.flagged or self.flagged_new_structures)

    def test_for(self, feature: str, structure: str = ALL_STRUCTURES) -> DriftTest | None:
        return next(
            (t for t in self.tests if t.feature == feature and t.structure == structure), None
        )

    def summary(self) -> str:
        """One line a lab manager can read in a log."""
        if not self.drifted:
            return (
                f"no drift: {len(self.tests)} comparisons of {self.n_current} recent rows "
                f"against {self.n_reference} training rows"
            )
        parts = [
            f"{t.feature}"
            + ("" if t.structure == ALL_STRUCTURES else f" [{t.structure}]")
            + f" PSI={t.psi:.2f} p={t.p_value:.1e}"
            for t in self.flagged
        ]
        if self.flagged_new_structures:
            parts.append(
                "new structures "
                + ", ".join(
                    f"{k} ({v} rows)" for k, v in sorted(self.flagged_new_structures.items())
                )
            )
        return "drift: " + "; ".join(parts)

    def table(self) -> pd.DataFrame:
        """The comparisons as a table (for a CSV artifact)."""
        import pandas as pd

        columns = list(DriftTest.model_fields)
        return pd.DataFrame([t.model_dump() for t in self.tests], columns=columns)


# -- control chart -------------------------------------------------------------------------

ChartStatus = Literal["in_control", "out_of_control", "too_few_points"]
ChartScale = Literal["log10", "linear"]


class ChartPoint(BaseModel):
    """One reference result on the chart (``value`` in the chart's scale).

    One test: ``measured`` (g/m²·day) is the mean of its ``replicates`` in the chart's scale,
    back-transformed; ``record`` its first record; ``when`` its test date ("" when undated);
    ``baseline`` true when it estimated the limits; ``violations`` the rules it breaks.
    """

    model_config = ConfigDict(frozen=True)

    when: str
    record: str | None
    measured: float
    value: float
    censored: bool
    baseline: bool
    violations: list[str]
    test: str | None = None
    replicates: int = 1


class ChartSeries(BaseModel):
    """One reference film's chart: limits from its own history and every point against them."""

    model_config = ConfigDict(frozen=True)

    reference: str
    series: str
    scale: ChartScale
    center: float | None
    sigma: float | None
    lower_limit: float | None
    upper_limit: float | None
    baseline_points: int
    points: list[ChartPoint]
    status: ChartStatus
    note: str

    @property
    def title(self) -> str:
        """``CALIBRACION`` or ``CALIBRACION · REF-0031``: how a person names the series."""
        return f"{self.reference} · {self.series}" if self.series else self.reference

    def measured(self, value: float | None) -> float | None:
        """A value of the chart's scale (centre, a limit) back in g/m²·day."""
        return None if value is None else to_measured(value, self.scale)


def to_measured(value: float, scale: ChartScale) -> float:
    """A value of the chart's scale in g/m²·day."""
    return float(10.0**value) if scale == "log10" else float(value)
