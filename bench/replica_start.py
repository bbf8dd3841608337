"""How long an inference replica takes from process start to ready: the reference and now.

What it does, in a temporary folder:

1. the reference is the code of ``--reference-rev`` (default: the commit before replicas
   started fast), extracted with ``git archive`` and put first on ``PYTHONPATH``; "now" is this
   tree;
2. an embedded home (SQLite tracking store) with a trained and promoted version, and an
   ``mlflow server`` on 127.0.0.1 (SQLite backend, ``--serve-artifacts`` with a local
   destination) with another home that trained and promoted against it;
3. ``--runs`` rounds; in each round every case once, the order rotating (so load on the machine
   falls on all alike): start ``python -m permeability serve inference`` on a free port, poll
   ``GET /ready`` every 5 ms, then POST the seed sample to ``/inference``; record the wall time
   from ``Popen`` to the first 200 of each, and the CPU seconds the server had used when it
   became ready (on a busy shared machine the wall time moves a lot, CPU far less);
4. one more start of each case under ``python -X importtime``: what its imports cost up to
   ready, per library; and, once per round, two floors: a bare interpreter that only imports
   what the full model file needs and unpickles it (what a start from it pays), and the same
   for the served file (what a start from it pays);
5. after each start's first answer, one ``POST /inference/batch`` of one record: it needs the
   full model, which a replica started from the served file reads in the background a few
   seconds after the start (or then, if the batch comes first): the wait the served file
   moves from the start to the first batch;
6. once per round, a FastAPI hello world (one route) behind uvicorn, started the same way: the
   floor of any FastAPI service on this machine, so the figures can be read on a faster or
   slower one.

Cases: ``embedded``: the embedded home; ``server, cached``: a replica pointed at the tracking
server whose model folder is already on its disk; ``server, empty home``: a replica with an
empty home (it fetches the champion through the server first; the reference cannot: it never
becomes ready, so it is not run).

    uv run python bench/replica_start.py              # about 5 minutes on 2 busy cores
    uv run python bench/replica_start.py --runs 9 --reference-rev d62a917
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve import SEED_RECORD, base_env, free_port, stop_process_group, tree_cpu_s

REPO = Path(__file__).resolve().parent.parent
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
LIBRARIES = (
    "mlflow",
    "sqlalchemy",
    "sklearn",
    "scipy.stats",
    "pandas",
    "numpy",
    "fastapi",
    "uvicorn",
    "typer",
    "httpx",
    "openpyxl",
    "pandera",
    "pyarrow",
    "deltalake",
    "permeability.cli.main",
)
READY_TIMEOUT_S = 120.0


# -- set-up ------------------------------------------------------------------------------------


def extract_reference(rev: str, target: Path) -> Path:
    """The ``src/`` of ``rev`` (read from git, the working tree is not touched)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "src"], check=True, capture_output=True
    ).stdout
    target.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src"


def train_and_promote(home: Path, env: dict[str, str], label: str, rows: int) -> None:
    """Acquire generated data, train a small version and promote it, in a process of its own
    (so the tracking URI of ``env`` is the one used)."""
    script = f"""
from pathlib import Path
from permeability.io.exports import write_lab_export
from permeability.pipelines.acquisition import acquire
from permeability.pipelines.promotion import promote
from permeability.pipelines.training import train
from permeability.pipelines.training_spec import TrainingSpec
from permeability.settings import get_settings
from permeability.synthetic.generator import generate_lab_data
settings = get_settings()
home = Path({str(home)!r}); home.mkdir(parents=True, exist_ok=True)
acquire(settings, str(write_lab_export(generate_lab_data({rows}, 42, mess=None), home / "lab.csv")))
train(settings, TrainingSpec.parse(model="ExtraTreesRegressor", version={label!r}, test_size=0.25))
promote(settings, {label!r}, reason="benchmark")
"""
    subprocess.run([sys.executable, "-c", script], env=env, check=True)


