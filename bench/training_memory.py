"""Peak memory of the training service when five POST /train arrive at once (issue 13, item 5).

    .venv/bin/python bench/training_memory.py                       # 30,000 rows, RandomForest
    .venv/bin/python bench/training_memory.py --rows 5000 --model auto

Fills one feature store, then runs the training service twice, each time in a fresh child
process (peak RSS is a per-process high-water mark; ``os.wait4`` returns the child's):

- reference: ``training.max_concurrent: 5``: the five trainings run at once, as before the cap;
- capped: the default ``training.max_concurrent: 1``: they take turns in the FIFO line.

In each child, five threads POST /train (different labels, same model) through the app's
TestClient at the same moment, and a sampler reads the process RSS every 0.1 s. Printed per
run: RSS once the service is up, peak RSS (``ru_maxrss``), RSS when the five have answered,
the most trainings seen running at once (``GET /trainings``), wall seconds and the models
trained (``auto`` may choose differently: its search has a time budget, which five trainings
sharing two cores exhaust sooner). Then one JSON line with every figure. Wall time is not a
target; memory is what the cap is for.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REQUESTS = 5


def _rss_mib() -> float:
    """Current resident set of this process (Linux /proc)."""
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _fill(home: Path, rows: int) -> str:
    from permeability.io.exports import write_lab_export
    from permeability.pipelines.acquisition import acquire
    from permeability.settings import Settings
    from permeability.synthetic.generator import generate_lab_data
    from permeability.synthetic.mess import MessSpec

    settings = Settings(home=home)
    source = write_lab_export(
        generate_lab_data(rows, 42, mess=MessSpec.none()), home.parent / "lab.csv"
    )
    acquire(settings, str(source))
    return settings.resolved_feature_store_uri


def _child(home: Path, feature_store: str, cap: int, model: str) -> dict[str, Any]:
    """One service, five simultaneous requests; figures of this process."""
    from fastapi.testclient import TestClient

    from permeability.services.training.app import create_training_app
    from permeability.settings import Settings

    config = home.parent / f"config-{cap}.yaml"
    config.write_text(f"training:\n  max_concurrent: {cap}\n  max_queued: 8\n", encoding="utf-8")
    settings = Settings(home=home, feature_store_uri=feature_store, config_file=config)
    samples: list[float] = []
    most_running = 0
    done = threading.Event()
    with TestClient(create_training_app(settings)) as client:
        ready_rss = _rss_mib()

        def sample() -> None:
            nonlocal most_running
            while not done.wait(0.1):
                samples.append(_rss_mib())
                running = len(client.get("/trainings").json()["running"])
                most_running = max(most_running, running)

        codes: list[int] = []
        chosen: list[str] = []
        barrier = threading.Barrier(REQUESTS)

        def post(label: str) -> None:
            barrier.wait()
            body = {"model": model, "version": label, "test_size": 0.25}
            response = client.post("/train", json=body)
            codes.append(response.status_code)
            if response.status_code == 201:
                chosen.append(response.json()["chosen_model"])

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.perf_counter()
        threads = [threading.Thread(target=post, args=(f"m{i}",)) for i in range(REQUESTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        after_rss = _rss_mib()
    return {
        "cap": cap,
        "codes": sorted(codes),
        "chosen_models": sorted(chosen),
        "ready_rss_mib": round(ready_rss, 1),
        "sampled_peak_rss_mib": round(max(samples, default=after_rss), 1),
        "after_rss_mib": round(after_rss, 1),
        "most_running_at_once": most_running,
        "seconds": round(seconds, 1),
    }


def _run_child(scratch: Path, feature_store: str, cap: int, model: str) -> dict[str, Any]:
    home = scratch / f"cap-{cap}" / "storage"
    home.mkdir(parents=True)
    command = [
        sys.executable,
        __file__,
        "--child",
        "--cap",
        str(cap),
        "--home",
        str(home),
        "--feature-store",
        feature_store,
        "--model",
        model,
    ]
    out = home.parent / "stdout.txt"
    with out.open("w", encoding="utf-8") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
    output = out.read_text(encoding="utf-8")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child with cap {cap} failed:\n{output}")
    figures: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    figures["peak_rss_mib"] = round(usage.ru_maxrss / 1024, 1)  # Linux: KiB
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--model", default="RandomForestRegressor")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cap", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--feature-store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if args.child:
        print(json.dumps(_child(args.home, args.feature_store, args.cap, args.model)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-training-memory-") as folder:
        scratch = Path(folder)
        feature_store = _fill(scratch / "shared" / "storage", args.rows)
        runs = [
            _run_child(scratch, feature_store, REQUESTS, args.model),
            _run_child(scratch, feature_store, 1, args.model),
        ]
    print(f"five parallel POST /train, {args.model}, {args.rows:,} rows")
    print(f"{'run':<28} {'ready':>8} {'peak':>8} {'after':>8} {'at once':>8} {'s':>6}  chosen")
    for run, name in zip(
        runs, ("reference (cap 5 = uncapped)", "capped (cap 1, default)"), strict=True
    ):
        print(
            f"{name:<28} {run['ready_rss_mib']:>8.0f} {run['peak_rss_mib']:>8.0f} "
            f"{run['after_rss_mib']:>8.0f} {run['most_running_at_once']:>8} "
            f"{run['seconds']:>6.1f}  {', '.join(run['chosen_models']) or run['codes']}"
        )
    print("(RSS in MiB)")
    print(json.dumps({"rows": args.rows, "model": args.model, "runs": runs}))


if __name__ == "__main__":
    main()
