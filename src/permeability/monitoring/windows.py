"""Which labelled rows a version is evaluated on: those that arrived after its training.

A version is scored on the rows it did not train on (:func:`unseen_rows`): a record absent
from its training feature set, or present there with other values (:func:`new_since_training`).
Compared versions are scored on the rows none of them trained on (:func:`shared_window`). A
time window (``since``) narrows either to the rows dated on or after a day (:func:`on_or_after`
of :func:`labelled_when`).

``Muestra`` is the replicate number of a test (1, 2, ... in every test), so it never identifies
a record on its own: the training-vs-current comparison uses the store's ``record_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    ESTRUCTURA,
    FECHA,
    GRADOS_C,
    MUESTRA,
    PERMEABILIDAD,
    PORC_HUMEDAD,
    RECORD_ID,
)

#: What identifies a lab result: a sample whose inputs or measured value changed since a
#: version's training is new evidence for that version (a re-measurement, a corrected typo).
RECORD_FIELDS: Final = (
    GRADOS_C,
    PORC_HUMEDAD,
    ESTRUCTURA,
    *CALIBRES,
    CALIBRE_PROM,
    PERMEABILIDAD,
)


def record_key_column(current: pd.DataFrame, training: pd.DataFrame) -> str:
    """The column that identifies a record in both frames: the store's ``record_id``, or
    ``Muestra`` only for a frame written before record ids existed (an old store)."""
    if RECORD_ID in current.columns and RECORD_ID in training.columns:
        return RECORD_ID
    return MUESTRA


def new_since_training(current: pd.DataFrame, training: pd.DataFrame) -> NDArray[np.bool_]:
    """Rows of ``current`` the version never trained on: a record (``record_id``) absent from
    its training feature set, or present with different values (a re-measurement, a corrected
    typo). ``Muestra``, a replicate number repeated across tests, is the key only when a frame
    has no ``record_id`` (a store written before it existed)."""
    key = record_key_column(current, training)
    fields = [c for c in RECORD_FIELDS if c in current.columns and c in training.columns]
    before = training[[key, *fields]].drop_duplicates(key, keep="last")
    joined = current[[key, *fields]].merge(
        before, on=key, how="left", suffixes=("", "_before"), indicator=True
    )
    fresh = (joined["_merge"] == "left_only").to_numpy(dtype=bool, copy=True)
    for name in fields:
        now, then = joined[name], joined[f"{name}_before"]
        differs = (now != then) & ~(now.isna() & then.isna())
        fresh |= differs.fillna(True).to_numpy(dtype=bool)
    return np.asarray(fresh, dtype=bool)


def unseen_rows(
    current: pd.DataFrame, training: pd.DataFrame | None, created_at: object
) -> NDArray[np.bool_]:
    """Rows of ``current`` a version did not train on.

    With its training feature set, :func:`new_since_training`; a version without that lineage
    falls back on rows loaded (``ingested_at``) after it was created, and with neither date
    known nothing counts as unseen (scoring rows it may have trained on would flatter it).
    """
    if training is not None:
        return new_since_training(current, training)
    created = pd.to_datetime(str(created_at), errors="coerce", utc=True)
    if pd.isna(created) or "ingested_at" not in current.columns:
        return np.zeros(len(current), dtype=bool)
    loaded = pd.to_datetime(current["ingested_at"], errors="coerce", utc=True)
    return np.asarray((loaded > created).fillna(False).to_numpy(dtype=bool))


def shared_window(
    unseen: Mapping[str, NDArray[np.bool_]], champion: str | None
) -> tuple[dict[str, NDArray[np.bool_]], dict[str, str]]:
    """One set of rows for every compared version: those none of them trained on.

    The rows the champion has not seen are the candidates (every version's unseen rows when
    there is no champion); a challenger trained on all of them (e.g. on the latest feature
    set) has nothing to be compared on yet and is left out, with the reason. Returns the
    kept versions' (identical) masks and the reasons of those left out.
    """
    masks = list(unseen.values())
    has_champion = champion is not None and champion in unseen
    base = unseen[str(champion)] if has_champion else np.logical_or.reduce(masks)
    kept = {label: mask for label, mask in unseen.items() if (mask & base).any()}
    dropped = {
        label: "no labelled data arrived after its training"
        if not unseen[label].any()
        else "it trained on every labelled row the champion has not seen; nothing newer to "
        "compare it on yet"
        for label in unseen
        if label not in kept
    }
    if not kept:
        return {}, dropped
    shared = np.logical_and.reduce(list(kept.values()))
    return {label: shared for label in kept}, dropped


def window_text(since: datetime | None) -> str:
    """`` since <date>`` for messages about a time-limited evaluation, else nothing."""
    return f" since {since.isoformat()}" if since is not None else ""


def on_or_after(when: pd.Series, since: pd.Timestamp | None) -> NDArray[np.bool_]:
    """Rows dated at or after ``since`` (all rows when ``since`` is None; undated rows never)."""
    if since is None:
        return np.ones(len(when), dtype=bool)
    stamps = pd.to_datetime(when, errors="coerce")
    return np.asarray((stamps >= since).fillna(False).to_numpy(dtype=bool))


def labelled_when(frame: pd.DataFrame) -> pd.Series:
    """When a labelled row happened: its test date where the lab gave one, else when it was
    loaded (naive UTC)."""
    index = frame.index
    fecha = (
        pd.to_datetime(frame[FECHA], errors="coerce")
        if FECHA in frame.columns
        else pd.Series(pd.NaT, index=index, dtype="datetime64[ns]")
    )
    if "ingested_at" in frame.columns:
        loaded = pd.to_datetime(frame["ingested_at"], errors="coerce", utc=True)
        fecha = fecha.fillna(loaded.dt.tz_convert(None))
    return fecha.astype("datetime64[ns]")
