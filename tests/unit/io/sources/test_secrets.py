"""Passwords inside a source URL never show: SQL URLs told from paths, secrets masked."""

from __future__ import annotations

from permeability.io.sources.secrets import is_sql_url, mask_source, source_secrets


def test_sql_urls_are_told_from_paths() -> None:
    assert is_sql_url("postgresql+psycopg://u@h/db")
    assert is_sql_url("sqlite:///x.db")
    assert not is_sql_url("file:///tmp/x.csv")
    assert not is_sql_url("C:\\data\\lab.csv")
    assert not is_sql_url("lab.csv")


def test_passwords_are_masked_wherever_they_sit() -> None:
    url = "postgresql://lab:s3cr%21t@db.example:5432/lims?sslpassword=other"
    masked = mask_source(url)
    assert "s3cr" not in masked
    assert "other" not in masked
    assert masked.startswith("postgresql://lab:***@db.example")
    assert source_secrets("/tmp/lab.csv") == []
    assert mask_source("/tmp/lab.csv") == "/tmp/lab.csv"
