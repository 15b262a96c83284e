import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


@pytest.fixture
def store(app_store, tmp_path) -> Path:
    """A private copy of the app store, so decisions written by one test stay in it."""
    copy = tmp_path / "lossmap.duckdb"
    shutil.copyfile(app_store, copy)
    return copy


@pytest.fixture
def app(store, monkeypatch):
    monkeypatch.setenv("LOSSMAP_DB", str(store))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    return at
