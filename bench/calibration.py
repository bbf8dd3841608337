"""Split- vs cross-conformal calibration on small and mid-sized training sets, same data.

For each training size and seed, trains the same model twice on the same generated rows
(``calibration="split"``: 20 % of the training split held out to calibrate; ``"cross"``: the
model fitted on the whole training split, calibrated on out-of-fold residuals), then scores a
large generated hold-out set the models never saw: MAE, coverage of the 90 % interval overall
and per structure (worst and mean absolute gap to 0.90), mean interval width, and decisions
(wrong approvals) at the default thresholds and limits.

    uv run python bench/calibration.py                       # 1k, 3k, 10k rows, 5 seeds each
    uv run python bench/calibration.py --sizes 2000 --seeds 3 --model HistGradientBoostingRegressor
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from permeability.config import InferenceParams
from permeability.features.pca import fit_caliper_pca
from permeability.modelling.metrics import mae
from permeability.modelling.training import train_model
from permeability.monitoring.decision_quality import decision_quality
from permeability.record.schema import CALIBRES
from permeability.synthetic.generator import generate_lab_data


def evaluate(rows: int, seed: int, method: str, model: str, holdout: Any) -> dict[str, Any]:
    """Train on ``rows`` generated rows and score the hold-out with the service's batch scorer
    (the same intervals, limits and decisions a lab would get)."""
    from permeability.io.specs import load_specs
    from permeability.modelling.served import LoadedModel
    from permeability.scoring.batch import score_frame

    frame = generate_lab_data(rows, seed, mess=None)
    pca = fit_caliper_pca(frame[list(CALIBRES)].to_numpy(), 0.99)
    started = time.perf_counter()
    outcome = train_model(frame, pca, model=model, random_state=seed, calibration=method)
    seconds = time.perf_counter() - started
    loaded = LoadedModel.of_model(
        f"{method}-{rows}-{seed}", outcome.model, {}, loaded_at=time.time()
    )
    policy = InferenceParams().decision_policy()
    scored = score_frame(holdout, loaded, load_specs(None), policy).frame
    names = scored["structure"].astype(str).to_numpy()
    predicted = scored["prediction"].to_numpy(dtype=float)
    lower = scored["lower"].to_numpy(dtype=float)
    upper = scored["upper"].to_numpy(dtype=float)
    measured = holdout["Permeabilidad"].to_numpy(dtype=float)
    covered = (measured >= lower) & (measured <= upper)
    gaps = [abs(float(covered[names == name].mean()) - policy.level) for name in sorted(set(names))]
    decisions = scored["decision"].astype(object).where(scored["decision"].notna(), "")
    quality = decision_quality(measured, decisions.to_numpy(), scored["limit"].to_numpy(float))
    return {
        "rows": rows,
        "seed": seed,
        "method": method,
        "train_seconds": round(seconds, 2),
        "mae": round(mae(measured, predicted), 4),
        "coverage": round(float(covered.mean()), 4),
        "worst_gap": round(max(gaps) * 100, 2),
        "mean_gap": round(float(np.mean(gaps)) * 100, 2),
        "width": round(float(np.mean(np.where(np.isfinite(upper), upper - lower, np.nan))), 3),
        "wrong_approvals": quality["wrong_approvals"],
        "approvals": quality["approve"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10_000])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--model", default="LinearRegression")
    parser.add_argument("--holdout-rows", type=int, default=100_000)
    args = parser.parse_args()
    holdout = generate_lab_data(args.holdout_rows, 2027, start_id=10_000_000, mess=None)
    results = []
    print(
        f"{'rows':>6} {'method':>6} {'MAE':>7} {'cover':>6} {'worst':>6} {'mean':>5} {'width':>7} {'wrong appr':>10} {'approvals':>9} {'train s':>7}"
    )
    for rows in args.sizes:
        for method in ("split", "cross"):
            runs = [
                evaluate(rows, seed, method, args.model, holdout)
                for seed in range(1, args.seeds + 1)
            ]
            results += runs
            mean = {
                k: float(np.mean([r[k] for r in runs]))
                for k in (
                    "mae",
                    "coverage",
                    "worst_gap",
                    "mean_gap",
                    "width",
                    "wrong_approvals",
                    "approvals",
                    "train_seconds",
                )
            }
            print(
                f"{rows:>6} {method:>6} {mean['mae']:7.3f} {mean['coverage']:6.3f} {mean['worst_gap']:6.2f} "
                f"{mean['mean_gap']:5.2f} {mean['width']:7.3f} {mean['wrong_approvals']:10.1f} {mean['approvals']:9.0f} {mean['train_seconds']:7.2f}"
            )
    print(json.dumps({"bench": "calibration", "model": args.model, "runs": results}))


if __name__ == "__main__":
    main()
