"""Acquisition's extract and transform steps: read a source chunk by chunk and clean it.

* extract (:mod:`permeability.io.sources.opening`): a CSV, an .xlsx or a SQL table/query, as text;
* transform (:mod:`permeability.record.cleaning`, :mod:`permeability.record.rules`):
  normalise, validate, reject with reasons.

The result is every clean row (repeats included: the load step deduplicates) and every
rejected row in source order, under the source's own column names.
"""

from __future__ import annotations

import dataclasses
import os
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd

from permeability.errors import InvalidInputError
from permeability.io.sources.base import RawChunk
from permeability.io.sources.opening import open_source
from permeability.pipelines.base import JobContext
from permeability.record.cleaning import (
    REASON,
    SOURCE_ROW,
    CleanResult,
    clean_records,
    resolve_columns,
)
from permeability.record.identity import RecordRules, resolve_record_key
from permeability.record.structures import build_alias_map


@dataclass(frozen=True)
class Extracted:
    """Clean rows, rejected rows (as typed, with reasons) and what the reading found."""

    clean: pd.DataFrame
    rejected: pd.DataFrame
    rows_read: int
    calipers_imputed: int
    record_key: tuple[str, ...]
    ignored_columns: list[str]


def extract(ctx: JobContext, source: str, table: str | None, query: str | None) -> Extracted:
    """Read and clean chunk by chunk; chunks are cleaned on worker threads while the next is read.

    The cleaning is whole-column Arrow/NumPy work that releases the GIL, so two cores clean two
    chunks at once; at most ``workers`` chunks wait in memory, in source order.
    """
    params = ctx.config.acquisition
    aliases = build_alias_map(params.structure_aliases)
    rules = RecordRules(
        test_group=params.test_group,
        non_product=params.non_product,
        detection_limit=params.detection_limit,
        missing_tokens=params.missing_tokens,
    )
    progress = _Progress(ctx)
    workers = max(1, min(2, os.cpu_count() or 1))
    with (
        open_source(source, table=table, query=query, chunk_rows=params.chunk_rows) as raw,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clean") as pool,
    ):
        columns = resolve_columns(
            raw.headers,
            params.column_map,
            min_caliper_readings=params.min_caliper_readings,
            source_label=raw.label,
        )
        ignored = [h for h in raw.headers if h not in columns]
        if ignored:
            ctx.logger.info("ignoring columns the record does not use: %s", ", ".join(ignored))
        key = resolve_record_key(params.record_key, list(columns.values()))
        _require_key_columns(key, params.record_key, set(columns.values()), raw.label)
        rules = dataclasses.replace(rules, record_key=key)
        ctx.logger.info("record key: %s", ", ".join(key))
        pending: deque[tuple[RawChunk, Future[CleanResult]]] = deque()
        for chunk in raw.chunks(columns):
            cleaning = pool.submit(
                clean_records,
                chunk.records,
                aliases=aliases,
                min_caliper_readings=params.min_caliper_readings,
                rules=rules,
            )
            pending.append((chunk, cleaning))
            if len(pending) > workers:
                progress.add(*_settled(pending.popleft()))
        while pending:
            progress.add(*_settled(pending.popleft()))
        original_names = {seed: header for header, seed in columns.items()}
    return Extracted(
        pd.concat(progress.clean, ignore_index=True),
        _rejected_frame(progress.rejected, original_names),
        progress.rows_read,
        progress.imputed,
        key,
        ignored,
    )


def _require_key_columns(
    key: Sequence[str], configured: Sequence[str] | None, present: set[str], label: str
) -> None:
    """A configured record key must exist in the source; the default identity may be partial."""
    missing = [c for c in key if c not in present]
    if configured and missing:
        raise InvalidInputError(
            f"acquisition.record_key names {', '.join(missing)}, which source {label} lacks; "
            f"its record columns are {', '.join(sorted(present))}"
        )


def _settled(item: tuple[RawChunk, Future[CleanResult]]) -> tuple[RawChunk, CleanResult]:
    return item[0], item[1].result()


class _Progress:
    """Accumulates cleaned chunks and logs one line per chunk."""

    def __init__(self, ctx: JobContext) -> None:
        self.logger = ctx.logger
        self.clean: list[pd.DataFrame] = []
        self.rejected: list[pd.DataFrame] = []
        self.rows_read = 0
        self.imputed = 0

    def add(self, chunk: RawChunk, result: CleanResult) -> None:
        self.rows_read += len(chunk.records) + len(chunk.malformed)
        self.imputed += result.calipers_imputed
        self.clean.append(result.clean)
        self.rejected.extend(p for p in (result.rejected, chunk.malformed) if len(p))
        number = len(self.clean)
        self.logger.info(
            "chunk %d: %d rows read so far, %d rejected so far",
            number,
            self.rows_read,
            sum(len(p) for p in self.rejected),
        )
        if result.dates_with_time:
            self.logger.warning(
                "chunk %d: %d Fecha values had a time of day; only the date is kept",
                number,
                result.dates_with_time,
            )


def _rejected_frame(
    parts: Sequence[pd.DataFrame], original_names: Mapping[str, str]
) -> pd.DataFrame:
    """Rejected rows in source order, values under the source's own column names."""
    if not parts:
        return pd.DataFrame(columns=[SOURCE_ROW, REASON])
    frame = pd.concat(parts, ignore_index=True).sort_values(SOURCE_ROW, kind="stable")
    values = [c for c in frame.columns if c not in (SOURCE_ROW, REASON)]
    ordered = frame[[SOURCE_ROW, REASON, *values]].rename(columns=original_names)
    return ordered.reset_index(drop=True)
