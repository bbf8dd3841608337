"""The served file on the real data: the same answers as the full model, without its libraries.

For each model, trained on the seed lab's product rows (``../shared/data/``, through acquisition,
as ``bench/real_data.py`` reads them), the version's served file is written and then, in a fresh
interpreter that imports nothing else, every product row is answered as a single record
(``predict_record_detail``, the 90 % interval and P(exceed 1 g/m²·day)). Those answers are
compared with the full model's, both its frame path (``predict_interval_frame``, the reference)
and its own record path, in this process. Printed per model: rows, the largest relative
difference of each figure, the served and full files' sizes, and the seconds a fresh
interpreter takes to load each file (the reference, in the same run).

    uv run python bench/served_real.py            # about a minute
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

from permeability.io.model_file import save_model_file, save_served_file
from permeability.modelling.training import train_model
from permeability.record.schema import CALIBRE_PROM, CALIBRES, ESTRUCTURA, GRADOS_C, PORC_HUMEDAD
from real_data import SEED_LAB_PROCESSED, load_real_products

LIMIT = 1.0
INPUTS = (ESTRUCTURA, GRADOS_C, PORC_HUMEDAD, *CALIBRES, CALIBRE_PROM)

_ANSWER = """
import json, sys
from pathlib import Path
from permeability.io.model_file import load_served_file
scorer = load_served_file(Path(sys.argv[1]))
records = json.loads(Path(sys.argv[2]).read_text())
out = []
for record in records:
    name = scorer.features.canonical_structure(record["Estructura"])
    value, clipped = scorer.predict_record_detail(record, strict=False)
    low, high = scorer.interval(value, name)
    out.append([value, low, high, scorer.p_exceed(value, name, %(limit)r)])
heavy = sorted(m for m in ("sklearn", "scipy", "pandas", "joblib") if m in sys.modules)
print(json.dumps({"answers": out, "heavy": heavy}))
"""
_LOAD = "import sys; from pathlib import Path\nfrom permeability.io.model_file import {f}\n{f}(Path(sys.argv[1]))\n"


def _seconds(script: str, path: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=[
            "auto",
            "LinearRegression",
            "RandomForestRegressor",
            "HistGradientBoostingRegressor",
        ],
    )
    args = parser.parse_args()
    data = load_real_products(SEED_LAB_PROCESSED)
    frame = data.frame
    records: list[dict[str, Any]] = [
        {str(k): (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in frame[list(INPUTS)].to_dict("records")
    ]
    report = []
    with tempfile.TemporaryDirectory(prefix="served-real-") as scratch:
        folder = Path(scratch)
        (folder / "records.json").write_text(json.dumps(records))
        for name in args.models:
            model = train_model(frame, data.pca, model=name, random_state=1).model
            if not model.record_scorer.lean:
                report.append({"model": name, "chosen": model.model_name, "served": None})
                continue
            served = save_served_file(model.record_scorer, folder / f"{name}.served.pkl")
            full_file = save_model_file(model, folder / f"{name}.joblib")
            done = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _ANSWER % {"limit": LIMIT},
                    str(served),
                    str(folder / "records.json"),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(done.stdout)
            answers = np.array(result["answers"], dtype=np.float64)
            reference = model.predict_interval_frame(frame)
            names = reference["Estructura"].astype(str).to_numpy()
            predicted = reference["predicted"].to_numpy(dtype=np.float64)
            p_exceed = np.array(
                [model.p_exceed(v, n, LIMIT) for v, n in zip(predicted, names, strict=True)]
            )
            own = np.array([model.predict_record(r, strict=False) for r in records])

            def worst(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
                scale = np.maximum(np.abs(b), 1e-300)
                return float(np.max(np.abs(a - b) / scale))

            report.append(
                {
                    "model": name,
                    "chosen": model.model_name,
                    "fast_path": model.record_scorer.fast_path,
                    "rows": len(records),
                    "max_rel_diff_prediction_vs_frame": worst(answers[:, 0], predicted),
                    "max_rel_diff_prediction_vs_record": worst(answers[:, 0], own),
                    "max_rel_diff_lower": worst(
                        answers[:, 1], reference["lower"].to_numpy(dtype=np.float64)
                    ),
                    "max_rel_diff_upper": worst(
                        answers[:, 2], reference["upper"].to_numpy(dtype=np.float64)
                    ),
                    "max_abs_diff_p_exceed": float(np.max(np.abs(answers[:, 3] - p_exceed))),
                    "heavy_modules_in_server": result["heavy"],
                    "served_bytes": served.stat().st_size,
                    "full_bytes": full_file.stat().st_size,
                    "load_served_s": round(_seconds(_LOAD.format(f="load_served_file"), served), 3),
                    "load_full_s": round(_seconds(_LOAD.format(f="load_model_file"), full_file), 3),
                }
            )
    for row in report:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
