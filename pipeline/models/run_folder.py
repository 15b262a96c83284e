"""The folder of one run's ONNX files (``<models_dir>/<run_id>/``), kept only if the run completes.

``run_folder(models_dir, run_id, db)`` makes the folder before the first stage (so a folder
that cannot be written is said at once), marks it ``.lossmap-incomplete`` (naming the run
and its store) and holds a lock on that mark while the run works. A completed run removes
its mark. A run that fails removes its folder, unless its store already holds it (it was
interrupted after the swap): then only the mark goes. A killed run (SIGKILL, a power cut)
can do neither, so each new run first sweeps every run folder whose mark is no longer
locked by a living run, the same way: removed if its store does not hold the run, kept
(mark removed) if it does, left alone if the store cannot be read. Only folders named like
a run id with a mark this module wrote are touched; never a link.

    with run_folder(Path("data/models"), run_id, Path("data/lossmap.duckdb")) as folder:
        ...  # write folder / "nblr.onnx", publish the run
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


@contextmanager
def run_folder(models_dir: Path, run_id: str, db: Path):
    """The folder ``models_dir/run_id`` of a run that will be published to the store ``db``."""
    models_dir, db = Path(models_dir), Path(os.path.realpath(db))
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
        mark.write(_signature(run_id, db))
        mark.flush()
        try:
            yield folder
        except BaseException:
            if _stored(db, run_id) is not True:  # interrupted after its store was swapped in: the models stay
                shutil.rmtree(folder, ignore_errors=True)
                raise
            (folder / MARK).unlink(missing_ok=True)
            raise
        (folder / MARK).unlink()


def sweep_orphans(models_dir: Path) -> list[Path]:
    """Remove the folders of runs that were killed (marked, mark not locked, run not in its store); return them.
    A killed run that its store holds (killed between the swap and the mark's removal) only loses its mark."""
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
                found = _SIGNATURE.fullmatch(handle.read())
        except BlockingIOError:
            continue  # a living run holds it
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if found is None or found["run"] != folder.name:
            continue  # not a mark this pipeline wrote
        stored = _stored(Path(found["db"]), folder.name)
        if stored is None:
            continue  # its store cannot be read now: keep the folder rather than guess
        if stored:
            mark.unlink(missing_ok=True)
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _stored(db: Path, run_id: str) -> bool | None:
    """Whether the store ``db`` holds the run (False when there is no store yet; None when it cannot be read)."""
    from pipeline.store.files import list_runs
    from pipeline.store.schema import StoreError

    if not db.exists():
        return False
    try:
        return run_id in set(list_runs(db)["run_id"])
    except StoreError:
        return None


_SIGNATURE = re.compile(r"lossmap run (?P<run>\S+) of store (?P<db>.+), incomplete while this file exists\n")


def _signature(run_id: str, db: Path) -> str:
    return f"lossmap run {run_id} of store {db}, incomplete while this file exists\n"
