"""The Delta commits of the prediction log, and the helper process that makes them for the service.

Why a helper process: a Delta commit holds the GIL in stretches of 3–5 ms and costs tens of
milliseconds of CPU; in the serving process that showed up as p99 latency, in its own process
the OS shares the cores in finer slices and the request thread never waits for it. The log's
committer (:mod:`permeability.io.predictions.commits`) hands each batch over as an Arrow IPC
file (written with the GIL released) and waits for the helper's answer.

Why a plain child process talking over its stdin and stdout, not a ``multiprocessing`` pool:
the helper must exit with its parent, however the parent dies. A parent killed with
``kill -9`` runs no shutdown code, and issue 13 found the pool's worker and multiprocessing's
resource tracker alive as orphans afterwards (~200 MB, ignoring SIGTERM): the worker held its
own copies of the pool's pipes, so it never saw them close, and the tracker lives as long as
any process holding its pipe. Here:

* the helper reads its requests from its stdin, whose only writer is the parent: when the
  parent dies the kernel closes that end, the helper's next read gets end-of-file and it
  exits (at once when idle; a commit in progress is finished or cut short, both harmless:
  a Delta commit is atomic and the spool's transaction id keeps a replay from doubling it);
* a watchdog thread also checks every :data:`PARENT_CHECK_S` that its parent is the process
  that started it (a dead parent's children are re-parented), which covers a helper busy in
  a long commit and a copy of the pipe leaked into some other child;
* no ``multiprocessing`` is used, so no resource tracker is started at all.

``prctl(PR_SET_PDEATHSIG)`` was not chosen: Linux only, and it fires when the *thread* that
started the child ends, not the process (the flusher thread starts a replacement helper).

The helper ignores SIGINT and SIGTERM: Ctrl-C in a terminal, or a supervisor's SIGTERM, reaches
the whole process group, and the service's last flush at shutdown still needs the helper. The
service stops it afterwards by closing its stdin.

Protocol: one JSON object per line each way. Request ``{"uri", "path", "storage_options",
"transaction"}`` (``transaction``: ``[app_id, version]`` or null); answer ``{"ok": true}`` or
``{"error": "<type>: <message>"}`` (``conflicts``: the commit conflicts met, see
:func:`append_table`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any, Final

import pyarrow as pa

from permeability.io.predictions.partitions import PARTITION_COLUMNS, is_partitioned, with_day
from permeability.record.schema import MUESTRA

#: How often the helper checks that its parent is still the process that started it.
PARENT_CHECK_S: Final = 0.5
#: Tries at one append commit before its error is raised (the log keeps the rows and retries
#: on its next flush): conflicts come from other writers taking the version, a few per commit
#: with 8 writers on object storage.
COMMIT_ATTEMPTS: Final = 30
#: Upper bound (seconds) of the random wait after a conflict, times the conflicts so far (up to
#: 8): writers that collided spread out instead of colliding again.
CONFLICT_BACKOFF_S: Final = 0.05
#: Longest wait for one commit before the helper is taken for hung and killed.
WRITE_TIMEOUT_S: Final = 600.0

# Set when the first append creates the table (Delta ignores it on later appends). Every
# write replays the log since the last checkpoint, so with Delta's default of one checkpoint
# per 100 commits a 5-s append cost 25 ms after a checkpoint and 55-65 ms before the next
# (measured, 25k rows); one every 10 commits keeps it near the low end. File statistics only
# for the columns one filters the log by: the other 19 cost CPU on every commit and no
# query uses them (readers do not need statistics to read the table).
TABLE_CONFIGURATION: Final[dict[str, str | None]] = {
    "delta.checkpointInterval": "10",
    "delta.dataSkippingStatsColumns": f"timestamp,endpoint,version,{MUESTRA},structure",
}

#: A spool's Delta transaction: (app id, version = seq of the newest record committed).
Transaction = tuple[str, int]

logger = logging.getLogger("permeability.prediction_log")


class HelperGoneError(RuntimeError):
    """The helper process died, hung or cannot be reached; the next write starts a new one."""


class HelperWriteError(RuntimeError):
    """The helper is healthy but its commit failed (store unwritable); the helper stays."""


def append_table(
    uri: str,
    table: pa.Table,
    storage_options: dict[str, str] | None,
    transaction: Transaction | None = None,
) -> int:
    """One Delta append commit of ``table`` into its days' partitions (creating the table with
    the log's settings); with ``transaction``, the commit also records that spool's version
    (exactly-once replay). Returns the commit conflicts met on the way (0: first try).

    deltalake would retry a conflicting commit itself, silently; it is told not to
    (``max_commit_retries=0``) so that each conflict is counted and logged here, and the
    commit is retried on the reloaded table (an append conflicts with nothing but another
    commit taking its version number, or the migration changing the layout under it, so the
    retry always applies). A log still in the
    unpartitioned layout of an earlier release gets its rows without ``day`` until
    ``permeability compact`` migrates it (:mod:`permeability.io.predictions.partitions`).
    """
    from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
    from deltalake.exceptions import CommitFailedError, TableNotFoundError

    properties = CommitProperties(
        max_commit_retries=0,
        app_transactions=[Transaction(*transaction)] if transaction is not None else None,
    )
    conflicts = 0
    while True:
        try:
            target: DeltaTable | str = DeltaTable(uri, storage_options=storage_options)
        except TableNotFoundError:
            target = uri
        partitioned = isinstance(target, str) or is_partitioned(target)
        try:
            write_deltalake(
                target,
                with_day(table) if partitioned else table,
                mode="append",
                partition_by=list(PARTITION_COLUMNS) if isinstance(target, str) else None,
                # Adds the columns a log created by an earlier release lacks (see
                # prediction_log's docstring); when the schemas agree it writes no metadata.
                schema_mode="merge",
                configuration=TABLE_CONFIGURATION,
                storage_options=storage_options if isinstance(target, str) else None,
                commit_properties=properties,
            )
            return conflicts
        except Exception as exc:
            # Another commit took the version (CommitFailedError), or another writer created
            # the table at the same instant (an error of the create: retried once, as an
            # append to the table the winner created); anything else is the store's error.
            racing_create = isinstance(target, str) and conflicts == 0
            if not (isinstance(exc, CommitFailedError) or racing_create):
                raise
            conflicts += 1
            if conflicts >= COMMIT_ATTEMPTS:
                raise
            logger.info(
                "prediction log: commit conflict %d (%s); retrying on the new version",
                conflicts,
                " ".join(str(exc).split()),
            )
            time.sleep(random.uniform(0.0, CONFLICT_BACKOFF_S * min(conflicts, 8)))  # noqa: S311


def append_ipc_file(
    uri: str,
    path: str,
    storage_options: dict[str, str] | None,
    transaction: Transaction | None = None,
) -> int:
    """:func:`append_table` for a table handed over as an Arrow IPC file (the helper process)."""
    with pa.memory_map(path) as source:
        return append_table(uri, pa.ipc.open_file(source).read_all(), storage_options, transaction)


def committed_version(uri: str, app_id: str, storage_options: dict[str, str] | None) -> int:
    """The version the table last recorded for ``app_id`` (0: none, or no table yet)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(uri, storage_options=storage_options)
    except TableNotFoundError:
        return 0
    return int(table.transaction_version(app_id) or 0)


