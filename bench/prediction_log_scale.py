"""The prediction log at plant scale: N replicas appending to one log, then the nightly compaction.

Each replica is a process with the service's log writer (:class:`PredictionLog` with its spool
and background flusher, one commit per ``--flush`` seconds) appending generated answers at
``--rate`` rows/s for ``--seconds``, all into one log: (a) on a local folder, (b) on moto's S3
server started here (deltalake commits there with conditional puts, as on the plant's object
store). Per store and N (``--writers``) it prints:

* rows/s written (rows logged / time from the start to the last replica's final flush);
* commits, commit conflicts (a commit refused because another replica took its version,
  retried by the writer) and rows lost (answered minus logged: must be 0), duplicates (0);
* table versions added (must equal the commits: every commit kept);
* compaction time of one day (``compact --day``: today's partition, what the nightly job
  touches) against the reference from the same run: the whole table (the same table copied
  before, with ``--history-days`` earlier days of small commits, as a log never compacted by
  day would be).

    uv run python bench/prediction_log_scale.py                        # both stores, N = 1 2 4 8
    uv run python bench/prediction_log_scale.py --stores local --seconds 4

Needs ``moto_server`` (``moto[server]``, a dev dependency) for the S3 store. Keep it short on
a 2-core machine: the replicas, their commits and moto share the cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from permeability.io.predictions.log import PredictionLog
from permeability.io.predictions.maintenance import compact_predictions
from permeability.io.predictions.reader import read_predictions
from permeability.io.predictions.schema import COLUMNS, RECORD_COLUMNS, predictions_uri

# The repository root, so that ``tests`` imports when the bench runs as a script.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.object_store import moto_s3

BATCH_ROWS = 20
#: Target size of the seeded history's files (deltalake writes ~1000 generated rows a file).
SEED_FILE_BYTES = 3_000
TEXT = {
    "endpoint": "single",
    "version": "0.1",
    "Estructura": "bopp ",
    "structure": "BOPP",
    "decision": "approve",
}


def batch(name: str, first: int, rows: int, stamp: float) -> dict[str, Any]:
    """Generated answers: every column of the log (the record fields absent, as from a
    request without them), request ids ``<name>-<n>``."""
    columns: dict[str, Any] = {
        column: TEXT.get(column, 1.0) for column in COLUMNS if column not in RECORD_COLUMNS
    }
    columns.update(
        timestamp=stamp,
        Muestra=1,
        request_id=[f"{name}-{first + k}" for k in range(rows)],
    )
    return columns


# -- one replica (a process of its own) ------------------------------------------------------


def replica(args: argparse.Namespace) -> None:
    """Append at ``rate`` rows/s from ``start`` for ``seconds``, close, print what was done."""
    options = json.loads(args.options)
    log = PredictionLog(
        args.uri,
        flush_interval_s=args.flush,
        storage_options=options,
        spool_dir=Path(args.spool),
        write_in_subprocess=args.helper,
    )
    log.start()
    time.sleep(max(0.0, args.start - time.time()))
    answered = 0
    period = BATCH_ROWS / args.rate
    deadline = args.start + args.seconds
    tick = args.start
    while tick < deadline:
        log.append_columns(batch(args.name, answered, BATCH_ROWS, time.time()), BATCH_ROWS)
        answered += BATCH_ROWS
        tick += period
        time.sleep(max(0.0, tick - time.time()))
    log.close()
    report = {
        "answered": answered,
        "written": log.rows_written + log.rows_replayed,
        "commits": log.commits,
        "conflicts": log.commit_conflicts,
        "dropped": log.rows_dropped,
        "ended": time.time(),
    }
    print(json.dumps(report), flush=True)


# -- the stores ------------------------------------------------------------------------------


def filesystem(root: str, options: dict[str, str] | None) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path of ``root`` in it (to copy a table)."""
    if options is None:
        return pafs.LocalFileSystem(), root
    endpoint = options["AWS_ENDPOINT_URL"]
    s3 = pafs.S3FileSystem(
        access_key=options["AWS_ACCESS_KEY_ID"],
        secret_key=options["AWS_SECRET_ACCESS_KEY"],
        endpoint_override=endpoint,
        scheme="http",
        region=options["AWS_REGION"],
    )
    return s3, root.removeprefix("s3://")


def copy_table(source: str, target: str, options: dict[str, str] | None) -> None:
    fs, source_path = filesystem(source, options)
    _, target_path = filesystem(target, options)
    pafs.copy_files(source_path, target_path, source_filesystem=fs, destination_filesystem=fs)


def seed_history(root: str, options: dict[str, str] | None, days: int, files: int) -> None:
    """``days`` earlier days of about ``files`` small files each (~1000 rows a file, as a
    replica's flush writes them), never compacted: a log that has been serving for a while.
    One commit per day with a small target file size (committing each file alone would take
    minutes on S3)."""
    from deltalake import write_deltalake

    from permeability.io.predictions.partitions import PARTITION_COLUMNS, with_day
    from permeability.io.predictions.schema import columns_to_table
    from permeability.io.predictions.writer import TABLE_CONFIGURATION

    uri = predictions_uri(root)
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    for back in range(days, 0, -1):
        stamp = (today - timedelta(days=back)).timestamp()
        table = columns_to_table(batch(f"h{back}", 0, 1000 * files, stamp), 1000 * files)
        write_deltalake(
            uri,
            with_day(table),
            mode="append",
            partition_by=list(PARTITION_COLUMNS),
            configuration=TABLE_CONFIGURATION,
            storage_options=options,
            target_file_size=SEED_FILE_BYTES,
        )