def start_tracking_server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    folder.mkdir(parents=True)
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--serve-artifacts", "--artifacts-destination", str(folder / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with open(folder / "server.log", "wb") as log:
        process = subprocess.Popen(
            command,
            env={**os.environ, **SERVER_ENV},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited: {(folder / 'server.log').read_text()[-2000:]}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_process_group(process)
    raise RuntimeError("mlflow server did not start within 240 s")


# -- one start ---------------------------------------------------------------------------------


def one_start(env: dict[str, str], log: Path, *, importtime: bool = False) -> dict[str, Any]:
    """Start the service; seconds to the first 200 on /ready and on /inference, CPU at ready."""
    port = free_port()
    command = [sys.executable, *(["-X", "importtime"] if importtime else [])]
    command += ["-m", "permeability", "serve", "inference", "--port", str(port)]
    command += ["--no-access-log"]
    base = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        ready_s, cpu_s = _poll_ready(base, process, started, log)
        answered = httpx.post(f"{base}/inference", json={"data_test": SEED_RECORD}, timeout=30)
        inference_s = time.perf_counter() - started
        if answered.status_code != 200:
            raise RuntimeError(f"/inference answered {answered.status_code}: {answered.text}")
        champion = httpx.get(f"{base}/ready", timeout=5).json()["champion"]
        # The first batch needs the full model: read in the background a few seconds after
        # the start, or now if the batch comes first. Its wait is what a served file defers.
        # (Not under -X importtime, whose figures stop at ready.)
        batch_s = math.nan
        if not importtime:
            batch_started = time.perf_counter()
            batch = httpx.post(
                f"{base}/inference/batch", json={"records": [SEED_RECORD]}, timeout=60
            )
            batch_s = time.perf_counter() - batch_started
            if batch.status_code != 200:
                raise RuntimeError(f"/inference/batch answered {batch.status_code}: {batch.text}")
    finally:
        stop_process_group(process)
    return {
        "ready_s": ready_s,
        "inference_s": inference_s,
        "cpu_s": cpu_s,
        "champion": champion,
        "first_batch_s": batch_s,
    }


def _poll_ready(
    base: str, process: subprocess.Popen[bytes], started: float, log: Path
) -> tuple[float, float | None]:
    with httpx.Client(timeout=2.0) as client:
        while time.perf_counter() - started < READY_TIMEOUT_S:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                if client.get(f"{base}/ready").status_code == 200:
                    return time.perf_counter() - started, tree_cpu_s(process.pid)
            except httpx.HTTPError:
                pass
            time.sleep(0.005)
    raise RuntimeError(f"not ready within {READY_TIMEOUT_S:.0f} s: {log.read_text()[-2000:]}")


def load_only(version: Path, env: dict[str, str], *, served: bool = False) -> float:
    """Seconds a bare interpreter takes to import what the model needs and unpickle it: the
    full model file, or (``served``) the served file a replica starts from."""
    if served:
        loader = (
            "from permeability.io.model_file import SERVED_FILE as F, load_served_file as load\n"
        )
    else:
        loader = "from permeability.io.model_file import MODEL_FILE as F, load_model_file as load\n"
    script = "import sys; from pathlib import Path\n" + loader + "load(Path(sys.argv[1]) / F)\n"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script, str(version)], env=env, check=True)
    return time.perf_counter() - started


HELLO_APP = """
from fastapi import FastAPI

app = FastAPI()


@app.get("/ready")
def ready() -> dict[str, bool]:
    return {"ready": True}
"""


def hello_world_start(work: Path) -> float:
    """Seconds from ``Popen`` to the first 200 of a FastAPI hello world behind uvicorn: what any
    FastAPI service started this way pays on this machine, before any work of its own."""
    (work / "hello.py").write_text(HELLO_APP)
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "hello:app", "--port", str(port)]
    command += ["--no-access-log"]
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        ready_s, _ = _poll_ready(f"http://127.0.0.1:{port}", process, started, work / "hello.py")
    finally:
        stop_process_group(process)
    return ready_s


def import_costs(log: Path) -> dict[str, float]:
    """Seconds each library cost the process (``-X importtime``: where it was first imported)."""
    costs: dict[str, float] = {}
    pattern = re.compile(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)")
    for line in log.read_text(errors="replace").splitlines():
        found = pattern.match(line)
        if found and found.group(2) in LIBRARIES and found.group(2) not in costs:
            costs[found.group(2)] = int(found.group(1)) / 1e6
    return costs


