"""A run's ONNX folder outlives the run only if the run completes."""

import signal
import subprocess
import sys

import pytest

from pipeline.models.run_folder import MARK, run_folder, sweep_orphans
from tests.conftest import ROOT


def test_a_completed_run_keeps_its_folder_without_the_mark(tmp_path):
    with run_folder(tmp_path, "run-1") as folder:
        (folder / "nblr.onnx").write_bytes(b"model")
    assert sorted(p.name for p in (tmp_path / "run-1").iterdir()) == ["nblr.onnx"]


def test_a_failed_run_removes_its_folder(tmp_path):
    with pytest.raises(RuntimeError, match="stage failed"):
        with run_folder(tmp_path, "run-1") as folder:
            (folder / "nblr.onnx").write_bytes(b"x" * 1_000_000)
            raise RuntimeError("stage failed")
    assert list(tmp_path.iterdir()) == []


_KILLED = """
import sys, time, pathlib
from pipeline.models.run_folder import run_folder
with run_folder(pathlib.Path(sys.argv[1]), sys.argv[2]) as folder:
    (folder / "nblr.onnx").write_bytes(b"x" * 1_000_000)
    print("written", flush=True)
    time.sleep(120)
"""


def _start(models, run_id):
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, str(models), run_id], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "written"
    return proc


def test_a_killed_runs_folder_is_swept_by_the_next_run_and_a_living_ones_is_not(tmp_path):
    killed, living = _start(tmp_path, "killed"), _start(tmp_path, "living")
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert (tmp_path / "killed" / MARK).exists()  # it could not clean up
        with run_folder(tmp_path, "next"):
            assert not (tmp_path / "killed").exists()
            assert (tmp_path / "living" / "nblr.onnx").exists()  # still being written by a run that is alive
    finally:
        living.kill()
        living.wait()
    assert sweep_orphans(tmp_path) == [tmp_path / "living"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["next"]
