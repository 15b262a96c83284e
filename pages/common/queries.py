"""Every read query the app issues, in one place, each a cached function.

The analysis store is opened read-only (``pipeline.store.open_readonly``) and cached
per file identity (path, inode, mtime): when the pipeline swaps in a new store the
identity changes, the next rerun opens the new file and its runs appear, while
sessions keep working meanwhile. Each query uses its own cursor (a DuckDB
connection is not thread-safe); every value is bound, and identifiers come only
from constants here.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import duckdb
import pandas as pd
import streamlit as st

from pipeline.store.files import cursor as store_cursor
from pipeline.store.files import open_readonly

OOF = "nblr-oof"
CONVENTIONAL = "nblr-train"
SPACE = "tfidf-svd"


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
    return _query(ref, "SELECT run_id, completed_at, n_samples, test_accuracy, oof_accuracy, n_flagged, seconds, "
                       "source, stage_seconds, config FROM runs ORDER BY completed_at DESC")


_SUMMARY_COLUMNS = ("sample_id, path, split, label, rating, n_words, p_pos, pred_label, loss, margin, correct, label_score, "
                   "is_label_issue, suggested_label, issue_rank, reason, cluster")


@dataclasses.dataclass(frozen=True)
class SampleFilter:
    """What the Samples page shows; every field becomes a bound value of one WHERE clause."""

    splits: tuple[str, ...] = ()
    labels: tuple[int, ...] = ()
    preds: tuple[int, ...] = ()
    outcome: str = "all"  # all | correct | incorrect
    rating: tuple[int, int] = (1, 10)
    loss: tuple[float, float | None] = (0.0, None)
    words: tuple[int, int | None] = (0, None)
    clusters: tuple[int, ...] = ()
    flagged: bool = False
    search: str = ""  # literal, case-insensitive
    only_ids: tuple[str, ...] | None = None  # e.g. the reviews with one decision
    except_ids: tuple[str, ...] = ()  # e.g. the reviews already decided


def _where(f: SampleFilter) -> tuple[str, dict]:
    """A WHERE clause over sample_summary built from fixed fragments, with every value bound."""
    sql = ["run_id = $run", "rating BETWEEN $r0 AND $r1", "loss >= $l0", "n_words >= $w0"]
    params = {"r0": f.rating[0], "r1": f.rating[1], "l0": f.loss[0], "w0": f.words[0]}
    optional = [
        (f.splits, "list_contains($splits, split)", "splits", list(f.splits)),
        (f.labels, "list_contains($labels, label)", "labels", list(f.labels)),
        (f.preds, "list_contains($preds, pred_label)", "preds", list(f.preds)),
        (f.outcome in ("correct", "incorrect"), "correct = $correct", "correct", f.outcome == "correct"),
        (f.loss[1] is not None, "loss <= $l1", "l1", f.loss[1]),
        (f.words[1] is not None, "n_words <= $w1", "w1", f.words[1]),
        (f.clusters, "list_contains($clusters, cluster)", "clusters", list(f.clusters)),
        (f.flagged, "is_label_issue", None, None),
        (f.search.strip(), "contains(search_text, lower($search))", "search", f.search.strip()),
        (f.only_ids is not None, "sample_id IN (SELECT unnest($only::VARCHAR[]))", "only", list(f.only_ids or ())),
        (f.except_ids, "sample_id NOT IN (SELECT unnest($except::VARCHAR[]))", "except", list(f.except_ids)),
    ]
    for wanted, fragment, name, value in optional:
        if wanted:
            sql.append(fragment)
            if name:
                params[name] = value
    return " AND ".join(sql), params


@st.cache_data(show_spinner=False, max_entries=64)
def sample_count(ref: StoreRef, run_id: str, f: SampleFilter) -> int:
    """How many reviews pass ``f``."""
    where, params = _where(f)
    return int(_query(ref, f"SELECT count(*) AS n FROM sample_summary WHERE {where}", params | {"run": run_id})
               ["n"].iloc[0])


@st.cache_data(show_spinner=False, max_entries=64)
def sample_page(ref: StoreRef, run_id: str, f: SampleFilter, offset: int = 0, limit: int = 100) -> pd.DataFrame:
    """One page of the reviews that pass ``f``, highest loss first."""
    where, params = _where(f)
    return _query(ref, f"SELECT {_SUMMARY_COLUMNS} FROM sample_summary WHERE {where} "
                       "ORDER BY loss DESC, sample_id LIMIT $limit OFFSET $offset",
                  params | {"run": run_id, "limit": limit, "offset": offset})


@st.cache_data(show_spinner=False, max_entries=8)
def filter_bounds(ref: StoreRef, run_id: str) -> dict:
    """Ranges and choices for the Samples filters: max loss, max words, cluster ids."""
    row = _query(ref, "SELECT max(loss) AS loss, max(n_words) AS words, list(DISTINCT cluster ORDER BY cluster) "
                      "FILTER (WHERE cluster IS NOT NULL) AS clusters FROM sample_summary WHERE run_id = ?",
                 [run_id]).iloc[0]
    return {"loss": float(row["loss"] or 0.0), "words": int(row["words"] or 0),
            "clusters": [int(c) for c in (row["clusters"] if row["clusters"] is not None else [])]}


@st.cache_data(show_spinner=False, max_entries=8)
def top_loss(ref: StoreRef, run_id: str, limit: int = 200) -> pd.DataFrame:
    return _query(ref, f"SELECT {_SUMMARY_COLUMNS} FROM sample_summary WHERE run_id = ? "
                       "ORDER BY loss DESC, sample_id LIMIT ?", [run_id, limit])


@st.cache_data(show_spinner=False, max_entries=8)
def loss_histogram(ref: StoreRef, run_id: str, bins: int = 60) -> pd.DataFrame:
    """Reviews per loss bin and split: split, lo, hi (nats), reviews."""
    return _query(ref, """
        WITH top AS (SELECT greatest(max(loss), 1e-9) / $bins AS width FROM sample_summary WHERE run_id = $run)
        SELECT split, least(floor(loss / width), $bins - 1) * width AS lo,
               (least(floor(loss / width), $bins - 1) + 1) * width AS hi, count(*) AS reviews
        FROM sample_summary, top WHERE run_id = $run GROUP BY ALL ORDER BY split, lo
    """, {"run": run_id, "bins": bins})


@st.cache_data(show_spinner=False, max_entries=8)
def suspects(ref: StoreRef, run_id: str, limit: int = 1000) -> tuple[pd.DataFrame, int]:
    """(the flagged reviews in rank order, at most ``limit``; how many are flagged).

    A run with no flag lists its 50 most suspect reviews instead (count 0).
    """
    total = int(_query(ref, "SELECT count(*) AS n FROM sample_summary WHERE run_id = ? AND is_label_issue",
                       [run_id])["n"].iloc[0])
    rows = _query(ref, f"SELECT {_SUMMARY_COLUMNS} FROM sample_summary WHERE run_id = ? "
                       + ("AND is_label_issue " if total else "") + "ORDER BY issue_rank LIMIT ?",
                  [run_id, min(limit, total) if total else 50])
    return rows, total


@st.cache_data(show_spinner=False, max_entries=64)
def next_suspect(ref: StoreRef, run_id: str, skip: tuple[str, ...], flagged: bool = True) -> dict | None:
    """The most suspect review not in ``skip`` (flagged ones only, unless the run flagged none)."""
    rows = _query(ref, f"SELECT {_SUMMARY_COLUMNS} FROM sample_summary WHERE run_id = ? "
                       + ("AND is_label_issue " if flagged else "")
                       + "AND sample_id NOT IN (SELECT unnest(?::VARCHAR[])) ORDER BY issue_rank LIMIT 1",
                  [run_id, list(skip)])
    return None if rows.empty else rows.iloc[0].to_dict()


@st.cache_data(show_spinner=False, max_entries=64)
def count_among_flagged(ref: StoreRef, run_id: str, ids: tuple[str, ...]) -> int:
    """How many of ``ids`` are flagged reviews of the run."""
    return int(_query(ref, "SELECT count(*) AS n FROM sample_summary WHERE run_id = ? AND is_label_issue "
                           "AND sample_id IN (SELECT unnest(?::VARCHAR[]))", [run_id, list(ids)])["n"].iloc[0])


@st.cache_data(show_spinner=False, max_entries=8)
def spaces(ref: StoreRef, run_id: str) -> list[str]:
    """Embedding spaces of a run, the TF-IDF one first."""
    rows = _query(ref, "SELECT DISTINCT space FROM clusters WHERE run_id = ? ORDER BY space <> ?, space",
                  [run_id, SPACE])
    return rows["space"].tolist()


@st.cache_data(show_spinner=False, max_entries=16)
def map_points(ref: StoreRef, run_id: str, space: str, limit: int) -> tuple[pd.DataFrame, int]:
    """(the first ``limit`` points of a map in draw order: flagged reviews, most suspect first,
    alternating with a seeded random sample of the others; how many points the map has)."""
    total = int(_query(ref, "SELECT count(*) AS n FROM map_points WHERE run_id = ? AND space = ?",
                       [run_id, space])["n"].iloc[0])
    rows = _query(ref, "SELECT sample_id, x, y, cluster, label, rating, pred_label, loss, is_label_issue, preview "
                       "FROM map_points WHERE run_id = ? AND space = ? AND draw_order <= ?", [run_id, space, limit])
    return rows, total


@st.cache_data(show_spinner=False, max_entries=32)
def map_box(ref: StoreRef, run_id: str, space: str, x: tuple[float, float], y: tuple[float, float],
            limit: int = 500) -> tuple[pd.DataFrame, int]:
    """(the highest-loss reviews inside a box of the map, at most ``limit``; how many are inside)."""
    params = {"run": run_id, "space": space, "x0": x[0], "x1": x[1], "y0": y[0], "y1": y[1]}
    where = "run_id = $run AND space = $space AND x BETWEEN $x0 AND $x1 AND y BETWEEN $y0 AND $y1"
    total = int(_query(ref, f"SELECT count(*) AS n FROM map_points WHERE {where}", params)["n"].iloc[0])
    rows = _query(ref, f"""
        WITH inside AS (SELECT sample_id, label, pred_label, rating, loss, is_label_issue FROM map_points
                        WHERE {where} ORDER BY loss DESC, sample_id LIMIT $limit)
        SELECT inside.*, s.reason FROM inside
        JOIN sample_summary s ON s.run_id = $run AND s.sample_id = inside.sample_id ORDER BY loss DESC, sample_id
    """, params | {"limit": limit})
    return rows, total


@st.cache_data(show_spinner=False, max_entries=256)
def sample_detail(ref: StoreRef, run_id: str, sample_id: str) -> dict | None:
    rows = _query(ref, f"""
        SELECT t.display_text, m.* FROM
            (SELECT {_SUMMARY_COLUMNS} FROM sample_summary WHERE run_id = $run AND sample_id = $sample) m,
            (SELECT display_text FROM samples WHERE run_id = $run AND sample_id = $sample) t
    """, {"run": run_id, "sample": sample_id})
    return None if rows.empty else rows.iloc[0].to_dict()


@st.cache_data(show_spinner=False, max_entries=256)
def predictions_for(ref: StoreRef, run_id: str, sample_id: str) -> pd.DataFrame:
    return _query(ref, "SELECT predictor, model_id, p_pos, loss, seen_in_training FROM predictions "
                       "WHERE run_id = ? AND sample_id = ? ORDER BY predictor", [run_id, sample_id])


@st.cache_data(show_spinner=False, max_entries=256)
def shap_tokens(ref: StoreRef, run_id: str, sample_id: str) -> pd.DataFrame:
    return _query(ref, "SELECT rank, kind, token, shap_value FROM shap_tokens "
                       "WHERE run_id = ? AND sample_id = ? ORDER BY rank", [run_id, sample_id])


@st.cache_data(show_spinner=False, max_entries=256)
def neighbours(ref: StoreRef, run_id: str, sample_id: str) -> pd.DataFrame:
    """The review's nearest reviews by cosine similarity of their embeddings (stored by the pipeline)."""
    return _query(ref, """
        WITH near AS (SELECT neighbour_id, similarity, rank FROM neighbours
                      WHERE run_id = $run AND space = $space AND sample_id = $sample)
        SELECT s.sample_id, s.label, s.rating, s.pred_label, s.loss, near.similarity, s.preview
        FROM near JOIN sample_summary s ON s.run_id = $run AND s.sample_id = near.neighbour_id
        ORDER BY near.rank
    """, {"run": run_id, "space": SPACE, "sample": sample_id})


