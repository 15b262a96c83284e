import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from pipeline.store import files as store
from pipeline.store.schema import SCHEMA_VERSION, StoreError
from tests.conftest import ROOT


RUN_ROW = ("INSERT INTO runs (run_id, started_at, completed_at, source, n_samples, n_classes, columns, test_accuracy, "
           "oof_accuracy, n_flagged, seconds, stage_seconds, stage_peak_mib, load_warnings, load_notes, config) "
           "VALUES (?, now()::TIMESTAMP, now()::TIMESTAMP, 'src', 1, 2, '{}', 0.9, 0.9, 0, 1.0, '{}', '{}', '{}', '[]', "
           "'{}')")


def _add_run(con, run_id: str) -> None:
    con.execute(RUN_ROW, [run_id])


def _run_ids(path: Path) -> list[str]:
    return store.list_runs(path)["run_id"].tolist()


@pytest.fixture
def db(tmp_path) -> Path:
    path = tmp_path / "lossmap.duckdb"
    store.publish(path, lambda con: _add_run(con, "first"))
    return path


def test_publish_adds_a_complete_run(db):
    store.publish(db, lambda con: _add_run(con, "second"))
    assert sorted(_run_ids(db)) == ["first", "second"]
    assert not list(db.parent.glob("*.incomplete*"))


def test_a_failing_run_leaves_the_store_unchanged(db):
    before = db.read_bytes()

    def half_then_fail(con):
        _add_run(con, "broken")
        raise RuntimeError("stage failed")

    with pytest.raises(RuntimeError, match="stage failed"):
        store.publish(db, half_then_fail)
    assert _run_ids(db) == ["first"]
    assert db.read_bytes() == before
    assert not list(db.parent.glob("*.incomplete*"))


def test_a_write_that_commits_in_steps_and_spills_is_still_all_or_nothing(db, monkeypatch):
    """A run's write commits table by table on the private copy, with DuckDB's memory capped (WRITE_MEMORY) and
    spilling beside it: until the swap nobody sees any of it, and a failure leaves the store and no folder behind."""
    monkeypatch.setattr(store, "WRITE_MEMORY", "64MiB")
    before, seen = db.read_bytes(), {}

    def stepped(fail: bool):
        def write(con):
            seen["limit"] = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
            _add_run(con, "stepped")
            con.execute("COMMIT")
            con.execute("BEGIN TRANSACTION")
            assert _run_ids(db) == ["first"]  # committed on the copy, not in the store
            con.execute("CREATE TABLE filler AS SELECT range AS i, md5(range::VARCHAR) AS h FROM range(3000000) "
                        "ORDER BY h")  # a sort larger than the cap: spilled
            seen["spill"] = [p.name for p in db.parent.glob("*.spill/*")]
            seen["mode"] = [p.stat().st_mode & 0o777 for p in db.parent.glob("*.spill")]
            if fail:
                raise RuntimeError("stage failed")
        return write

    with pytest.raises(RuntimeError, match="stage failed"):
        store.publish(db, stepped(fail=True))
    assert seen["limit"] == "64.0 MiB" and seen["spill"]  # DuckDB spilled into the folder beside the copy
    assert seen["mode"] == [0o700]  # the spilled rows are not readable by others
    assert _run_ids(db) == ["first"] and db.read_bytes() == before
    assert not list(db.parent.glob("*.incomplete*")) and not list(db.parent.glob("*.spill"))
    (db.parent / (db.name + ".incomplete.spill")).write_text("left by someone")  # a file where the folder goes
    store.publish(db, stepped(fail=False))
    assert sorted(_run_ids(db)) == ["first", "stepped"]
    assert not list(db.parent.glob("*.incomplete*")) and not list(db.parent.glob("*.spill"))


