"""Write runs into the DuckDB store so that only complete runs are ever visible.

``publish(db_path, write)`` copies the current store to a temporary file beside it,
calls ``write(con)`` inside a transaction on the copy (which it may commit in steps:
nobody else sees the copy), checkpoints, closes, and renames the copy over the store
(an atomic ``os.replace``); DuckDB holds at most ``WRITE_MEMORY`` while it writes. A
pipeline killed at any moment, even by SIGKILL, leaves the store exactly as it was; readers that
hold the old file open (the app) keep reading it and see the new run once they
reopen. A lock file stops two pipelines writing one store at once.

``open_readonly(path)`` is how everything that only reads opens the store (each call
sees the file as it is now, even in a process that opened an older version);
``list_runs(path)`` returns the runs, newest first (``run_notes``, ``run_problems`` and ``stored_json`` read their
JSON columns, whatever a foreign store put there); ``reserve(path)`` checks, before a
run's first stage, that the store can be written, and holds it for the run. All errors are ``StoreError``
with a message that says what to do; a disk that fills up while the copy is written
is one of them, and it too leaves the store as it was.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import stat
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import duckdb
import pandas as pd

from pipeline.store import guard
from pipeline.store.schema import StoreError, check_version, create_tables, upgrade

_TMP_SUFFIX = ".incomplete"
_SPILL_SUFFIX = ".spill"  # a folder beside the copy, where DuckDB writes what a write does not hold in memory
# DuckDB's memory while a run is written (its default is 80% of the machine's); past it, DuckDB writes finished
# tables out to the copy and spills to the folder above. A 1,000,000-review run's tables written again, a commit per
# table (bench/store_write.py): a peak of 9.9 GiB within 2 GiB, 10.9 with DuckDB's default; 16.4 in one transaction.
WRITE_MEMORY = "2GiB"


def open_readonly(path: Path, *, upgradable: bool = False) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a Lossmap store, version-checked (``upgradable``: an earlier version that
    ``schema.upgrade`` brings up to date passes too, for a run about to write it)."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no store at {path}. Make one with `python -m pipeline run --db {path}`.")
    if path.is_dir():
        raise StoreError(f"{path} is a folder; pass the .duckdb file a pipeline run wrote, such as "
                         f"{path / 'lossmap.duckdb'}.")
    if not path.is_file():  # a FIFO or a device would block the open
        raise StoreError(f"{path} is not a regular file, so it cannot be a store; pass the .duckdb file a pipeline "
                         "run wrote.")
    try:
        con = _attach(path, read_only=True)
    except duckdb.Error as exc:
        raise StoreError(f"{path} cannot be opened as a DuckDB store ({_first_line(exc)}): it is not a file a "
                         "pipeline run wrote. Pass the store's .duckdb file, or make one with "
                         "`python -m pipeline run --db PATH`.") from None
    try:
        check_version(con, upgradable=upgradable)
    except StoreError as exc:
        con.close()
        raise StoreError(f"{path}: {exc}") from None
    return con


def cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor of a connection from ``open_readonly``, reading the store (one per query or thread)."""
    cur = con.cursor()
    cur.execute(guard.BUILTINS_FIRST)  # a cursor starts with the default search path
    return cur


def _attach(path: Path, *, read_only: bool, spill: Path | None = None,
            memory: str | None = None) -> duckdb.DuckDBPyConnection:
    """A private in-memory instance with the file attached AS store, locked down (``guard``), built-ins first.

    Attaching (rather than ``duckdb.connect(path)``) also avoids DuckDB's instance cache, which would hand back an
    instance still bound to a file the pipeline has since replaced."""
    # Extensions are off before the ATTACH: a SQLite file named like a store would make DuckDB fetch sqlite_scanner.
    # File access stays on until the file is attached, then goes off with the rest (guard.lock_down).
    early = {k: v for k, v in guard.LOCKED.items() if k not in ("enable_external_access", "lock_configuration")}
    if spill is not None:  # writing: spilling beside the store (not into the working folder), memory bounded
        early |= {"temp_directory": str(spill)} | ({"memory_limit": memory} if memory else {})
    con = duckdb.connect(":memory:", config=early)
    try:
        con.execute("ATTACH ? AS store (TYPE DUCKDB" + (", READ_ONLY)" if read_only else ")"), [str(path)])
        guard.lock_down(con)
        con.execute(guard.BUILTINS_FIRST)
    except BaseException:
        con.close()
        raise
    return con