@st.cache_data(show_spinner=False, max_entries=8)
def clusters(ref: StoreRef, run_id: str, space: str = SPACE) -> pd.DataFrame:
    return _query(ref, "SELECT cluster, size, accuracy, mean_loss, share_flagged, share_positive, top_terms "
                       "FROM clusters WHERE run_id = ? AND space = ? ORDER BY cluster", [run_id, space])


@st.cache_data(show_spinner=False, max_entries=8)
def loss_by_rating(ref: StoreRef, run_id: str) -> pd.DataFrame:
    return _query(ref, """
        SELECT rating, count(*) AS reviews, avg(loss) AS mean_loss, stddev_samp(loss) AS std_loss,
               quantile_cont(loss, 0.25) AS q25, quantile_cont(loss, 0.75) AS q75
        FROM sample_summary WHERE run_id = $run GROUP BY rating ORDER BY rating
    """, {"run": run_id})


@st.cache_data(show_spinner=False, max_entries=8)
def training_batches(ref: StoreRef, run_id: str) -> pd.DataFrame:
    """Per-batch loss and accuracy of the conventional models (empty when the run has no telemetry)."""
    return _query(ref, "SELECT model_id, step, epoch, loss, accuracy FROM training_batches "
                       "WHERE run_id = ? AND model_id LIKE '%-train' ORDER BY model_id, step", [run_id])


