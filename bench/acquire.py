"""Benchmark acquisition: generated messy CSV -> feature store, against a naive pandas baseline.

    uv run python bench/acquire.py                 # 1,000,000 rows (target: ≤ 20 s, ≤ 2 GiB)
    uv run python bench/acquire.py --rows 100000

Generates a messy lab export with the project's generator, and a later export of that lab
(its first tenth with a corrected WVTR, and a tenth as many new records), then runs, each in
its own child process so that peak memory is measured per run (``os.wait4`` returns the
child's rusage):

(a) ``permeability acquire --source <csv> --json`` into a fresh temporary home (the store's
    first version);
(b) a naive baseline: ``pd.read_csv``, row-by-row parsing and validation with
    ``DataFrame.apply(axis=1)``, the newest row per Muestra kept, written to a Delta table with
    the same ``deltalake`` library;
(c) ``permeability acquire`` of the later export into the home of (a): updates and inserts in
    one commit.

Comparing two trees of the project: run this script with ``PYTHONPATH=<tree>/src`` for each
(the children inherit it), back to back.

Wall seconds include the child's interpreter start and imports. Both children share a warmed
bytecode cache (``PYTHONPYCACHEPREFIX`` in the scratch folder), as an installed environment
has; with ``PYTHONDONTWRITEBYTECODE=1`` every import would compile its modules again. Prints
a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

TARGET_SECONDS = 20.0
TARGET_PEAK_MIB = 2048.0
_STRUCTURE_ALIASES = {"BOPP METALIZADO": "BOPP/MET", "OPP": "BOPP", "BOPET": "PET"}


# --------------------------------------------------------------------------- baseline


def _number(text: object) -> float | None:
    try:
        cleaned = str(text).strip().replace(",", ".")
        for unit in ("µm", "um", "%"):
            cleaned = cleaned.removesuffix(unit).strip()
        return float(cleaned)
    except ValueError:
        return None


def _validate_row(row: pd.Series) -> tuple[Any, ...]:
    """What a first script does: one Python call per row, fields parsed one by one."""
    values = {name: _number(row[name]) for name in row.index if name not in ("Estructura", "Fecha")}
    calipers = [values[f"Calibre{i}"] for i in range(1, 6)]
    present = [c for c in calipers if c is not None and c == c]
    ok = (
        values["Muestra"] is not None
        and values["Grados_C"] is not None
        and 0 <= values["Grados_C"] <= 80
        and values["Porc_Humedad"] is not None
        and 0 < values["Porc_Humedad"] <= 100
        and values["Permeabilidad"] is not None
        and values["Permeabilidad"] > 0
        and len(present) >= 3
        and all(0 < c <= 2000 for c in present)
    )
    mean = sum(present) / len(present) if present else float("nan")
    filled = [c if c is not None and c == c else mean for c in calipers]
    name = " ".join(str(row["Estructura"]).split()).upper()
    return (
        ok,
        int(values["Muestra"] or 0),
        values["Grados_C"],
        values["Porc_Humedad"],
        _STRUCTURE_ALIASES.get(name, name),
        *filled,
        values["CalibreProm"] if values["CalibreProm"] is not None else mean,
        values["Permeabilidad"],
        str(row["Fecha"]),
    )


def naive_baseline(csv_path: Path, table_uri: Path) -> dict[str, int]:
    from deltalake import write_deltalake

    frame = pd.read_csv(csv_path)
    checked = frame.apply(_validate_row, axis=1)
    columns = ["ok", *frame.columns]
    result = pd.DataFrame(checked.tolist(), columns=columns)
    valid = result[result["ok"]].drop(columns="ok")
    newest = valid.drop_duplicates("Muestra", keep="last")
    write_deltalake(str(table_uri), newest, mode="overwrite")
    return {"rows_read": len(frame), "rows_loaded": len(newest)}


# --------------------------------------------------------------------------- measuring


def run_child(command: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run a command; its wall seconds, peak RSS (MiB) and the JSON on its last stdout line."""
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as errors:
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        assert process.stdout is not None
        stdout = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        tail = log.read_text(encoding="utf-8").strip().splitlines()[-3:]
        raise SystemExit(f"{command[2:4]} failed ({process.returncode}): {' | '.join(tail)}")
    lines = stdout.strip().splitlines()
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_mib": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        "result": json.loads(lines[-1]) if lines else {},
    }


