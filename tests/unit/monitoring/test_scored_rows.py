"""Labelled rows scored as the service would score them, and their residuals for drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permeability.modelling.predictor import PermeabilityModel
from permeability.monitoring.evaluation import evaluate_scored
from permeability.monitoring.scored_rows import (
    SCORED_COLUMNS,
    calibration_reference,
    recent_residuals,
    score_labelled,
)
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec
from permeability.synthetic.sampling import DriftSpec
from tests.unit.monitoring.evaluation_support import POLICY, bopp_limit, scored_table, trained_model


@pytest.fixture(scope="module")
def model() -> PermeabilityModel:
    return trained_model()


def test_score_labelled_gives_service_like_intervals_and_decisions(
    model: PermeabilityModel,
) -> None:
    recent = generate_lab_data(600, 22, start_id=1501, mess=MessSpec.none())
    recent["Fecha"] = pd.to_datetime(recent["Fecha"])
    scored = score_labelled(model, recent, bopp_limit(), POLICY)
    assert list(scored.columns) == list(SCORED_COLUMNS)
    assert len(scored) == len(recent)
    assert (scored["lower"] <= scored["predicted"]).all()
    assert (scored["predicted"] <= scored["upper"]).all()
    limited = scored["limit"].notna()
    assert limited.any()
    assert set(scored.loc[limited, "decision"]) <= {"approve", "reject", "retest"}
    assert (scored.loc[~limited, "decision"] == "").all()
    assert set(scored.loc[limited, "structure"]) == {"BOPP"}
    result = evaluate_scored(scored)
    assert 0.8 <= result.metrics["coverage"] <= 0.98
    assert result.metrics["r2_log"] > 0.9


def test_a_structure_the_version_never_saw_is_still_scored(model: PermeabilityModel) -> None:
    recent = generate_lab_data(
        400, 23, start_id=1501, mess=MessSpec.none(), drift=DriftSpec(new_structures=("BOPP/CPP",))
    )
    scored = score_labelled(model, recent, bopp_limit(), POLICY)
    name = model.features.canonical_structure("BOPP/CPP")  # the version's canonical spelling
    new = scored["structure"] == name
    assert new.any()
    assert np.isfinite(scored.loc[new, "predicted"]).all()
    assert name in {s.structure for s in evaluate_scored(scored).per_structure}


def test_residuals_for_drift_are_log_ratios(model: PermeabilityModel) -> None:
    scored = scored_table(measured=[2.0, 1.0], predicted=[1.0, 1.0], lower=[0, 0], upper=[9, 9])
    residuals = recent_residuals(scored)
    assert residuals.residuals.tolist() == pytest.approx([np.log(2.0), 0.0])
    reference = calibration_reference(model)
    assert len(reference.pooled) == sum(model.calibration.counts.values())
