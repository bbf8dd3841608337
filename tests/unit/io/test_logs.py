from __future__ import annotations

import logging
from pathlib import Path

from permeability.io.logs import close_logging, configure_logging


def test_each_event_is_one_line_with_stage_and_run_id(tmp_path: Path) -> None:
    logger = configure_logging(tmp_path, "acquire", "run123", console=False)
    logger.info("read %d rows", 10)
    logger.warning("two\nlines")
    close_logging()
    lines = (tmp_path / "acquire.log").read_text(encoding="utf-8").splitlines()
    assert "run=run123" in lines[0]
    assert "acquire" in lines[0]
    assert lines[0].endswith("read 10 rows")
    assert len(lines) == 2
    assert "two \\n lines" in lines[1]


def test_reconfiguring_switches_files(tmp_path: Path) -> None:
    configure_logging(tmp_path, "a", "r1", console=False).info("first")
    configure_logging(tmp_path, "b", "r2", console=False).info("second")
    close_logging()
    assert "second" not in (tmp_path / "a.log").read_text(encoding="utf-8")
    assert "second" in (tmp_path / "b.log").read_text(encoding="utf-8")
    assert not [h for h in logging.getLogger("permeability").handlers if hasattr(h, "baseFilename")]
