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

from pipeline.store import cursor as store_cursor
from pipeline.store import open_readonly

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


_SAMPLE_VIEW = """
    SELECT s.sample_id, s.path, s.split, s.label, s.rating, s.movie_id, s.n_words, s.fold,
           p.p_pos, p.pred_label, p.loss, p.margin, p.pred_label = s.label AS correct,
           i.label_score, i.is_label_issue, i.suggested_label, i.issue_rank, i.reason,
           e.x, e.y, e.cluster
    FROM samples s
    JOIN predictions p ON p.run_id = s.run_id AND p.sample_id = s.sample_id AND p.predictor = $oof
    JOIN label_issues i ON i.run_id = s.run_id AND i.sample_id = s.sample_id
    LEFT JOIN embeddings e ON e.run_id = s.run_id AND e.sample_id = s.sample_id AND e.space = $space
    WHERE s.run_id = $run
"""


def predictor_for(space: str) -> str:
    """The out-of-fold predictions shown with a map: the network's own for '<family>-hidden'."""
    return f"{space.removesuffix('-hidden')}-oof" if space.endswith("-hidden") else OOF


@st.cache_data(show_spinner=False, max_entries=8)
def sample_table(ref: StoreRef, run_id: str, space: str = SPACE) -> pd.DataFrame:
    """One row per review with its out-of-fold prediction, issue columns and map position (no text).

    ``space``: which embedding's map and clusters; a network's space brings that
    network's out-of-fold predictions with it.
    """
    return _query(ref, _SAMPLE_VIEW + " ORDER BY p.loss DESC",
                  {"run": run_id, "oof": predictor_for(space), "space": space})


@st.cache_data(show_spinner=False, max_entries=8)
def spaces(ref: StoreRef, run_id: str) -> list[str]:
    """Embedding spaces of a run, the TF-IDF one first."""
    rows = _query(ref, "SELECT DISTINCT space FROM clusters WHERE run_id = ? ORDER BY space <> ?, space",
                  [run_id, SPACE])
    return rows["space"].tolist()


@st.cache_data(show_spinner=False, max_entries=64)
def search_text(ref: StoreRef, run_id: str, needle: str) -> set[str]:
    """sample_ids whose review contains ``needle`` (case-insensitive, literal)."""
    rows = _query(ref, "SELECT sample_id FROM samples WHERE run_id = ? AND contains(lower(display_text), lower(?))",
                  [run_id, needle])
    return set(rows["sample_id"])


@st.cache_data(show_spinner=False, max_entries=256)
def sample_detail(ref: StoreRef, run_id: str, sample_id: str) -> dict | None:
    rows = _query(ref, _SAMPLE_VIEW.replace("SELECT s.sample_id", "SELECT s.display_text, s.sample_id")
                  + " AND s.sample_id = $sample", {"run": run_id, "oof": OOF, "space": SPACE, "sample": sample_id})
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
def top_tokens_for(ref: StoreRef, run_id: str, sample_ids: tuple[str, ...], k: int = 6) -> pd.DataFrame:
    """The k strongest n-grams of each review, for lists of suspects."""
    return _query(ref, "SELECT sample_id, rank, token, shap_value FROM shap_tokens "
                       "WHERE run_id = ? AND kind = 'token' AND rank <= ? AND list_contains(?, sample_id) "
                       "ORDER BY sample_id, rank", [run_id, k, list(sample_ids)])


@st.cache_data(show_spinner=False, max_entries=256)
def neighbours(ref: StoreRef, run_id: str, sample_id: str, k: int = 10) -> pd.DataFrame:
    """The k nearest reviews by cosine similarity of their embeddings."""
    return _query(ref, """
        WITH me AS (SELECT vector FROM embeddings WHERE run_id = $run AND space = $space AND sample_id = $sample)
        SELECT e.sample_id, s.label, s.rating, p.pred_label, p.loss,
               list_cosine_similarity(e.vector, me.vector) AS similarity, left(s.display_text, 160) AS preview
        FROM embeddings e, me
        JOIN samples s ON s.run_id = $run AND s.sample_id = e.sample_id
        JOIN predictions p ON p.run_id = $run AND p.sample_id = e.sample_id AND p.predictor = $oof
        WHERE e.run_id = $run AND e.space = $space AND e.sample_id <> $sample
        ORDER BY similarity DESC LIMIT $k
    """, {"run": run_id, "space": SPACE, "sample": sample_id, "oof": OOF, "k": k})


