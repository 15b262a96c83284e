"""Reviewers' decisions: the only thing the app writes, in a DuckDB file of its own.

The analysis store is replaced by every pipeline run, so decisions live beside it in
``<store>.decisions.duckdb`` (``decisions_path``), keyed by ``sample_id``: they
survive app restarts and new runs. The table is an append-only history; the
current decision for a review is its latest row that was not undone (``current``).
Undoing writes a row too, into ``undos`` (``undo_last``): the decision stays in the
history, marked undone, and the review's earlier decision (if any) is current again.
``record_many`` records a batch (one decision for several reviews) in one transaction. Writes are short
transactions behind a process-wide lock, retried while another process holds the
file, so reviewers working at once lose nothing. Reads do not take the write lock
(a read-only connection), so a notebook reading the file does not block the app.
A file that cannot be used (damaged, held open for writing by another program, in a
read-only folder) raises ``DecisionsError`` at once, with what to do; only a lock held
by another process is waited for (1 s to read, 5 s to write).

Labels are kept by class name (``old_label``, ``new_label``), the way the data names
them, so a decision means the same after a new run even if the classes are numbered
differently. Each decision also records the data it was made on (``source``, the run's
``runs.source``): one store can hold runs of different datasets whose ids collide (row
numbers, "1", "2", ...), and a decision on one must not show up on another. Decisions
recorded before sources were kept (NULL) apply to every run. A file written before names
were stored (0/1 for IMDB's negative/positive) is converted in place the first time it
is opened.

``relabel_csv(path)`` renders the current decisions as CSV bytes with spreadsheet
formulas neutralised (``restore`` undoes that for a cell read back, as ``--relabel`` does).
The pipeline reads this file too: ``python -m pipeline run --relabel`` applies the current
decisions as label overrides (``pipeline.data.relabel``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import threading
import unicodedata
import time
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.store import guard

DECISIONS = {
    "mislabeled": "Mislabeled: relabel",
    "correct": "Correct as is",
    "ambiguous": "Ambiguous / neutral",
}
_OLD_NAMES = ("negative", "positive")  # what 0 and 1 meant in decision files of schema 4 and before (IMDB only)
CSV_COLUMNS = ["sample_id", "path", "old_label", "new_label", "rating", "decision", "score", "note", "decided_at",
               "source"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")  # and full-width =+-@
# what a spreadsheet may skip before it reads a formula: any white space (ASCII, no-break, ideographic, em...),
# line breaks, and invisible format characters (zero-width, direction marks, soft hyphen, the byte-order mark)
_LEADING = "".join(c for c in map(chr, (*range(0x30000), *range(0xE0000, 0xE1000)))
                   if c.isspace() or unicodedata.category(c) in ("Cf", "Cc", "Zs", "Zl", "Zp"))
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_WRITE_LOCK = threading.Lock()
_RETRY_SECONDS = 5.0  # how long a write waits for another process's lock
_READ_WAIT = 1.0  # how long a read does

_OWN_SEQUENCE = "sequence decision_seq"  # the one object besides tables that the file holds
_DDL = [
    "CREATE SEQUENCE IF NOT EXISTS decision_seq",
    """CREATE TABLE IF NOT EXISTS decisions (
        decision_id BIGINT PRIMARY KEY DEFAULT nextval('decision_seq'),
        sample_id   VARCHAR NOT NULL,    -- 'test/neg/10003_3'
        decision    VARCHAR NOT NULL CHECK (decision IN ('mislabeled', 'correct', 'ambiguous')),
        old_label   VARCHAR NOT NULL,    -- the given label, by class name
        new_label   VARCHAR,             -- the label to use: another class, the same, or NULL when ambiguous
        rating      DOUBLE,
        score       DOUBLE,              -- label_score when decided
        path        VARCHAR,             -- path inside the archive
        note        VARCHAR,
        run_id      VARCHAR,             -- the run the reviewer was looking at
        reviewer    VARCHAR,             -- session that decided
        decided_at  TIMESTAMP NOT NULL,  -- UTC
        source      VARCHAR              -- the data decided on (runs.source); NULL: recorded before sources were kept
    )""",
    """CREATE TABLE IF NOT EXISTS undos (
        decision_id BIGINT PRIMARY KEY,  -- the decision undone (decisions.decision_id)
        reviewer    VARCHAR,             -- session that undid it
        undone_at   TIMESTAMP NOT NULL   -- UTC
    )""",
]
_CURRENT = """
    SELECT * FROM decisions WHERE ($source IS NULL OR source IS NULL OR list_contains($sources, source))
      AND decision_id NOT IN (SELECT decision_id FROM undos)
    QUALIFY row_number() OVER (PARTITION BY sample_id ORDER BY decided_at DESC, decision_id DESC) = 1
