"""Served predictions matched with the lab's later results: the real-world guide values.

The prediction log holds what the inference service actually answered; once the lab measures
the same record, the pair is a scored row (:data:`~permeability.monitoring.scored_rows.
SCORED_COLUMNS`) like any other (:func:`served_scored`).

``Muestra`` is the replicate number of a test (1, 2, ... in every test), so it never identifies
a record on its own: served predictions are matched on ``CONSECUTIVO`` or on the record's
identity (test date, ``Referencia``, structure, ``Muestra``, conditions) (:func:`match_served`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from permeability.monitoring.scored_rows import SCORED_COLUMNS
from permeability.record.identity import DEFAULT_IDENTITY, join_key, key_text
from permeability.record.schema import (
    CONSECUTIVO,
    ESTRUCTURA,
    FECHA,
    MUESTRA,
    PERMEABILIDAD,
    REFERENCIA,
)


def served_scored(
    predictions: pd.DataFrame,
    labelled: pd.DataFrame,
    version: str,
    structures: NDArray[np.object_] | None = None,
) -> pd.DataFrame:
    """The version's logged predictions next to the lab's later result, as they were served.

    ``predictions`` is the prediction log (timestamp, version, Muestra, structure, conditions,
    the record fields CONSECUTIVO, Referencia and Fecha when the request gave them,
    prediction, lower, upper, level, spec_limit, p_exceed, decision); ``labelled`` the rows
    with measured values to match (already restricted to what the version did not train on),
    and ``structures`` their canonical structure names as the version spells them (default:
    their ``Estructura`` as stored). Matching is by :func:`match_served`. A record predicted
    several times counts once, with its latest guide value.
    """
    if predictions.empty or labelled.empty:
        return pd.DataFrame(columns=list(SCORED_COLUMNS))
    own = predictions.loc[
        (predictions["version"] == version) & predictions["structure"].notna()
    ].reset_index(drop=True)
    names = labelled[ESTRUCTURA].to_numpy(dtype=object) if structures is None else structures
    pairs = match_served(own, labelled.reset_index(drop=True), names)
    if pairs.empty:
        return pd.DataFrame(columns=list(SCORED_COLUMNS))
    served = own.iloc[pairs["prediction_row"].to_numpy()].reset_index(drop=True)
    lab = labelled.reset_index(drop=True).iloc[pairs["lab_row"].to_numpy()].reset_index(drop=True)
    stamps = pd.to_datetime(served["timestamp"], errors="coerce", utc=True).dt.tz_convert(None)
    return pd.DataFrame(
        {
            MUESTRA: lab[MUESTRA].to_numpy(dtype=np.int64),
            "structure": served["structure"].astype(str).to_numpy(dtype=object),
            "measured": lab[PERMEABILIDAD].to_numpy(dtype=np.float64),
            "predicted": served["prediction"].to_numpy(dtype=np.float64),
            "lower": served["lower"].to_numpy(dtype=np.float64),
            "upper": served["upper"].to_numpy(dtype=np.float64),
            "level": served["level"].to_numpy(dtype=np.float64),
            "limit": served["spec_limit"].to_numpy(dtype=np.float64),
            "p_exceed": served["p_exceed"].to_numpy(dtype=np.float64),
            "decision": served["decision"].astype(object).where(served["decision"].notna(), ""),
            "when": stamps.to_numpy(),
        }
    )


def match_served(
    predictions: pd.DataFrame, labelled: pd.DataFrame, structures: NDArray[np.object_]
) -> pd.DataFrame:
    """Pairs (``prediction_row``, ``lab_row``) of positions: which logged prediction is which
    lab record. Never on ``Muestra`` alone (a replicate number, 1 or 2 in most records):

    1. a prediction that carries ``CONSECUTIVO`` meets the lab record with that number;
    2. otherwise the record's identity must agree: test date, ``Referencia``, canonical
       structure, ``Muestra`` and conditions (a field the request left out only meets a lab
       record that lacks it too). A prediction whose number no lab record has yet is matched
       this way only with lab records that have no number (a record numbered differently is
       another record).

    Each lab record keeps the latest prediction that met it; identities that several lab
    records share (duplicates) keep the last of them, as the store would.
    """
    n_lab = len(labelled)
    lab_numbers = _text_key(labelled, CONSECUTIVO)
    lab_identity = identity_keys(labelled, structures)
    pred_numbers = _text_key(predictions, CONSECUTIVO)
    pred_identity = identity_keys(predictions, predictions["structure"].to_numpy(dtype=object))
    lab_positions = pd.Series(np.arange(n_lab))
    by_number = pd.Series(lab_positions.to_numpy(), index=lab_numbers.to_numpy())
    by_number = by_number[by_number.index != ""]
    by_number = by_number[~by_number.index.duplicated(keep="last")]
    numbered = pred_numbers.to_numpy() != ""
    number_hit = numbered & pred_numbers.isin(by_number.index).to_numpy()
    lab_row = np.full(len(predictions), -1, dtype=np.int64)
    if number_hit.any():
        lab_row[number_hit] = by_number.loc[pred_numbers[number_hit]].to_numpy()
    # Identity: unnumbered predictions against every lab record; numbered ones that met no
    # number against the lab records without one.
    unnumbered_lab = (lab_numbers == "").to_numpy()
    for among, eligible in (
        (~numbered, np.ones(n_lab, dtype=bool)),
        (numbered & ~number_hit, unnumbered_lab),
    ):
        if not among.any() or not eligible.any():
            continue
        identity = pd.Series(lab_positions.to_numpy()[eligible], index=lab_identity[eligible])
        identity = identity[~identity.index.duplicated(keep="last")]
        hit = among & pred_identity.isin(identity.index).to_numpy()
        if hit.any():
            lab_row[hit] = identity.loc[pred_identity[hit]].to_numpy()
    matched = np.flatnonzero(lab_row >= 0)
    pairs = pd.DataFrame(
        {
            "prediction_row": matched,
            "lab_row": lab_row[matched],
            "timestamp": pd.to_datetime(
                predictions["timestamp"].to_numpy()[matched], errors="coerce", utc=True
            ),
        }
    )
    pairs = pairs.sort_values(["timestamp", "prediction_row"], kind="stable")
    pairs = pairs.drop_duplicates("lab_row", keep="last").sort_values("lab_row", kind="stable")
    return pairs[["prediction_row", "lab_row"]].reset_index(drop=True)


def identity_keys(frame: pd.DataFrame, structures: NDArray[np.object_]) -> pd.Series:
    """A record's identity as one text per row (:data:`~permeability.record.identity.
    DEFAULT_IDENTITY`, structure canonical): the same text for the same record whether it
    comes from the prediction log (a date object, no value where the request sent none) or
    the feature store (a timestamp, null where the export had none)."""
    n = len(frame)
    parts = pd.DataFrame(index=pd.RangeIndex(n))
    for name in DEFAULT_IDENTITY:
        if name == ESTRUCTURA:
            parts[name] = pd.Series(np.asarray(structures, dtype=object)).fillna("").astype(str)
        elif name not in frame.columns:
            parts[name] = pd.Series([""] * n, dtype="str")
        elif name == FECHA:
            parts[name] = pd.to_datetime(
                pd.Series(frame[name].to_numpy(dtype=object)), errors="coerce"
            ).astype("datetime64[ns]")
        elif name == REFERENCIA:
            parts[name] = _text_key(frame, name)
        else:
            parts[name] = pd.Series(frame[name].to_numpy())
    return join_key(parts, DEFAULT_IDENTITY)


def _text_key(frame: pd.DataFrame, column: str) -> pd.Series:
    """A text column as key text ('' where absent or null; '17.0' is '17')."""
    if column not in frame.columns:
        return pd.Series([""] * len(frame), dtype="str")
    values = pd.Series(frame[column].to_numpy(dtype=object))
    text = values.where(values.notna(), "").astype(str)
    return key_text(text).reset_index(drop=True)
