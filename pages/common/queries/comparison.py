"""Queries of the Compare runs page: two runs, on the texts both hold (the same sample_id)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages.common.queries.base import StoreRef, _query, issue_ranking
from pipeline.names import FAMILIES
from pipeline.store.files import stored_json


_SHARED = ("SELECT a.sample_id FROM sample_summary a JOIN sample_summary b ON b.run_id = $b "
           "AND b.sample_id = a.sample_id WHERE a.run_id = $a")


@st.cache_data(show_spinner=False, max_entries=16)
def run_settings(ref: StoreRef, run_id: str) -> dict:
    """What a run was told and did: config (runs.config, its options as a dict, in the Config's order), ranking (how
    it ranked label issues, ``issue_ranking``) and families (those it trained or was given, in ``FAMILIES`` order)."""
    config = _query(ref, "SELECT config FROM runs WHERE run_id = ?", [run_id])["config"]
    families = _query(ref, "SELECT DISTINCT family FROM models WHERE run_id = ? ORDER BY list_position(?, family), "
                           "family", [run_id, list(FAMILIES)])["family"]
    return {"config": stored_json(config.iloc[0], dict) if len(config) else {},
            "ranking": issue_ranking(ref, run_id), "families": list(families)}


@st.cache_data(show_spinner=False, max_entries=16)
def shared_texts(ref: StoreRef, run_a: str, run_b: str) -> dict:
    """How many texts both runs hold (shared), each run holds (texts_a, texts_b), and each run's out-of-fold accuracy
    of the linear model on the shared ones (oof_a, oof_b, 0..1; None without shared texts)."""
    row = _query(ref, """
        SELECT (SELECT count(*) FROM sample_summary WHERE run_id = $a) AS texts_a,
               (SELECT count(*) FROM sample_summary WHERE run_id = $b) AS texts_b,
               count(*) AS shared, avg(a.correct::INT) AS oof_a, avg(b.correct::INT) AS oof_b
        FROM sample_summary a JOIN sample_summary b ON b.run_id = $b AND b.sample_id = a.sample_id WHERE a.run_id = $a
    """, {"a": run_a, "b": run_b}).iloc[0]
    return {"texts_a": int(row["texts_a"]), "texts_b": int(row["texts_b"]), "shared": int(row["shared"]),
            "oof_a": None if pd.isna(row["oof_a"]) else float(row["oof_a"]),
            "oof_b": None if pd.isna(row["oof_b"]) else float(row["oof_b"])}


@st.cache_data(show_spinner=False, max_entries=16)
def class_accuracy_change(ref: StoreRef, run_a: str, run_b: str) -> pd.DataFrame:
    """Per class name (the given label, as each run names it), on the shared texts: texts_a, accuracy_a, texts_b,
    accuracy_b (0..1), delta (accuracy_b - accuracy_a); in run A's class order."""
    return _query(ref, f"""
        WITH per AS (SELECT s.run_id, s.label AS class, c.name, count(*) AS texts, avg(s.correct::INT) AS accuracy
                     FROM sample_summary s JOIN classes c ON c.run_id = s.run_id AND c.class = s.label
                     WHERE s.run_id IN ($a, $b) AND s.sample_id IN ({_SHARED}) GROUP BY ALL),
             a AS (SELECT * FROM per WHERE run_id = $a), b AS (SELECT * FROM per WHERE run_id = $b)
        SELECT coalesce(a.name, b.name) AS name, coalesce(a.texts, 0) AS texts_a, a.accuracy AS accuracy_a,
               coalesce(b.texts, 0) AS texts_b, b.accuracy AS accuracy_b, b.accuracy - a.accuracy AS delta
        FROM a FULL JOIN b USING (name) ORDER BY coalesce(a.class, b.class), name
    """, {"a": run_a, "b": run_b})


