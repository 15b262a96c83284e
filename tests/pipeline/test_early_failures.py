"""What would fail at the end of a run fails before its first stage, leaving nothing behind."""

import dataclasses
import re
import subprocess
import sys
import time

import pytest

from pipeline import run as run_module
from pipeline.store import files
from pipeline.store.schema import StoreError
from tests.conftest import ROOT, real_archive
from tests.pipeline.store.test_files import _add_run

UNWRITABLE = "/sys"  # sysfs: no one, root included, can create a file there


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pipeline", "run", "--data", str(real_archive()), "--sample", "60",
                           "--no-progress", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_store_folder_that_cannot_be_written_is_said_at_the_start(tmp_path):
    started = time.perf_counter()
    done = _cli("--db", f"{UNWRITABLE}/lossmap.duckdb", "--models-dir", str(tmp_path / "models"))
    seconds = time.perf_counter() - started
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(
        rf"error: cannot write the store {UNWRITABLE}/lossmap.duckdb: its folder {UNWRITABLE} is not writable "
        r"\([A-Za-z ]+\)\. Pass --db in a folder you can write\.", lines[0]), done.stderr
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    assert seconds < 60, f"{seconds:.0f} s: the run did work before failing"


def test_a_models_folder_that_cannot_be_written_is_said_at_the_start(tmp_path):
    done = _cli("--db", str(tmp_path / "lossmap.duckdb"), "--models-dir", f"{UNWRITABLE}/models")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(
        rf"error: cannot write ONNX files in {UNWRITABLE}/models \([A-Za-z ]+\)\. Pass --models-dir a folder you "
        r"can write\.", lines[0]), done.stderr
    assert not (tmp_path / "lossmap.duckdb").exists()


_HOLD = """
import sys, time, pathlib
from pipeline.store import files
with files.reserve(pathlib.Path(sys.argv[1])):
    print("holding", flush=True)
    time.sleep(120)
"""


def test_a_second_run_on_a_held_store_is_refused_before_loading(sample_config, tmp_path, monkeypatch):
    db = tmp_path / "lossmap.duckdb"
    files.publish(db, lambda con: _add_run(con, "first"))
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(db)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    loaded = []
    monkeypatch.setattr(run_module, "load_dataset", lambda *a: loaded.append(a))
    try:
        assert holder.stdout.readline().strip() == "holding"
        cfg = dataclasses.replace(sample_config, db=db, models_dir=tmp_path / "models")
        with pytest.raises(StoreError, match=rf"another pipeline run \(process {holder.pid}, started [0-9: -]+\) is "
                                             rf"writing {db}; wait for it to finish, or pass another --db"):
            run_module.run_pipeline(cfg)
    finally:
        holder.kill()
        holder.wait()
    assert loaded == []  # refused before the first stage
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    assert files.list_runs(db)["run_id"].tolist() == ["first"]


def test_a_store_that_could_not_be_added_to_is_said_before_loading(sample_config, tmp_path, monkeypatch):
    import duckdb

    db = tmp_path / "lossmap.duckdb"
    files.publish(db, lambda con: _add_run(con, "first"))
    con = duckdb.connect(str(db))
    con.execute("UPDATE lossmap_meta SET value = '0' WHERE key = 'schema_version'")
    con.close()
    loaded = []
    monkeypatch.setattr(run_module, "load_dataset", lambda *a: loaded.append(a))
    cfg = dataclasses.replace(sample_config, db=db, models_dir=tmp_path / "models")
    with pytest.raises(StoreError, match="schema version 0"):
        run_module.run_pipeline(cfg)
    assert loaded == []


def test_a_private_store_stays_private_after_a_run(tmp_path):
    db = tmp_path / "lossmap.duckdb"
    files.publish(db, lambda con: _add_run(con, "first"))
    db.chmod(0o600)
    files.publish(db, lambda con: _add_run(con, "second"))
    assert db.stat().st_mode & 0o777 == 0o600
    db.chmod(0o640)
    files.publish(db, lambda con: _add_run(con, "third"))
    assert db.stat().st_mode & 0o777 == 0o640
