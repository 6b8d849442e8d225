from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh registry path, also exported as MODELREG_DB for CLI tests."""
    p = tmp_path / "registry.duckdb"
    monkeypatch.setenv("MODELREG_DB", str(p))
    return p
