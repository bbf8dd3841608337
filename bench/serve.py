"""Benchmark the inference service against ``mlflow models serve``, plus batch speed and quality.

What it does, in a fresh temporary home (nothing of yours is touched):

1. generates a clean lab export, acquires it into the feature store, trains a linear version and
   a tree version with the project's own jobs, and promotes one of them to ``champion``;
2. for each champion (linear, then tree): starts ``permeability serve inference`` (1 and 2
   uvicorn workers; each once as shipped and once with ``inference.fast_path: false``, i.e.
   every request through the FastAPI route: the same-run reference for the lean path) and
   ``mlflow models serve --env-manager local -m models:/permeability@champion``, each on a free
   loopback port, and drives every server with ``wrk`` POSTing the seed's single record
   (MLflow gets the same record in its own ``{"dataframe_records": [...]}`` format) at 8 and
   32 connections for a fixed duration; an empty FastAPI endpoint on the same stack is measured
   first (the ceiling of any FastAPI route on this machine). The shipped service runs next to
   a copy with ``inference.prediction_spool: false``, their cells interleaved: what spooling
   every answer to the local disk before sending it costs, as a ratio in the same run (and in
   process, one prediction-log append with and without the spool);
3. scores 1,000,000 generated rows in process with the batch scorer (``scoring/batch.py``);
4. measures interval coverage per structure and decision quality (approve / reject / retest,
   wrong approvals, wrong rejections) of the champion on a large generated hold-out set.

Prints a table and one JSON line. Targets: ≥ 30× the req/s of mlflow models serve, p99 ≤ 10 ms
at 32 connections, batch ≥ 500,000 rows/s, coverage within ±3 points of the level per structure.

    uv run python bench/serve.py                 # full run (about 6 minutes)
    uv run python bench/serve.py --duration 3 --batch-rows 200000 --skip-tree   # quicker

Needs ``wrk`` (Debian: ``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from permeability.services.inference.schemas import SEED_SAMPLE

SEED_RECORD: dict[str, Any] = dict(SEED_SAMPLE)
VENV_BIN = Path(sys.executable).parent


# -- helpers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s:.0f}s")


def wait_for_workers(url: str, workers: int, timeout_s: float = 600.0) -> None:
    """Until every uvicorn worker has finished starting (each answers /health with its pid):
    a worker still importing would otherwise share the cores with the measurement."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while len(seen) < workers and time.monotonic() < deadline:
        with httpx.Client() as client:  # a new connection each round reaches any worker
            seen.add(int(client.get(f"{url}/health", timeout=5.0).json()["pid"]))
        time.sleep(0.1)
    if len(seen) < workers:
        raise RuntimeError(
            f"only {len(seen)} of {workers} workers answered within {timeout_s:.0f}s"
        )


@contextmanager
def running(
    command: list[str], env: dict[str, str], ready_url: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server in its own process group; always stop it (and its workers)."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_until_ready(ready_url, process)
            yield process
        finally:
            stop_process_group(process)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a server's process group (it and its workers), SIGKILL after 30 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def tree_cpu_s(pid: int) -> float | None:
    """CPU seconds used so far by a process and every process below it (None without /proc).

    Load on the machine (other jobs, the load generator) moves req/s and latencies a lot on a
    small shared machine; the CPU a server spends per answer moves far less, so it is what
    tells two variants of the same server apart."""
    proc = Path("/proc")
    if not (proc / str(pid)).exists():
        return None
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    tree, frontier = {pid}, {pid}
    while frontier:
        frontier = {p for p, (parent, _) in stats.items() if parent in frontier} - tree
        tree |= frontier
    return sum(stats[p][1] for p in tree if p in stats)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def run_wrk(
    url: str, body: str, connections: int, duration_s: int, workdir: Path
) -> dict[str, Any]:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n',
        encoding="utf-8",
    )
    # One wrk thread drives tens of thousands of requests/s: a second one would only take CPU
    # from the servers, which share the machine's cores with it.
    threads = 1
    completed = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration_s}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration_s + 60,
    )
    out = completed.stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\n\s+50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\n\s+99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "connections": connections,
        "requests": requests,
        "rps": round(rps, 1),
        "p50_ms": round(p50, 3),
        "p99_ms": round(p99, 3),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(0) if errors else "",
    }


# -- set-up: data, versions, champion ----------------------------------------------------------


