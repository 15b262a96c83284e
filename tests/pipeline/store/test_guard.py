"""A store someone else made: its views and macros never run, whatever they were written to do."""

import time

import duckdb
import pytest

from pipeline.store import files as store
from pipeline.store.schema import StoreError
from tests.pipeline.store.test_files import _add_run

SECRET = "TOPSECRET-4f2a"


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "shared.duckdb"
    store.publish(path, lambda con: _add_run(con, "first"))
    return path


def _craft(path, *statements):
    con = duckdb.connect(str(path))
    for sql in statements:
        con.execute(sql)
    con.close()


def _locked_cursor(path):
    """What every query of the app runs on, with the refusal of foreign objects skipped: the second layer."""
    return store.cursor(store._attach(path, read_only=True))


def test_a_view_that_reads_a_local_file_is_refused_and_could_not_read_it(db, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    _craft(db, "DROP TABLE runs",
           f"CREATE VIEW runs AS SELECT CAST(content AS INTEGER) AS run_id FROM read_text('{secret}')")
    with pytest.raises(duckdb.Error, match=SECRET):  # what DuckDB's defaults do with this store
        duckdb.connect(str(db), read_only=True).execute("SELECT * FROM runs").fetchall()

    with pytest.raises(StoreError, match="holds 'view runs', which a Lossmap store never has") as refused:
        store.open_readonly(db)
    assert SECRET not in str(refused.value)
    with pytest.raises(StoreError, match="'view runs'"):
        store.publish(db, lambda con: _add_run(con, "second"))
    with pytest.raises(duckdb.Error, match="file system operations are disabled") as blocked:
        _locked_cursor(db).execute("SELECT * FROM runs").fetchall()
    assert SECRET not in str(blocked.value)


def test_a_macro_that_names_an_extension_is_refused_and_never_downloads_it(db):
    _craft(db, "CREATE MACRO remote(x) AS TABLE SELECT * FROM read_parquet('https://example.invalid/' || x)")
    with pytest.raises(StoreError, match="holds 'macro remote'"):
        store.open_readonly(db)
    cur = _locked_cursor(db)
    assert cur.execute("SELECT current_setting('autoinstall_known_extensions'), "
                       "current_setting('autoload_known_extensions'), "
                       "current_setting('enable_external_access')").fetchone() == (False, False, False)
    started = time.perf_counter()
    with pytest.raises(duckdb.Error) as blocked:
        cur.execute("SELECT * FROM remote('x.parquet')").fetchall()
    assert "download" not in str(blocked.value).lower()
    assert time.perf_counter() - started < 1.0  # no network attempt (one takes seconds here)
    for undo in ("SET GLOBAL autoinstall_known_extensions = true", "SET enable_external_access = true",
                 "RESET lock_configuration"):
        with pytest.raises(duckdb.Error, match="configuration has been locked"):
            cur.execute(undo)


def test_a_macro_named_like_a_builtin_is_refused_and_never_replaces_it(db):
    _craft(db, "CREATE MACRO lower(x) AS 'pwned'", "CREATE MACRO \"||\"(a, b) AS 'pwned'")
    plain = duckdb.connect(":memory:")
    plain.execute("ATTACH ? AS s (READ_ONLY)", [str(db)])
    plain.execute("USE s")
    assert plain.execute("SELECT lower('ABC'), 'a' || 'b'").fetchone() == ("pwned", "pwned")  # DuckDB's defaults

    with pytest.raises(StoreError, match="holds 'macro lower', 'macro \\|\\|'"):
        store.open_readonly(db)
    assert _locked_cursor(db).execute("SELECT lower('ABC'), 'a' || 'b'").fetchone() == ("abc", "ab")


def test_a_store_of_tables_only_opens_and_reads_as_before(db):
    con = store.open_readonly(db)
    assert store.cursor(con).execute("SELECT run_id FROM runs").fetchall() == [("first",)]
    store.publish(db, lambda c: _add_run(c, "second"))
    assert sorted(store.list_runs(db)["run_id"]) == ["first", "second"]


def test_a_sqlite_file_named_like_a_store_is_refused_without_fetching_an_extension(tmp_path):
    import sqlite3

    path = tmp_path / "shared.duckdb"
    sqlite3.connect(path).execute("CREATE TABLE t (a)").connection.commit()
    started = time.perf_counter()
    with pytest.raises(StoreError, match="not a valid DuckDB database file.*not a file a pipeline run wrote") as refused:
        store.open_readonly(path)
    assert "download" not in str(refused.value).lower() and time.perf_counter() - started < 1.0


@pytest.mark.parametrize("column", [
    "source VARCHAR GENERATED ALWAYS AS (repeat(run_id, 200000000))",
    "source VARCHAR DEFAULT (repeat('x', 200000000))",
])
def test_a_table_carrying_sql_is_refused_before_it_is_read(db, column):
    _craft(db, "ALTER TABLE runs RENAME TO old_runs",
           f"CREATE TABLE runs (run_id VARCHAR, {column}, CHECK (length(run_id) < 1000))")
    with pytest.raises(StoreError, match="tables carry SQL that a Lossmap store never has .*[\"']column runs.source = "):
        store.open_readonly(db)


def test_a_check_constraint_is_refused_before_a_run_does_any_work(db):
    _craft(db, "CREATE TABLE extra (a INT CHECK (a > 0))")
    with pytest.raises(StoreError, match="'check on extra: \\(a > 0\\)'"):
        with store.reserve(db):
            pass


def test_a_lock_file_that_is_a_link_is_not_followed(db, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (db.parent / (db.name + ".lock")).unlink()  # left by the fixture's run
    (db.parent / (db.name + ".lock")).symlink_to(victim)
    with pytest.raises(StoreError, match="cannot use the lock file .*if it is a link, remove it"):
        store.publish(db, lambda con: _add_run(con, "second"))
    assert victim.read_text() == "keep me"


def test_a_run_through_a_link_to_the_store_writes_the_store(db, tmp_path):
    link = tmp_path / "link.duckdb"
    link.symlink_to(db)
    store.publish(link, lambda con: _add_run(con, "second"))
    assert link.is_symlink() and sorted(store.list_runs(db)["run_id"]) == ["first", "second"]


def test_a_fifo_given_as_the_store_is_refused_not_waited_on(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.duckdb")
    for act in (lambda: store.open_readonly(tmp_path / "pipe.duckdb"),
                lambda: store.reserve(tmp_path / "pipe.duckdb").__enter__()):
        with pytest.raises(StoreError, match="is not a regular file"):
            act()
