"""Measure what docs/deploy.md's Sizing table says: processes and memory of each service, idle
and under load, and what the inference service answers per worker.

    .venv/bin/python bench/sizing.py --home /tmp/home [--duration 10]

``--home`` is a trained home with a champion (``permeability up --no-serve`` makes one). Each
service is started on it as its systemd unit starts it (same command, loopback, a free port),
one at a time; memory is read from /proc for the service's whole process tree: RSS (what
``ps`` shows; pages shared between workers counted in each) and PSS (shared pages divided
between the processes that share them: what the tree really adds to the machine). The MLflow
server is measured on a throw-away SQLite store, with the unit's lean flags and with its
defaults. Needs ``wrk`` (Debian package) for the load.
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

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def _bench_serve() -> Any:
    """bench/serve.py's helpers (server start/stop, wrk), beside this script."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import serve

    return serve


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    tree, frontier = {pid}, {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - tree
        tree |= frontier
    return sorted(tree)


def _kib(path: Path, field: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(pid: int) -> dict[str, float]:
    """Processes, RSS and PSS (MiB) of ``pid``'s tree now."""
    tree = process_tree(pid)
    rss = sum(_kib(Path(f"/proc/{p}/status"), "VmRSS") for p in tree)
    pss = sum(_kib(Path(f"/proc/{p}/smaps_rollup"), "Pss") for p in tree)
    return {"processes": len(tree), "rss_mib": round(rss / 1024), "pss_mib": round(pss / 1024)}


class PeakSampler:
    """The largest RSS and PSS of a process tree, sampled every 0.25 s while running."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = {"rss_mib": 0.0, "pss_mib": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            now = memory(self.pid)
            for key in self.peak:
                self.peak[key] = max(self.peak[key], now[key])

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def measure_service(
    bench: Any, name: str, command: list[str], env: dict[str, str], ready: str, workdir: Path
) -> dict[str, Any]:
    with bench.running(command, env, ready, workdir / f"{name}.log") as process:
        time.sleep(5)  # background start-up work (champion refresher, log writer) settles
        return {"service": name, "idle": memory(process.pid)}


def measure_inference(
    bench: Any, home: Path, workers: int, duration: int, env: dict[str, str], workdir: Path
) -> dict[str, Any]:
    port = bench.free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(VENV_BIN / "permeability"), "serve", "inference", "--port", str(port)]
    command += ["--workers", str(workers), "--no-access-log"]
    body = json.dumps({"data_test": bench.SEED_RECORD})
    with bench.running(command, env, f"{url}/ready", workdir / f"inference-{workers}.log") as p:
        bench.wait_for_workers(url, workers)
        time.sleep(5)
        idle = memory(p.pid)
        bench.run_wrk(f"{url}/inference", body, 8, 2, workdir)  # warm-up
        cpu_before = bench.tree_cpu_s(p.pid)
        with PeakSampler(p.pid) as sampler:
            load = bench.run_wrk(f"{url}/inference", body, 32, duration, workdir)
        cpu = bench.tree_cpu_s(p.pid) - cpu_before
        after = memory(p.pid)
    return {
        "service": f"inference, {workers} worker(s)",
        "idle": idle,
        "peak_under_load": sampler.peak,
        "after_load": after,
        "wrk_32_connections": load,
        "cpu_us_per_answer": round(cpu / load["requests"] * 1e6),
    }


def measure_mlflow(bench: Any, lean: bool, env: dict[str, str], workdir: Path) -> dict[str, Any]:
    store = Path(tempfile.mkdtemp(prefix="mlflow-", dir=workdir))
    port = bench.free_port()
    command = [str(VENV_BIN / "mlflow"), "server", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{store}/mlflow.db"]
    command += ["--artifacts-destination", str(store / "artifacts")]
    server_env = dict(env)
    if lean:
        command += ["--workers", "1"]
        server_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    started = time.monotonic()
    name = "lean" if lean else "default"
    with bench.running(command, server_env, f"http://127.0.0.1:{port}/health", workdir / name) as p:
        up_s = time.monotonic() - started
        time.sleep(10)
        idle = memory(p.pid)
    return {"service": f"mlflow server ({name})", "up_s": round(up_s, 1), "idle": idle}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a trained home with a champion")
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per load run")
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()
    bench = _bench_serve()
    env = {
        **os.environ,
        "PERMEABILITY_HOME": str(args.home.resolve()),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "OMP_NUM_THREADS": "1",
    }
    workdir = Path(tempfile.mkdtemp(prefix="sizing-"))
    results = []
    for workers in (1, 2):
        results.append(measure_inference(bench, args.home, workers, args.duration, env, workdir))
        print(json.dumps(results[-1]), flush=True)
    port = bench.free_port()
    training = [str(VENV_BIN / "permeability"), "serve", "training", "--port", str(port)]
    results.append(
        measure_service(
            bench, "training", training, env, f"http://127.0.0.1:{port}/health", workdir
        )
    )
    print(json.dumps(results[-1]), flush=True)
    with open(workdir / "scheduler.log", "wb") as out:
        scheduler = subprocess.Popen(
            [str(VENV_BIN / "permeability"), "schedule"], env=env, stdout=out, stderr=out
        )
        time.sleep(15)
        results.append({"service": "scheduler", "idle": memory(scheduler.pid)})
        scheduler.terminate()
        scheduler.wait(timeout=30)
    print(json.dumps(results[-1]), flush=True)
    if not args.skip_mlflow:
        for lean in (True, False):
            results.append(measure_mlflow(bench, lean, env, workdir))
            print(json.dumps(results[-1]), flush=True)
    print(f"logs: {workdir}", flush=True)


if __name__ == "__main__":
    main()