"""


def decisions_path(store: Path) -> Path:
    store = Path(store)
    return store.with_name(store.stem + ".decisions.duckdb")


class DecisionsError(Exception):
    """The decisions file cannot be read or written; the message says why and what to do."""


def _connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the decisions file. Only a lock held by another process is waited for (it clears when that
    process finishes its write): up to ``_READ_WAIT`` seconds to read, ``_RETRY_SECONDS`` to write. Anything else
    (a damaged file, a folder that cannot be written) is a ``DecisionsError`` at once."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a FIFO would block the open, and every session behind the lock
        raise DecisionsError(f"the decisions file {path} is not a regular file. Move it aside and reload; a new "
                             "file is started on the next decision.")
    deadline = time.monotonic() + (_READ_WAIT if read_only else _RETRY_SECONDS)
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=guard.LOCKED)
            break
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower() and time.monotonic() < deadline:
                time.sleep(0.05)  # another process is writing: wait a moment
                continue
            raise DecisionsError(_explain(path, exc)) from None
    foreign = _foreign(con, path)
    if foreign:
        con.close()
        raise DecisionsError(f"the decisions file {path} holds {guard.describe(foreign)}, which Lossmap never writes: "
                             "it was made or changed outside Lossmap. Move it aside and reload; a new file is started "
                             "on the next decision.")
    if read_only:
        return con
    try:
        for ddl in _DDL:
            con.execute(ddl)
        _upgrade(con)
    except duckdb.Error as exc:
        con.close()
        raise DecisionsError(_explain(path, exc)) from None
    return con


_CHECKED: set[tuple] = set()  # identities (inode, size, mtime) of files found to hold only what _DDL makes


def _foreign(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """What the file holds that Lossmap does not write (``guard``); checked once per version of the file."""
    identity = _identity(path)
    if identity is not None and identity in _CHECKED:
        return []
    foreign = [o for o in guard.foreign_objects(con) if o != _OWN_SEQUENCE]
    if not foreign:
        foreign = guard.foreign_expressions(con, tuple(_DDL))
    if not foreign and not _own_sequence_is_plain(con):
        foreign = ["sequence decision_seq (changed)"]
    if not foreign and identity is not None:
        _CHECKED.add(identity)
    return foreign


def _trust(path: Path) -> None:
    identity = _identity(Path(path))
    if identity is not None:
        _CHECKED.add(identity)


def _identity(path: Path) -> tuple | None:
    """(path, inode, size, mtime): a version of the file; None when it cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns


def _own_sequence_is_plain(con: duckdb.DuckDBPyConnection) -> bool:
    """decision_seq counts up by one without cycling, as _DDL makes it (undo takes the latest id as the latest)."""
    rows = con.execute("SELECT increment_by, cycle FROM system.main.duckdb_sequences() "
                       "WHERE sequence_name = 'decision_seq'").fetchall()
    return all(step == 1 and not cycle for step, cycle in rows)


def _explain(path: Path, exc: Exception) -> str:
    text = str(exc)
    if "lock" in text.lower():
        return (f"the decisions file {path} is held open by another program ({text.split('held in', 1)[-1].strip()})"
                ". Close it there (a notebook's connection, for example), then reload this page.")
    if "not a valid DuckDB database" in text or "Corrupt" in text or "checksum" in text.lower():
        return (f"the decisions file {path} is damaged or is not a DuckDB file. Move it aside (keep it: it may "
                "still hold decisions) and reload; a new file is started on the next decision.")
    if "Permission denied" in text or "Read-only file system" in text or "read-only" in text.lower():
        return (f"the decisions file {path} cannot be written (its folder or the file is read-only). Make it "
                "writable, or start the app on a copy of the store in a writable folder.")
    return f"the decisions file {path} could not be opened: {text}"


