"""Rank likely label errors from out-of-fold probabilities, with cleanlab.

``find_label_issues(labels, p_pos, ratings, *, method=...)`` takes (N,) given labels
(0/1), (N,) out-of-fold probabilities of the positive label and (N,) star ratings,
and returns a frame in input order with ``ISSUE_COLUMNS``:

- ``label_score``: cleanlab's label quality score in [0, 1]; lower = more likely wrong;
- ``is_label_issue``: cleanlab's confident-learning flag (``filter.find_label_issues``);
- ``suggested_label``: the label the model believes;
- ``issue_rank``: 1 = the most suspect review (by ``label_score``);
- ``reason``: one line a person can read.

Methods: ``self_confidence`` | ``normalized_margin`` | ``confidence_weighted_entropy``
rank by cleanlab.rank's score of that name; ``confident_learning`` ranks the reviews
cleanlab's confident learning flags first (most suspect first by self-confidence),
then the rest, and its ``label_score`` is the self-confidence.
The rating is only used in the reason, never in the score: it is what a reviewer
checks the model against.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues as _cl_find
from cleanlab.rank import get_label_quality_scores

METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy", "confident_learning")
ISSUE_COLUMNS = ["label_score", "is_label_issue", "suggested_label", "issue_rank", "reason"]
_NAMES = ("negative", "positive")


def find_label_issues(labels, p_pos, ratings, *, method: str = "self_confidence") -> pd.DataFrame:
    """Score, flag and rank every review; see the module doc."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    labels = np.asarray(labels, dtype=int)
    p_pos = np.asarray(p_pos, dtype=float)
    ratings = np.asarray(ratings)
    if not (len(labels) == len(p_pos) == len(ratings)):
        raise ValueError("labels, p_pos and ratings must have the same length")
    if not set(np.unique(labels)) <= {0, 1}:
        raise ValueError("labels must be 0 or 1")
    if np.any((p_pos < 0) | (p_pos > 1)) or np.isnan(p_pos).any():
        raise ValueError("p_pos must lie in [0, 1]")
    return _find(labels, p_pos, ratings, method)


def _find(labels, p_pos, ratings, method) -> pd.DataFrame:
    probs = np.column_stack([1.0 - p_pos, p_pos])
    score = get_label_quality_scores(
        labels, probs, method="self_confidence" if method == "confident_learning" else method)
    if len(np.unique(labels)) == 2 and len(labels) >= 10:
        flagged = _cl_find(labels, probs, filter_by="prune_by_noise_rate")
    else:  # confident learning needs both classes; fall back to disagreement
        flagged = (p_pos >= 0.5).astype(int) != labels
    flagged = np.asarray(flagged, dtype=bool)
    suggested = (p_pos >= 0.5).astype(int)
    rank = np.empty(len(labels), dtype=np.int64)
    order = np.lexsort((score, ~flagged)) if method == "confident_learning" else np.argsort(score, kind="stable")
    rank[order] = np.arange(1, len(labels) + 1)
    reasons = [_reason(lab, p, r) for lab, p, r in zip(labels, p_pos, ratings)]
    return pd.DataFrame({
        "label_score": score, "is_label_issue": flagged.astype(bool), "suggested_label": suggested.astype("int8"),
        "issue_rank": rank, "reason": reasons,
    })


def _reason(label: int, p_pos: float, rating) -> str:
    believed = int(p_pos >= 0.5)
    sure = max(p_pos, 1.0 - p_pos)
    sure_text = "over 99%" if sure > 0.99 else f"{sure:.0%}"
    stars = f"the rating is {int(rating)}/10" if pd.notna(rating) else "there is no rating"
    if believed != label:
        return f"the model is {sure_text} sure this is {_NAMES[believed]}, but it is labeled {_NAMES[label]}; {stars}"
    return f"the model agrees it is {_NAMES[label]} ({sure_text} sure); {stars}"
