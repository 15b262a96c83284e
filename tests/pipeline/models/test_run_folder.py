"""A run's ONNX folder outlives the run only if its store holds the run."""

import signal
import subprocess
import sys

import pytest

from pipeline.models.run_folder import MARK, run_folder, sweep_orphans
from pipeline.store import files
from tests.conftest import ROOT
from tests.pipeline.store.test_files import _add_run

RUN_1, KILLED, LIVING, NEXT, STORED = (f"20261127T0900{i:02d}Z-abc{i}" for i in range(5))


@pytest.fixture
def db(tmp_path):
    return tmp_path / "lossmap.duckdb"


def test_a_completed_run_keeps_its_folder_without_the_mark(tmp_path, db):
    with run_folder(tmp_path / "models", RUN_1, db) as folder:
        (folder / "nblr.onnx").write_bytes(b"model")
    assert sorted(p.name for p in (tmp_path / "models" / RUN_1).iterdir()) == ["nblr.onnx"]


def test_a_failed_run_removes_its_folder(tmp_path, db):
    with pytest.raises(RuntimeError, match="stage failed"):
        with run_folder(tmp_path / "models", RUN_1, db) as folder:
            (folder / "nblr.onnx").write_bytes(b"x" * 1_000_000)
            raise RuntimeError("stage failed")
    assert list((tmp_path / "models").iterdir()) == []


def test_a_run_interrupted_after_its_store_was_swapped_in_keeps_its_models(tmp_path, db):
    """Ctrl-C between the swap and the end of the run: the stored run's ONNX files must stay."""
    with pytest.raises(KeyboardInterrupt):
        with run_folder(tmp_path / "models", RUN_1, db) as folder:
            (folder / "nblr.onnx").write_bytes(b"model")
            files.publish(db, lambda con: _add_run(con, RUN_1))
            raise KeyboardInterrupt
    assert sorted(p.name for p in (tmp_path / "models" / RUN_1).iterdir()) == ["nblr.onnx"]


_KILLED = """
import sys, time, pathlib
from pipeline.models.run_folder import run_folder
from pipeline.store import files
from tests.pipeline.store.test_files import _add_run
models, run_id, db, publish = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3]), sys.argv[4] == "1"
with run_folder(models, run_id, db) as folder:
    (folder / "nblr.onnx").write_bytes(b"x" * 1_000_000)
    if publish:
        files.publish(db, lambda con: _add_run(con, run_id))
    print("written", flush=True)
    time.sleep(120)
"""


def _start(models, run_id, db, publish=False):
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, str(models), run_id, str(db), "1" if publish else "0"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "written"
    return proc


def test_killed_runs_are_swept_by_the_next_run_unless_stored_or_alive(tmp_path, db):
    models = tmp_path / "models"
    killed, stored, living = _start(models, KILLED, db), _start(models, STORED, db, publish=True), \
        _start(models, LIVING, db)
    for name in ("notes", "20261127T000000Z-beef"):  # a folder of the user's, and one holding a forged mark
        (models / name).mkdir()
        (models / name / MARK).write_text("mine")
    try:
        for proc in (killed, stored):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert (models / KILLED / MARK).exists() and (models / STORED / MARK).exists()  # they could not clean up
        with run_folder(models, NEXT, db):
            assert not (models / KILLED).exists()  # not in its store: swept
            assert sorted(p.name for p in (models / STORED).iterdir()) == ["nblr.onnx"]  # stored: kept, unmarked
            assert (models / LIVING / "nblr.onnx").exists()  # still being written by a run that is alive
    finally:
        living.kill()
        living.wait()
    assert sweep_orphans(models) == [models / LIVING]
    assert sorted(p.name for p in models.iterdir()) == sorted([NEXT, STORED, "notes", "20261127T000000Z-beef"])


def test_a_fifo_named_like_a_mark_does_not_hang_the_sweep(tmp_path):
    import os

    (tmp_path / RUN_1).mkdir()
    os.mkfifo(tmp_path / RUN_1 / MARK)
    assert sweep_orphans(tmp_path) == []
