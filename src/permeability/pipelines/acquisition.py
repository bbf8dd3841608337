"""Acquisition: extract lab records, transform them into clean samples, load the feature store.

Three steps, each testable on its own:

* extract (:mod:`permeability.io.sources.base`): a CSV, an .xlsx or a SQL table/query, as text;
* transform (:mod:`permeability.record.cleaning`, :mod:`permeability.record.rules`):
  normalise, validate, reject with reasons, drop repeats;
* load (:mod:`permeability.io.feature_store`): one Delta commit holding the new and changed
  samples and the caliper PCA fitted on every sample of the new version.

Every run reconciles ``rows_read = rows_loaded + rows_rejected + duplicates_skipped`` and
writes the rejected rows, as they were typed, to ``<home>/data/rejected/<UTC time>_<run>.csv``.
A run that changes nothing creates no version, so re-running a source is harmless.

Order around the commit: counts are reconciled and every check that may refuse the load runs
first; then the rejected rows are written durably (temporary file, fsync, rename, fsync of the
folder); only then is the Delta commit made, and it names that file (``rejected_file`` in its
``commitInfo.permeability``, beside the counts). A run killed right after its commit has
therefore already kept every rejected row and its reasons; one killed between the file and the
commit leaves a file no version names, and its rerun writes its own.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from permeability.errors import InvalidInputError
from permeability.features.pca import CaliperPCA, fit_caliper_pca
from permeability.io.cells import write_csv
from permeability.io.durable import fsync_dir, fsync_file
from permeability.io.feature_store import FeatureStore
from permeability.io.file_lock import exclusive_lock
from permeability.io.sources.base import (
    RawChunk,
    mask_secrets,
    mask_source,
    open_source,
    source_secrets,
)
from permeability.pipelines.acquisition_report import AcquisitionReport, Conflicts, DuplicateCounts
from permeability.pipelines.base import JobContext, job_context
from permeability.record.cleaning import (
    CLEAN_COLUMNS,
    REASON,
    SOURCE_ROW,
    CleanResult,
    clean_records,
    resolve_columns,
)
from permeability.record.deduplication import (
    BatchDeduplication,
    UpsertPlan,
    deduplicate_batch,
    plan_upsert,
)
from permeability.record.identity import RecordRules, resolve_record_key
from permeability.record.rules import INGESTED_AT, validate_samples
from permeability.record.schema import (
    BELOW_DETECTION_LIMIT,
    CALIBRES,
    ESTRUCTURA,
    IS_PRODUCT,
    RECORD_ID,
    TEST_ID,
)
from permeability.record.structures import build_alias_map
from permeability.settings import Settings

LOCK_FILE = ".acquire.lock"


@dataclass(frozen=True)
class _Extracted:
    clean: pd.DataFrame
    rejected: pd.DataFrame
    rows_read: int
    calipers_imputed: int
    record_key: tuple[str, ...]
    ignored_columns: list[str]


@dataclass(frozen=True)
class _Loaded:
    version: int | None
    new_version: bool
    pca: CaliperPCA | None
    pca_dir: str | None
    new_structures: list[str]


def acquire(
    settings: Settings, source: str, *, table: str | None = None, query: str | None = None
) -> AcquisitionReport:
    """Run extract -> transform -> load for one source; see the module docstring."""
    started = time.perf_counter()
    with job_context("acquire", settings) as ctx:
        _mask_in_logs(source_secrets(source))
        label = mask_source(source)
        ctx.logger.info("acquiring from %s (table=%s, query=%s)", label, table, bool(query))
        extracted = _extract(ctx, source, table, query)
        batch = deduplicate_batch(extracted.clean, extracted.record_key)
        ctx.logger.info(
            "batch: %d records, %d exact repeats, %d superseded rows, %d conflicting rows",
            len(batch.rows),
            batch.exact_repeats,
            batch.superseded,
            batch.conflict_rows,
        )
        for example in batch.conflict_examples:
            ctx.logger.warning("conflict: %s", example)
        store = FeatureStore(settings.resolved_feature_store_uri)
        with exclusive_lock(
            ctx.paths.data / LOCK_FILE, "another acquisition is loading the feature store"
        ):
            previous = store.current_version()
            if previous is not None and store.restore_pca_artifacts(previous):
                ctx.logger.warning(
                    "feature set version %d had no PCA files (its run stopped after the commit);"
                    " rebuilt them from the commit",
                    previous,
                )
            stored = store.read_records()
            plan = plan_upsert(batch.rows[list(CLEAN_COLUMNS)], stored[list(CLEAN_COLUMNS)])
            ctx.logger.info(
                "plan: %d inserts, %d updates, %d unchanged, %d stale",
                len(plan.inserts),
                len(plan.updates),
                plan.unchanged,
                plan.stale,
            )
            counts = _counts(extracted, batch, plan)
            _reconcile(counts)
            prepared = _prepare(ctx, stored, plan)
            # On disk before the commit that counts them (see the module docstring).
            rejected_file = _write_rejected(ctx, extracted.rejected)
            metadata = {
                "run_id": ctx.run_id,
                "source": label,
                "counts": dict(counts),
                "rejected_file": rejected_file.name if rejected_file else None,
            }
            loaded = _load(ctx, store, stored, plan, prepared, metadata)
        report = AcquisitionReport(
            run_id=ctx.run_id,
            source=label,
            feature_store=store.uri,
            **counts,
            record_key=list(extracted.record_key),
            duplicates=DuplicateCounts(
                exact_repeats=batch.exact_repeats,
                superseded_in_batch=batch.superseded,
                unchanged=plan.unchanged,
                stale=plan.stale,
                superseded_examples=batch.superseded_examples,
            ),
            conflicts=Conflicts(
                records=batch.conflict_records,
                rows=batch.conflict_rows,
                examples=batch.conflict_examples,
            ),
            **_flag_counts(plan),
            detection_limit=ctx.config.acquisition.detection_limit,
            ignored_columns=extracted.ignored_columns,
            calipers_imputed=extracted.calipers_imputed,
            new_structures=loaded.new_structures,
            feature_set_version=loaded.version,
            new_version=loaded.new_version,
            pca_components=loaded.pca.n_components if loaded.pca else None,
            pca_dir=loaded.pca_dir,
            rejected_file=str(rejected_file) if rejected_file else None,
            seconds=round(time.perf_counter() - started, 3),
        )
        ctx.logger.info(
            "rows_read=%d rows_loaded=%d (inserted=%d updated=%d) rows_rejected=%d "
            "duplicates_skipped=%d feature_set_version=%s",
            report.rows_read,
            report.rows_loaded,
            report.rows_inserted,
            report.rows_updated,
            report.rows_rejected,
            report.duplicates_skipped,
            report.feature_set_version,
        )
        return report


# --------------------------------------------------------------------------- extract + transform


def _extract(ctx: JobContext, source: str, table: str | None, query: str | None) -> _Extracted:
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
    return _Extracted(
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


def _flag_counts(plan: UpsertPlan) -> dict[str, object]:
    """What the loaded rows hold: non-products (by structure), censored values, tests."""
    changes = plan.changes
    if changes.empty:
        return {
            "excluded_from_training": 0,
            "excluded_structures": {},
            "censored": 0,
            "tests_loaded": 0,
        }
    excluded = changes[~changes[IS_PRODUCT].astype(bool)]
    counts = excluded[ESTRUCTURA].value_counts()
    return {
        "excluded_from_training": len(excluded),
        "excluded_structures": {str(k): int(v) for k, v in counts.items()},
        "censored": int(changes[BELOW_DETECTION_LIMIT].astype(bool).sum()),
        "tests_loaded": int(changes[TEST_ID].nunique()),
    }


def _counts(extracted: _Extracted, batch: BatchDeduplication, plan: UpsertPlan) -> dict[str, int]:
    return {
        "rows_read": extracted.rows_read,
        "rows_loaded": len(plan.inserts) + len(plan.updates),
        "rows_inserted": len(plan.inserts),
        "rows_updated": len(plan.updates),
        "rows_rejected": len(extracted.rejected),
        "duplicates_skipped": batch.skipped + plan.unchanged + plan.stale,
    }


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class _Prepared:
    """The rows a commit will write (stamped) and the caliper PCA of the version it creates."""

    changes: pd.DataFrame
    pca: CaliperPCA


def _prepare(ctx: JobContext, stored: pd.DataFrame, plan: UpsertPlan) -> _Prepared | None:
    """Validate the changes and fit the PCA: a refusal comes before anything is written."""
    if plan.is_empty:
        return None
    changes = plan.changes
    validate_samples(changes)
    changes[INGESTED_AT] = pd.Timestamp(datetime.now(UTC))
    kept = stored[~stored[RECORD_ID].isin(plan.updates[RECORD_ID])]
    calipers = np.vstack([kept[list(CALIBRES)].to_numpy(), changes[list(CALIBRES)].to_numpy()])
    if len(calipers) < 2:
        raise InvalidInputError(
            "the feature store needs at least 2 valid samples to fit the caliper PCA; "
            f"this load would leave {len(calipers)}"
        )
    pca = fit_caliper_pca(calipers, ctx.config.acquisition.variance_threshold)
    ctx.logger.info(
        "caliper PCA on %d samples: %d component(s), cumulative %.4f",
        pca.n_samples,
        pca.n_components,
        pca.cumulative_explained_variance[pca.n_components - 1],
    )
    return _Prepared(changes, pca)


def _load(
    ctx: JobContext,
    store: FeatureStore,
    stored: pd.DataFrame,
    plan: UpsertPlan,
    prepared: _Prepared | None,
    metadata: Mapping[str, object],
) -> _Loaded:
    """Commit the prepared changes (``metadata`` goes into the commit), then the PCA files."""
    current = store.current_version()
    if prepared is None:
        ctx.logger.info("nothing new or changed: no new version (store at %s)", current)
        pca = store.pca(current) if current is not None else None
        return _Loaded(current, False, pca, None, [])
    changes, pca = prepared.changes, prepared.pca
    version = store.commit(
        changes, replaced=plan.updates[RECORD_ID].tolist(), pca=pca, metadata=metadata
    )
    ctx.logger.info("committed feature set version %d", version)
    pca_dir = store.save_pca_artifacts(version, pca)
    known = set(stored[ESTRUCTURA].unique())
    new_structures = sorted(set(changes[ESTRUCTURA].unique()) - known) if known else []
    if new_structures:
        ctx.logger.info("structures never stored before: %s", ", ".join(new_structures))
    return _Loaded(version, True, pca, pca_dir, new_structures)


# --------------------------------------------------------------------------- report


def _write_rejected(ctx: JobContext, rejected: pd.DataFrame) -> Path | None:
    """One CSV per run with the rows as typed, their source row and every reason."""
    if rejected.empty:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = ctx.paths.rejected / f"{stamp}_{ctx.run_id}.csv"
    partial = path.with_suffix(".csv.partial")
    write_csv(rejected, partial)  # neutralised: it is opened in a spreadsheet (io/cells.py)
    fsync_file(partial)  # durable before the commit that counts these rows
    os.replace(partial, path)
    fsync_dir(path.parent)
    ctx.logger.info("wrote %d rejected rows to %s", len(rejected), path)
    return path


def _reconcile(counts: Mapping[str, int]) -> None:
    """Refuse, before anything is written, a load whose counts do not add up."""
    accounted = counts["rows_loaded"] + counts["rows_rejected"] + counts["duplicates_skipped"]
    if accounted != counts["rows_read"]:
        raise RuntimeError(
            f"acquisition lost track of rows: read {counts['rows_read']}, accounted {accounted}"
        )


class _MaskSecrets(logging.Filter):
    """Replaces passwords in every message and traceback before any handler writes it."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message, self.secrets)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text, self.secrets)
        return True


def _mask_in_logs(secrets: Sequence[str]) -> None:
    if not secrets:
        return
    for handler in logging.getLogger("permeability").handlers:
        handler.addFilter(_MaskSecrets(secrets))
