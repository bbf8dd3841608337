"""Acquisition: extract lab records, transform them into clean samples, load the feature store.

Three steps, each testable on its own:

* extract and transform (:mod:`permeability.pipelines.acquisition_extract`): read the source
  chunk by chunk, normalise, validate, reject with reasons;
* deduplicate (:mod:`permeability.record.deduplication`): drop repeats, plan inserts and updates
  against the stored records;
* load (:mod:`permeability.io.feature_store`): one Delta commit holding the new and changed
  samples and the caliper PCA fitted on every sample of the new version, then that version's
  PCA files with the explained-variance plot drawn here (the store draws nothing).

Every run reconciles ``rows_read = rows_loaded + rows_rejected + duplicates_skipped`` and
writes the rejected rows, as they were typed, to ``<home>/data/rejected/<UTC time>_<run>.csv``
(:mod:`permeability.pipelines.acquisition_report`).
A run that changes nothing creates no version, so re-running a source is harmless.

Order around the commit: counts are reconciled and every check that may refuse the load runs
first; then the rejected rows are written durably (temporary file, fsync, rename, fsync of the
folder); only then is the Delta commit made, and it names that file (``rejected_file`` in its
``commitInfo.permeability``, beside the counts). A run killed right after its commit has
therefore already kept every rejected row and its reasons; one killed between the file and the
commit leaves a file no version names, and its rerun writes its own.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from permeability.errors import InvalidInputError
from permeability.features.pca import CaliperPCA, fit_caliper_pca
from permeability.io.feature_store import FeatureStore
from permeability.io.feature_store_files import PLOT_NAME
from permeability.io.file_lock import exclusive_lock
from permeability.io.sources.secrets import mask_secrets, mask_source, source_secrets
from permeability.pipelines.acquisition_extract import extract
from permeability.pipelines.acquisition_report import (
    AcquisitionReport,
    Conflicts,
    DuplicateCounts,
    counts,
    flag_counts,
    reconcile,
    write_rejected,
)
from permeability.pipelines.base import JobContext, job_context
from permeability.record.cleaning import CLEAN_COLUMNS
from permeability.record.deduplication import UpsertPlan, deduplicate_batch, plan_upsert
from permeability.record.rules import INGESTED_AT
from permeability.record.sample_schema import validate_samples
from permeability.record.schema import CALIBRES, ESTRUCTURA, RECORD_ID
from permeability.settings import Settings

LOCK_FILE = ".acquire.lock"


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
        extracted = extract(ctx, source, table, query)
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
            if previous is not None and not store.pca_files.complete(previous):
                _save_pca_files(store, previous, store.pca(previous))
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
            figures = counts(extracted.rows_read, len(extracted.rejected), batch, plan)
            reconcile(figures)
            prepared = _prepare(ctx, stored, plan)
            # On disk before the commit that counts them (see the module docstring).
            rejected_file = write_rejected(ctx, extracted.rejected)
            metadata = {
                "run_id": ctx.run_id,
                "source": label,
                "counts": dict(figures),
                "rejected_file": rejected_file.name if rejected_file else None,
            }
            loaded = _load(ctx, store, stored, plan, prepared, metadata)
        report = AcquisitionReport(
            run_id=ctx.run_id,
            source=label,
            feature_store=store.uri,
            **figures,
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
            **flag_counts(plan),
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
    pca_dir = _save_pca_files(store, version, pca)
    known = set(stored[ESTRUCTURA].unique())
    new_structures = sorted(set(changes[ESTRUCTURA].unique()) - known) if known else []
    if new_structures:
        ctx.logger.info("structures never stored before: %s", ", ".join(new_structures))
    return _Loaded(version, True, pca, pca_dir, new_structures)


def _save_pca_files(store: FeatureStore, version: int, pca: CaliperPCA) -> str:
    """``version``'s PCA files, with the explained-variance plot drawn here; their folder."""
    from permeability.plots.training import explained_variance  # matplotlib: only when drawing

    with tempfile.TemporaryDirectory() as scratch:
        plot = explained_variance(
            pca,
            Path(scratch) / PLOT_NAME,
            title=f"Caliper PCA, feature set v{version} ({pca.n_samples} samples)",
        )
        return store.pca_files.save(version, pca, plot.read_bytes())


# --------------------------------------------------------------------------- logs


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
