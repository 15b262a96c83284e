import shutil
from contextlib import contextmanager
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


def publish_copy_of_run(store: Path, new_run_id: str, *, source: str | None = None, days: int = 1) -> None:
    """Swap in a second complete run, a copy of the store's run under ``new_run_id``, completed ``days`` later
    (earlier when negative) and, with ``source``, read from other data: the way the pipeline publishes one."""
    from pipeline.store import files as pipeline_store
    from pipeline.store.schema import RUN_TABLES

    def copy_run(con):
        old = con.execute("SELECT run_id FROM runs").fetchone()[0]
        for table in RUN_TABLES:  # names from the schema's constants
            con.execute(f"CREATE TEMP TABLE t AS SELECT * FROM {table} WHERE run_id = ?", [old])
            con.execute("UPDATE t SET run_id = ?", [new_run_id])
            con.execute(f"INSERT INTO {table} SELECT * FROM t")
            con.execute("DROP TABLE t")
        con.execute("UPDATE runs SET completed_at = completed_at + to_days(?), source = coalesce(?, source) "
                    "WHERE run_id = ?", [days, source, new_run_id])

    pipeline_store.publish(store, copy_run)


def open_page(app, page: str, title: str):
    """Run the app, switch to ``page`` (its path) and check it rendered, titled ``title``, without an exception."""
    app.run()
    app.switch_page(page).run()
    assert not app.exception and app.title[0].value == title
    return app


def store_frame(store: Path, sql: str, params=()):
    """The rows of a query over a store file, as a DataFrame (read-only, for checking what a page shows)."""
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(sql, list(params)).df()
    finally:
        con.close()


@contextmanager
def serving_a_copy(store: Path, folder: Path):
    """``streamlit run app.py`` on a private copy of ``store`` in ``folder``; yields (url, copy)."""
    from tests.app.test_browser import start_app

    copy = folder / "lossmap.duckdb"
    shutil.copyfile(store, copy)
    proc, url = start_app(copy)
    try:
        yield url, copy
    finally:
        proc.terminate()
        proc.wait(timeout=20)

