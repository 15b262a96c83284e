"""Rank likely label errors from out-of-fold probabilities, with cleanlab.

``find_label_issues(labels, probs, ratings, *, classes, method=...)`` takes (N,) given
labels (class indices 0..K-1), (N, K) out-of-fold class probabilities and (N,) ratings
(NaN where there is none), and returns a frame in input order with ``ISSUE_COLUMNS``:

- ``label_score``: cleanlab's label quality score in [0, 1]; lower = more likely wrong;
- ``is_label_issue``: cleanlab's confident-learning flag (``filter.find_label_issues``);
- ``suggested_label``: the class the model believes (the most probable one);
- ``issue_rank``: 1 = the most suspect review (by ``label_score``);
- ``reason``: one line a person can read, naming the classes (and the rating, under
  ``rating_name``, where the data has one that is not the label itself; None leaves it out).

Methods (``METHODS``): ``self_confidence`` | ``normalized_margin`` |
``confidence_weighted_entropy`` rank by cleanlab.rank's score of that name;
``confident_learning`` ranks the reviews cleanlab's confident learning flags first
(most suspect first by self-confidence), then the rest, and its ``label_score`` is the
self-confidence. The rating itself is only used in the reason, never in the score: it is
what a reviewer checks the model against (the ``stacked`` source learns from the score
column only which class each score value belongs to, to read scores the texts state).

``SOURCES`` are the probabilities a run ranks: ``nblr`` (the linear model's),
``stacked`` (Lossmap's own families combined by a logistic regression on their
out-of-fold log-probabilities and, where the data has a score column, on the class of a
score the text states ("4/10"), itself cross-fitted on the run's folds, so that each
review's stacked probability still comes from models that never saw it; the weights
follow how well each input predicts the given labels), ``ensemble`` (the plain mean of
every family's, the user's own predictors included), or a user predictor's own:
``imported`` (``--predictions``) or ``onnx`` (``--model``); ``issue_probabilities`` picks
them. A user's predictor is left out of ``stacked``: it may have seen the texts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.models.outputs import predicted_class

METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy", "confident_learning")
SOURCES = ("stacked", "nblr", "ensemble", "imported", "onnx")
ISSUE_COLUMNS = ["label_score", "is_label_issue", "suggested_label", "issue_rank", "reason"]


def find_label_issues(labels, probs, ratings, *, classes, method: str = "self_confidence",
                      rating_name: str | None = "rating", model_name: str = "the model") -> pd.DataFrame:
    """Score, flag and rank every review; see the module doc."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    labels = np.asarray(labels, dtype=int)
    probs = np.asarray(probs, dtype=float)
    ratings = np.asarray(ratings, dtype=float)
    if probs.ndim != 2 or probs.shape[1] != len(classes) or len(classes) < 2:
        raise ValueError(f"probs must be (N, {len(classes)}), one column per class; got {probs.shape}")
    if not (len(labels) == len(probs) == len(ratings)):
        raise ValueError("labels, probs and ratings must have the same length")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"labels must be class indices 0..{len(classes) - 1}")
    if np.isnan(probs).any() or np.any((probs < 0) | (probs > 1)):
        raise ValueError("probs must lie in [0, 1]")
    if len(probs) and np.max(np.abs(probs.sum(axis=1) - 1)) > 1e-4:
        raise ValueError("each row of probs must sum to 1")
    return _find(labels, probs, ratings, tuple(classes), method, rating_name, model_name)


def issue_probabilities(oof: dict[str, np.ndarray], source: str, labels=None, folds=None,
                        stated=None) -> tuple[np.ndarray, tuple[str, ...]]:
    """((N, K) probabilities ranked, the families they came from: several, combined) from each family's
    probabilities (out of fold; a user's own as given). ``stacked`` needs the given labels and the folds, and
    takes ``stated``, the class of a score each text states (-1: none; analyses.evidence.stated_labels)."""
    if source not in SOURCES:
        raise ValueError(f"issue_source must be one of {', '.join(SOURCES)}; got {source!r}")
    if source in ("imported", "onnx"):
        if source not in oof:
            raise ValueError(f"issue_source {source!r} needs that predictor in the run")
        return oof[source], (source,)
    if source == "stacked":
        own = {f: p for f, p in oof.items() if f not in ("imported", "onnx")}
        if len(own) > 1:
            return stack(own, labels, folds, stated), tuple(own)
        source = "nblr"
    if source == "nblr" or len(oof) == 1:
        return oof["nblr"], ("nblr",)
    return np.mean(list(oof.values()), axis=0), tuple(oof)