@st.cache_data(show_spinner=False, max_entries=8)
def previews(ref: StoreRef, run_id: str, sample_ids: tuple[str, ...], chars: int = 100) -> pd.DataFrame:
    return _query(ref, "SELECT sample_id, left(display_text, ?) AS preview FROM samples "
                       "WHERE run_id = ? AND list_contains(?, sample_id)", [chars, run_id, list(sample_ids)])


@st.cache_data(show_spinner=False, max_entries=8)
def clusters(ref: StoreRef, run_id: str, space: str = SPACE) -> pd.DataFrame:
    return _query(ref, """
        SELECT c.cluster, c.size, avg((p.pred_label = s.label)::INT) AS accuracy, avg(p.loss) AS mean_loss,
               avg(i.is_label_issue::INT) AS share_flagged, avg(s.label) AS share_positive, c.top_terms
        FROM clusters c
        JOIN embeddings e ON e.run_id = c.run_id AND e.space = c.space AND e.cluster = c.cluster
        JOIN samples s ON s.run_id = e.run_id AND s.sample_id = e.sample_id
        JOIN predictions p ON p.run_id = e.run_id AND p.sample_id = e.sample_id AND p.predictor = $oof
        JOIN label_issues i ON i.run_id = e.run_id AND i.sample_id = e.sample_id
        WHERE c.run_id = $run AND c.space = $space
        GROUP BY c.cluster, c.size, c.top_terms ORDER BY c.cluster
    """, {"run": run_id, "space": space, "oof": predictor_for(space)})


@st.cache_data(show_spinner=False, max_entries=8)
def loss_by_rating(ref: StoreRef, run_id: str) -> pd.DataFrame:
    return _query(ref, """
        SELECT s.rating, count(*) AS reviews, avg(p.loss) AS mean_loss, stddev_samp(p.loss) AS std_loss,
               quantile_cont(p.loss, 0.25) AS q25, quantile_cont(p.loss, 0.75) AS q75
        FROM samples s JOIN predictions p ON p.run_id = s.run_id AND p.sample_id = s.sample_id AND p.predictor = $oof
        WHERE s.run_id = $run GROUP BY s.rating ORDER BY s.rating
    """, {"run": run_id, "oof": OOF})


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
        FROM truncation t JOIN samples s ON s.run_id = t.run_id AND s.sample_id = t.sample_id
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
        SELECT t.harm_rank, t.sample_id, s.label, s.rating, t.n_words, t.p_model, t.p_windows, t.harm,
               t.prediction_changes, left(s.display_text, 120) AS preview
        FROM truncation t JOIN samples s ON s.run_id = t.run_id AND s.sample_id = t.sample_id
        WHERE t.run_id = ? AND t.family = ? AND t.harm_rank IS NOT NULL
        ORDER BY t.harm_rank LIMIT ?
    """, [run_id, family, limit])


@st.cache_data(show_spinner=False, max_entries=64)
def truncation_detail(ref: StoreRef, run_id: str, family: str, sample_id: str) -> dict | None:
    rows = _query(ref, """
        SELECT t.*, s.display_text, s.label, s.rating FROM truncation t
        JOIN samples s ON s.run_id = t.run_id AND s.sample_id = t.sample_id
        WHERE t.run_id = ? AND t.family = ? AND t.sample_id = ?
    """, [run_id, family, sample_id])
    return None if rows.empty else rows.iloc[0].to_dict()
