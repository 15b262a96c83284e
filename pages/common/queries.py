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

from pages.common.widgets import visible
from pipeline.names import FAMILIES, PROTOCOLS, TEXT_SPACE as SPACE, predictor_name
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


_SUMMARY_COLUMNS = ("sample_id, path, split, label, rating, n_words, p_given, pred_label, p_pred, loss, margin, "
                    "correct, label_score, is_label_issue, suggested_label, issue_rank, reason, cluster, preview")


@dataclasses.dataclass(frozen=True)
class SampleFilter:
    """What the Samples page shows; every field becomes a bound value of one WHERE clause."""

    splits: tuple[str, ...] = ()
    labels: tuple[int, ...] = ()
    preds: tuple[int, ...] = ()
    outcome: str = "all"  # all | correct | incorrect
    rating: tuple[float, float] | None = None  # None: no rating filter (the run may have no rating)
    loss: tuple[float, float | None] = (0.0, None)
    words: tuple[int, int | None] = (0, None)
    clusters: tuple[int, ...] = ()
    cluster_space: str = SPACE  # whose map's clusters ``clusters`` are (pipeline.names spaces)
    flagged: bool = False
    search: str = ""  # literal, case-insensitive
    only_ids: tuple[str, ...] | None = None  # e.g. the reviews with one decision
    except_ids: tuple[str, ...] = ()  # e.g. the reviews already decided
    meta_values: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (metadata column, values kept)
    meta_ranges: tuple[tuple[str, float, float], ...] = ()  # (numeric metadata column, lo, hi)


def _where(f: SampleFilter) -> tuple[str, dict]:
    """A WHERE clause over sample_summary built from fixed fragments, with every value bound."""
    sql = ["run_id = $run", "loss >= $l0", "n_words >= $w0"]
    params = {"l0": f.loss[0], "w0": f.words[0]}
    for i, (name, values) in enumerate(f.meta_values):  # parameter names from the position, values bound
        sql.append(f"sample_id IN (SELECT sample_id FROM sample_meta WHERE run_id = $run AND name = $mn{i} "
                   f"AND list_contains($mv{i}, value))")
        params |= {f"mn{i}": name, f"mv{i}": list(values)}
    for i, (name, lo, hi) in enumerate(f.meta_ranges):
        sql.append(f"sample_id IN (SELECT sample_id FROM sample_meta WHERE run_id = $run AND name = $rn{i} "
                   f"AND number BETWEEN $rlo{i} AND $rhi{i})")
        params |= {f"rn{i}": name, f"rlo{i}": lo, f"rhi{i}": hi}
    optional = [
        (f.rating is not None, "rating BETWEEN $r0 AND $r1", ("r0", "r1"), f.rating),
        (f.splits, "list_contains($splits, split)", "splits", list(f.splits)),
        (f.labels, "list_contains($labels, label)", "labels", list(f.labels)),
        (f.preds, "list_contains($preds, pred_label)", "preds", list(f.preds)),
        (f.outcome in ("correct", "incorrect"), "correct = $correct", "correct", f.outcome == "correct"),
        (f.loss[1] is not None, "loss <= $l1", "l1", f.loss[1]),
        (f.words[1] is not None, "n_words <= $w1", "w1", f.words[1]),
        (f.clusters and f.cluster_space == SPACE, "list_contains($clusters, cluster)", "clusters", list(f.clusters)),
        (f.clusters and f.cluster_space != SPACE, "sample_id IN (SELECT sample_id FROM map_points WHERE run_id = $run "
         "AND space = $cspace AND list_contains($clusters, cluster))", ("clusters", "cspace"),
         (list(f.clusters), f.cluster_space)),
        (f.flagged, "is_label_issue", None, None),
        (f.search.strip(), "contains(search_text, lower($search))", "search", f.search.strip()),
        (f.only_ids is not None, "sample_id IN (SELECT unnest($only::VARCHAR[]))", "only", list(f.only_ids or ())),
        (f.except_ids, "sample_id NOT IN (SELECT unnest($except::VARCHAR[]))", "except", list(f.except_ids)),
    ]
    for wanted, fragment, name, value in optional:
        if wanted:
            sql.append(fragment)
            if isinstance(name, tuple):
                params |= dict(zip(name, value))
            elif name:
                params[name] = value
    return " AND ".join(sql), params


@st.cache_data(show_spinner=False, max_entries=64)
def sample_count(ref: StoreRef, run_id: str, f: SampleFilter) -> int:
    """How many reviews pass ``f``."""
    where, params = _where(f)
    return int(_query(ref, f"SELECT count(*) AS n FROM sample_summary WHERE {where}", params | {"run": run_id})
               ["n"].iloc[0])