# -- the run -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--reference-rev", default="d62a917")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="replica-start-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        reference_src = extract_reference(args.reference_rev, work / "reference")
        embedded = work / "embedded"
        train_and_promote(embedded, base_env(embedded), "bench", args.rows)
        server, url = start_tracking_server(work / "tracking")
        trained = work / "trained-on-server"
        train_and_promote(
            trained, {**base_env(trained), "MLFLOW_TRACKING_URI": url}, "bench", args.rows
        )

        def env(home: Path, *, reference: bool, tracking: str | None = None) -> dict[str, str]:
            values = base_env(home)
            if reference:
                values["PYTHONPATH"] = str(reference_src)
            if tracking is not None:
                values["MLFLOW_TRACKING_URI"] = tracking
            return values

        cases: dict[str, Any] = {
            "reference, embedded": lambda: env(embedded, reference=True),
            "now, embedded": lambda: env(embedded, reference=False),
            "reference, server, cached": lambda: env(trained, reference=True, tracking=url),
            "now, server, cached": lambda: env(trained, reference=False, tracking=url),
            "now, server, empty home": lambda: env(
                _empty_home(work), reference=False, tracking=url
            ),
        }
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
        names = list(cases)
        floor: list[float] = []
        served_floor: list[float] = []
        hello: list[float] = []
        for round_ in range(args.runs):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                results[name].append(one_start(cases[name](), work / "start.log"))
            floor.append(load_only(embedded / "models" / "bench", base_env(embedded)))
            served_floor.append(
                load_only(embedded / "models" / "bench", base_env(embedded), served=True)
            )
            hello.append(hello_world_start(work))
        imports: dict[str, dict[str, float]] = {}
        for name in cases:
            log = work / f"importtime-{len(imports)}.log"
            one_start(cases[name](), log, importtime=True)
            imports[name] = import_costs(log)
    finally:
        if server is not None:
            stop_process_group(server)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report(results, imports, floor, served_floor, hello, args)


def _empty_home(work: Path) -> Path:
    home = Path(tempfile.mkdtemp(prefix="replica-", dir=work))
    return home / "storage"


def _stats(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} {min(values):6.2f} {max(values):6.2f}"


def report(
    results: dict[str, list[dict[str, Any]]],
    imports: dict[str, dict[str, float]],
    floor: list[float],
    served_floor: list[float],
    hello: list[float],
    args: Any,
) -> None:
    cpu_count = os.cpu_count()
    load = os.getloadavg()[0]
    print(f"\nreplica start, {args.runs} runs per case ({cpu_count} cores, load {load:.1f})")
    print(f"{'case':28} {'ready s: median   min    max':30} {'/inference s (median)':>22} "
          f"{'CPU s at ready (median)':>24} {'first batch s (median)':>23}")  # fmt: skip
    for name, runs in results.items():
        ready = [r["ready_s"] for r in runs]
        first = [r["inference_s"] for r in runs]
        cpu = [r["cpu_s"] for r in runs if r["cpu_s"] is not None]
        cpu_text = f"{statistics.median(cpu):.2f}" if cpu else "?"
        batch = statistics.median(r["first_batch_s"] for r in runs)
        print(
            f"{name:28} {_stats(ready):30} {statistics.median(first):22.2f} {cpu_text:>24} "
            f"{batch:23.2f}"
        )
    print(
        f"{'floor: load the model file':28} {_stats(floor):30}   (a bare interpreter that only "
        "unpickles the champion: what a start from the full model pays)"
    )
    print(
        f"{'floor: load the served file':28} {_stats(served_floor):30}   (the same for the "
        "served file: what a start from it pays)"
    )
    print(
        f"{'floor: FastAPI hello world':28} {_stats(hello):30}   (one route behind uvicorn: what "
        "any FastAPI service pays on this machine before its own work)"
    )
    print("\nimport cost up to ready (s, -X importtime, where each library was first imported):")
    print(f"{'library':38}" + "".join(f"{name[:26]:>28}" for name in imports))
    for library in LIBRARIES:
        cells = [imports[name].get(library) for name in imports]
        print(f"{library:38}" + "".join(f"{c:28.3f}" if c else f"{'-':>28}" for c in cells))
    summary = {
        name: {
            "ready_median_s": round(statistics.median(r["ready_s"] for r in runs), 3),
            "ready_min_s": round(min(r["ready_s"] for r in runs), 3),
            "ready_max_s": round(max(r["ready_s"] for r in runs), 3),
            "inference_median_s": round(statistics.median(r["inference_s"] for r in runs), 3),
            "first_batch_median_s": round(statistics.median(r["first_batch_s"] for r in runs), 3),
            "champion": runs[0]["champion"],
        }
        for name, runs in results.items()
    }
    summary["floor: load the model file"] = {"ready_median_s": round(statistics.median(floor), 3)}
    summary["floor: load the served file"] = {
        "ready_median_s": round(statistics.median(served_floor), 3)
    }
    summary["floor: FastAPI hello world"] = {"ready_median_s": round(statistics.median(hello), 3)}
    print(json.dumps({"runs": args.runs, "reference_rev": args.reference_rev, "cases": summary}))


if __name__ == "__main__":
    main()
