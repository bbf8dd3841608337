"""Where the prediction log's commits are made: in this process, or by its helper process.

The log (:mod:`permeability.io.predictions.log`) decides what to commit and when; a
:class:`Committer` makes the commit. With ``in_subprocess`` (the inference service) the Delta
write runs in a helper process that exits with its parent
(:mod:`permeability.io.predictions.writer`): started with the log's flusher or on first use,
restarted after it died (a crashed helper is a failed write: the log keeps the rows and
retries), stopped when the log closes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time

import pyarrow as pa

from permeability.io.predictions.writer import (
    HelperGoneError,
    Transaction,
    WriterProcess,
    append_table,
    committed_version,
)

logger = logging.getLogger("permeability.prediction_log")


class Committer:
    """Append commits to the log's Delta table at ``uri``, here or in the helper process."""

    def __init__(
        self, uri: str, storage_options: dict[str, str] | None, *, in_subprocess: bool
    ) -> None:
        self.uri = uri
        self.storage_options = storage_options
        self.in_subprocess = in_subprocess
        self.helper: WriterProcess | None = None
        #: Commit conflicts met so far (another writer took the version; each was retried).
        self.conflicts = 0

    def start_helper(self) -> None:
        """Start the helper now, if commits go through one (idempotent)."""
        if self.in_subprocess and self.helper is None:
            self.helper = WriterProcess()

    def stop_helper(self) -> None:
        if self.helper is not None:
            self.helper.stop()
            self.helper = None

    def write(self, table: pa.Table, transaction: Transaction | None) -> None:
        """One append commit of ``table`` (recording the spool's ``transaction``, if any)."""
        started = time.perf_counter()
        if self.in_subprocess:
            conflicts = self._write_in_helper(table, transaction)
        else:
            conflicts = append_table(self.uri, table, self.storage_options, transaction)
        self.conflicts += conflicts
        logger.info(
            "prediction log: %d rows in one commit (%.0f ms%s%s)",
            table.num_rows,
            (time.perf_counter() - started) * 1000,
            ", written by a helper process" if self.in_subprocess else "",
            f", after {conflicts} commit conflict(s)" if conflicts else "",
        )

    def committed(self, app_id: str) -> int:
        """The newest spool record of ``app_id`` a commit of the table covers (0: none)."""
        return committed_version(self.uri, app_id, self.storage_options)

    def _write_in_helper(self, table: pa.Table, transaction: Transaction | None) -> int:
        """The commit made by the helper process (started on first use, restarted if it died)."""
        if self.helper is None:
            self.helper = WriterProcess()
        # Handed over as an Arrow IPC file: writing it releases the GIL, while building a
        # bytes object and pickling it to the helper held the GIL ~4 ms each per 40k rows.
        handle, path = tempfile.mkstemp(prefix="permeability-predictions-", suffix=".arrow")
        os.close(handle)
        try:
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
                out.write_table(table)
            try:
                return self.helper.append(self.uri, path, self.storage_options, transaction)
            except HelperGoneError:
                self.helper = None  # killed; the next commit starts a new one
                raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