def _upgrade(con: duckdb.DuckDBPyConnection) -> None:
    """A file of an older Lossmap kept labels as 0/1 (IMDB's negative/positive): store them by name."""
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'decisions' AND table_catalog = current_database()").fetchall())
    if "source" not in types:
        con.execute("ALTER TABLE decisions ADD COLUMN source VARCHAR")
    if types.get("old_label") == "VARCHAR":
        return
    for column in ("old_label", "new_label"):  # identifiers are these constants
        con.execute(f"ALTER TABLE decisions ALTER {column} TYPE VARCHAR USING "
                    f"CASE {column} WHEN 0 THEN '{_OLD_NAMES[0]}' WHEN 1 THEN '{_OLD_NAMES[1]}' END")
    con.execute("ALTER TABLE decisions ALTER rating TYPE DOUBLE")


def record(path: Path, *, sample_id: str, decision: str, old_label: str, new_label: str | None = None,
           rating: float | None = None, score: float | None = None, sample_path: str | None = None, note: str = "",
           run_id: str | None = None, reviewer: str | None = None, source: str | None = None) -> None:
    """Append one decision; the latest per sample (and source) wins. ``mislabeled`` needs the ``new_label``."""
    record_many(path, [dict(sample_id=sample_id, old_label=old_label, new_label=new_label, rating=rating, score=score,
                            sample_path=sample_path, note=note)],
                decision=decision, run_id=run_id, reviewer=reviewer, source=source)


