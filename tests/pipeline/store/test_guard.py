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
