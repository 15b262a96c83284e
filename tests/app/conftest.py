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


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's), one per test module."""
    from playwright.sync_api import sync_playwright

    from tests.app.test_browser import launch_chromium

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()