# -- one run: N replicas, then the compactions -----------------------------------------------


def run(
    args: argparse.Namespace, store: str, root: str, options: dict[str, str] | None, n: int
) -> dict[str, Any]:
    from deltalake import DeltaTable

    uri = predictions_uri(root)
    version_before = DeltaTable(uri, storage_options=options).version()
    today = datetime.now(UTC).date()
    spool = Path(tempfile.mkdtemp(prefix="plog-spool-"))
    start = time.time() + 2.5 + 0.4 * n  # the replicas import deltalake first
    replicas = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--replica",
                f"--uri={uri}",
                f"--name={store}-{n}-r{k}",
                f"--options={json.dumps(options)}",
                f"--spool={spool}",
                f"--start={start}",
                f"--seconds={args.seconds}",
                f"--rate={args.rate}",
                f"--flush={args.flush}",
                *(["--helper"] if args.helper else []),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(n)
    ]
    reports = []
    for process in replicas:
        output, _ = process.communicate(timeout=600)
        if process.returncode != 0:
            raise SystemExit(f"a replica failed (exit {process.returncode})")
        reports.append(json.loads(output.strip().splitlines()[-1]))
    shutil.rmtree(spool, ignore_errors=True)
    elapsed = max(r["ended"] for r in reports) - start
    logged = read_predictions(root, options, since=datetime(today.year, today.month, today.day))
    ours = logged[logged["request_id"].str.startswith(f"{store}-{n}-")]
    table = DeltaTable(uri, storage_options=options)
    answered = sum(r["answered"] for r in reports)
    commits = sum(r["commits"] for r in reports)
    result: dict[str, Any] = {
        "store": store,
        "writers": n,
        "answered": answered,
        "logged": len(ours),
        "lost": answered - ours["request_id"].nunique(),
        "duplicates": len(ours) - ours["request_id"].nunique(),
        "rows_per_s": round(len(ours) / elapsed),
        "commits": commits,
        "conflicts": sum(r["conflicts"] for r in reports),
        "versions_added": table.version() - version_before,
    }
    whole = f"{root}-whole"
    copy_table(root, whole, options)
    day = compact_predictions(root, options, days=[today])
    reference = compact_predictions(whole, options)
    result.update(
        day_files=f"{day.files_rewritten}->{day.files_written}",
        day_s=day.optimize_seconds,
        whole_files=f"{reference.files_rewritten}->{reference.files_written}",
        whole_s=reference.optimize_seconds,
    )
    return result


def bench(args: argparse.Namespace) -> None:
    results = []
    for store in args.stores.split(","):
        servers = ExitStack()
        options: dict[str, str] | None = None
        workdir = tempfile.mkdtemp(prefix="plog-scale-")
        if store == "s3":
            options = servers.enter_context(moto_s3("bench"))
            base = "s3://bench/plog"
        else:
            base = workdir
        try:
            template = f"{base}/template"
            seed_history(template, options, args.history_days, args.history_files)
            for n in (int(w) for w in args.writers.split(",")):
                root = f"{base}/n{n}"
                copy_table(template, root, options)
                results.append(run(args, store, root, options, n))
                print(json.dumps(results[-1]), flush=True)
        finally:
            servers.close()
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(results, args)


def print_table(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\n{args.seconds:g} s per run, offered {args.rate:g} rows/s per replica, a flush every "
        f"{args.flush:g} s; history: {args.history_days} days x ~{args.history_files} files"
    )
    header = (
        "store  N  rows/s  answered  logged  lost  dup  commits  conflicts  versions  "
        "day: files  s      whole: files  s"
    )
    print(header)
    for r in results:
        print(
            f"{r['store']:<5} {r['writers']:>2} {r['rows_per_s']:>7} {r['answered']:>9} "
            f"{r['logged']:>7} {r['lost']:>5} {r['duplicates']:>4} {r['commits']:>8} "
            f"{r['conflicts']:>10} {r['versions_added']:>9}  {r['day_files']:>10} "
            f"{r['day_s']:>6.2f}  {r['whole_files']:>12} {r['whole_s']:>6.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="local,s3")
    parser.add_argument("--writers", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="rows/s offered per replica")
    parser.add_argument("--flush", type=float, default=1.0, help="seconds between commits")
    parser.add_argument("--history-days", type=int, default=30)
    parser.add_argument("--history-files", type=int, default=20)
    parser.add_argument("--helper", action="store_true", help="commit in a helper process")
    parser.add_argument("--replica", action="store_true", help=argparse.SUPPRESS)
    for name in ("uri", "name", "options", "spool"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replica:
        replica(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()