@st.cache_data(show_spinner=False, max_entries=16)
def changed_predictions(ref: StoreRef, run_a: str, run_b: str, limit: int = 500) -> tuple[pd.DataFrame, int]:
    """(the shared texts whose linear out-of-fold prediction differs between the runs, at most ``limit``, the
    largest change of p(given) first; how many there are). Rows: sample_id, label_a, label_b, pred_a, pred_b (class
    names as each run names them), correct_a, correct_b (against each run's label), p_given_a, p_given_b, preview."""
    # by class name: two runs may number their classes differently (a class added to the data shifts the others)
    where = ("FROM sample_summary a JOIN sample_summary b ON b.run_id = $b AND b.sample_id = a.sample_id "
             "JOIN classes na ON na.run_id = $a AND na.class = a.pred_label "
             "JOIN classes nb ON nb.run_id = $b AND nb.class = b.pred_label "
             "WHERE a.run_id = $a AND na.name <> nb.name")
    params = {"a": run_a, "b": run_b}
    total = int(_query(ref, f"SELECT count(*) AS n {where}", params)["n"].iloc[0])
    rows = _query(ref, f"""
        WITH changed AS (SELECT a.sample_id, a.label AS la, b.label AS lb, a.pred_label AS pa, b.pred_label AS pb,
                                a.correct AS correct_a, b.correct AS correct_b, a.p_given AS p_given_a,
                                b.p_given AS p_given_b, b.preview {where}
                         ORDER BY abs(b.p_given - a.p_given) DESC, a.sample_id LIMIT $limit)
        SELECT sample_id, ga.name AS label_a, gb.name AS label_b, qa.name AS pred_a, qb.name AS pred_b, correct_a,
               correct_b, p_given_a, p_given_b, preview
        FROM changed
        JOIN classes ga ON ga.run_id = $a AND ga.class = la JOIN classes gb ON gb.run_id = $b AND gb.class = lb
        JOIN classes qa ON qa.run_id = $a AND qa.class = pa JOIN classes qb ON qb.run_id = $b AND qb.class = pb
        ORDER BY abs(p_given_b - p_given_a) DESC, sample_id
    """, params | {"limit": limit})
    return rows, total


@st.cache_data(show_spinner=False, max_entries=16)
def prediction_flows(ref: StoreRef, run_a: str, run_b: str) -> pd.DataFrame:
    """Per direction of a changed prediction (pred_a -> pred_b, class names) and outcome ('became right', 'became
    wrong', 'wrong in both', 'right in both': against each run's label, which a relabel can change): texts."""
    return _query(ref, """
        SELECT qa.name AS pred_a, qb.name AS pred_b,
               CASE WHEN b.correct AND NOT a.correct THEN 'became right' WHEN a.correct AND NOT b.correct
                    THEN 'became wrong' WHEN a.correct THEN 'right in both' ELSE 'wrong in both' END AS outcome,
               count(*) AS texts
        FROM sample_summary a JOIN sample_summary b ON b.run_id = $b AND b.sample_id = a.sample_id
        JOIN classes qa ON qa.run_id = $a AND qa.class = a.pred_label
        JOIN classes qb ON qb.run_id = $b AND qb.class = b.pred_label
        WHERE a.run_id = $a AND qa.name <> qb.name  -- by class name, as changed_predictions
        GROUP BY ALL ORDER BY min(a.pred_label), min(b.pred_label), outcome
    """, {"a": run_a, "b": run_b})


@st.cache_data(show_spinner=False, max_entries=16)
def rank_moves(ref: StoreRef, run_a: str, run_b: str, limit: int = 100) -> pd.DataFrame:
    """The shared texts whose label-issue rank moved most between the runs: sample_id, rank_a, rank_b, rank_change
    (rank_b - rank_a: < 0 = closer to rank 1, more suspect in run B), flagged_a, flagged_b, label_b (run B's class
    name), preview."""
    return _query(ref, """
        SELECT a.sample_id, a.issue_rank AS rank_a, b.issue_rank AS rank_b, b.issue_rank - a.issue_rank AS rank_change,
               a.is_label_issue AS flagged_a, b.is_label_issue AS flagged_b, c.name AS label_b, b.preview
        FROM sample_summary a JOIN sample_summary b ON b.run_id = $b AND b.sample_id = a.sample_id
        JOIN classes c ON c.run_id = $b AND c.class = b.label
        WHERE a.run_id = $a AND a.issue_rank <> b.issue_rank
        ORDER BY abs(a.issue_rank - b.issue_rank) DESC, least(a.issue_rank, b.issue_rank), a.sample_id LIMIT $limit
    """, {"a": run_a, "b": run_b, "limit": limit})


@st.cache_data(show_spinner=False, max_entries=16)
def relabeled(ref: StoreRef, run_id: str, limit: int = 1000) -> tuple[pd.DataFrame, int]:
    """(the texts whose label the run changed (``--relabel``: samples.original_label set), at most ``limit``; how
    many). Rows: sample_id, old_label, new_label (class names), preview."""
    total = int(_query(ref, "SELECT count(*) AS n FROM samples WHERE run_id = ? AND original_label IS NOT NULL",
                       [run_id])["n"].iloc[0])
    rows = _query(ref, """
        SELECT s.sample_id, o.name AS old_label, n.name AS new_label, left(s.display_text, 160) AS preview
        FROM samples s JOIN classes o ON o.run_id = s.run_id AND o.class = s.original_label
        JOIN classes n ON n.run_id = s.run_id AND n.class = s.label
        WHERE s.run_id = $run AND s.original_label IS NOT NULL ORDER BY s.sample_id LIMIT $limit
    """, {"run": run_id, "limit": limit})
    return rows, total