def list_runs(path: Path) -> pd.DataFrame:
    """Every complete run in the store, newest first (``load_notes``: the run's notes, as JSON text)."""
    con = open_readonly(path)
    try:
        return con.execute(
            "SELECT run_id, completed_at, n_samples, n_classes, test_accuracy, oof_accuracy, n_flagged, seconds, "
            "source, load_notes FROM runs ORDER BY completed_at DESC"
        ).df()
    finally:
        con.close()


def stored_json(text, shape: type):
    """A run's JSON column (notes, warnings, config) as ``shape`` (list or dict). The store is untrusted: text that is
    not JSON, or JSON of another shape, is an empty one."""
    try:
        found = json.loads(text) if isinstance(text, (str, bytes)) else None
    except (ValueError, RecursionError):  # not JSON, not UTF-8; nested deeper than Python's parser goes
        found = None
    return found if isinstance(found, shape) else shape()


def run_notes(text) -> list[str]:
    """A run's ``load_notes``: its lines of text, and nothing else the column may hold."""
    return [line for line in stored_json(text, list) if isinstance(line, str)]


def run_problems(text) -> dict[str, list]:
    """A run's ``load_warnings``: {kind: [text id, ...]}, and nothing else the column may hold."""
    return {kind: items for kind, items in stored_json(text, dict).items() if isinstance(items, list)}


@contextmanager
def reserve(db_path: Path):
    """Hold the store for a whole run, checked first: the store can be written and read, and no other run holds it.

    A run calls this before its first stage, so a folder it cannot write, a store it could not add to, or another
    run writing the same store is said at the start, not after the work. ``publish`` inside it uses the hold."""
    db_path = _real(db_path)
    _check_folder(db_path)
    if db_path.exists():  # a store of another version, another program or someone else: now, before any lock file
        open_readonly(db_path, upgradable=True).close()
    with _lock(db_path):
        yield


def upgrade_store(db_path: Path) -> int | None:
    """``python -m pipeline upgrade``: bring a store of an earlier version up to date in place, with the same atomic
    swap as a run; returns the version it had (None: it was current)."""
    found: list[int | None] = []
    with reserve(db_path):
        publish(db_path, lambda con: None, upgraded=found)
    return found[0]


def publish(db_path: Path, write: Callable[[duckdb.DuckDBPyConnection], None], *, upgraded: list | None = None) -> None:
    """Run ``write(con)`` on a copy of the store in a transaction, then swap it in (keeping the file's mode).

    The swap is what makes the write all or nothing: ``write`` may commit and begin again on the copy (a large run
    commits table by table, so DuckDB can write finished tables out of memory, ``WRITE_MEMORY``); until the swap
    nobody else sees the copy, and a write that fails or is killed leaves the store as it was. A write DuckDB cannot
    do within ``WRITE_MEMORY`` is done again from a fresh copy with DuckDB's own limit, rather than lost: ``write``
    must give the same rows when called twice (``write_run``'s builders do)."""
    db_path = _real(db_path)
    _check_folder(db_path)
    tmp = db_path.with_name(db_path.name + _TMP_SUFFIX)
    with _lock(db_path):
        try:
            con = _write_copy(db_path, tmp, write, upgraded, WRITE_MEMORY)
        except duckdb.OutOfMemoryException:
            con = _write_copy(db_path, tmp, write, upgraded, None)
        with _disk_errors(db_path, tmp):
            con.close()
            _remove_spill(tmp)
            if db_path.exists():  # a store kept private (600) stays private
                os.chmod(tmp, stat.S_IMODE(os.stat(db_path).st_mode))
            _fsync(tmp)
        os.replace(tmp, db_path)
        _fsync(db_path.parent)


def _write_copy(db_path: Path, tmp: Path, write, upgraded: list | None, memory: str | None):
    """``tmp``: a fresh copy of the store with ``write`` done and checkpointed; its connection, still open. DuckDB
    holds at most ``memory`` (None: its default) and spills beside the copy. On any error the copy is removed."""
    _remove(tmp)  # left by a run that was killed, or by a try that ran out of memory
    with _disk_errors(db_path, tmp):
        if db_path.exists():
            _fold_wal(db_path)
            shutil.copyfile(db_path, tmp)
    spill = _spill(tmp)
    with _disk_errors(db_path, tmp):
        spill.mkdir(mode=0o700)  # what DuckDB spills is the run's data: as private as the folder allows
    try:
        con = _attach(tmp, read_only=False, spill=spill, memory=memory)
    except duckdb.Error as exc:
        _remove(tmp)
        if _is_disk_full(exc):
            raise _disk_full(db_path, exc) from None
        raise StoreError(f"{db_path} is not a DuckDB file ({_first_line(exc)}); pass another --db.") from None
    try:
        with _disk_errors(db_path, tmp):
            try:
                # with built-ins first, before anything in the file runs; an earlier version is upgraded in place
                check_version(con, allow_empty=True, upgradable=True)
                con.execute("USE store")  # new tables go into the store; it holds no macros to shadow built-ins
                was = upgrade(con)
                if upgraded is not None:
                    upgraded[:] = [was]  # once, even when the write is tried again
                create_tables(con)
            except StoreError as exc:
                raise StoreError(f"{db_path}: {exc}") from None
            con.execute("BEGIN TRANSACTION")
            write(con)
            con.execute("COMMIT")
            con.execute("CHECKPOINT")
    except BaseException:
        _close_quietly(con)
        _remove(tmp)
        raise
    return con


