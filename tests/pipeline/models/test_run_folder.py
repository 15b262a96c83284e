"""A run's ONNX folder outlives the run only if the run completes."""

import signal
import subprocess
import sys

import pytest

from pipeline.models.run_folder import MARK, run_folder, sweep_orphans
from tests.conftest import ROOT

RUN_1, KILLED, LIVING, NEXT = (f"20261127T0900{i:02d}Z-abc{i}" for i in range(4))


def test_a_completed_run_keeps_its_folder_without_the_mark(tmp_path):
    with run_folder(tmp_path, RUN_1) as folder:
        (folder.path / "nblr.onnx").write_bytes(b"model")
    assert sorted(p.name for p in (tmp_path / RUN_1).iterdir()) == ["nblr.onnx"]


def test_a_failed_run_removes_its_folder(tmp_path):
    with pytest.raises(RuntimeError, match="stage failed"):
        with run_folder(tmp_path, RUN_1) as folder:
            (folder.path / "nblr.onnx").write_bytes(b"x" * 1_000_000)
            raise RuntimeError("stage failed")
    assert list(tmp_path.iterdir()) == []


_KILLED = """
import sys, time, pathlib
from pipeline.models.run_folder import run_folder
with run_folder(pathlib.Path(sys.argv[1]), sys.argv[2]) as folder:
    (folder.path / "nblr.onnx").write_bytes(b"x" * 1_000_000)
    print("written", flush=True)
    time.sleep(120)
"""


def _start(models, run_id):
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, str(models), run_id], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "written"
    return proc


def test_a_killed_runs_folder_is_swept_by_the_next_run_and_a_living_ones_is_not(tmp_path):
    killed, living = _start(tmp_path, KILLED), _start(tmp_path, LIVING)
    for name in ("notes", "20261127T000000Z-beef"):  # a folder of the user's, and one holding a forged mark
        (tmp_path / name).mkdir()
        (tmp_path / name / MARK).write_text("mine")
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert (tmp_path / KILLED / MARK).exists()  # it could not clean up
        with run_folder(tmp_path, NEXT):
            assert not (tmp_path / KILLED).exists()
            assert (tmp_path / LIVING / "nblr.onnx").exists()  # still being written by a run that is alive
    finally:
        living.kill()
        living.wait()
    assert sweep_orphans(tmp_path) == [tmp_path / LIVING]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([NEXT, "notes", "20261127T000000Z-beef"])


def test_a_run_interrupted_while_it_is_published_keeps_its_models(tmp_path):
    """Ctrl-C after the store was swapped in: the stored run's ONNX files must stay."""
    with pytest.raises(KeyboardInterrupt):
        with run_folder(tmp_path, RUN_1) as folder:
            (folder.path / "nblr.onnx").write_bytes(b"model")
            folder.keep()
            raise KeyboardInterrupt  # in the swap
    assert sorted(p.name for p in (tmp_path / RUN_1).iterdir()) == ["nblr.onnx"]
    assert sweep_orphans(tmp_path) == []  # and no later run sweeps it


def test_a_fifo_named_like_a_mark_does_not_hang_the_sweep(tmp_path):
    import os

    (tmp_path / RUN_1).mkdir()
    os.mkfifo(tmp_path / RUN_1 / MARK)
    assert sweep_orphans(tmp_path) == []