def prepare_home(home: Path, rows: int, tree_model: str, skip_tree: bool) -> dict[str, str]:
    """Acquire generated data and train the benchmark's versions with the project's own jobs."""
    from permeability.io.exports import write_lab_export
    from permeability.pipelines.acquisition import acquire
    from permeability.pipelines.training import train
    from permeability.pipelines.training_spec import TrainingSpec
    from permeability.settings import Settings
    from permeability.synthetic.generator import generate_lab_data

    settings = Settings(home=home)
    source = write_lab_export(generate_lab_data(rows, 42, mess=None), home / "lab.csv")
    acquire(settings, str(source))
    labels = {"linear": "bench-linear"}
    train(
        settings,
        TrainingSpec.parse(model="LinearRegression", version="bench-linear", test_size=0.25),
    )
    if not skip_tree:
        labels["tree"] = "bench-tree"
        train(settings, TrainingSpec.parse(model=tree_model, version="bench-tree", test_size=0.25))
    return labels


def promote(home: Path, label: str) -> None:
    from permeability.pipelines.promotion import promote as run
    from permeability.settings import Settings

    run(Settings(home=home), label, reason="benchmark")


# -- HTTP load ---------------------------------------------------------------------------------


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERMEABILITY_")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(
        {
            "PERMEABILITY_HOME": str(home),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "OMP_NUM_THREADS": "1",
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    return env


def load_ours(
    home: Path,
    workers: int,
    connections: list[int],
    duration: int,
    workdir: Path,
    *,
    fast_path: bool = True,
    spools: tuple[bool, ...] = (True,),
) -> list[dict[str, Any]]:
    """Our service; ``fast_path=False`` serves every request through the FastAPI route (the
    reference for what the lean path in front of it gains, measured in the same run).

    ``spools=(True, False)``: the same service with its prediction spool and without it (what
    the spool costs), both running at once and their cells interleaved, each first in turn, so
    that the machine's load changing during the run does not fall on one of them only.
    """
    body = json.dumps({"data_test": SEED_RECORD})
    servers: dict[bool, tuple[str, str, int]] = {}
    with ExitStack() as stack:
        for spool in spools:
            port = free_port()
            command = [
                sys.executable,
                "-m",
                "permeability",
                "serve",
                "inference",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--no-access-log",
            ]
            env = base_env(home)
            variant = f"fast-{str(fast_path).lower()}-spool-{str(spool).lower()}"
            config = workdir / f"config-{variant}.yaml"
            config.write_text(
                f"inference:\n  fast_path: {str(fast_path).lower()}\n"
                f"  prediction_spool: {str(spool).lower()}\n",
                encoding="utf-8",
            )
            env["PERMEABILITY_CONFIG_FILE"] = str(config)
            url = f"http://127.0.0.1:{port}"
            log = workdir / f"ours-{workers}-{variant}.log"
            process = stack.enter_context(running(command, env, f"{url}/ready", log))
            wait_for_workers(url, workers)
            check = httpx.post(
                f"{url}/inference", content=body, headers={"Content-Type": "application/json"}
            )
            check.raise_for_status()
            kind = ("" if fast_path else ", route only") + ("" if spool else ", no spool")
            name = f"ours{kind} ({workers} worker{'s' if workers > 1 else ''})"
            servers[spool] = (url, name, process.pid)
        for url, _, _ in servers.values():
            run_wrk(f"{url}/inference", body, 8, 5, workdir)  # warm-up
        results = []
        for turn, c in enumerate(connections):
            order = list(servers.values())
            for url, name, pid in order[turn % len(order) :] + order[: turn % len(order)]:
                before = tree_cpu_s(pid)
                cell = run_wrk(f"{url}/inference", body, c, duration, workdir)
                after = tree_cpu_s(pid)
                if before is not None and after is not None and cell["requests"]:
                    # the whole service: workers, their log helpers, uvicorn's supervisor
                    cell["cpu_us_per_request"] = round((after - before) / cell["requests"] * 1e6, 1)
                results.append({"server": name, **cell})
    return sorted(results, key=lambda r: (r["server"], r["connections"]))


def load_mlflow(
    home: Path, connections: list[int], duration: int, workdir: Path
) -> list[dict[str, Any]]:
    port = free_port()
    env = base_env(home)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    command = [
        str(VENV_BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        "models:/permeability@champion",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    record = {
        k: (float(v) if k != "Estructura" else v) for k, v in SEED_RECORD.items() if k != "Muestra"
    }
    body = json.dumps({"dataframe_records": [record]})
    url = f"http://127.0.0.1:{port}"
    results = []
    with running(command, env, f"{url}/ping", workdir / "mlflow.log"):
        check = httpx.post(
            f"{url}/invocations", content=body, headers={"Content-Type": "application/json"}
        )
        check.raise_for_status()
        run_wrk(f"{url}/invocations", body, 8, 2, workdir)  # warm-up
        for c in connections:
            results.append(
                {
                    "server": "mlflow models serve",
                    **run_wrk(f"{url}/invocations", body, c, duration, workdir),
                }
            )
    return results


_EMPTY_APP = """
import sys
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Body(BaseModel):
    data_test: dict


@app.post("/inference")
async def inference(body: Body) -> dict:
    return {"ok": True}


@app.get("/ready")
async def ready() -> dict:
    return {"ok": True}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False)
"""


def load_ceiling(connections: list[int], duration: int, workdir: Path) -> list[dict[str, Any]]:
    """The same stack with an endpoint that does nothing: the ceiling any endpoint can reach."""
    script = workdir / "empty_app.py"
    script.write_text(_EMPTY_APP, encoding="utf-8")
    port = free_port()
    body = json.dumps({"data_test": SEED_RECORD})
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results = []
    with running(
        [sys.executable, str(script), str(port)], env, f"{url}/ready", workdir / "empty.log"
    ):
        run_wrk(f"{url}/inference", body, 8, 2, workdir)  # warm-up
        for c in connections:
            results.append(
                {
                    "server": "empty FastAPI endpoint",
                    **run_wrk(f"{url}/inference", body, c, duration, workdir),
                }
            )
    return results


# -- in process: batch speed and quality -------------------------------------------------------


def batch_speed(home: Path, label: str, rows: int, repeats: int) -> dict[str, Any]:
    from permeability.config import InferenceParams
    from permeability.io.model_cache import ModelCache
    from permeability.io.specs import load_specs
    from permeability.scoring.batch import score_frame
    from permeability.settings import Settings
    from permeability.synthetic.generator import generate_lab_data

    loaded = ModelCache.from_settings(Settings(home=home)).get(label)
    frame = generate_lab_data(rows, 7, mess=None)
    specs = load_specs(None)
    policy = InferenceParams().decision_policy()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        scored = score_frame(frame, loaded, specs, policy)
        timings.append(time.perf_counter() - started)
    assert scored.failed == 0
    best = min(timings)
    return {
        "version": label,
        "model": loaded.model_name,
        "rows": rows,
        "seconds_best": round(best, 3),
        "seconds_median": round(float(np.median(timings)), 3),
        "rows_per_s": round(rows / best),
    }


def quality(home: Path, label: str, rows: int) -> dict[str, Any]:
    """Coverage per structure and decision quality on generated data the model never saw."""
    from permeability.config import InferenceParams
    from permeability.io.model_cache import ModelCache
    from permeability.io.specs import load_specs
    from permeability.modelling.metrics import per_structure
    from permeability.monitoring.decision_quality import decision_quality
    from permeability.scoring.batch import score_frame
    from permeability.settings import Settings
    from permeability.synthetic.generator import generate_lab_data

    loaded = ModelCache.from_settings(Settings(home=home)).get(label)
    holdout = generate_lab_data(rows, 2027, start_id=10_000_000, mess=None)
    policy = InferenceParams().decision_policy()
    scored = score_frame(holdout, loaded, load_specs(None), policy).frame
    measured = holdout["Permeabilidad"].to_numpy(dtype=float)
    table = per_structure(
        measured,
        scored["prediction"].to_numpy(dtype=float),
        scored["structure"].astype(str).to_numpy(),
        scored["lower"].to_numpy(dtype=float),
        scored["upper"].to_numpy(dtype=float),
    )
    covered = (measured >= scored["lower"]) & (measured <= scored["upper"])
    decisions = scored["decision"].astype(object).where(scored["decision"].notna(), "").to_numpy()
    limits = scored["limit"].to_numpy(dtype=float)
    return {
        "version": label,
        "rows": rows,
        "level": policy.level,
        "coverage": round(float(covered.mean()), 4),
        "coverage_per_structure": {
            str(name): round(float(value), 4)
            for name, value in zip(table["Estructura"], table["coverage"], strict=True)
        },
        "worst_gap_points": round(float(np.max(np.abs(table["coverage"] - policy.level))) * 100, 2),
        "decisions": decision_quality(measured, decisions, limits),
        "thresholds": {"approve_below": policy.approve_below, "reject_above": policy.reject_above},
        "approve_below_tradeoff": _tradeoff(
            measured, scored["p_exceed"].to_numpy(dtype=float), limits, policy.reject_above
        ),
    }


def _tradeoff(
    measured: np.ndarray, p_exceed: np.ndarray, limits: np.ndarray, reject_above: float
) -> list[dict[str, Any]]:
    """What the approve threshold trades: fewer wrong approvals for more full tests."""
    from permeability.monitoring.decision_quality import decision_quality
    from permeability.scoring.decisions import decide_many

    judged = np.isfinite(limits)
    rows = []
    for approve_below in (0.01, 0.02, 0.05, 0.1):
        decisions = np.full(len(measured), "", dtype=object)
        decisions[judged] = decide_many(p_exceed[judged], approve_below, reject_above)
        rows.append(
            {"approve_below": approve_below, **decision_quality(measured, decisions, limits)}
        )
    return rows


# -- report ------------------------------------------------------------------------------------


def print_table(
    http: list[dict[str, Any]],
    batch: list[dict[str, Any]],
    qualities: list[dict[str, Any]],
    appends: dict[str, Any] | None = None,
) -> None:
    print("\nHTTP, single record (wrk, loopback)")
    print(
        f"{'champion':<8} {'server':<30} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}"
    )
    for row in http:
        print(
            f"{row['champion']:<8} {row['server']:<30} {row['connections']:>5} {row['rps']:>9.0f} "
            f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['non_2xx']:>8}"
        )
    print("\nratios at each connection count (best worker count of each)")
    for champion in sorted({r["champion"] for r in http} - {"-"}):
        for c in sorted({r["connections"] for r in http}):
            lean = _best_rps(http, champion, c, LEAN)
            route = _best_rps(http, champion, c, ROUTE_ONLY)
            mlflow = _best_rps(http, champion, c, MLFLOW)
            parts = []
            if lean and mlflow:
                parts.append(f"ours / mlflow models serve {lean / mlflow:6.1f}x")
            if route and mlflow:
                parts.append(f"route only / mlflow {route / mlflow:6.1f}x")
            if lean and route:
                parts.append(f"lean path / route only {lean / route:4.2f}x")
            print(f"  {champion:<8} {c:>3} connections: " + "; ".join(parts))
    pairs = spool_pairs(http)
    if pairs:
        print("\nwhat the prediction spool costs (lean path, same run: spooled / not spooled)")
        for p in pairs:
            cpu, cpu_without = p["cpu_us_per_request"], p["cpu_us_per_request_no_spool"]
            print(
                f"  {p['champion']:<8} {p['workers']:<10} {p['connections']:>3} conns: "
                f"req/s {p['rps']:>7,.0f} / {p['rps_no_spool']:>7,.0f} = {p['rps_ratio']:.3f}x; "
                f"p50 {p['p50_ms']:.2f} / {p['p50_ms_no_spool']:.2f} ms; "
                f"p99 {p['p99_ms']:.2f} / {p['p99_ms_no_spool']:.2f} ms = {p['p99_ratio']:.2f}x"
                + (
                    f"; service CPU per answer {cpu:.0f} / {cpu_without:.0f} µs "
                    f"= {cpu / cpu_without:.3f}x"
                    if cpu and cpu_without
                    else ""
                )
            )
    if appends:
        print(
            f"\none prediction-log append in process ({appends['rows']:,} rows, best of "
            f"{appends['repeats']}): {appends['us_no_spool']:.2f} µs without the spool, "
            f"{appends['us_spool']:.2f} µs with it ({appends['ratio']:.2f}x)"
        )
    print("\nbatch scoring in process")
    for row in batch:
        print(
            f"  {row['model']:<32} {row['rows']:>9} rows  {row['seconds_best']:>7.3f} s  {row['rows_per_s']:>10,} rows/s"
        )
    for q in qualities:
        print(
            f"\nquality of {q['version']} on {q['rows']:,} generated hold-out rows (level {q['level']})"
        )
        print(
            f"  coverage overall {q['coverage']:.4f}; worst structure off by {q['worst_gap_points']} points"
        )
        for name, value in q["coverage_per_structure"].items():
            print(f"    {name:<16} {value:.4f}")
        print(f"  decisions {q['decisions']}")
        print("  approve threshold trade-off (rows judged at some limit):")
        print(
            f"    {'approve_below':>13} {'approve':>8} {'retest':>8} {'reject':>7} {'wrong appr.':>11}"
        )
        for t in q["approve_below_tradeoff"]:
            print(
                f"    {t['approve_below']:>13g} {t['approve']:>8} {t['retest']:>8} "
                f"{t['reject']:>7} {t['wrong_approvals']:>11}"
            )


LEAN = "ours ("
ROUTE_ONLY = "ours, route only"
NO_SPOOL = "ours, no spool"
MLFLOW = "mlflow"


def _rows(http: list[dict[str, Any]], champion: str, kind: str) -> list[dict[str, Any]]:
    return [r for r in http if r["champion"] == champion and r["server"].startswith(kind)]


def _best_rps(http: list[dict[str, Any]], champion: str, connections: int, kind: str) -> float:
    rates = [r["rps"] for r in _rows(http, champion, kind) if r["connections"] == connections]
    return max(rates, default=0.0)


def _best(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Best req/s over every cell, and the best p99 at 32 connections (over worker counts)."""
    at32 = [r for r in rows if r["connections"] == 32]
    return {
        "best_rps": max((r["rps"] for r in rows), default=None),
        "best_p99_ms_at_32": min((r["p99_ms"] for r in at32), default=None),
    }


def spool_pairs(http: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each lean-path cell next to the same cell without the spool (champion, workers, conns)."""
    unspooled = {
        (r["champion"], r["server"].removeprefix(NO_SPOOL), r["connections"]): r
        for r in http
        if r["server"].startswith(NO_SPOOL)
    }
    pairs = []
    for r in http:
        if not r["server"].startswith(LEAN):
            continue
        workers = r["server"].removeprefix("ours")
        other = unspooled.get((r["champion"], workers, r["connections"]))
        if other is None:
            continue
        pairs.append(
            {
                "champion": r["champion"],
                "workers": workers.strip(" ()"),
                "connections": r["connections"],
                "rps": r["rps"],
                "rps_no_spool": other["rps"],
                "rps_ratio": round(r["rps"] / other["rps"], 3),
                "p50_ms": r["p50_ms"],
                "p50_ms_no_spool": other["p50_ms"],
                "p99_ms": r["p99_ms"],
                "p99_ms_no_spool": other["p99_ms"],
                "p99_ratio": round(r["p99_ms"] / other["p99_ms"], 3),
                "cpu_us_per_request": r.get("cpu_us_per_request"),
                "cpu_us_per_request_no_spool": other.get("cpu_us_per_request"),
            }
        )
    return pairs


def append_cost(rows: int, repeats: int = 3) -> dict[str, Any]:
    """One prediction-log append as a single answer makes it, with the spool and without
    (interleaved, best of ``repeats``): the part of the spool's cost that is this process's
    CPU, free of the HTTP figures' noise."""
    from permeability.io.predictions.log import PredictionLog
    from permeability.io.predictions.schema import predictions_uri

    row = {
        **SEED_RECORD,
        "timestamp": time.time(),
        "endpoint": "single",
        "version": "bench-linear",
        "structure": "BOPP",
        "prediction": 5.123456789,
        "lower": 4.0123,
        "upper": 6.5432,
        "level": 0.9,
        "spec_limit": 6.0,
        "p_exceed": 0.2345,
        "decision": "retest",
        "latency_ms": 0.0412,
        "CONSECUTIVO": "10234",
        "Referencia": "REF-1187",
    }
    best = {False: float("inf"), True: float("inf")}
    with tempfile.TemporaryDirectory(prefix="permeability-append-") as folder:
        for _ in range(repeats):
            for spool in (False, True):
                log = PredictionLog(
                    predictions_uri(folder),
                    flush_interval_s=3600,
                    max_buffer_rows=rows + 1,
                    spool_dir=Path(folder) / "spool" if spool else None,
                )
                rows_in = [{**row, "request_id": f"r-{i}"} for i in range(rows)]
                started = time.perf_counter()
                for one in rows_in:
                    log.append(one)
                best[spool] = min(best[spool], (time.perf_counter() - started) / rows * 1e6)
                log.close()
    return {
        "rows": rows,
        "repeats": repeats,
        "us_no_spool": round(best[False], 3),
        "us_spool": round(best[True], 3),
        "ratio": round(best[True] / best[False], 3),
    }


def summarise(http: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    ceiling = [r for r in http if r["champion"] == "-"]
    if ceiling:
        summary["empty_endpoint"] = _best(ceiling)
    for champion in sorted({r["champion"] for r in http} - {"-"}):
        lean, route = _rows(http, champion, LEAN), _rows(http, champion, ROUTE_ONLY)
        theirs = _rows(http, champion, MLFLOW)
        mlflow_best = max((t["rps"] for t in theirs), default=None)
        ours = _best(lean)
        summary[champion] = {
            **ours,
            "route_only": _best(route) if route else None,
            "mlflow_best_rps": mlflow_best,
            "ratio": round(ours["best_rps"] / mlflow_best, 1)
            if mlflow_best and ours["best_rps"]
            else None,
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="Seconds per wrk run.")
    parser.add_argument("--connections", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--train-rows", type=int, default=100_000)
    parser.add_argument("--batch-rows", type=int, default=1_000_000)
    parser.add_argument("--quality-rows", type=int, default=200_000)
    parser.add_argument("--tree-model", default="HistGradientBoostingRegressor")
    parser.add_argument("--skip-tree", action="store_true", help="Only the linear champion.")
    parser.add_argument("--skip-http", action="store_true", help="Only the in-process parts.")
    parser.add_argument(
        "--skip-route-only",
        action="store_true",
        help="Do not measure our service with its lean path off (the same-run reference).",
    )
    parser.add_argument(
        "--skip-no-spool",
        action="store_true",
        help="Do not measure our service without its prediction spool (what the spool costs).",
    )
    parser.add_argument(
        "--append-rows", type=int, default=50_000, help="Rows of the in-process append cost."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the temporary home.")
    args = parser.parse_args()
    if not args.skip_http and shutil.which("wrk") is None:
        sys.exit(
            "wrk is not installed: apt-get update && apt-get install -y wrk (or pass --skip-http)"
        )

    home = Path(tempfile.mkdtemp(prefix="permeability-bench-"))
    workdir = home / "bench"
    workdir.mkdir()
    os.environ["PERMEABILITY_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    try:
        labels = prepare_home(home, args.train_rows, args.tree_model, args.skip_tree)
        http: list[dict[str, Any]] = []
        if not args.skip_http:
            http += [
                {"champion": "-", **r}
                for r in load_ceiling(args.connections, args.duration, workdir)
            ]
        batch: list[dict[str, Any]] = []
        qualities: list[dict[str, Any]] = []
        for kind, label in labels.items():
            promote(home, label)
            if not args.skip_http:
                # (lean path, spools): as shipped, next to it without the spool (its cost)
                variants = [(True, (True,) if args.skip_no_spool else (True, False))]
                if not args.skip_route_only:
                    variants.append((False, (True,)))
                for workers in args.workers:
                    for fast_path, spools in variants:
                        http += [
                            {"champion": kind, **r}
                            for r in load_ours(
                                home,
                                workers,
                                args.connections,
                                args.duration,
                                workdir,
                                fast_path=fast_path,
                                spools=spools,
                            )
                        ]
                http += [
                    {"champion": kind, **r}
                    for r in load_mlflow(home, args.connections, args.duration, workdir)
                ]
            batch.append(batch_speed(home, label, args.batch_rows, repeats=3))
            qualities.append(quality(home, label, args.quality_rows))
        appends = append_cost(args.append_rows) if args.append_rows else None
        print_table(http, batch, qualities, appends)
        print(
            json.dumps(
                {
                    "bench": "serve",
                    "cpus": os.cpu_count(),
                    "duration_s": args.duration,
                    "http": http,
                    "summary": summarise(http) if http else {},
                    "spool_cost": {"http": spool_pairs(http), "append": appends},
                    "batch": batch,
                    "quality": qualities,
                },
                ensure_ascii=False,
            )
        )
    finally:
        if args.keep:
            print(f"kept {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
