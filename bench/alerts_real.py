"""Do the evaluation's alerts fire on the real lab when they should, and stay quiet otherwise?

    .venv/bin/python bench/alerts_real.py                 # auto champion (about 2 minutes)
    .venv/bin/python bench/alerts_real.py --model Ridge --shift 1.5 --json

The seed lab's only real data (``../shared/data/seed_lab_processed.csv``, never copied into the
repository) rebuilt as its raw export (``tests/real_export.py``; test dates in file order) and
run through the real pipeline in a temporary home:

1. the first 60 % of tests (by date) are acquired, a champion is trained on them and promoted;
2. **stable**: the next 20 % of tests arrive as they are; ``evaluate`` runs on them;
3. **shifted**: the last 20 % arrive with every product's WVTR multiplied by ``--shift``
   (a process change the lab would have to hear about); ``evaluate`` runs on them alone
   (``since`` = their first date).

For each window it prints what the champion's figures were (rows, tests, MAE now and at
training, coverage), which drift comparisons were flagged and which events were raised, so
the reference in the same run is the stable window: events there are false alarms, events
in the shifted window are detections. Calibration and reference films go through the same
run: their control chart's events are listed too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.real_export import build_real_export, load_processed, write_csv  # noqa: E402

from permeability.pipelines.acquisition import acquire  # noqa: E402
from permeability.pipelines.evaluation import evaluate  # noqa: E402
from permeability.pipelines.evaluation_request import EvaluationReport  # noqa: E402
from permeability.pipelines.promotion import promote  # noqa: E402
from permeability.pipelines.training import train  # noqa: E402
from permeability.pipelines.training_spec import TrainingSpec  # noqa: E402
from permeability.settings import Settings  # noqa: E402


def _windows(export: Any) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Base (60 % of tests), stable (20 %), last (20 %): whole tests, in date order."""
    frame, tests = export.frame, export.test.to_numpy()
    order = pd.unique(tests)
    first, second = int(len(order) * 0.6), int(len(order) * 0.8)
    parts = (set(order[:first]), set(order[first:second]), set(order[second:]))
    return tuple(frame.loc[np.isin(tests, list(p))].reset_index(drop=True) for p in parts)  # type: ignore[return-value]


def _shifted(frame: pd.DataFrame, factor: float, products: pd.Series) -> pd.DataFrame:
    shifted = frame.copy()
    shifted.loc[products.to_numpy(), "Permeabilidad"] = (
        shifted.loc[products.to_numpy(), "Permeabilidad"].astype(float) * factor
    )
    return shifted


def _summary(name: str, report: EvaluationReport) -> dict[str, Any]:
    item = next(e for e in report.evaluated if e.is_champion)
    recent = item.recent
    drift = item.drift
    return {
        "window": name,
        "rows": recent.n if recent else 0,
        "tests": recent.tests if recent else 0,
        "mae": round(recent.metrics["mae"], 4) if recent else None,
        "coverage": round(recent.metrics["coverage"], 3) if recent else None,
        "flagged": [f"{t.feature}[{t.structure}]" for t in drift.flagged] if drift else [],
        "new_structures": sorted(drift.flagged_new_structures) if drift else [],
        "events": [f"{e.kind}:{e.severity}" for e in report.events],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="auto")
    parser.add_argument("--shift", type=float, default=2.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    export = build_real_export(load_processed())
    base, stable, last = _windows(export)
    products = ~last["Estructura"].astype(str).str.upper().str.contains(
        "CALIBRACION|NIST|MATERIAL-REF|EN-ESTUDIO|NO-REPORTAD|ANALISIS|MUESTRA"
    )
    with tempfile.TemporaryDirectory(prefix="alerts-real-") as scratch:
        root = Path(scratch)
        settings = Settings(home=root / "storage")
        acquire(settings, str(write_csv(base, root / "base.csv")))
        trained = train(settings, TrainingSpec(model=args.model, version="real-1", test_size=0.2))
        promote(settings, "real-1", reason="bench")
        acquire(settings, str(write_csv(stable, root / "stable.csv")))
        rows = [_summary("stable", evaluate(settings))]
        acquire(settings, str(write_csv(_shifted(last, args.shift, products), root / "last.csv")))
        dates = pd.to_datetime(
            {"year": last["Año"], "month": last["Mes"], "day": last["Día"]}, errors="coerce"
        )
        first_day = dates.min()
        rows.append(_summary(f"shifted x{args.shift}", evaluate(settings, since=first_day)))
    result = {
        "model": args.model,
        "trained_mae": round(float(trained.metrics["mae"]), 4),
        "base_rows": len(base),
        "windows": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"champion {args.model}: MAE at training {result['trained_mae']} ({len(base)} rows)")
    for row in rows:
        print(
            f"{row['window']:>12}: {row['rows']} rows / {row['tests']} tests, MAE {row['mae']}, "
            f"coverage {row['coverage']}; flagged {row['flagged'] or '-'}; new structures "
            f"{row['new_structures'] or '-'}; events {row['events'] or '-'}"
        )
    print(f"{result['seconds']} s")


if __name__ == "__main__":
    main()