_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in _DISK_FULL
    text = str(exc).lower()
    return any(s in text for s in ("no space left", "file too large", "disk quota"))


def _disk_full(db_path: Path, exc: BaseException) -> StoreError:
    return StoreError(
        f"the disk holding {db_path.parent} is full ({_first_line(exc)}). Writing a run needs room for a copy of the "
        f"store plus the new run; free some space and run again. The store is unchanged."
    )


@contextmanager
def _disk_errors(db_path: Path, tmp: Path):
    """Turn a full disk (while copying or writing) into a StoreError, removing the partial copy."""
    try:
        yield
    except (OSError, duckdb.Error) as exc:
        if not _is_disk_full(exc):
            raise
        _remove(tmp)
        raise _disk_full(db_path, exc) from None


def _close_quietly(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.close()
    except duckdb.Error:
        pass  # closing flushes; on a full disk that fails too, and the copy is removed anyway


_HELD: set[tuple[Path, int]] = set()  # (store, thread) holding its lock: a run's publish reuses the run's hold


@contextmanager
def _lock(db_path: Path):
    key = (db_path.resolve(), threading.get_ident())  # another thread, like another process, is refused
    if key in _HELD:
        yield
        return
    lock_path = db_path.with_name(db_path.name + ".lock")
    try:  # never through a link: truncating it would empty whatever it points at
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot use the lock file {lock_path} ({exc.strerror or exc}); if it is a link, remove it "
                         "and run again.") from None
    with os.fdopen(fd, "r+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()[:200]
            raise StoreError(f"another pipeline run{f' ({holder})' if holder else ''} is writing {db_path}; wait "
                             "for it to finish, or pass another --db.") from None
        handle.seek(0)
        handle.truncate(0)
        handle.write(f"process {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _real(db_path: Path) -> Path:
    """The store's path with links resolved, so a run through a link writes (and locks) the file it points at."""
    return Path(os.path.realpath(db_path))


def _check_folder(db_path: Path) -> None:
    """The store's folder exists (or is made) and a file can be written in it: the copy and the lock go there."""
    if db_path.is_dir():
        raise StoreError(f"{db_path} is a folder; --db takes the store's file, such as {db_path / 'lossmap.duckdb'}.")
    if db_path.exists() and not db_path.is_file():
        raise StoreError(f"{db_path} is not a regular file, so it cannot be a store; pass another --db.")
    blocking = next((p for p in db_path.parents if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise StoreError(f"cannot write the store {db_path}: {blocking} is a file, not a folder. Pass --db in a "
                         "folder you can write.")
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=db_path.parent, prefix=f".{db_path.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise StoreError(f"cannot write the store {db_path}: its folder {db_path.parent} is not writable "
                         f"({exc.strerror or exc}). Pass --db in a folder you can write.") from None


def _fold_wal(db_path: Path) -> None:
    """A store left with a write-ahead log is checkpointed before it is copied."""
    if not db_path.with_name(db_path.name + ".wal").exists():
        return
    try:
        con = duckdb.connect(str(db_path), config=guard.LOCKED)
        con.execute("CHECKPOINT")
        con.close()
    except duckdb.Error as exc:
        raise StoreError(
            f"{db_path} has unsaved changes in its .wal file and cannot be checkpointed now "
            f"({_first_line(exc)}); close the app that holds it and run again."
        ) from None


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)
    _remove_spill(path)


def _spill(copy: Path) -> Path:
    """The folder beside a store's copy where DuckDB spills while writing it."""
    return copy.with_name(copy.name + _SPILL_SUFFIX)


def _remove_spill(copy: Path) -> None:
    spill = _spill(copy)
    if spill.is_symlink() or spill.is_file():  # not ours: a folder goes there
        spill.unlink()
    shutil.rmtree(spill, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
