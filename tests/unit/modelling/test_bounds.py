"""Every prediction path clips predicted log WVTR to the fitted range and the family's range."""

from __future__ import annotations

import numpy as np
import pandas as pd

from permeability.modelling.bounds import FAMILY_LOG_MARGIN, LOG_CLIP_MARGIN
from permeability.modelling.training import train_model
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    ESTRUCTURA,
    GRADOS_C,
    PERMEABILIDAD,
    PORC_HUMEDAD,
)
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec
from tests.lab_frames import pca_of, random_records


def test_predictions_are_clipped_to_the_familys_range_in_every_path() -> None:
    data = generate_lab_data(300, 1, mess=MessSpec.none(), with_truth=True)
    outcome = train_model(data, pca_of(data), model="LinearRegression")
    model = outcome.model
    low, high = model.log_bounds
    measured = np.log(data[PERMEABILIDAD].to_numpy(dtype=float))
    assert measured.min() - LOG_CLIP_MARGIN <= low < measured.min() - LOG_CLIP_MARGIN + 1.0
    assert measured.max() + LOG_CLIP_MARGIN - 1.0 < high <= measured.max() + LOG_CLIP_MARGIN
    extremes = pd.DataFrame(
        [
            {GRADOS_C: 80.0, PORC_HUMEDAD: 100.0, ESTRUCTURA: "NY"}
            | {c: 0.5 for c in (*CALIBRES, CALIBRE_PROM)},
            {GRADOS_C: 0.0, PORC_HUMEDAD: 0.01, ESTRUCTURA: "PET/MET", CALIBRE_PROM: 2000.0}
            | {c: 12.0 for c in CALIBRES},
        ]
    )
    reference = model.predict_frame(extremes)
    # Each extreme is bounded by what its own family showed (± ln 3), within the overall range.
    nylon = np.log(data.loc[data[ESTRUCTURA] == "NY", PERMEABILIDAD].to_numpy(dtype=float))
    metallized = np.log(
        data.loc[data[ESTRUCTURA] == "BOPP/MET", PERMEABILIDAD].to_numpy(dtype=float)
    )
    fit_rows = set(outcome.model.features.structure_counts)
    assert {"NY", "BOPP/MET"} <= fit_rows
    expected = [nylon.max() + FAMILY_LOG_MARGIN, metallized.min() - FAMILY_LOG_MARGIN]
    np.testing.assert_allclose(np.log(reference), expected, atol=0.2)
    assert np.log(reference[0]) <= high
    assert np.log(reference[1]) >= low
    _, extrapolated = model.predict_log_detail(extremes)
    assert extrapolated.tolist() == [True, True]
    assert model.predict_record_detail(random_records(extremes)[0])[1] is True
    records = random_records(extremes)
    np.testing.assert_allclose(model.predict_records(records), reference, rtol=1e-12)
    np.testing.assert_allclose([model.predict_record(r) for r in records], reference, rtol=1e-12)
    normal = outcome.test_predictions["predicted"].to_numpy()
    assert (np.log(normal) > low).all()
    assert (np.log(normal) < high).all()
