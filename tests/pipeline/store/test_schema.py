"""Schema versions: a store of the previous version is refused by the app with what to do, and upgraded in place."""

import subprocess
import sys
import types

import duckdb
import pytest

from pipeline.store import files, schema
from pipeline.store.schema import StoreError
from tests.conftest import ROOT

PREVIOUS = {5: "8c81eb0", 6: "d1b6059"}  # the last commit that wrote each schema version


def _previous_schema(version: int = 5) -> types.ModuleType:
    """pipeline/store/schema.py as it was at that version, from git."""
    commit = PREVIOUS[version]
    found = subprocess.run(["git", "show", f"{commit}:pipeline/store/schema.py"], cwd=ROOT, capture_output=True,
                           text=True)
    if found.returncode:
        pytest.skip(f"this checkout lacks the history of {commit} (a shallow clone): {found.stderr.strip()}")
    source = found.stdout
    module = types.ModuleType(f"schema_v{version}")
    exec(compile(source, f"schema_v{version}.py", "exec"), module.__dict__)
    assert module.SCHEMA_VERSION == version
    return module


def _layout(path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT table_name, column_name, ordinal_position, data_type, is_nullable "
                           "FROM information_schema.columns ORDER BY table_name, ordinal_position").fetchall()
    finally:
        con.close()


@pytest.fixture
def v5_store(tmp_path):
    old = _previous_schema()
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    for ddl in old.TABLES.values():
        con.execute(ddl)
    con.execute("INSERT INTO lossmap_meta VALUES ('schema_version', '5'), ('created_by', 'lossmap pipeline')")
    con.execute("""INSERT INTO runs VALUES ('r1', TIMESTAMP '2026-11-26 10:00:00', TIMESTAMP '2026-11-26 10:05:00',
                   'x.csv', 1, 2, '{}', 0.9, 0.8, 0, 300, '{}', '{}', '{}', '[]', '{}')""")
    con.execute("INSERT INTO models VALUES ('r1', 'nblr-fold0', 'nblr', 'fold', 0, false, 'models/r1/a.onnx', 'ab', "
                "10, 5, 0.8, 1e-6, 'CPUExecutionProvider')")
    con.execute("INSERT INTO samples VALUES ('r1', 's1', 'row 1', 'train', 1, NULL, NULL, 0, 2, 'a b', 'a b')")
    con.execute("INSERT INTO label_issues VALUES ('r1', 's1', 'self_confidence on ensemble of nblr, dense, cnn', 0.2, "
                "true, 0, 1, 'why'), ('r1', 's2', 'confident_learning on nblr', 0.9, false, 1, 2, 'why')")
    con.close()
    return path


def test_the_app_refuses_a_version_5_store_saying_how_to_upgrade_it(v5_store):
    with pytest.raises(StoreError, match=r"written by an earlier Lossmap \(schema version 5; this one reads version "
                                         r"7\)\. Upgrade it in place, keeping its runs and decisions: `python -m "
                                         r"pipeline upgrade --db PATH`"):
        files.open_readonly(v5_store)


def test_upgrade_keeps_the_runs_and_gives_the_layout_of_a_new_store(v5_store, tmp_path):
    done = subprocess.run([sys.executable, "-m", "pipeline", "upgrade", "--db", str(v5_store)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{v5_store} upgraded from schema version 5 to 7; its runs are kept."
    con = files.open_readonly(v5_store)
    try:
        c = files.cursor(con)
        assert c.execute("SELECT model_id, onnx_path, name, source FROM models").fetchall() == [
            ("nblr-fold0", "models/r1/a.onnx", None, None)]
        assert c.execute("SELECT sample_id, label, original_label FROM samples").fetchall() == [("s1", 1, None)]
        assert c.execute("SELECT method, ranked_on, suggestion FROM label_issues ORDER BY sample_id").fetchall() == [
            ("self_confidence", ["nblr", "dense", "cnn"], None), ("confident_learning", ["nblr"], None)]
    finally:
        con.close()
    assert files.list_runs(v5_store)["run_id"].tolist() == ["r1"]
    fresh = tmp_path / "new.duckdb"
    files.publish(fresh, lambda con: None)
    assert _layout(v5_store) == _layout(fresh)
    again = subprocess.run([sys.executable, "-m", "pipeline", "upgrade", "--db", str(v5_store)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert again.stdout.strip() == f"{v5_store} is already at schema version {schema.SCHEMA_VERSION}; nothing to do."


def test_upgrading_what_is_not_a_store_changes_nothing(tmp_path):
    other = tmp_path / "notes.duckdb"
    duckdb.connect(str(other)).execute("CREATE TABLE notes (x INT)").close()
    before = other.read_bytes()
    done = subprocess.run([sys.executable, "-m", "pipeline", "upgrade", "--db", str(other)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "is not a Lossmap store" in done.stderr
    assert other.read_bytes() == before


def test_a_version_6_store_gets_the_evidence_columns_empty(tmp_path):
    old = _previous_schema(6)
    path = tmp_path / "v6.duckdb"
    con = duckdb.connect(str(path))
    for ddl in old.TABLES.values():
        con.execute(ddl)
    con.execute("INSERT INTO lossmap_meta VALUES ('schema_version', '6'), ('created_by', 'lossmap pipeline')")
    con.execute("INSERT INTO label_issues VALUES ('r1', 's1', 'self_confidence', 0.2, true, 0, 1, 'why', ['nblr'])")
    con.close()
    assert files.upgrade_store(path) == 6
    con = files.open_readonly(path)
    try:
        assert files.cursor(con).execute("SELECT reason, n_models, stated_label, suggestion FROM label_issues"
                                         ).fetchall() == [("why", None, None, None)]
    finally:
        con.close()
    fresh = tmp_path / "new.duckdb"
    files.publish(fresh, lambda con: None)
    assert _layout(path) == _layout(fresh)
