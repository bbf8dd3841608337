"""The seed lab's real export format, rebuilt from its real data, acquired from every kind of source.

Issue 11's acceptance: the real-format export (``tests/real_export.py`` rebuilds it at run time
from ``../shared/data/seed_lab_processed.csv``; nothing derived from it is stored in the repo) is
acquired from CSV, .xlsx, PostgreSQL and MariaDB: every row loads, every count reconciles, the
store holds one record per ``CONSECUTIVO`` with its replicate number, zeros are censored at the
detection limit, non-products are flagged; a second acquisition changes nothing and a corrected
value updates exactly its record. Built differently (no ``CONSECUTIVO``, shuffled, one ``Fecha``
column, other spellings), at least 95 % of its product rows still load and train.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from permeability.cli.main import app
from permeability.io.feature_store import FeatureStore
from permeability.io.registry import Registry
from permeability.pipelines.acquisition import acquire
from permeability.pipelines.acquisition_report import AcquisitionReport
from permeability.pipelines.training import train
from permeability.pipelines.training_spec import TrainingResult, TrainingSpec
from permeability.settings import Settings
from tests.real_export import (
    NON_PRODUCT_NAMES,
    OTHER_SPELLINGS,
    RealExport,
    build_real_export,
    drop_consecutivo,
    load_processed,
    respell,
    shuffle_rows,
    single_date_column,
    sql_table_name,
    with_permeability,
    write_csv,
    write_sql_table,
    write_xlsx,
)

pytestmark = pytest.mark.integration

#: acquisition.detection_limit's default (g/m²·day).
DETECTION_LIMIT = 0.0005
#: How far a stored value may be from the typed one (see the store test).
VALUE_TOLERANCE = 1e-10
SOURCES = ("csv", "xlsx", "postgres", "mariadb")
#: Columns the store adds on every load; not part of a record's content.
VOLATILE = ("ingested_at",)


@dataclass
class Publisher:
    """Writes an export to one kind of source; publishing again is a re-export (same place)."""

    kind: str
    folder: Path
    url: str | None = None
    table: str | None = None

    def publish(self, frame: pd.DataFrame) -> tuple[str, str | None]:
        """Write ``frame``; return what ``acquire`` needs (source, table)."""
        if self.kind == "csv":
            return str(write_csv(frame, self.folder / "export.csv")), None
        if self.kind == "xlsx":
            return str(write_xlsx(frame, self.folder / "export.xlsx")), None
        assert self.url is not None
        assert self.table is not None
        write_sql_table(frame, self.url, self.table)
        return self.url, self.table


@pytest.fixture(scope="module")
def real_export() -> RealExport:
    return build_real_export(load_processed())


@pytest.fixture(params=SOURCES)
def publisher(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Publisher]:
    kind = str(request.param)
    folder = tmp_path / "exports"
    folder.mkdir()
    if kind in ("csv", "xlsx"):
        yield Publisher(kind, folder)
        return
    url = str(request.getfixturevalue(f"{kind}_url"))
    with sql_table_name(url, "real_export") as name:
        yield Publisher(kind, folder, url, name)


def acquire_frame(
    settings: Settings, publisher: Publisher, frame: pd.DataFrame
) -> AcquisitionReport:
    source, table = publisher.publish(frame)
    return acquire(settings, source, table=table)


def store(settings: Settings) -> FeatureStore:
    return FeatureStore(settings.resolved_feature_store_uri)


def number_text(values: pd.Series) -> pd.Series:
    """Record numbers as text however a source typed them (17, 17.0, '17')."""
    return values.astype(str).str.strip().str.replace(r"\.0+$", "", regex=True)


def by_consecutivo(frame: pd.DataFrame) -> pd.DataFrame:
    indexed = frame.set_index(number_text(frame["CONSECUTIVO"]))
    assert indexed.index.is_unique, "two rows share a CONSECUTIVO"
    return indexed.sort_index()


def aligned(export: RealExport, values: pd.Series) -> pd.Series:
    """Builder knowledge (row by row) indexed and sorted like :func:`by_consecutivo`."""
    index = number_text(export.frame["CONSECUTIVO"])
    return pd.Series(values.to_numpy(), index=index.to_numpy()).sort_index()


def assert_reconciled(report: AcquisitionReport) -> None:
    accounted = report.rows_loaded + report.rows_rejected + report.duplicates_skipped
    assert report.rows_read == accounted, report.summary()
    assert 0 <= report.excluded_from_training <= report.rows_loaded
    assert 0 <= report.censored <= report.rows_loaded


def censored_rows(frame: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(frame["Permeabilidad"]) < DETECTION_LIMIT


# --------------------------------------------------------------------------- every source


def test_every_row_loads_and_every_count_reconciles(
    settings: Settings, publisher: Publisher, real_export: RealExport
) -> None:
    frame = real_export.frame
    report = acquire_frame(settings, publisher, frame)

    assert_reconciled(report)
    assert report.rows_read == len(frame)
    # Nothing in the real export deserves a rejection: zeros are censored, text is "no value",
    # non-products are loaded and flagged.
    assert (report.rows_loaded, report.rows_rejected, report.duplicates_skipped) == (
        len(frame),
        0,
        0,
    ), report.summary()
    assert report.rows_inserted == len(frame)
    assert report.excluded_from_training == len(frame) - real_export.product_rows
    assert report.censored == int(censored_rows(frame).sum())
    assert report.conflicts.records == 0
    assert report.feature_set_version == 0
    assert report.new_version


def test_the_store_holds_one_record_per_consecutivo_as_the_lab_typed_it(
    settings: Settings, publisher: Publisher, real_export: RealExport
) -> None:
    acquire_frame(settings, publisher, real_export.frame)
    stored = by_consecutivo(store(settings).read_records())
    expected = by_consecutivo(real_export.frame)
    product = aligned(real_export, real_export.is_product)

    assert stored.index.tolist() == expected.index.tolist()
    assert (stored["Muestra"] == expected["Muestra"].astype("int64")).all()
    assert sorted(stored["Muestra"].unique().tolist()) == [1, 2, 3, 4]
    assert (stored["Referencia"] == expected["Referencia"]).all()
    assert (stored["Instrumentista"] == expected["Instrumentista"]).all()
    typed_dates = [
        date(int(y), int(m), int(d))
        for y, m, d in zip(expected["Año"], expected["Mes"], expected["Día"], strict=True)
    ]
    assert [pd.Timestamp(v).date() for v in stored["Fecha"]] == typed_dates
    # Non-products: loaded and flagged, nothing else.
    assert (stored["is_product"].astype(bool) == product).all()
    # Zeros and values under the limit: kept, flagged, stored at the limit; the rest unaltered.
    below = censored_rows(expected)
    assert int(below.sum()) > 0
    assert (stored["below_detection_limit"].astype(bool) == below).all()
    assert np.allclose(stored.loc[below, "Permeabilidad"], DETECTION_LIMIT, rtol=0, atol=1e-12)
    # Measured values have 4 decimals; the KNN-imputed ones carry 17 digits, which an .xlsx
    # keeps to 15-16 and SQLAlchemy's reflected MariaDB DOUBLE (a Decimal of scale 10) to 10.
    assert np.allclose(
        stored.loc[~below, "Permeabilidad"].to_numpy(dtype=np.float64),
        pd.to_numeric(expected.loc[~below, "Permeabilidad"]).to_numpy(dtype=np.float64),
        rtol=0,
        atol=VALUE_TOLERANCE,
    )
    # One laminate, two spellings: one canonical name and its layers.
    foil = expected["Estructura"].isin(["PET-AL-PE", "PET / AL / PE"])
    assert expected.loc[foil, "Estructura"].nunique() == 2
    assert set(stored.loc[foil, "Estructura"]) == {"PET/AL/PE"}
    assert set(stored.loc[foil, "layers"]) == {"PET/AL/PE"}


def test_replicates_of_one_test_share_a_test_id_and_tests_do_not(
    settings: Settings, publisher: Publisher, real_export: RealExport
) -> None:
    acquire_frame(settings, publisher, real_export.frame)
    stored = by_consecutivo(store(settings).read_records())
    built = aligned(real_export, real_export.test)
    pairs = pd.DataFrame({"built": built, "stored": stored["test_id"]})
    assert (pairs.groupby("built")["stored"].nunique() == 1).all()
    assert (pairs.groupby("stored")["built"].nunique() == 1).all()


def test_a_second_acquisition_changes_nothing(
    settings: Settings, publisher: Publisher, real_export: RealExport
) -> None:
    first = acquire_frame(settings, publisher, real_export.frame)
    before = store(settings).read_records()
    again = acquire_frame(settings, publisher, real_export.frame)

    assert_reconciled(again)
    assert again.rows_loaded == 0
    assert again.rows_rejected == 0
    assert again.duplicates_skipped == again.rows_read == len(real_export.frame)
    assert again.new_version is False
    assert again.feature_set_version == first.feature_set_version
    assert store(settings).current_version() == first.feature_set_version
    pd.testing.assert_frame_equal(store(settings).read_records(), before)


def test_a_corrected_value_updates_exactly_that_record(
    settings: Settings, publisher: Publisher, real_export: RealExport
) -> None:
    frame = real_export.frame
    first = acquire_frame(settings, publisher, frame)
    assert first.feature_set_version is not None
    values = pd.to_numeric(frame["Permeabilidad"])
    candidates = frame[real_export.is_product & (values > 0.1)]
    row = candidates.iloc[len(candidates) // 2]
    target = int(row["CONSECUTIVO"])
    corrected = round(float(row["Permeabilidad"]) * 1.07 + 0.01, 4)

    changed = acquire_frame(
        settings, publisher, with_permeability(real_export, target, corrected).frame
    )

    assert_reconciled(changed)
    assert (changed.rows_loaded, changed.rows_updated, changed.rows_inserted) == (1, 1, 0)
    assert changed.duplicates_skipped == len(frame) - 1
    assert changed.feature_set_version == first.feature_set_version + 1
    now = by_consecutivo(store(settings).read_records()).drop(columns=list(VOLATILE))
    then = by_consecutivo(store(settings).read_records(first.feature_set_version))
    then = then.drop(columns=list(VOLATILE))
    key = str(target)
    assert now.loc[key, "Permeabilidad"] == corrected
    assert then.loc[key, "Permeabilidad"] == pytest.approx(
        float(row["Permeabilidad"]), rel=0, abs=VALUE_TOLERANCE
    )
    others = now.index != key
    pd.testing.assert_frame_equal(now[others], then[others])


# --------------------------------------------------------------------------- report and training


def test_the_cli_reports_exclusions_censoring_and_conflicts_as_json(
    tmp_path: Path, real_export: RealExport
) -> None:
    source = write_csv(real_export.frame, tmp_path / "export.csv")
    result = CliRunner().invoke(app, ["acquire", "--source", str(source), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    frame = real_export.frame
    assert payload["rows_read"] == len(frame)
    assert payload["excluded_from_training"] == len(frame) - real_export.product_rows
    assert payload["censored"] == int(censored_rows(frame).sum())
    assert "conflicts" in payload


def rows_trained_on(settings: Settings, result: TrainingResult) -> int:
    """Rows a training fitted, calibrated or tested on (with cross-conformal intervals the
    calibration rows are the fitting rows, so they count once)."""
    run = Registry.from_settings(settings).get_run(result.run_id)
    cross = run.params.get("calibration_method") == "cross-conformal"
    return result.n_train + result.n_test + (0 if cross else result.n_calibration)


def train_small(settings: Settings) -> TrainingResult:
    spec = TrainingSpec.parse(model="LinearRegression", version="0.1", test_size=0.25)
    return train(settings, spec)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["as-exported", "held-back-style"])
def test_training_uses_product_rows_only_and_at_least_95_percent_of_them(
    settings: Settings, tmp_path: Path, real_export: RealExport, variant: str
) -> None:
    export = real_export if variant == "as-exported" else held_back_style(real_export, "xlsx")
    acquire(settings, str(write_csv(export.frame, tmp_path / "export.csv")))
    stored_products = int(store(settings).read_records()["is_product"].astype(bool).sum())
    result = train_small(settings)

    used = rows_trained_on(settings, result)
    assert used <= stored_products <= export.product_rows, (
        f"training used {used} rows; the store holds {stored_products} product rows and the "
        f"export {export.product_rows}"
    )
    assert used >= 0.95 * export.product_rows
    assert not set(result.per_structure) & NON_PRODUCT_NAMES
    # Issue 12: the replicates of one test never straddle the split, and the data's own
    # noise floor stands beside the model's error.
    assert result.split_grouping == "test_id"
    assert result.noise_floor is not None
    assert result.noise_floor["tests"] >= 300
    assert 0 < result.noise_floor["noise_floor_mae"] < result.metrics["mae"]
    assert result.metrics["mae_over_noise_floor"] == pytest.approx(
        result.metrics["mae"] / result.noise_floor["noise_floor_mae"]
    )


# --------------------------------------------------------------------------- built differently


def held_back_style(export: RealExport, kind: str) -> RealExport:
    """No CONSECUTIVO, shuffled; the xlsx one also has one day-first Fecha column and other
    spellings, the PostgreSQL one a DATE column."""
    built = shuffle_rows(drop_consecutivo(export), seed=11)
    if kind == "xlsx":
        return respell(single_date_column(built, "%d/%m/%Y"), OTHER_SPELLINGS)
    if kind == "postgres":
        return single_date_column(built, None)
    return built


@pytest.mark.parametrize("kind", ["csv", "xlsx", "postgres"])
def test_an_export_without_record_numbers_in_another_order_still_loads(
    settings: Settings, tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    export = held_back_style(request.getfixturevalue("real_export"), kind)
    frame = export.frame
    assert "CONSECUTIVO" not in frame.columns

    def once() -> AcquisitionReport:
        if kind == "postgres":
            url = str(request.getfixturevalue("postgres_url"))
            with sql_table_name(url, "held_back") as name:
                write_sql_table(frame, url, name)
                return acquire(settings, url, table=name)
        writer = write_csv if kind == "csv" else write_xlsx
        return acquire(settings, str(writer(frame, tmp_path / f"export.{kind}")))

    report = once()
    assert_reconciled(report)
    assert report.rows_read == len(frame)
    stored = store(settings).read_records()
    loaded_products = int(stored["is_product"].astype(bool).sum())
    assert loaded_products >= 0.95 * export.product_rows, report.summary()
    assert loaded_products <= export.product_rows
    # The replicate numbers survive: each (date, reference) holds the replicates it was typed with.
    typed_sets = replicates_by_day_and_reference(frame)
    kept_sets = replicates_by_day_and_reference(stored)
    assert set(kept_sets) <= set(typed_sets)
    assert all(kept_sets[k] <= typed_sets[k] for k in kept_sets)

    again = once()
    assert_reconciled(again)
    assert again.rows_loaded == 0
    assert again.new_version is False


def replicates_by_day_and_reference(frame: pd.DataFrame) -> dict[tuple[date, str], set[int]]:
    """Replicate numbers per (test date, reference)."""
    groups: dict[tuple[date, str], set[int]] = {}
    for day, reference, replicate in zip(
        _days(frame), frame["Referencia"], frame["Muestra"], strict=True
    ):
        groups.setdefault((day, str(reference)), set()).add(int(replicate))
    return groups


def _days(frame: pd.DataFrame) -> list[date]:
    if "Fecha" not in frame.columns:
        return [
            date(int(y), int(m), int(d))
            for y, m, d in zip(frame["Año"], frame["Mes"], frame["Día"], strict=True)
        ]
    values = frame["Fecha"]
    if values.map(lambda v: isinstance(v, str)).all():
        return [pd.Timestamp(pd.to_datetime(v, dayfirst=True)).date() for v in values]
    return [pd.Timestamp(v).date() for v in values]