def stack(oof: dict[str, np.ndarray], labels, folds, stated=None) -> np.ndarray:
    """(N, K) probabilities from a logistic regression over every family's log-probabilities (and, with ``stated``,
    which class a score stated in the text belongs to, one indicator per class), fitted on the given labels of the
    other folds for each fold's reviews (scikit-learn's stacking, on predictions we have). The weights, the text's
    stated score's included, are learnt from the given labels alone."""
    from sklearn.linear_model import LogisticRegression

    labels, folds = np.asarray(labels), np.asarray(folds)
    k = next(iter(oof.values())).shape[1]
    x = np.hstack([np.log(np.clip(p, 1e-6, 1.0)) for p in oof.values()])
    if stated is not None and (np.asarray(stated) >= 0).any():
        x = np.hstack([x, (np.asarray(stated)[:, None] == np.arange(k)).astype(float)])
    out = np.empty((len(labels), k))
    for fold in np.unique(folds):
        held, rest = folds == fold, folds != fold
        if len(np.unique(labels[rest])) < k:  # a class missing from the other folds: fall back to the mean
            out[held] = np.mean([p[held] for p in oof.values()], axis=0)
            continue
        model = LogisticRegression(C=1.0, max_iter=1000).fit(x[rest], labels[rest])
        out[held] = model.predict_proba(x[held])
    return out


def _find(labels, probs, ratings, classes, method, rating_name, model_name="the model") -> pd.DataFrame:
    from cleanlab.filter import find_label_issues as cl_find
    from cleanlab.rank import get_label_quality_scores

    score = get_label_quality_scores(
        labels, probs, method="self_confidence" if method == "confident_learning" else method)
    present = len(np.unique(labels)) == len(classes)
    if present and len(labels) >= 10:
        flagged = cl_find(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1)  # no forked pool: a child of
        # a process holding a Ray node ran Ray's SIGTERM handler when the pool ended it, and stopped the node
    else:  # confident learning needs every class present; fall back to disagreement
        flagged = probs.argmax(axis=1) != labels
    flagged = np.asarray(flagged, dtype=bool)
    suggested = predicted_class(probs)
    rank = np.empty(len(labels), dtype=np.int64)
    order = np.lexsort((score, ~flagged)) if method == "confident_learning" else np.argsort(score, kind="stable")
    rank[order] = np.arange(1, len(labels) + 1)
    reasons = [_reason(lab, p, r, classes, rating_name, model_name) for lab, p, r in zip(labels, probs, ratings)]
    return pd.DataFrame({
        "label_score": score, "is_label_issue": flagged, "suggested_label": suggested.astype("int16"),
        "issue_rank": rank, "reason": reasons,
    })


def _reason(label: int, p: np.ndarray, rating: float, classes: tuple[str, ...], rating_name: str | None,
            model_name: str = "the model") -> str:
    believed = int(predicted_class(p[None, :])[0])
    sure = float(p[believed])
    sure_text = "over 99%" if sure > 0.99 else f"{sure:.0%}"
    stars = "" if rating_name is None else f"; no {rating_name}" if np.isnan(rating) else f"; {rating_name} {rating:g}"
    several = model_name.startswith("the models ")  # "the models together (stacked)": a plural subject
    if believed != label:
        given = f"; {'they give' if several else 'it gives'} the label {p[label]:.0%}" if len(classes) > 2 else ""
        return (f"{model_name} {'are' if several else 'is'} {sure_text} sure this is {classes[believed]!r}, but it "
                f"is labeled {classes[label]!r}{given}{stars}")
    return f"{model_name} {'agree' if several else 'agrees'} it is {classes[label]!r} ({sure_text} sure){stars}"
