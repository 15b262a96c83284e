"""Queries of the Population map: the spaces, the points drawn, a box's contents, the clusters."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages.common.queries.base import SPACE, StoreRef, _query


@st.cache_data(show_spinner=False, max_entries=8)
def spaces(ref: StoreRef, run_id: str) -> list[str]:
    """Embedding spaces of a run, the TF-IDF one first."""
    rows = _query(ref, "SELECT DISTINCT space FROM clusters WHERE run_id = ? ORDER BY space <> ?, space",
                  [run_id, SPACE])
    return rows["space"].tolist()


@st.cache_data(show_spinner=False, max_entries=16)
def map_points(ref: StoreRef, run_id: str, space: str, limit: int, meta: str | None = None) -> tuple[pd.DataFrame, int]:
    """(the first ``limit`` points of a map in draw order: flagged reviews, most suspect first,
    alternating with a seeded random sample of the others; how many points the map has).
    ``meta`` adds that metadata column's value (``meta``) and number (``meta_number``) to each point."""
    total = int(_query(ref, "SELECT count(*) AS n FROM map_points WHERE run_id = ? AND space = ?",
                       [run_id, space])["n"].iloc[0])
    columns = "p.sample_id, x, y, cluster, label, rating, pred_label, loss, is_label_issue, preview"
    if meta is None:
        rows = _query(ref, f"SELECT {columns} FROM map_points p WHERE run_id = ? AND space = ? AND draw_order <= ?",
                      [run_id, space, limit])
    else:
        rows = _query(ref, f"SELECT {columns}, m.value AS meta, m.number AS meta_number FROM map_points p "
                           "LEFT JOIN sample_meta m ON m.run_id = p.run_id AND m.sample_id = p.sample_id AND m.name = $m "
                           "WHERE p.run_id = $run AND space = $space AND draw_order <= $limit",
                      {"run": run_id, "space": space, "limit": limit, "m": meta})
    return rows, total


@st.cache_data(show_spinner=False, max_entries=32)
def map_box(ref: StoreRef, run_id: str, space: str, x: tuple[float, float], y: tuple[float, float],
            limit: int = 500) -> tuple[pd.DataFrame, int]:
    """(the highest-loss reviews inside a box of the map, at most ``limit``; how many are inside)."""
    params = {"run": run_id, "space": space, "x0": x[0], "x1": x[1], "y0": y[0], "y1": y[1]}
    where = "run_id = $run AND space = $space AND x BETWEEN $x0 AND $x1 AND y BETWEEN $y0 AND $y1"
    total = int(_query(ref, f"SELECT count(*) AS n FROM map_points WHERE {where}", params)["n"].iloc[0])
    rows = _query(ref, f"""
        WITH inside AS (SELECT sample_id, label, pred_label, rating, loss, is_label_issue, preview FROM map_points
                        WHERE {where} ORDER BY loss DESC, sample_id LIMIT $limit)
        SELECT inside.*, s.reason FROM inside
        JOIN sample_summary s ON s.run_id = $run AND s.sample_id = inside.sample_id ORDER BY loss DESC, sample_id
    """, params | {"limit": limit})
    return rows, total


@st.cache_data(show_spinner=False, max_entries=8)
def clusters(ref: StoreRef, run_id: str, space: str = SPACE) -> pd.DataFrame:
    return _query(ref, "SELECT cluster, size, accuracy, mean_loss, share_flagged, top_label, share_top, top_terms "
                       "FROM clusters WHERE run_id = ? AND space = ? ORDER BY cluster", [run_id, space])