def record_many(path: Path, reviews: list[dict], *, decision: str, run_id: str | None = None,
                reviewer: str | None = None, source: str | None = None) -> int:
    """Append one decision for each of ``reviews`` (dicts with ``sample_id``, ``old_label`` and optionally
    ``new_label``, ``rating``, ``score``, ``sample_path``, ``note``) in one transaction: all are recorded or none.
    Every review is checked before anything is written. Returns how many were recorded."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}; got {decision!r}")
    rows = []
    for r in reviews:
        old, new = str(r["old_label"]), r.get("new_label")
        if decision == "mislabeled" and (new is None or str(new) == old):
            raise ValueError(f"a mislabeled review needs a new label other than {old!r} ({r['sample_id']!r})")
        new = {"mislabeled": None if new is None else str(new), "correct": old, "ambiguous": None}[decision]
        rating = r.get("rating")
        rows.append([r["sample_id"], decision, old, new, None if rating is None or rating != rating else float(rating),
                     r.get("score"), r.get("sample_path"), r.get("note") or None, run_id, reviewer, source])
    if not rows:
        return 0
    with _WRITE_LOCK:
        con = _connect(path)
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # inside the lock: time order = write order
        try:
            con.execute("BEGIN TRANSACTION")
            con.executemany(
                "INSERT INTO decisions (sample_id, decision, old_label, new_label, rating, score, path, note, "
                "run_id, reviewer, decided_at, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [row[:10] + [now, row[10]] for row in rows],
            )
            con.execute("COMMIT")
        except duckdb.Error as exc:
            raise DecisionsError(_explain(path, exc)) from None
        finally:
            con.close()
            _trust(path)  # our own write adds nothing foreign: no need to check again
    return len(rows)


def undo_last(path: Path, *, reviewer: str, source: str | None = None) -> dict | None:
    """Undo ``reviewer``'s latest decision (on ``source``) that is not undone yet: the decision stays in the
    history and a row in ``undos`` marks it undone. Returns the decision undone, or None when there is none."""
    if not Path(path).exists():
        return None
    with _WRITE_LOCK:
        con = _connect(path)
        try:
            con.execute("BEGIN TRANSACTION")
            last = con.execute(
                "SELECT decision_id, sample_id, decision, old_label, new_label, note FROM decisions "
                "WHERE reviewer = $reviewer AND ($source IS NULL OR source IS NULL OR list_contains($sources, source)) "
                "AND decision_id NOT IN (SELECT decision_id FROM undos) ORDER BY decision_id DESC LIMIT 1",
                {"reviewer": reviewer, "source": source, "sources": _spellings(con, source)}).df()
            if last.empty:
                con.execute("ROLLBACK")
                return None
            now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            con.execute("INSERT INTO undos VALUES (?, ?, ?)", [int(last["decision_id"].iloc[0]), reviewer, now])
            con.execute("COMMIT")
            return last.iloc[0].to_dict()
        except duckdb.Error as exc:
            raise DecisionsError(_explain(path, exc)) from None
        finally:
            con.close()
            _trust(path)  # our own write adds nothing foreign: no need to check again


def same_data(a: str | None, b: str | None) -> bool:
    """Whether two runs' sources name the same data: the same text, or paths to the same file however spelled
    (``reviews.csv``, ``./reviews.csv``, an absolute path; resolved from the working folder). DataFrame fingerprints
    (``<DataFrame ...>``) match only themselves."""
    if a == b:
        return True
    if a is None or b is None or a.startswith("<") or b.startswith("<"):
        return False
    return os.path.realpath(a) == os.path.realpath(b)


def _spellings(con: duckdb.DuckDBPyConnection, source: str | None) -> list[str]:
    """The sources recorded in the file that name the same data as ``source``."""
    if source is None:
        return []
    found = [r[0] for r in con.execute("SELECT DISTINCT source FROM decisions WHERE source IS NOT NULL").fetchall()]
    return [f for f in found if same_data(f, source)]


def current(path: Path, source: str | None = None, *, upgrade: bool = True) -> pd.DataFrame:
    """The latest decision per sample (empty frame when none yet); with ``source``, only decisions on that data
    (and those recorded before sources were kept). ``upgrade=False`` never writes: a file of an older layout, or a
    DuckDB file that is no decisions file (a store), is a DecisionsError (the pipeline's --relabel reads this way)."""
    return _read(path, _CURRENT + " ORDER BY decided_at", {"source": source}, upgrade=upgrade)


def history(path: Path) -> pd.DataFrame:
    """Every decision ever recorded, oldest first, with ``undone_at`` set on those undone."""
    return _read(path, "SELECT d.*, u.undone_at FROM decisions d LEFT JOIN undos u USING (decision_id) "
                       "ORDER BY decision_id")


def _read(path: Path, sql: str, params: dict | None = None, *, upgrade: bool = True) -> pd.DataFrame:
    """Run a query on the decisions file without taking its write lock (a file of an older layout is brought up to
    date first, once, with a short write)."""
    if not Path(path).exists():
        return empty()
    with _WRITE_LOCK:
        con = _connect(path, read_only=True)
        try:
            if not _up_to_date(con) and not upgrade:
                raise DecisionsError(f"{path} is not a decisions file of this Lossmap (it has no up-to-date decisions "
                                     "table): pass <store>.decisions.duckdb, the file beside the store, not the "
                                     "store; a decisions file of an older Lossmap is brought up to date by opening "
                                     "the app on its store once.")
            if not _up_to_date(con):
                con.close()
                _connect(path).close()  # creates undos, adds source, names 0/1 labels
                con = _connect(path, read_only=True)
            if "$sources" in sql:  # the spellings of params' source that the file holds
                params = {**params, "sources": _spellings(con, params["source"])}
            return con.execute(sql, params or {}).df()
        except duckdb.Error as exc:
            raise DecisionsError(_explain(path, exc)) from None
        finally:
            con.close()


def empty() -> pd.DataFrame:
    """No decisions: the columns ``current`` returns, no rows."""
    return pd.DataFrame(columns=["decision_id", "sample_id", "decision", "old_label", "new_label", "note",
                                 "decided_at", "source"])


def _up_to_date(con: duckdb.DuckDBPyConnection) -> bool:
    tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                        "WHERE table_catalog = current_database()").fetchall()}
    if not {"decisions", "undos"} <= tables:
        return False
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'decisions' AND table_catalog = current_database()").fetchall())
    return "source" in types and types.get("old_label") == "VARCHAR"


def neutralise(value):
    """Prefix a cell a spreadsheet would run as a formula with a quote; a plain number ('-1', '+2.5') is data and is
    left as it is, so ids and class names such as -1 survive the export."""
    if not isinstance(value, str):
        return value
    if value.startswith(_FORMULA_START) or value.lstrip(_LEADING).startswith(_FORMULA_START):
        if not _NUMBER.fullmatch(value.strip(_LEADING)):
            return "'" + value
    return value


def restore(value):
    """What ``neutralise`` was given: a cell read back from the relabel CSV without the quote it added."""
    if isinstance(value, str) and value.startswith("'") and neutralise(value[1:]) == value:
        return value[1:]
    return value


def relabel_csv(path: Path, source: str | None = None) -> bytes:
    """The current decisions as CSV (one row per decided review; with ``source``, on that data only)."""
    rows = current(path, source)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in rows.itertuples(index=False):
        record_ = r._asdict()
        record_["decided_at"] = pd.Timestamp(record_["decided_at"]).isoformat() + "Z"
        cells = [record_.get(c) for c in CSV_COLUMNS]
        writer.writerow(["" if _missing(v) else neutralise(_plain(v)) for v in cells])
    return out.getvalue().encode("utf-8")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NA


def _plain(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
