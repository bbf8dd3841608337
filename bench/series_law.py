"""Does the layers-in-series law predict an unseen laminate on the real data? (issue 12, item 4)

Physics says a laminate's layers add their resistances: 1/WVTR = Σ 1/WVTR_layer, so the best
barrier dominates. This bench asks whether that law, fitted on the structures a version has
seen, predicts a structure it has not seen better than the family level the project uses
(``features/structure_levels.py``: the mean log WVTR of the structures sharing its best barrier).

Leave one structure out, on the seed lab's real data (the same acquisition as
``bench/real_data.py``): per structure, its mean log WVTR; the law's per-layer resistances
R ≥ 0 are fitted by non-negative least squares on the other structures (1/WVTR_s =
Σ count_{s,l}·R_l, each structure weighted by √rows and by 1/WVTR_s so that the error is
relative, not dominated by foil's huge resistances); the left-out structure is predicted by
the law, by its family's level (row-weighted mean of the family's other structures) and by the
family's most measured structure (the linear models' stand-in). Printed: median and mean
|log error| and the row-weighted mean, over structures whose layers all appear elsewhere.

    .venv/bin/python bench/series_law.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final, cast

import numpy as np
import pandas as pd
from scipy.optimize import nnls

sys.path.insert(0, str(Path(__file__).resolve().parent))

from permeability.record.structures import (
    LAYER_VOCABULARY,
    UNKNOWN_FAMILY,
    build_alias_map,
    parse_structure,
    structure_family,
)
from real_data import SEED_LAB_PROCESSED, load_real_products

LAYERS: Final = list(LAYER_VOCABULARY)


def structure_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per structure with known layers: rows, mean log WVTR, layers, family."""
    aliases = build_alias_map()
    table = (
        frame.assign(log_wvtr=np.log(frame["Permeabilidad"].astype(float)))
        .groupby(frame["Estructura"].astype(str))
        .agg(rows=("log_wvtr", "size"), log_wvtr=("log_wvtr", "mean"))
    )
    table["layers"] = [parse_structure(name, aliases).layers for name in table.index]
    table["family"] = [structure_family(layers) for layers in table["layers"]]
    return table[table["family"] != UNKNOWN_FAMILY]


def layer_counts(rows: pd.Series) -> np.ndarray:
    counts = np.zeros((len(rows), len(LAYERS)))
    for i, layers in enumerate(rows):
        for layer in layers:
            counts[i, LAYERS.index(layer)] += 1.0
    return counts


def series_law(train: pd.DataFrame, layers: tuple[str, ...]) -> float:
    """log WVTR of ``layers`` from resistances fitted on ``train`` (nan if unbounded)."""
    resistance = 1.0 / np.exp(train["log_wvtr"].to_numpy())
    weight = np.sqrt(train["rows"].to_numpy()) / resistance
    fitted, _ = nnls(layer_counts(train["layers"]) * weight[:, None], resistance * weight)
    total = float((layer_counts(pd.Series([layers])) @ fitted)[0])
    return -float(np.log(total)) if total > 0.0 else float("nan")


def main() -> None:
    table = structure_table(load_real_products(SEED_LAB_PROCESSED).frame)
    rows = []
    for name in table.index:
        train = table.drop(index=name)
        layers = cast(tuple[str, ...], table.at[name, "layers"])
        family = train[train["family"] == table.at[name, "family"]]
        if not all(any(layer in seen for seen in train["layers"]) for layer in layers):
            continue
        if family.empty:
            continue
        rows.append(
            {
                "structure": name,
                "rows": table.at[name, "rows"],
                "measured": table.at[name, "log_wvtr"],
                "series law": series_law(train, layers),
                "family level": float(np.average(family["log_wvtr"], weights=family["rows"])),
                "family's most measured": float(family.sort_values("rows")["log_wvtr"].iloc[-1]),
            }
        )
    result = pd.DataFrame(rows)
    print(f"{len(result)} structures left out one at a time (|log error| of their mean log WVTR)")
    print(f"{'predictor':<24} {'median':>7} {'mean':>7} {'row-weighted':>13} {'unbounded':>10}")
    for column in ("series law", "family level", "family's most measured"):
        error = (result[column] - result["measured"]).abs()
        finite = error.notna()
        weighted = np.average(error[finite], weights=result["rows"][finite])
        print(
            f"{column:<24} {error[finite].median():7.3f} {error[finite].mean():7.3f} "
            f"{weighted:13.3f} {int((~finite).sum()):10d}"
        )


if __name__ == "__main__":
    main()