class WriterProcess:
    """The parent's handle on one helper process (started at once: its start-up, a Python
    process importing deltalake, would otherwise compete with the first requests)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 (this interpreter, this module)
            [sys.executable, "-m", __name__, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # Its warnings and tracebacks go where the service's go.
            stderr=None,
        )

    def append(
        self,
        uri: str,
        path: str,
        storage_options: dict[str, str] | None,
        transaction: Transaction | None,
        timeout_s: float = WRITE_TIMEOUT_S,
    ) -> int:
        """Have the helper commit the IPC file at ``path`` (returns the commit conflicts it
        met); raises :class:`HelperGoneError`
        (the helper is then killed) or :class:`HelperWriteError` (it stays)."""
        request = {
            "uri": uri,
            "path": path,
            "storage_options": storage_options,
            "transaction": list(transaction) if transaction is not None else None,
        }
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None  # noqa: S101 (a pipe, see __init__)
        assert stdout is not None  # noqa: S101
        try:
            stdin.write(json.dumps(request).encode() + b"\n")
            stdin.flush()
            answer = json.loads(_read_line(stdout, time.monotonic() + timeout_s))
        except (OSError, EOFError, ValueError, TimeoutError) as exc:
            # Killed rather than abandoned: a hung helper must not commit a batch later
            # that the log has meanwhile retried.
            self.kill()
            raise HelperGoneError(f"the prediction log's helper process failed: {exc}") from exc
        if "error" in answer:
            raise HelperWriteError(answer["error"])
        return int(answer.get("conflicts", 0))

    def stop(self, timeout_s: float = 60.0) -> None:
        """End-of-file on its stdin: it exits after the commit in progress, if any."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):  # a helper already gone: nothing to flush
                self.process.stdin.close()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close_pipes()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _read_line(stream: IO[bytes], deadline: float) -> bytes:
    """One line from the helper, or :class:`TimeoutError` at ``deadline`` / EOFError if it
    died. Read with ``os.read``, so no line waits in a Python buffer that ``select`` cannot see."""
    fd = stream.fileno()
    received = b""
    while not received.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer from the helper process")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("the helper process exited")
            received += chunk
    return received


# -- the helper's side -----------------------------------------------------------------------


def _watch_parent(parent: int) -> None:
    """Exit the moment the parent is gone (its children are then re-parented)."""
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(PARENT_CHECK_S)


def _serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    for line in requests:
        request: dict[str, Any] = json.loads(line)
        transaction = request.get("transaction")
        try:
            conflicts = append_ipc_file(
                request["uri"],
                request["path"],
                request.get("storage_options"),
                (str(transaction[0]), int(transaction[1])) if transaction else None,
            )
            answer: dict[str, Any] = {"ok": True, "conflicts": conflicts}
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        # Deleted here too: a parent killed while waiting would leave it in the temp folder.
        with contextlib.suppress(OSError):
            os.unlink(request["path"])
        try:
            answers.write(json.dumps(answer).encode() + b"\n")
            answers.flush()
        except BrokenPipeError:
            return  # the parent is gone


def main(argv: list[str] | None = None) -> None:
    """The helper: ``python -m permeability.io.predictions.writer <parent pid>``."""
    args = sys.argv[1:] if argv is None else argv
    parent = int(args[0])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    # The answers get stdout to themselves: anything a library prints goes to stderr.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    import deltalake  # noqa: F401  (imported once here, not inside the first commit)

    _serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