# What the Samples page can sort by: column shown -> the SQL expression (identifiers from here only).
SORTABLE = {
    "sample_id": "sample_id", "split": "split", "label": "label", "pred_label": "pred_label", "rating": "rating",
    "p_given": "p_given", "loss": "loss", "n_words": "n_words", "cluster": "cluster",
    "is_label_issue": "is_label_issue", "status": "coalesce(d.status, 'undecided')",
    "preview": "lower(ltrim(preview, E' \\t\\n\\r'))",
}


@dataclasses.dataclass(frozen=True)
class SampleOrder:
    """How the Samples page orders the whole filtered set: a column of ``SORTABLE``, descending or not.
    ``decided`` holds (sample_id, decision) pairs, needed only to sort by review status."""

    column: str = "loss"
    descending: bool = True
    decided: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        if self.column not in SORTABLE:
            raise ValueError(f"cannot sort by {self.column!r}; sortable: {', '.join(SORTABLE)}")


@st.cache_data(show_spinner=False, max_entries=64)
def sample_page(ref: StoreRef, run_id: str, f: SampleFilter, offset: int = 0, limit: int = 100,
                order: SampleOrder = SampleOrder()) -> pd.DataFrame:
    """One page of the reviews that pass ``f``, in ``order`` over all of them (ties: highest loss, then id)."""
    where, params = _where(f)
    direction = "DESC" if order.descending else "ASC"
    status = ""
    if order.column == "status":
        status = ("LEFT JOIN (SELECT unnest($dids::VARCHAR[]) AS sample_id, unnest($dvals::VARCHAR[]) AS status) d "
                  "USING (sample_id)")
        params |= {"dids": [i for i, _ in order.decided], "dvals": [v for _, v in order.decided]}
    return _query(ref, f"SELECT {_SUMMARY_COLUMNS} FROM sample_summary {status} WHERE {where} "
                       f"ORDER BY {SORTABLE[order.column]} {direction} NULLS LAST, loss DESC, sample_id "
                       "LIMIT $limit OFFSET $offset",
                  params | {"run": run_id, "limit": limit, "offset": offset})


@st.cache_data(show_spinner=False, max_entries=8)
def filter_bounds(ref: StoreRef, run_id: str) -> dict:
    """Ranges and choices for the Samples filters: max loss, max words, cluster ids, splits, the rating's range."""
    row = _query(ref, "SELECT max(loss) AS loss, max(n_words) AS words, list(DISTINCT cluster ORDER BY cluster) "
                      "FILTER (WHERE cluster IS NOT NULL) AS clusters, list(DISTINCT split ORDER BY split) FILTER "
                      "(WHERE split IS NOT NULL) AS splits, min(rating) AS r0, max(rating) AS r1, "
                      "bool_and(rating = round(rating)) AS whole FROM sample_summary WHERE run_id = ?",
                 [run_id]).iloc[0]

    def listed(value):
        return [] if value is None or value is pd.NA or isinstance(value, float) else list(value)

    rating = None if pd.isna(row["r0"]) else (float(row["r0"]), float(row["r1"]))
    if rating and bool(row["whole"]):
        rating = (int(rating[0]), int(rating[1]))
    return {"loss": float(row["loss"] or 0.0), "words": int(row["words"] or 0),
            "clusters": [int(c) for c in listed(row["clusters"])], "splits": [str(s) for s in listed(row["splits"])],
            "rating": rating}


@st.cache_data(show_spinner=False, max_entries=8)
def meta_columns(ref: StoreRef, run_id: str) -> pd.DataFrame:
    """The data's other columns: name, kind ('category' | 'number' | 'text'), n_distinct, lo, hi."""
    return _query(ref, "SELECT name, kind, n_distinct, lo, hi FROM meta_columns WHERE run_id = ? ORDER BY position",
                  [run_id])


@st.cache_data(show_spinner=False, max_entries=32)
def meta_values(ref: StoreRef, run_id: str, name: str) -> list[str]:
    """The values of a category column, most common first."""
    return _query(ref, "SELECT value, count(*) AS n FROM sample_meta WHERE run_id = ? AND name = ? AND value IS NOT "
                       "NULL GROUP BY value ORDER BY n DESC, value", [run_id, name])["value"].tolist()


@st.cache_data(show_spinner=False, max_entries=256)
def sample_meta(ref: StoreRef, run_id: str, sample_id: str) -> pd.DataFrame:
    """One review's metadata: column, value."""
    return _query(ref, "SELECT m.name AS column, coalesce(m.value, '') AS value FROM sample_meta m JOIN meta_columns c "
                       "ON c.run_id = m.run_id AND c.name = m.name WHERE m.run_id = ? AND m.sample_id = ? "
                       "ORDER BY c.position", [run_id, sample_id])


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
def confusion(ref: StoreRef, run_id: str) -> pd.DataFrame:
    """Given label x out-of-fold predicted label of the linear model, every pair of classes (0 where none):
    label, pred_label, reviews."""
    return _query(ref, """
        WITH counts AS (SELECT label, pred_label, count(*) AS reviews FROM sample_summary WHERE run_id = $run
                        GROUP BY ALL)
        SELECT g.class AS label, p.class AS pred_label, coalesce(c.reviews, 0) AS reviews
        FROM classes g JOIN classes p ON p.run_id = g.run_id
        LEFT JOIN counts c ON c.label = g.class AND c.pred_label = p.class
        WHERE g.run_id = $run ORDER BY ALL
    """, {"run": run_id})


