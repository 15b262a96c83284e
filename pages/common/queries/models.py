"""Queries of the Models page: every stored predictor, a (family, protocol) pair of `predictions`."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages.common.queries.base import StoreRef, _query
from pages.common.widgets import visible
from pipeline.names import FAMILIES, PROTOCOLS, predictor_name


_BY_PREDICTOR = "ORDER BY list_position($families, family), list_position($protocols, protocol)"
_UNSEEN_ONLY = "(NOT $unseen OR NOT p.seen_in_training)"  # $unseen: keep only texts the predictor never trained on


def _predictor_params(run_id: str, **more) -> dict:
    return {"run": run_id, "families": list(FAMILIES), "protocols": list(PROTOCOLS), **more}


def predictor_labels(frame: pd.DataFrame, n_classes: int) -> list[str]:
    """How pages name each predictor row of ``frame`` (columns family, protocol and name, models.name): the name its
    user gave it, else by family and protocol (``predictor_name``). A name that two predictors would share gets its
    family and protocol added, so every label is one predictor's. Made visible (``widgets.visible``), ready for charts
    and tables; Markdown still needs ``plain``."""
    given = frame["name"] if "name" in frame else pd.Series([None] * len(frame), index=frame.index)
    labels = [visible(n) if isinstance(n, str) and n.strip() else predictor_name(f, p, n_classes)
              for f, p, n in zip(frame["family"], frame["protocol"], given)]
    return [f"{label} ({predictor_name(f, p, n_classes)})" if labels.count(label) > 1 else label
            for label, f, p in zip(labels, frame["family"], frame["protocol"])]


@st.cache_data(show_spinner=False, max_entries=8)
def predictors(ref: StoreRef, run_id: str) -> pd.DataFrame:
    """Per predictor: family, protocol, name (models.name: the user's name for their own model, else None), texts
    scored, accuracy against the label used, and the same split into texts it never saw (unseen) and texts it
    trained on (seen: optimistic)."""
    return _query(ref, f"""
        WITH per AS (
            SELECT p.family, p.protocol, count(*) AS texts, avg((p.pred_label = s.label)::INT) AS accuracy,
                   count(*) FILTER (WHERE NOT p.seen_in_training) AS unseen,
                   avg((p.pred_label = s.label)::INT) FILTER (WHERE NOT p.seen_in_training) AS accuracy_unseen,
                   count(*) FILTER (WHERE p.seen_in_training) AS seen,
                   avg((p.pred_label = s.label)::INT) FILTER (WHERE p.seen_in_training) AS accuracy_seen
            FROM predictions p JOIN sample_summary s ON s.run_id = p.run_id AND s.sample_id = p.sample_id
            WHERE p.run_id = $run GROUP BY p.family, p.protocol)
        SELECT per.*, n.name FROM per
        LEFT JOIN (SELECT family, max(name) AS name FROM models WHERE run_id = $run GROUP BY family) n USING (family)
        {_BY_PREDICTOR}
    """, _predictor_params(run_id))


@st.cache_data(show_spinner=False, max_entries=8)
def predictor_class_accuracy(ref: StoreRef, run_id: str, unseen: bool) -> pd.DataFrame:
    """Per predictor and given class: family, protocol, class, texts, accuracy (the share predicted as the class);
    with ``unseen``, over the texts each predictor never trained on."""
    return _query(ref, f"""
        SELECT p.family, p.protocol, s.label AS class, count(*) AS texts, avg((p.pred_label = s.label)::INT) AS accuracy
        FROM predictions p JOIN sample_summary s ON s.run_id = p.run_id AND s.sample_id = p.sample_id
        WHERE p.run_id = $run AND {_UNSEEN_ONLY} GROUP BY p.family, p.protocol, s.label {_BY_PREDICTOR}, class
    """, _predictor_params(run_id, unseen=unseen))


@st.cache_data(show_spinner=False, max_entries=8)
def agreement(ref: StoreRef, run_id: str) -> pd.DataFrame:
    """Every ordered pair of predictors: family_a, protocol_a, family_b, protocol_b, texts both scored, agreement
    (the share of them on which both predict the same class)."""
    return _query(ref, """
        SELECT a.family AS family_a, a.protocol AS protocol_a, b.family AS family_b, b.protocol AS protocol_b,
               count(*) AS texts, avg((a.pred_label = b.pred_label)::INT) AS agreement
        FROM predictions a JOIN predictions b ON b.run_id = a.run_id AND b.sample_id = a.sample_id
        WHERE a.run_id = $run GROUP BY ALL
    """, {"run": run_id})


@st.cache_data(show_spinner=False, max_entries=8)
def disagreements(ref: StoreRef, run_id: str, limit: int = 200) -> tuple[pd.DataFrame, int]:
    """(every predictor's prediction of the ``limit`` texts they disagree on most: most classes predicted, then the
    widest spread of p(given); how many texts get more than one class). Rows: sample_id, classes_predicted, spread,
    label, preview, family, protocol, pred_label, p_given."""
    params = {"run": run_id, "limit": limit}
    spread = ("SELECT sample_id, count(DISTINCT pred_label) AS classes_predicted, max(p_given) - min(p_given) AS "
              "spread FROM predictions WHERE run_id = $run GROUP BY sample_id HAVING count(DISTINCT pred_label) > 1")
    total = int(_query(ref, f"SELECT count(*) AS n FROM ({spread})", {"run": run_id})["n"].iloc[0])
    rows = _query(ref, f"""
        WITH top AS ({spread} ORDER BY classes_predicted DESC, spread DESC, sample_id LIMIT $limit)
        SELECT t.sample_id, t.classes_predicted, t.spread, s.label, s.preview, p.family, p.protocol, p.pred_label,
               p.p_given
        FROM top t JOIN sample_summary s ON s.run_id = $run AND s.sample_id = t.sample_id
        JOIN predictions p ON p.run_id = $run AND p.sample_id = t.sample_id
        ORDER BY t.classes_predicted DESC, t.spread DESC, t.sample_id
    """, params)
    return rows, total


CALIBRATION_BINS = 10  # equal-width bins of the predicted class's probability, 0..1


@st.cache_data(show_spinner=False, max_entries=8)
def calibration(ref: StoreRef, run_id: str, unseen: bool) -> pd.DataFrame:
    """Reliability bins per predictor: family, protocol, bin (0..9), lo, hi, texts, confidence (mean probability of
    the predicted class), accuracy, and the predictor's expected calibration error ``ece`` (the texts-weighted mean
    of |accuracy - confidence| over its bins, 0..1); with ``unseen``, over the texts it never trained on."""
    return _query(ref, f"""
        WITH bins AS (
            SELECT p.family, p.protocol, least(floor(p.p_pred * $bins), $bins - 1)::INT AS bin, count(*) AS texts,
                   avg(p.p_pred) AS confidence, avg((p.pred_label = s.label)::INT) AS accuracy
            FROM predictions p JOIN sample_summary s ON s.run_id = p.run_id AND s.sample_id = p.sample_id
            WHERE p.run_id = $run AND {_UNSEEN_ONLY} GROUP BY ALL)
        SELECT *, bin / $bins AS lo, (bin + 1) / $bins AS hi,
               sum(texts * abs(accuracy - confidence)) OVER w / sum(texts) OVER w AS ece
        FROM bins WINDOW w AS (PARTITION BY family, protocol) {_BY_PREDICTOR}, bin
    """, _predictor_params(run_id, unseen=unseen, bins=CALIBRATION_BINS))
