"""The store connection every query shares, and the run-level queries (runs, classes, how the run ranked its label
issues, the user's own predictors)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import duckdb
import pandas as pd
import streamlit as st

from pipeline.names import OWN_FAMILIES
from pipeline.names import TEXT_SPACE as SPACE  # noqa: F401  (the default map space, for the pages)
from pipeline.store.files import cursor as store_cursor
from pipeline.store.files import open_readonly


@dataclasses.dataclass(frozen=True)
class StoreRef:
    """Identifies one version of the store file; hashable, so it keys the caches."""

    path: str
    inode: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> "StoreRef":
        stat = os.stat(path)
        return cls(str(Path(path).resolve()), stat.st_ino, stat.st_mtime_ns)


@st.cache_resource(max_entries=4, show_spinner=False)
def _connection(ref: StoreRef) -> duckdb.DuckDBPyConnection:
    return open_readonly(Path(ref.path))


def _query(ref: StoreRef, sql: str, params=None) -> pd.DataFrame:
    cursor = store_cursor(_connection(ref))
    try:
        return cursor.execute(sql, params or []).df()
    finally:
        cursor.close()


@st.cache_data(show_spinner=False)
def runs(ref: StoreRef) -> pd.DataFrame:
    return _query(ref, "SELECT run_id, completed_at, n_samples, n_classes, columns, test_accuracy, oof_accuracy, "
                       "n_flagged, seconds, source, stage_seconds, load_warnings, load_notes, config FROM runs "
                       "ORDER BY completed_at DESC")


@st.cache_data(show_spinner=False, max_entries=16)
def classes(ref: StoreRef, run_id: str) -> tuple[str, ...]:
    """The run's class names; label i is classes[i]."""
    return tuple(_query(ref, "SELECT name FROM classes WHERE run_id = ? ORDER BY class", [run_id])["name"])


@st.cache_data(show_spinner=False, max_entries=16)
def class_counts(ref: StoreRef, run_id: str) -> pd.DataFrame:
    return _query(ref, "SELECT class, name, n FROM classes WHERE run_id = ? ORDER BY class", [run_id])


@st.cache_data(show_spinner=False, max_entries=16)
def issue_ranking(ref: StoreRef, run_id: str) -> tuple[str, tuple[str, ...], str | None] | None:
    """How the run ranked its label issues: (cleanlab's method, the families whose probabilities it ranked, the
    --issue-source that combined several: 'stacked' or 'ensemble' (their mean)), from label_issues.method and
    ranked_on and the run's config; None without label issues."""
    row = _query(ref, "SELECT any_value(i.method) AS method, any_value(i.ranked_on) AS ranked_on, "
                      "any_value(json_extract_string(r.config, '$.issue_source')) AS source FROM label_issues i "
                      "JOIN runs r USING (run_id) WHERE run_id = ?", [run_id]).iloc[0]
    if row["method"] is None or (isinstance(row["method"], float) and pd.isna(row["method"])):
        return None
    ranked_on = row["ranked_on"]
    source = row["source"] if isinstance(row["source"], str) else None
    return str(row["method"]), tuple(str(f) for f in ranked_on) if ranked_on is not None else (), source


@st.cache_data(show_spinner=False, max_entries=16)
def own_predictors(ref: StoreRef, run_id: str) -> pd.DataFrame:
    """The user's own predictors of the run (families ``names.OWN_FAMILIES``): family, name (models.name, as the
    user gave it), texts scored, seen (how many of them count as seen in its training)."""
    return _query(ref, """
        WITH named AS (SELECT family, max(name) AS name FROM models WHERE run_id = $run
                       AND list_contains($own, family) GROUP BY family)
        SELECT named.family, named.name, count(p.sample_id) AS texts,
               count(p.sample_id) FILTER (WHERE p.seen_in_training) AS seen
        FROM named LEFT JOIN predictions p ON p.run_id = $run AND p.family = named.family
        GROUP BY ALL ORDER BY named.family
    """, {"run": run_id, "own": list(OWN_FAMILIES)})


def own_names(ref: StoreRef, run_id: str) -> dict[str, str]:
    """family -> the name the user gave their own predictor (models.name), for the run's own predictors."""
    own = own_predictors(ref, run_id)
    return {f: n for f, n in zip(own["family"], own["name"]) if isinstance(n, str) and n.strip()}
