"""The folder of one run's ONNX files (``<models_dir>/<run_id>/``), kept only if the run completes.

``run_folder(models_dir, run_id)`` makes the folder before the first stage (so a folder
that cannot be written is said at once), marks it ``.incomplete`` and holds a lock on
that mark while the run works. A run that fails removes its folder; one that is killed
(SIGKILL, a power cut) cannot, so each new run first sweeps every run folder whose mark is
no longer locked by a living run (only folders named like a run id, holding a mark this
module wrote; never a link). A completed run removes its mark.

    with run_folder(Path("data/models"), run_id) as folder:
        ...  # write folder / "nblr.onnx", publish the run
"""

from __future__ import annotations

import fcntl
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

MARK = ".lossmap-incomplete"
_RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{4}")  # what run ids look like (pipeline.run)


class FolderError(Exception):
    """The models folder cannot be written; the message says what to do."""


@contextmanager
def run_folder(models_dir: Path, run_id: str):
    models_dir = Path(models_dir)
    sweep_orphans(models_dir)
    folder = models_dir / run_id
    try:
        folder.mkdir(parents=True)
        mark = open(folder / MARK, "w")
    except OSError as exc:
        raise FolderError(f"cannot write ONNX files in {models_dir} ({exc.strerror or exc}). Pass --models-dir "
                          "a folder you can write.") from None
    with mark:
        fcntl.flock(mark, fcntl.LOCK_EX)
        mark.write(_signature(run_id))
        mark.flush()
        try:
            yield folder
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        (folder / MARK).unlink()


def sweep_orphans(models_dir: Path) -> list[Path]:
    """Remove the folders of runs that were killed (marked, mark not locked); return them."""
    removed = []
    if not models_dir.is_dir():
        return removed
    for mark in models_dir.glob(f"*/{MARK}"):
        folder = mark.parent
        if not _RUN_ID.fullmatch(folder.name) or folder.is_symlink() or mark.is_symlink():
            continue  # only a run's own folder, never a link to somewhere else
        try:
            with open(mark) as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if handle.read() != _signature(folder.name):
                    continue  # not a mark this pipeline wrote
        except BlockingIOError:
            continue  # a living run holds it
        except OSError:
            continue  # gone meanwhile, or not ours to read
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _signature(run_id: str) -> str:
    return f"lossmap run {run_id}, incomplete while this file exists\n"