@st.cache_data(show_spinner=False, max_entries=8)
def per_class(ref: StoreRef, run_id: str) -> pd.DataFrame:
    """Per given class: reviews, recall (share predicted as it), precision of predicting it, mean loss, flagged."""
    return _query(ref, """
        WITH given AS (SELECT label AS class, count(*) AS reviews, avg(correct::INT) AS recall, avg(loss) AS mean_loss,
                              avg(is_label_issue::INT) AS share_flagged
                       FROM sample_summary WHERE run_id = $run GROUP BY label),
             predicted AS (SELECT pred_label AS class, avg(correct::INT) AS precision, count(*) AS predicted
                           FROM sample_summary WHERE run_id = $run GROUP BY pred_label)
        SELECT c.class, c.name, coalesce(g.reviews, 0) AS reviews, g.recall, p.precision, coalesce(p.predicted, 0)
               AS predicted, g.mean_loss, g.share_flagged
        FROM classes c LEFT JOIN given g USING (class) LEFT JOIN predicted p USING (class)
        WHERE c.run_id = $run ORDER BY c.class
    """, {"run": run_id})


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
    """Every stored predictor's view of one review: family, protocol, model_id, name (models.name, see
    ``predictor_labels``), probs, p_given, pred_label, loss, seen_in_training."""
    return _query(ref, "SELECT p.family, p.protocol, p.model_id, m.name, p.probs, p.p_given, p.pred_label, p.loss, "
                       "p.seen_in_training FROM predictions p "
                       "LEFT JOIN models m ON m.run_id = p.run_id AND m.model_id = p.model_id "
                       "WHERE p.run_id = ? AND p.sample_id = ? "
                       "ORDER BY list_position(?, p.family), list_position(?, p.protocol)",
                  [run_id, sample_id, list(FAMILIES), list(PROTOCOLS)])


@st.cache_data(show_spinner=False, max_entries=256)
def shap_classes(ref: StoreRef, run_id: str, sample_id: str) -> list[int]:
    """The classes whose SHAP values are stored for a review (class 1 only, for two classes)."""
    return _query(ref, "SELECT DISTINCT class FROM shap_tokens WHERE run_id = ? AND sample_id = ? ORDER BY class",
                  [run_id, sample_id])["class"].tolist()


@st.cache_data(show_spinner=False, max_entries=256)
def shap_tokens(ref: StoreRef, run_id: str, sample_id: str, class_: int) -> pd.DataFrame:
    return _query(ref, "SELECT rank, kind, token, shap_value FROM shap_tokens "
                       "WHERE run_id = ? AND sample_id = ? AND class = ? ORDER BY rank", [run_id, sample_id, class_])


@st.cache_data(show_spinner=False, max_entries=16)
def neighbour_spaces(ref: StoreRef, run_id: str) -> list[str]:
    """The spaces whose neighbours the run stored: the TF-IDF one first, then a user's own embedding."""
    return _query(ref, "SELECT DISTINCT space FROM neighbours WHERE run_id = ? ORDER BY space <> ?, space",
                  [run_id, SPACE])["space"].tolist()


@st.cache_data(show_spinner=False, max_entries=256)
def neighbours(ref: StoreRef, run_id: str, sample_id: str, space: str = SPACE) -> pd.DataFrame:
    """The review's nearest reviews by cosine similarity of their embeddings in ``space`` (stored by the pipeline)."""
    return _query(ref, """
        WITH near AS (SELECT neighbour_id, similarity, rank FROM neighbours
                      WHERE run_id = $run AND space = $space AND sample_id = $sample)
        SELECT s.sample_id, s.label, s.rating, s.pred_label, s.loss, near.similarity, s.preview
        FROM near JOIN sample_summary s ON s.run_id = $run AND s.sample_id = near.neighbour_id
        ORDER BY near.rank
    """, {"run": run_id, "space": space, "sample": sample_id})


@st.cache_data(show_spinner=False, max_entries=8)
def clusters(ref: StoreRef, run_id: str, space: str = SPACE) -> pd.DataFrame:
    return _query(ref, "SELECT cluster, size, accuracy, mean_loss, share_flagged, top_label, share_top, top_terms "
                       "FROM clusters WHERE run_id = ? AND space = ? ORDER BY cluster", [run_id, space])


