"""Batch scoring: a table of lab records -> the same rows with a guide value, interval and decision.

One code path for ``POST /inference/batch`` (JSON records or an uploaded CSV/xlsx) and for
``permeability predict --input in.csv --output out.csv`` (the job below). The work is split:
:mod:`~permeability.pipelines.predict_tables` reads and writes tables,
:mod:`~permeability.scoring.rows` parses and checks the rows,
:mod:`~permeability.scoring.batch` scores them and
:mod:`~permeability.scoring.batch_reasons` words the reasons (the decision rule is
:mod:`permeability.scoring.decisions`).

Every input row comes out, in order, with its original values and the added columns
``filled``, ``prediction``, ``lower``, ``upper``, ``p_exceed``, ``decision``, ``error`` plus
``structure`` (canonical name), ``limit`` (the specification limit applied, if any) and
``decision_reason``. Missing caliper readings are repaired as acquisition repairs them: with
at least ``min_caliper_readings`` readings present, each missing one (and a missing
CalibreProm) gets the mean of the readings the row has, and ``filled`` names the fields that
got it; with fewer, the row is an error naming them. A row that cannot be scored (missing or
non-numeric field, out of physical range, caliper mean inconsistent with the readings, a
structure the version does not know) keeps empty outputs and says every problem in
``error``; it never fails the rest of the batch. A file that lacks whole columns the rows
cannot do without is refused up front (that is a wrong file, not a bad row).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pydantic import BaseModel

from permeability.errors import InvalidInputError, PermeabilityError
from permeability.io.model_cache import ModelCache
from permeability.io.predictions.log import PredictionLog
from permeability.io.predictions.schema import predictions_uri
from permeability.io.specs import load_configured_specs
from permeability.pipelines.base import job_context
from permeability.pipelines.predict_tables import SUPPORTED_FILES, read_table, write_table
from permeability.scoring.batch import ScoredBatch, score_frame
from permeability.settings import Settings

STAGE: Final = "predict"


class PredictFileResult(BaseModel):
    """What ``permeability predict`` reports."""

    input: str
    output: str
    version: str
    level: float
    rows: int
    predicted: int
    failed: int
    filled_rows: int
    decisions: dict[str, int]
    seconds: float
    rows_per_second: float


def predict_file(
    settings: Settings,
    *,
    input_path: Path,
    output_path: Path,
    version: str | None = None,
    level: float | None = None,
) -> PredictFileResult:
    """Score a whole lab file with one version (default: the champion) and log the predictions."""
    with job_context(STAGE, settings) as ctx:
        policy = ctx.config.inference.decision_policy(level)
        if input_path.resolve() == output_path.resolve():
            raise InvalidInputError(f"--output {output_path} would overwrite the input file")
        if output_path.suffix.lower() not in SUPPORTED_FILES:
            raise InvalidInputError(f"output file {output_path} must end in .csv or .xlsx")
        if not input_path.is_file():
            raise InvalidInputError(f"input file {input_path} does not exist")
        loaded = ModelCache.from_settings(settings).get(version)
        specs = load_configured_specs(settings, ctx.config)
        frame = read_table(input_path, input_path.name)
        ctx.logger.info(
            "scoring %d rows of %s with version %s", len(frame), input_path, loaded.version
        )
        scored = score_frame(
            frame,
            loaded,
            specs,
            policy,
            endpoint="cli",
            request_id=ctx.run_id,
            min_caliper_readings=ctx.config.acquisition.min_caliper_readings,
        )
        write_table(scored.frame, output_path)
        _log_predictions(settings, scored)
        result = PredictFileResult(
            input=str(input_path),
            output=str(output_path),
            version=loaded.version,
            level=policy.level,
            rows=scored.rows,
            predicted=scored.predicted,
            failed=scored.failed,
            filled_rows=scored.filled_rows,
            decisions=scored.decision_counts(),
            seconds=round(scored.seconds, 4),
            rows_per_second=round(scored.rows / scored.seconds, 1) if scored.seconds > 0 else 0.0,
        )
        ctx.logger.info(
            "scored %d rows (%d failed, %d with caliper values filled) in %.3fs -> %s",
            result.rows,
            result.failed,
            result.filled_rows,
            result.seconds,
            output_path,
        )
        return result


def _log_predictions(settings: Settings, scored: ScoredBatch) -> None:
    """One Delta commit for the whole file; a failure is an error (every prediction is logged)."""
    log = PredictionLog(predictions_uri(settings.resolved_feature_store_uri))
    columns, count = scored.log_columns()
    log.append_columns(columns, count)
    log.flush()
    if log.pending_rows:
        raise PermeabilityError(
            f"the output was written but the prediction log at {log.uri} could not be: "
            f"{log.last_error}"
        )
