"""The folder of one run's ONNX files (``<models_dir>/<run_id>/``), kept only if the run completes.

``run_folder(models_dir, run_id)`` makes the folder before the first stage (so a folder
that cannot be written is said at once), marks it ``.lossmap-incomplete`` and holds a lock
on that mark while the run works. Just before the run is published it calls ``keep()``,
which removes the mark: from then on the folder is never removed, even if the run is
interrupted while its store is being swapped in (a folder too many beats a stored run
without its models). A run that fails before that removes its folder; one that is killed
(SIGKILL, a power cut) cannot, so each new run first sweeps every run folder whose mark is
no longer locked by a living run (only folders named like a run id, holding a mark this
module wrote; never a link). A completed run removes its mark.

    with run_folder(Path("data/models"), run_id) as folder:
        ...  # write folder.path / "nblr.onnx"
        folder.keep()
        ...  # publish the run
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

MARK = ".lossmap-incomplete"
_RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{4}")  # what run ids look like (pipeline.run)


class FolderError(Exception):
    """The models folder cannot be written; the message says what to do."""


class RunFolder:
    """A run's models folder while the run works: ``path``, and ``keep()`` once the run is about to be published."""

    def __init__(self, path: Path):
        self.path, self.kept = path, False

    def keep(self) -> None:
        (self.path / MARK).unlink(missing_ok=True)
        self.kept = True


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
    handle = RunFolder(folder)
    with mark:
        fcntl.flock(mark, fcntl.LOCK_EX)
        mark.write(_signature(run_id))
        mark.flush()
        try:
            yield handle
        except BaseException:
            if not handle.kept:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        handle.keep()


def sweep_orphans(models_dir: Path) -> list[Path]:
    """Remove the folders of runs that were killed (marked, mark not locked); return them."""
    removed = []
    if not models_dir.is_dir():
        return removed
    for mark in models_dir.glob(f"*/{MARK}"):
        folder = mark.parent
        if not _RUN_ID.fullmatch(folder.name) or folder.is_symlink() or mark.is_symlink() or not mark.is_file():
            continue  # only a run's own folder and mark, never a link (or a FIFO, whose open would block)
        try:
            fd = os.open(mark, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
            with os.fdopen(fd) as handle:
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