@st.cache_data(show_spinner=False, max_entries=8)
def loss_by_rating(ref: StoreRef, run_id: str) -> pd.DataFrame:
    """Loss per rating value (or per 20 equal-width bins of it, when it has more than 30 values); empty without one."""
    return _query(ref, """
        WITH r AS (SELECT min(rating) AS lo, max(rating) AS hi, count(DISTINCT rating) AS n
                   FROM sample_summary WHERE run_id = $run),
             binned AS (SELECT CASE WHEN r.n <= 30 THEN s.rating
                                    ELSE r.lo + least(floor((s.rating - r.lo) / ((r.hi - r.lo) / 20)), 19)
                                         * ((r.hi - r.lo) / 20) END AS rating, s.loss
                        FROM sample_summary s, r WHERE s.run_id = $run AND s.rating IS NOT NULL)
        SELECT rating, count(*) AS reviews, avg(loss) AS mean_loss, stddev_samp(loss) AS std_loss,
               quantile_cont(loss, 0.25) AS q25, quantile_cont(loss, 0.75) AS q75
        FROM binned GROUP BY rating ORDER BY rating
    """, {"run": run_id})


_REFERENCE = "model_id IN (SELECT model_id FROM models WHERE run_id = $run AND reference)"


@st.cache_data(show_spinner=False, max_entries=8)
def training_batches(ref: StoreRef, run_id: str) -> pd.DataFrame:
    """Per-batch loss and accuracy of the reference networks (empty when the run has no telemetry)."""
    return _query(ref, f"SELECT model_id, step, epoch, loss, accuracy FROM training_batches "
                       f"WHERE run_id = $run AND {_REFERENCE} ORDER BY model_id, step", {"run": run_id})


@st.cache_data(show_spinner=False, max_entries=8)
def training_epochs(ref: StoreRef, run_id: str) -> pd.DataFrame:
    return _query(ref, f"SELECT model_id, epoch, train_loss, train_accuracy, val_loss, val_accuracy "
                       f"FROM training_epochs WHERE run_id = $run AND {_REFERENCE} ORDER BY model_id, epoch",
                  {"run": run_id})


# --- Training page ---

@st.cache_data(show_spinner=False, max_entries=8)
def telemetry_models(ref: StoreRef, run_id: str) -> pd.DataFrame:
    """The reference networks (per-layer telemetry), in training order: model_id, family, role."""
    return _query(ref, "SELECT model_id, family, role FROM models WHERE run_id = ? AND reference "
                       "ORDER BY list_position(?, family)", [run_id, list(FAMILIES)])


@st.cache_data(show_spinner=False, max_entries=16)
def model_curves(ref: StoreRef, run_id: str, family: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-batch, per-epoch) curves of every model of a family (fold models and the conventional one)."""
    models = "model_id IN (SELECT model_id FROM models WHERE run_id = $run AND family = $family)"
    params = {"run": run_id, "family": family}
    batches = _query(ref, f"SELECT model_id, step, epoch, loss, accuracy, lr FROM training_batches "
                          f"WHERE run_id = $run AND {models} ORDER BY model_id, step", params)
    epochs = _query(ref, f"SELECT model_id, epoch, train_loss, train_accuracy, val_loss, val_accuracy "
                         f"FROM training_epochs WHERE run_id = $run AND {models} ORDER BY model_id, epoch", params)
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


# --- Models page: every stored predictor, a (family, protocol) pair of `predictions` ---

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


# --- Compare runs page: two runs, on the texts both hold (the same sample_id) ---

_SHARED = ("SELECT a.sample_id FROM sample_summary a JOIN sample_summary b ON b.run_id = $b "
           "AND b.sample_id = a.sample_id WHERE a.run_id = $a")


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
    where = ("FROM sample_summary a JOIN sample_summary b ON b.run_id = $b AND b.sample_id = a.sample_id "
             "WHERE a.run_id = $a AND a.pred_label <> b.pred_label")
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
        WHERE a.run_id = $a AND a.pred_label <> b.pred_label
        GROUP BY ALL ORDER BY min(a.pred_label), min(b.pred_label), outcome
    """, {"a": run_a, "b": run_b})


@st.cache_data(show_spinner=False, max_entries=16)
def rank_moves(ref: StoreRef, run_a: str, run_b: str, limit: int = 100) -> pd.DataFrame:
    """The shared texts whose label-issue rank moved most between the runs: sample_id, rank_a, rank_b, moved
    (rank_a - rank_b: > 0 = more suspect in run B), flagged_a, flagged_b, label_b (run B's class name), preview."""
    return _query(ref, """
        SELECT a.sample_id, a.issue_rank AS rank_a, b.issue_rank AS rank_b, a.issue_rank - b.issue_rank AS moved,
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