def test_a_write_that_needs_more_than_the_cap_is_done_again_not_lost(db, monkeypatch):
    """An index DuckDB cannot spill, larger than WRITE_MEMORY: the write runs again on a fresh copy with DuckDB's
    own limit, and the run is published once."""
    monkeypatch.setattr(store, "WRITE_MEMORY", "8MiB")
    limits = []

    def write(con):
        limits.append(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
        _add_run(con, "big")
        con.execute("CREATE TABLE big (k VARCHAR PRIMARY KEY)")
        con.execute("INSERT INTO big SELECT md5(range::VARCHAR) FROM range(400000)")

    store.publish(db, write)
    assert limits[0] == "8.0 MiB" and len(limits) == 2 and limits[1] != "8.0 MiB"
    assert sorted(_run_ids(db)) == ["big", "first"]
    assert not list(db.parent.glob("*.incomplete*")) and not list(db.parent.glob("*.spill"))


_KILLABLE = """
import sys, time, pathlib
from pipeline.store import files as store
db, ready = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
def slow(con):
    con.execute(RUN_ROW, ["killed"])
    con.execute("CREATE TABLE filler AS SELECT range AS i FROM range(2000000)")
    ready.write_text("writing")
    time.sleep(60)
store.publish(db, slow)
""".replace("RUN_ROW", repr(RUN_ROW))


def test_sigkill_while_writing_leaves_earlier_runs_intact_and_next_run_works(db, tmp_path):
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(db), str(ready)], cwd=ROOT)
    deadline = time.time() + 60
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert ready.exists(), "the writer never reached its write"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _run_ids(db) == ["first"]  # the killed run is not visible
    store.publish(db, lambda con: _add_run(con, "after"))
    assert sorted(_run_ids(db)) == ["after", "first"]
    assert not list(db.parent.glob("*.incomplete*"))


def test_other_schema_version_gets_a_clear_message(db):
    con = duckdb.connect(str(db))
    con.execute("UPDATE lossmap_meta SET value = '0' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(StoreError, match=f"schema version 0; this Lossmap reads version {SCHEMA_VERSION}.*--db NEW_PATH"):
        store.open_readonly(db)
    with pytest.raises(StoreError, match="schema version 0"):
        store.publish(db, lambda con: _add_run(con, "x"))


def test_file_that_is_not_duckdb(tmp_path):
    path = tmp_path / "notes.duckdb"
    path.write_text("just some text, not a database\n" * 100)
    with pytest.raises(StoreError, match="cannot be opened as a DuckDB store"):
        store.open_readonly(path)
    with pytest.raises(StoreError, match="not a DuckDB file"):
        store.publish(path, lambda con: None)
    assert path.read_text().startswith("just some text")


def test_duckdb_file_of_another_program(tmp_path):
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE invoices (id INTEGER)")
    con.close()
    with pytest.raises(StoreError, match="not a Lossmap store"):
        store.open_readonly(path)


def test_missing_store_says_how_to_make_one(tmp_path):
    with pytest.raises(StoreError, match="no store at .*python -m pipeline run"):
        store.open_readonly(tmp_path / "nope.duckdb")


def test_second_writer_is_refused_while_the_first_holds_the_lock(db):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time, pathlib\nfrom pipeline.store import files\n"
                               "with files._lock(pathlib.Path(sys.argv[1])):\n    print('held', flush=True)\n"
                               "    time.sleep(60)", str(db)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match=rf"another pipeline run \(process {holder.pid}, started .*\) is writing"):
            store.publish(db, lambda con: _add_run(con, "x"))
    finally:
        holder.kill()
        holder.wait()
    assert _run_ids(db) == ["first"]
    store.publish(db, lambda con: _add_run(con, "after"))  # a lock left by a killed run does not hold
    assert sorted(_run_ids(db)) == ["after", "first"]


def test_readonly_connection_cannot_write(db):
    con = store.open_readonly(db)
    with pytest.raises(duckdb.Error):
        con.execute("DELETE FROM runs")
    con.close()
    assert _run_ids(db) == ["first"]


