"""Queries over the run's texts: filtered and sorted pages, suspects, one text's detail, its neighbours, the loss and class figures of Overview."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from pages.common.queries.base import SPACE, StoreRef, _query
from pipeline.names import FAMILIES, PROTOCOLS


_SUMMARY_COLUMNS = ("sample_id, path, split, label, rating, n_words, p_given, pred_label, p_pred, loss, margin, "
                    "correct, label_score, is_label_issue, suggested_label, issue_rank, reason, cluster, preview, "
                    "suggestion")


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


@st.cache_data(show_spinner=False, max_entries=256)
def sample_detail(ref: StoreRef, run_id: str, sample_id: str) -> dict | None:
    rows = _query(ref, f"""
        SELECT t.display_text, m.* FROM
            (SELECT {_SUMMARY_COLUMNS} FROM sample_summary WHERE run_id = $run AND sample_id = $sample) m,
            (SELECT display_text FROM samples WHERE run_id = $run AND sample_id = $sample) t
    """, {"run": run_id, "sample": sample_id})
    return None if rows.empty else rows.iloc[0].to_dict()


@st.cache_data(show_spinner=False, max_entries=256)
def evidence(ref: StoreRef, run_id: str, sample_id: str) -> dict | None:
    """The evidence stored beside one text's rank (label_issues, analyses.evidence); None when the run has no row
    for it. Runs written before schema version 7 have every field None."""
    rows = _query(ref, "SELECT n_models, models_disagree, neighbours_disagree, stated_label, stated_text, "
                       "duplicate_of, is_outlier, outlier_score, sentence_mix, suggestion, ambiguity FROM label_issues "
                       "WHERE run_id = ? AND sample_id = ?", [run_id, sample_id])
    if rows.empty:
        return None
    return {k: (None if not isinstance(v, (str, list)) and pd.isna(v) else v) for k, v in rows.iloc[0].items()}


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


@st.cache_data(show_spinner=False, max_entries=64)
def occlusion(ref: StoreRef, run_id: str, model_id: str, text: str, target: int) -> tuple[pd.DataFrame, float]:
    """(one row per word: token, start, value, read; the model's probability of ``target``) for a stored network's
    reading of ``text``, by occlusion through its ONNX file (``pipeline.analyses.attribution``); the file is checked
    against the run's sha256 first (ModelFileError when it was changed or removed)."""
    from pathlib import Path

    from pipeline.analyses.attribution import occlusion as occlude
    from pipeline.models.score import load_stored

    words = occlude(load_stored(Path(ref.path), run_id, model_id, device="cpu"), text, target)
    return words, words.attrs["p_target"]
