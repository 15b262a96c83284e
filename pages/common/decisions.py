"""Reviewers' decisions: the only thing the app writes, in a DuckDB file of its own.

The analysis store is replaced by every pipeline run, so decisions live beside it in
``<store>.decisions.duckdb`` (``decisions_path``), keyed by ``sample_id``: they
survive app restarts and new runs. The table is an append-only history; the
current decision for a review is its latest row (``current``). Writes are short
transactions behind a process-wide lock, retried while another process holds the
file, so reviewers working at once lose nothing.

Labels are kept by class name (``old_label``, ``new_label``), the way the data names
them, so a decision means the same after a new run even if the classes are numbered
differently. Each decision also records the data it was made on (``source``, the run's
``runs.source``): one store can hold runs of different datasets whose ids collide (row
numbers, "1", "2", ...), and a decision on one must not show up on another. Decisions
recorded before sources were kept (NULL) apply to every run. A file written before names
were stored (0/1 for IMDB's negative/positive) is converted in place the first time it
is opened.

``relabel_csv(path)`` renders the current decisions as CSV bytes with spreadsheet
formulas neutralised.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd

DECISIONS = {
    "mislabeled": "Mislabeled: relabel",
    "correct": "Correct as is",
    "ambiguous": "Ambiguous / neutral",
}
_OLD_NAMES = ("negative", "positive")  # what 0 and 1 meant in decision files of schema 4 and before (IMDB only)
CSV_COLUMNS = ["sample_id", "path", "old_label", "new_label", "rating", "decision", "score", "note", "decided_at",
               "source"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_WRITE_LOCK = threading.Lock()
_RETRY_SECONDS = 10.0

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
]
_CURRENT = """
    SELECT * FROM decisions WHERE $source IS NULL OR source IS NULL OR source = $source
    QUALIFY row_number() OVER (PARTITION BY sample_id ORDER BY decided_at DESC, decision_id DESC) = 1
"""


def decisions_path(store: Path) -> Path:
    store = Path(store)
    return store.with_name(store.stem + ".decisions.duckdb")


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + _RETRY_SECONDS
    while True:
        try:
            con = duckdb.connect(str(path))
            break
        except duckdb.IOException:  # another process holds the file: wait a moment
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    for ddl in _DDL:
        con.execute(ddl)
    _upgrade(con)
    return con


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
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}; got {decision!r}")
    if decision == "mislabeled" and (new_label is None or new_label == old_label):
        raise ValueError(f"a mislabeled review needs a new label other than {old_label!r}")
    new_label = {"mislabeled": new_label, "correct": old_label, "ambiguous": None}[decision]
    with _WRITE_LOCK:
        con = _connect(path)
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # inside the lock: time order = write order
        try:
            con.execute(
                "INSERT INTO decisions (sample_id, decision, old_label, new_label, rating, score, path, note, "
                "run_id, reviewer, decided_at, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [sample_id, decision, str(old_label), new_label, rating, score, sample_path, note or None, run_id,
                 reviewer, now, source],
            )
        finally:
            con.close()


def current(path: Path, source: str | None = None) -> pd.DataFrame:
    """The latest decision per sample (empty frame when none yet); with ``source``, only decisions on that data
    (and those recorded before sources were kept)."""
    return _read(path, _CURRENT + " ORDER BY decided_at", {"source": source})


def history(path: Path) -> pd.DataFrame:
    """Every decision ever recorded, oldest first."""
    return _read(path, "SELECT * FROM decisions ORDER BY decision_id")


def _read(path: Path, sql: str, params: dict | None = None) -> pd.DataFrame:
    if not Path(path).exists():
        return pd.DataFrame(columns=["decision_id", "sample_id", "decision", "old_label", "new_label", "note",
                                     "decided_at", "source"])
    with _WRITE_LOCK:
        con = _connect(path)
        try:
            return con.execute(sql, params or {}).df()
        finally:
            con.close()


def neutralise(value):
    """Prefix a cell a spreadsheet would run as a formula with a quote; a plain number ('-1', '+2.5') is data and is
    left as it is, so ids and class names such as -1 survive the export."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
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
