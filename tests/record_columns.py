"""Test builder: the record columns acquisition derives, added to a hand-built sample frame."""

from __future__ import annotations

import pandas as pd

from permeability.record.schema import (
    BELOW_DETECTION_LIMIT,
    CONSECUTIVO,
    ESTRUCTURA,
    INSTRUMENTISTA,
    IS_PRODUCT,
    LAYERS,
    MUESTRA,
    RECORD_ID,
    REFERENCIA,
    TEST_ID,
)
from permeability.record.structures import build_alias_map, parse_structure


def add_record_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Each row its own record (numbered by Muestra) and its own test; every row a product."""
    out = frame.copy()
    ids = out[MUESTRA].astype("int64").astype("str")
    aliases = build_alias_map()
    out.insert(0, RECORD_ID, ids)
    out[CONSECUTIVO] = ids
    out[REFERENCIA] = pd.Series([None] * len(out), index=out.index, dtype="str")
    out[INSTRUMENTISTA] = pd.Series([None] * len(out), index=out.index, dtype="str")
    out[TEST_ID] = "T-" + ids
    out[LAYERS] = pd.Series(
        [parse_structure(s, aliases).layers_text for s in out[ESTRUCTURA]],
        index=out.index,
        dtype="str",
    )
    out[IS_PRODUCT] = True
    out[BELOW_DETECTION_LIMIT] = False
    return out