@st.cache_data(show_spinner=False, max_entries=8)
def training_epochs(ref: StoreRef, run_id: str) -> pd.DataFrame:
    return _query(ref, "SELECT model_id, epoch, train_loss, train_accuracy, val_loss, val_accuracy "
                       "FROM training_epochs WHERE run_id = ? AND model_id LIKE '%-train' ORDER BY model_id, epoch",
                  [run_id])


# --- Training page ---

@st.cache_data(show_spinner=False, max_entries=8)
def telemetry_models(ref: StoreRef, run_id: str) -> list[str]:
    """Networks with per-layer telemetry (the conventional ones), in training order."""
    rows = _query(ref, "SELECT DISTINCT model_id FROM layer_stats WHERE run_id = ? ORDER BY model_id", [run_id])
    order = {"dense": 0, "cnn": 1, "bilstm": 2}
    return sorted(rows["model_id"], key=lambda m: order.get(m.split("-")[0], 9))


@st.cache_data(show_spinner=False, max_entries=16)
def model_curves(ref: StoreRef, run_id: str, family: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-batch, per-epoch) curves of every model of a family (fold models and the conventional one)."""
    pattern = f"{family}-%"
    batches = _query(ref, "SELECT model_id, step, epoch, loss, accuracy, lr FROM training_batches "
                          "WHERE run_id = ? AND model_id LIKE ? ORDER BY model_id, step", [run_id, pattern])
    epochs = _query(ref, "SELECT model_id, epoch, train_loss, train_accuracy, val_loss, val_accuracy "
                         "FROM training_epochs WHERE run_id = ? AND model_id LIKE ? ORDER BY model_id, epoch",
                    [run_id, pattern])
    return batches, epochs


@st.cache_data(show_spinner=False, max_entries=16)
def layer_stats(ref: StoreRef, run_id: str, model_id: str) -> pd.DataFrame:
    return _query(ref, "SELECT epoch, layer, quantity, n, mean, std, max_abs, norm, dead_fraction FROM layer_stats "
                       "WHERE run_id = ? AND model_id = ? ORDER BY epoch, layer, quantity", [run_id, model_id])


@st.cache_data(show_spinner=False, max_entries=32)
def layer_histograms(ref: StoreRef, run_id: str, model_id: str, layer: str, quantity: str) -> pd.DataFrame:
    return _query(ref, "SELECT epoch, bin, lo, hi, count FROM layer_histograms WHERE run_id = ? AND model_id = ? "
                       "AND layer = ? AND quantity = ? ORDER BY epoch, bin", [run_id, model_id, layer, quantity])


@st.cache_data(show_spinner=False, max_entries=16)
def information_plane(ref: StoreRef, run_id: str, model_id: str) -> pd.DataFrame:
    return _query(ref, "SELECT epoch, layer, i_xt, i_ty, bins, n_probe FROM information_plane "
                       "WHERE run_id = ? AND model_id = ? ORDER BY layer, epoch", [run_id, model_id])


# --- Experiments page ---

@st.cache_data(show_spinner=False)
def sweeps(ref: StoreRef) -> pd.DataFrame:
    return _query(ref, "SELECT sweep_id, started_at, seconds, quick, n_train, n_val FROM sweeps "
                       "ORDER BY started_at DESC")


@st.cache_data(show_spinner=False, max_entries=8)
def sweep_runs(ref: StoreRef, sweep_id: str) -> pd.DataFrame:
    return _query(ref, "SELECT run_no, activation, loss, hidden_units, hidden_layers, best_val_accuracy, best_epoch, "
                       "final_val_accuracy, final_val_loss, epochs, seconds FROM sweep_runs WHERE sweep_id = ? "
                       "ORDER BY best_val_accuracy DESC, run_no", [sweep_id])


@st.cache_data(show_spinner=False, max_entries=8)
def sweep_curves(ref: StoreRef, sweep_id: str) -> pd.DataFrame:
    return _query(ref, "SELECT run_no, epoch, train_loss, train_accuracy, val_loss, val_accuracy FROM sweep_curves "
                       "WHERE sweep_id = ? ORDER BY run_no, epoch", [sweep_id])


# --- Truncation page ---

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
               avg(((t.p_head >= 0.5)::INT = s.label)::INT) AS head,
               avg(((t.p_head_tail >= 0.5)::INT = s.label)::INT) AS head_tail,
               avg(((t.p_windows >= 0.5)::INT = s.label)::INT) AS whole_review,
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
def harmed(ref: StoreRef, run_id: str, family: str, limit: int = 200) -> pd.DataFrame:
    """The most harmed truncated reviews, most harmed first."""
    return _query(ref, """
        WITH top AS (SELECT * FROM truncation WHERE run_id = $run AND family = $family AND harm_rank IS NOT NULL
                     ORDER BY harm_rank LIMIT $limit)
        SELECT t.harm_rank, t.sample_id, s.label, s.rating, t.n_words, t.p_model, t.p_windows, t.harm,
               t.prediction_changes, left(s.preview, 120) AS preview
        FROM top t JOIN sample_summary s ON s.run_id = $run AND s.sample_id = t.sample_id
        ORDER BY t.harm_rank
    """, {"run": run_id, "family": family, "limit": limit})


@st.cache_data(show_spinner=False, max_entries=64)
def truncation_detail(ref: StoreRef, run_id: str, family: str, sample_id: str) -> dict | None:
    rows = _query(ref, """
        SELECT t.*, s.display_text, s.label, s.rating
        FROM (SELECT * FROM truncation WHERE run_id = $run AND family = $family AND sample_id = $sample) t,
             (SELECT display_text, label, rating FROM samples WHERE run_id = $run AND sample_id = $sample) s
    """, {"run": run_id, "family": family, "sample": sample_id})
    return None if rows.empty else rows.iloc[0].to_dict()
