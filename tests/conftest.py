from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh registry path, also exported as MODELREG_DB for CLI tests."""
    p = tmp_path / "registry.duckdb"
    monkeypatch.setenv("MODELREG_DB", str(p))
    return p


@pytest.fixture(autouse=True)
def _own_default_registry(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's default registry (~/.local/share/modelreg): the default data
    folder is a fresh one per test, so a test that needs a registry makes it (a suite that passed only
    because an earlier test had left one behind in the home folder failed on a clean machine)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry-templates")


@pytest.fixture(autouse=True)
def _own_templates(_templates: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """New registries are copied from an empty one kept in a folder of this test session (not the user's
    cache folder): made by the first test that creates a registry, used by all the others."""
    monkeypatch.setenv("MODELREG_TEMPLATES", str(_templates))
