"""What the prediction log's background flush costs the thread that serves requests.

The inference service appends one row per request (``PredictionLog.append``) and a
background thread writes everything buffered as one Delta commit every 5 s. The serving
thread only feels the flush through the GIL (and through CPU on a small shared machine), so
this measures, per round of ``--rows`` appends (25k = 5 s at 5k req/s) and one flush:

* µs per ``append`` (rows shaped like ``answer_sample``'s ``log_row`` plus ``timestamp`` and
  ``latency_ms``; every other row has no matching spec, so ``spec_limit``/``p_exceed``/
  ``decision`` are None, as when a structure has no limit);
* the flush's wall time and the process CPU it used (Delta's Rust threads included);
* the longest GIL stall a ticker thread saw during the flush (``--load sleep``: it sleeps
  0.2 ms in a loop; ``--load busy``: it runs a few µs of Python per tick, competing for the
  GIL like a loaded request thread; stall = longest gap − median gap) and the p99 of its gaps.

The table keeps growing over the rounds, as the real log does between checkpoints.

    uv run python bench/prediction_log.py                      # this checkout's module
    uv run python bench/prediction_log.py --module /tmp/old_prediction_log.py   # another copy
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import sys
import tempfile
import threading
import time
from types import ModuleType
from typing import Any

import numpy as np

from permeability.io.predictions.reader import read_predictions
from permeability.io.predictions.schema import predictions_uri

TICK_S = 0.0002
BUSY_UNIT = 200


def load_module(path: str | None) -> ModuleType:
    """The prediction-log module to measure: this checkout's, or a copy at ``path``."""
    if path is None:
        from permeability.io.predictions import log as prediction_log

        return prediction_log
    spec = importlib.util.spec_from_file_location("prediction_log_under_test", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--module {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def service_rows(count: int, offset: int) -> list[dict[str, Any]]:
    """Rows as ``inference_single.respond`` hands them to ``append`` (built ahead, so the
    timing is the log's alone)."""
    rows = []
    for i in range(offset, offset + count):
        matched = i % 2 == 0
        rows.append(
            {
                "request_id": f"3f2a9c1e-{i:08d}",
                "endpoint": "single",
                "version": "7",
                "Muestra": i,
                "Grados_C": 37.8,
                "Porc_Humedad": 90.0,
                "Estructura": "BOPP/PE ",
                "Calibre1": 16.4,
                "Calibre2": 16.5,
                "Calibre3": 16.3,
                "Calibre4": 16.4,
                "Calibre5": 16.4,
                "CalibreProm": 16.4,
                "structure": "BOPP/PE",
                "prediction": 4.2 + i * 1e-6,
                "lower": 3.1,
                "upper": 5.6,
                "level": 0.9,
                "spec_limit": 6.0 if matched else None,
                "p_exceed": 0.04 if matched else None,
                "decision": "approve" if matched else None,
                "timestamp": 1_767_225_600.0 + i * 0.0002,
                "latency_ms": 0.35,
            }
        )
    return rows


def time_appends(log: Any, rows: list[dict[str, Any]]) -> float:
    """µs per append."""
    append = log.append
    started = time.perf_counter()
    for row in rows:
        append(row)
    return (time.perf_counter() - started) / len(rows) * 1e6


def _tick_sleeping() -> None:
    time.sleep(TICK_S)


def _tick_busy() -> None:
    sum(range(BUSY_UNIT))


def flush_under_ticker(log: Any, load: str) -> dict[str, float]:
    """Flush on a background thread (as the flusher does) while this thread ticks.

    ``sleep``: the ticker sleeps 0.2 ms per tick and starts again the moment the flusher
    lets go of the GIL. ``busy``: each tick is a few µs of pure-Python work, like a request
    thread under load that competes for the GIL instead of waiting for it.
    """
    tick = _tick_sleeping if load == "sleep" else _tick_busy
    done = threading.Event()
    written: list[int] = []

    def flush() -> None:
        written.append(log.flush())
        done.set()

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    thread = threading.Thread(target=flush)
    thread.start()
    gaps = []
    last = time.perf_counter()
    while not done.is_set():
        tick()
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    wall = time.perf_counter() - started
    thread.join()
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    gap_ms = np.asarray(gaps) * 1000
    return {
        "rows": float(written[0]),
        "flush_ms": wall * 1000,
        "cpu_ms": cpu * 1000,
        "max_stall_ms": float(gap_ms.max() - np.median(gap_ms)),
        "p99_gap_ms": float(np.percentile(gap_ms, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", help="path of a prediction_log.py to measure instead")
    parser.add_argument("--rows", type=int, default=25_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--load", choices=("sleep", "busy"), default="sleep")
    parser.add_argument("--store", help="feature-store folder (default: a temporary one)")
    args = parser.parse_args()

    module = load_module(args.module)
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or tmp
        log = module.PredictionLog(predictions_uri(store), flush_interval_s=3600)
        results = []
        for round_ in range(args.rounds):
            rows = service_rows(args.rows, round_ * args.rows)
            append_us = time_appends(log, rows)
            result = {"round": round_, "append_us": append_us, **flush_under_ticker(log, args.load)}
            results.append(result)
            print(json.dumps({k: round(v, 3) for k, v in result.items()}), flush=True)
        frame = read_predictions(store)
        if len(frame) != args.rows * args.rounds:
            raise SystemExit(f"{len(frame)} rows in the table, {args.rows * args.rounds} appended")
    summary = {
        key: round(statistics.median(r[key] for r in results[1:] or results), 3)
        for key in ("append_us", "flush_ms", "cpu_ms", "max_stall_ms", "p99_gap_ms")
    }
    summary["worst_stall_ms"] = round(max(r["max_stall_ms"] for r in results), 3)
    print("median over rounds after the first:", json.dumps(summary))


if __name__ == "__main__":
    main()