_FILL_DISK = """
import resource, signal, sys, pathlib
from pipeline.store import files as store
from pipeline.store.schema import StoreError
db, limit = pathlib.Path(sys.argv[1]), int(sys.argv[2])
if limit:  # no tmpfs here: cap the size of any file this process writes instead
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
def big(con):
    con.execute(RUN_ROW, ["huge"])
    con.execute("CREATE TABLE filler AS SELECT range AS i, md5(range::VARCHAR) AS h FROM range(2000000)")
try:
    store.publish(db, big)
except StoreError as exc:
    print(exc)
    sys.exit(2)
""".replace("RUN_ROW", repr(RUN_ROW))


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs when this user may mount one; else None (the writer caps its file size instead)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True)
    yield mnt, mounted.returncode == 0
    if mounted.returncode == 0:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_gives_a_clear_error_and_loses_nothing(small_disk):
    folder, is_tmpfs = small_disk
    db = folder / "lossmap.duckdb"
    store.publish(db, lambda con: _add_run(con, "first"))
    before = db.read_bytes()
    limit = 0 if is_tmpfs else len(before) + 256 * 1024
    out = subprocess.run([sys.executable, "-c", _FILL_DISK, str(db), str(limit)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "is full" in out.stdout and "free some space and run again" in out.stdout
    assert "The store is unchanged" in out.stdout and "Traceback" not in out.stderr
    assert db.read_bytes() == before and _run_ids(db) == ["first"]
    assert not list(folder.glob("*.incomplete*"))  # the partial copy is gone, so the space is free again
    store.publish(db, lambda con: _add_run(con, "after"))  # a small run still fits
    assert sorted(_run_ids(db)) == ["after", "first"]


def test_a_run_holds_its_store_against_other_threads_and_publishes_inside_its_hold(db):
    import threading

    refused = []

    def other_thread():
        try:
            store.publish(db, lambda con: _add_run(con, "other"))
        except StoreError as exc:
            refused.append(str(exc))

    with store.reserve(db):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        store.publish(db, lambda con: _add_run(con, "mine"))  # the holder itself is not refused
    assert len(refused) == 1 and "another pipeline run" in refused[0]
    assert sorted(_run_ids(db)) == ["first", "mine"]


def test_a_store_of_a_newer_lossmap_says_to_update(db):
    con = duckdb.connect(str(db))
    con.execute("UPDATE lossmap_meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
    con.close()
    with pytest.raises(StoreError, match=f"written by a newer Lossmap \\(schema version {SCHEMA_VERSION + 1}.*"
                                         "Update Lossmap"):
        store.open_readonly(db)


def test_a_wrong_db_path_says_what_to_pass_and_leaves_no_lock_file(tmp_path):
    (tmp_path / "notes.txt").write_text("a file")
    (tmp_path / "tickets.csv").write_text("text,label\nhello,a\n")
    cases = {tmp_path: "is a folder; --db takes the store's file",
             tmp_path / "notes.txt" / "x.duckdb": "notes.txt is a file, not a folder",
             tmp_path / "tickets.csv": "not a file a pipeline run wrote. Pass the store's .duckdb file"}
    for path, said in cases.items():
        with pytest.raises(StoreError, match=said):
            with store.reserve(path):
                pass
    with pytest.raises(StoreError, match="Pass the store's .duckdb file"):
        store.list_runs(tmp_path / "tickets.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "tickets.csv"]  # no .lock left beside them


@pytest.mark.parametrize("stored, notes, problems", [
    ('["read 3 texts", 5, null, ["x"]]', ["read 3 texts"], {}),
    ('{"empty": ["a", "b"], "null_text": 3}', [], {"empty": ["a", "b"]}),
    ("5", [], {}),
    ("not json", [], {}),
    (None, [], {}),
    (b"\xff\xfe", [], {}),
    ("[" * 100_000 + "]" * 100_000, [], {}),  # deeper than Python's parser goes: RecursionError
])
def test_a_run_s_json_columns_read_as_what_they_should_hold(stored, notes, problems):
    """A store is untrusted: a run's notes and warnings of another shape read as none, never as an error."""
    assert store.run_notes(stored) == notes
    assert store.run_problems(stored) == problems
    assert store.stored_json('{"max_len": 3}', dict) == {"max_len": 3} and store.stored_json("[1]", dict) == {}
