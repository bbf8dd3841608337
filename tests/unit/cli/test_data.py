"""The data commands: compact (generate-data and acquire are tested with their pipelines)."""

from __future__ import annotations

from permeability.settings import Settings
from tests.unit.cli.cli_support import invoke, last_json


def test_compact_prints_a_summary_or_the_report_as_json(settings: Settings) -> None:
    from tests.unit.io.prediction_log_support import data_files, fill_prediction_log

    root = settings.resolved_feature_store_uri
    fill_prediction_log(root, commits=6)

    human = invoke("compact")
    assert human.exit_code == 0, human.output
    assert "6 -> 1 files, 18 rows" in human.stdout
    assert "vacuumed 0 files replaced more than 168 h ago" in human.stdout

    as_json = invoke("compact", "--retention-hours", "0", "--json")
    assert as_json.exit_code == 0, as_json.output
    report = last_json(as_json.stdout)
    assert report["compaction"]["files_vacuumed"] == 6
    assert report["compaction"]["retention_hours"] == 0
    assert report["compaction"]["optimize_version"] is None  # compacted by the first call
    assert len(data_files(root)) == 1


def test_compact_without_a_log_says_so(settings: Settings) -> None:
    result = invoke("compact", "--json")
    assert result.exit_code == 0, result.output
    assert last_json(result.stdout)["compaction"]["table_exists"] is False
    assert "nothing to compact" in invoke("compact").stdout


def test_compact_refuses_a_negative_retention() -> None:
    result = invoke("compact", "--retention-hours", "-1")
    assert result.exit_code == 2
    assert "--retention-hours" in result.output


def test_compact_takes_the_days_to_compact(settings: Settings) -> None:
    from tests.unit.io.prediction_log_support import fill_prediction_log

    fill_prediction_log(settings.resolved_feature_store_uri, commits=3)  # all on 2026-01-01

    other_day = invoke("compact", "--day", "2026-01-02", "--json")
    assert other_day.exit_code == 0, other_day.output
    assert last_json(other_day.stdout)["compaction"]["optimize_version"] is None

    that_day = invoke("compact", "--day", "2026-01-01")
    assert that_day.exit_code == 0, that_day.output
    assert "rewrote 3 files into 1" in that_day.stdout
    assert "days compacted: 2026-01-01" in that_day.stdout
    assert invoke("compact", "--day", "01/02/2026").exit_code != 0


def test_compact_refuses_a_day_that_is_not_a_date_naming_the_option() -> None:
    for garbage in ("2026-13-45", "yesterday", ""):
        result = invoke("compact", "--day", garbage)
        assert result.exit_code == 2, garbage
        assert "--day" in result.output