def child_environment(pycache: Path) -> dict[str, str]:
    """No project settings leak in; bytecode is cached (in a scratch folder) as in any install."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERMEABILITY_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def warm_bytecode_cache(env: dict[str, str], log: Path) -> None:
    """Compile every module both runs import once, so neither run pays for compiling them."""
    modules = "permeability.cli.main, permeability.pipelines.acquisition, permeability.plots.training, deltalake"
    run_child([sys.executable, "-c", f"import {modules}; print('{{}}')"], env, log)


def generate(rows: int, seed: int, path: Path, later: Path) -> float:
    """The export, and a later one: its first tenth corrected, a tenth as many new records."""
    from permeability.io.exports import write_lab_export
    from permeability.synthetic.generator import generate_lab_data

    started = time.perf_counter()
    frame = generate_lab_data(rows, seed)
    write_lab_export(frame, path)
    corrected = frame.head(max(1, rows // 10)).assign(Permeabilidad="1.234")
    new = generate_lab_data(
        max(1, rows // 10), seed + 1, start_id=2 * rows + 1, start_date=date(2026, 6, 1)
    )
    write_lab_export(pd.concat([corrected, new], ignore_index=True), later)
    return round(time.perf_counter() - started, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--baseline-child", nargs=2, metavar=("CSV", "TABLE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.baseline_child:
        csv_path, table = (Path(p) for p in args.baseline_child)
        print(json.dumps(naive_baseline(csv_path, table)))
        return

    with tempfile.TemporaryDirectory(prefix="bench-acquire-") as scratch:
        root = Path(scratch)
        csv_path, later_path = root / "lab.csv", root / "later.csv"
        generated = generate(args.rows, args.seed, csv_path, later_path)
        env = child_environment(root / "pycache")
        warm_bytecode_cache(env, root / "warmup.log")
        acquire_env = {**env, "PERMEABILITY_HOME": str(root / "home")}
        acquire_command = [sys.executable, "-m", "permeability", "acquire", "--json", "--source"]  # fmt: skip
        ours = run_child([*acquire_command, str(csv_path)], acquire_env, root / "acquire.log")
        baseline_command = [sys.executable, __file__, "--baseline-child", str(csv_path), str(root / "naive")]  # fmt: skip
        naive = run_child(baseline_command, env, root / "baseline.log")
        update = run_child([*acquire_command, str(later_path)], acquire_env, root / "update.log")
        report(args.rows, generated, csv_path.stat().st_size, ours, naive, update)


def report(
    rows: int,
    generated: float,
    csv_bytes: int,
    ours: dict[str, Any],
    naive: dict[str, Any],
    update: dict[str, Any],
) -> None:
    figures: dict[str, Any] = {
        "rows": rows,
        "csv_mib": round(csv_bytes / 2**20, 1),
        "generate_seconds": generated,
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    for name, run in (("acquire", ours), ("naive_baseline", naive)):
        figures[name] = {
            "seconds": run["seconds"],
            "cpu_seconds": run["cpu_seconds"],
            "rows_per_second": round(rows / run["seconds"]),
            "peak_mib": run["peak_mib"],
        }
    result = ours["result"]
    figures["acquire"].update(
        {
            "job_seconds": result.get("seconds"),
            "rows_loaded": result.get("rows_loaded"),
            "rows_rejected": result.get("rows_rejected"),
            "duplicates_skipped": result.get("duplicates_skipped"),
            "within_targets": ours["seconds"] <= TARGET_SECONDS
            and ours["peak_mib"] <= TARGET_PEAK_MIB,
        }
    )
    figures["naive_baseline"]["rows_loaded"] = naive["result"].get("rows_loaded")
    later = update["result"]
    figures["acquire_update"] = {
        "seconds": update["seconds"],
        "cpu_seconds": update["cpu_seconds"],
        "rows_per_second": round(int(later["rows_read"]) / update["seconds"]),
        "peak_mib": update["peak_mib"],
        "job_seconds": later.get("seconds"),
        **{key: later.get(key) for key in ("rows_read", "rows_updated", "rows_inserted")},
        "feature_set_version": later.get("feature_set_version"),
    }
    figures["speedup"] = round(naive["seconds"] / ours["seconds"], 2)
    figures["cpu_speedup"] = round(naive["cpu_seconds"] / ours["cpu_seconds"], 2)
    figures["memory_ratio"] = round(naive["peak_mib"] / ours["peak_mib"], 2)

    print(
        f"{rows:,} generated messy rows ({figures['csv_mib']} MiB CSV, generated in {generated}s)"
    )
    print(f"{'pipeline':<16}{'seconds':>10}{'CPU s':>8}{'rows/s':>12}{'peak MiB':>10}")
    for name in ("acquire", "naive_baseline"):
        f = figures[name]
        print(
            f"{name:<16}{f['seconds']:>10.2f}{f['cpu_seconds']:>8.1f}"
            f"{f['rows_per_second']:>12,}{f['peak_mib']:>10.0f}"
        )
    print(
        f"speedup x{figures['speedup']} (CPU x{figures['cpu_speedup']}), "
        f"memory ratio x{figures['memory_ratio']}, load average {figures['load_average_1m']}; "
        f"targets ≤ {TARGET_SECONDS:.0f} s and ≤ {TARGET_PEAK_MIB:.0f} MiB: "
        f"{'met' if figures['acquire']['within_targets'] else 'NOT met'}"
    )
    u = figures["acquire_update"]
    print(
        f"update (c): {u['rows_read']:,} rows read, {u['rows_updated']:,} updated and "
        f"{u['rows_inserted']:,} inserted in {u['seconds']:.2f} s ({u['cpu_seconds']:.1f} CPU s, "
        f"{u['rows_per_second']:,} rows/s, peak {u['peak_mib']:.0f} MiB)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
