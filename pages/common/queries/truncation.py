"""Queries of the Truncation page."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages.common.queries.base import StoreRef, _query


LENGTH_BUCKETS = (128, 256, 512, 1024)  # upper bounds in words; the last bucket is open


@st.cache_data(show_spinner=False, max_entries=8)
def truncation_families(ref: StoreRef, run_id: str) -> list[str]:
    return _query(ref, "SELECT DISTINCT family FROM truncation WHERE run_id = ? ORDER BY family", [run_id])["family"].tolist()


@st.cache_data(show_spinner=False, max_entries=8)
def accuracy_by_length(ref: StoreRef, run_id: str, family: str) -> pd.DataFrame:
    """Per length bucket: reviews, and accuracy reading the head, head+tail, and the whole review."""
    return _query(ref, """
        SELECT CASE WHEN t.n_words <= 128 THEN '1-128' WHEN t.n_words <= 256 THEN '129-256'
                    WHEN t.n_words <= 512 THEN '257-512' WHEN t.n_words <= 1024 THEN '513-1024'
                    ELSE '1025+' END AS bucket,
               min(t.n_words) AS min_words, count(*) AS reviews, avg(t.truncated::INT) AS share_truncated,
               avg((t.pred_head = s.label)::INT) AS head,
               avg((t.pred_head_tail = s.label)::INT) AS head_tail,
               avg((t.pred_windows = s.label)::INT) AS whole_review,
               avg(t.loss_model) AS mean_loss
        FROM truncation t JOIN sample_summary s ON s.run_id = t.run_id AND s.sample_id = t.sample_id
        WHERE t.run_id = ? AND t.family = ?
        GROUP BY bucket ORDER BY min_words
    """, [run_id, family])


@st.cache_data(show_spinner=False, max_entries=8)
def length_vs_loss(ref: StoreRef, run_id: str, family: str) -> pd.DataFrame:
    """2-D histogram: review length (quarter-octave bins of words) x loss (0.25-nat bins, capped at 5)."""
    return _query(ref, """
        WITH binned AS (
            SELECT floor(log2(greatest(n_words, 1)) * 4) / 4 AS b, least(floor(loss_model * 4) / 4, 4.75) AS loss_lo
            FROM truncation WHERE run_id = ? AND family = ?)
        SELECT pow(2, b) AS words_lo, pow(2, b + 0.25) AS words_hi, loss_lo, loss_lo + 0.25 AS loss_hi,
               count(*) AS reviews
        FROM binned GROUP BY ALL
    """, [run_id, family])


@st.cache_data(show_spinner=False, max_entries=8)
def harmed(ref: StoreRef, run_id: str, family: str, limit: int = 200, flips_first: bool = False) -> pd.DataFrame:
    """The most harmed truncated reviews, most harmed first (with ``flips_first``, those whose prediction changes
    when the whole review is read come first)."""
    inner, outer = ("prediction_changes DESC, harm_rank", "t.prediction_changes DESC, t.harm_rank") if flips_first \
        else ("harm_rank", "t.harm_rank")  # constants
    return _query(ref, f"""
        WITH top AS (SELECT * FROM truncation WHERE run_id = $run AND family = $family AND harm_rank IS NOT NULL
                     ORDER BY {inner} LIMIT $limit)
        SELECT t.harm_rank, t.sample_id, s.label, s.rating, t.n_words, t.p_model, t.p_windows, t.pred_model,
               t.pred_windows, t.harm,
               t.prediction_changes, left(s.preview, 120) AS preview
        FROM top t JOIN sample_summary s ON s.run_id = $run AND s.sample_id = t.sample_id
        ORDER BY {outer}
    """, {"run": run_id, "family": family, "limit": limit})


@st.cache_data(show_spinner=False, max_entries=64)
def truncation_detail(ref: StoreRef, run_id: str, family: str, sample_id: str) -> dict | None:
    rows = _query(ref, """
        SELECT t.*, s.display_text, s.label, s.rating
        FROM (SELECT * FROM truncation WHERE run_id = $run AND family = $family AND sample_id = $sample) t,
             (SELECT display_text, label, rating FROM samples WHERE run_id = $run AND sample_id = $sample) s
    """, {"run": run_id, "family": family, "sample": sample_id})
    return None if rows.empty else rows.iloc[0].to_dict()
