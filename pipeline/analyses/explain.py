"""SHAP token attributions for the linear model, with shap.LinearExplainer.

``explain(model, corpus, rows, *, top_k, output=0)`` explains one output of ``model``
(the log-odds of class 1 for two classes; the softmax input of class ``output`` for
more) for each review in ``rows`` (interventional SHAP, background = the model's
training rows) and returns a long frame, ``EXPLAIN_COLUMNS``, plus the base value:

- one row per n-gram for the ``top_k`` n-grams of the review by |SHAP value|
  (``kind = 'token'``, ``rank`` 1..k, ``token``, ``feature_value`` = its scaled
  TF-IDF value, ``shap_value`` in logit units);
- one ``kind = 'other_present'`` row: the sum over the review's remaining n-grams;
- one ``kind = 'absent'`` row: the sum over every vocabulary n-gram the review
  does not contain (each is -coef * mean, small but many).

So for every review: sum(shap_value) + base_value = the model's logit, exactly up
to float rounding (checked in tests/pipeline/analyses/test_explain.py).

shap's sparse path densifies the whole (rows x vocabulary) block, about 500 s for
50,000 reviews over 270,000 n-grams. Because absent features contribute the same
-coef * mean to every review, each block is explained by a LinearExplainer over
the block's own columns only, and the rest is added as one constant: the same
values, about fifteen times faster (about 35 s for 50,000 reviews here).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shap

from pipeline.engine import BLOCK_ROWS, by_group, spans
from pipeline.models.linear import LinearTextModel
from pipeline.models.text import Corpus

EXPLAIN_COLUMNS = ["row", "kind", "rank", "token", "feature_value", "shap_value"]
_BLOCK = 64  # reviews per block: small blocks keep the dense union of columns small
_BATCH_ROWS = 1024  # reviews per batch of the engine (a Ray Data batch)


def explain(model: LinearTextModel, corpus: Corpus, rows: np.ndarray, *, top_k: int = 30,
            output: int = 0, mean: np.ndarray | None = None) -> tuple[pd.DataFrame, float]:
    """(attributions frame, base value) for ``rows`` of the corpus; see module doc."""
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if not 0 <= output < model.clf.coef_.shape[0]:
        raise ValueError(f"output must lie in [0, {model.clf.coef_.shape[0] - 1}], got {output}")
    rows = np.asarray(rows)
    mean = _background_mean(model, corpus) if mean is None else mean
    coef = model.clf.coef_[output]
    base = float(coef @ mean + model.clf.intercept_[output])
    return _explain(model, corpus, rows, coef, mean, top_k), base


def explain_folds(models: list[LinearTextModel], corpus: Corpus, folds: np.ndarray, labels: np.ndarray,
                  predicted: np.ndarray, *, top_k: int, progress: bool = False,
                  engine=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(attributions with ``row``, ``model_id``, ``class``; base values per model and class); see module doc.

    Each fold model explains its held-out rows. Through ``engine`` (``pipeline.engine``; this process when None):
    the background means, one job per fold model; then the reviews, a batch at a time (``map_batches``: on Ray, a
    pool of actors, so the work spreads over more workers than there are folds)."""
    from pipeline.engine import LocalEngine

    engine = engine or LocalEngine()
    folds, labels, predicted = np.asarray(folds), np.asarray(labels), np.asarray(predicted)
    means = engine.map(_fold_mean, corpus, models, desc="explain: background", progress=progress)
    jobs, bases = [], []
    for k, (model, mean) in enumerate(zip(models, means)):
        held = np.flatnonzero(folds == k)
        if model.n_classes == 2:
            targets = [(0, 1, held)]
        else:
            targets = [(c, c, held[(labels[held] == c) | (predicted[held] == c)]) for c in range(model.n_classes)]
        for output, cls, rows in targets:
            jobs.append(pd.DataFrame({"model": k, "output": output, "class": cls, "row": rows}))
            bases.append({"model_id": model.model_id, "class": cls,
                          "base_value": float(model.clf.coef_[output] @ mean + model.clf.intercept_[output])})
    found = engine.map_batches(_Explainer, (corpus, models, means, top_k), pd.concat(jobs, ignore_index=True),
                               desc="explain (SHAP)", batch_rows=_BATCH_ROWS, progress=progress)
    if not len(found):
        found = pd.DataFrame(columns=EXPLAIN_COLUMNS + ["model_id", "class"])
    return found.drop(columns="job", errors="ignore"), pd.DataFrame(bases)


def _fold_mean(corpus: Corpus, model: LinearTextModel) -> np.ndarray:
    """One fold model's background mean (one engine job)."""
    return _background_mean(model, corpus)


class _Explainer:
    """A batch worker (``engine.map_batches``): explains each job's review by its fold model and output."""

    def __init__(self, shared):
        self.corpus, self.models, self.means, self.top_k = shared

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return by_group(batch, ["model", "output", "class"], self._explain)

    def _explain(self, key, rows: np.ndarray) -> pd.DataFrame:
        k, output, cls = key
        model = self.models[k]
        found = _explain(model, self.corpus, rows, model.clf.coef_[output], self.means[k], self.top_k)
        return found.assign(model_id=model.model_id, **{"class": cls})


def _background_mean(model: LinearTextModel, corpus: Corpus) -> np.ndarray:
    """The mean feature vector of every training row of the model: the interventional background. Summed a block of
    rows at a time (``engine.BLOCK_ROWS``), in float64. (Given the rows themselves, shap.LinearExplainer would average
    a random 100 of them: its Independent masker's ``max_samples``.)"""
    rows, width = model.train_rows, len(model.columns)
    total = sum(_column_sums(model.features(corpus, rows[start:stop]), width)
                for start, stop in spans(len(rows), BLOCK_ROWS))
    return total / len(rows)


def _column_sums(x, width: int) -> np.ndarray:
    """Each column's sum, added up in float64 (scipy's sum of float32 features adds in float32)."""
    return np.bincount(x.indices, weights=x.data.astype(np.float64), minlength=width)


def _explain(model, corpus, rows, coef, mean, top_k) -> pd.DataFrame:
    total_absent = -(coef @ mean)
    parts = []
    for start in range(0, len(rows), _BLOCK):
        block_rows = rows[start : start + _BLOCK]
        x = model.features(corpus, block_rows)
        used = np.unique(x.indices)
        local = shap.LinearExplainer((coef[used], 0.0), (mean[used], None))
        phi = np.asarray(local.shap_values(x[:, used]))  # (n, |used|)
        values = x[:, used].toarray()
        present = values != 0
        # columns in `used` that a review lacks are absent features for that review
        absent = total_absent + (coef[used] @ mean[used]) + np.where(present, 0.0, phi).sum(axis=1)
        parts.append(_top_tokens(block_rows, phi, present, values, model.vocab[used], absent, top_k))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=EXPLAIN_COLUMNS)


def _top_tokens(block_rows, phi, present, values, vocab, absent, top_k) -> pd.DataFrame:
    if phi.shape[1] == 0:  # no review of the block holds a known n-gram: pad so the shapes below hold
        phi, present, values, vocab = (np.zeros((len(block_rows), 1)), np.zeros((len(block_rows), 1), bool),
                                       np.zeros((len(block_rows), 1)), np.array(["(none)"], dtype=object))
    # ranked by |value| to 1e-9, ties in vocabulary order (``used`` is sorted): values equal but for float rounding
    # (n-grams that always occur together, say) keep one order whatever the block of reviews, and so on either engine
    scored = np.where(present, np.round(np.abs(phi), 9), -1.0)
    k = min(top_k, phi.shape[1])
    top = np.sort(np.argpartition(-scored, k - 1, axis=1)[:, :k], axis=1)
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(scored, top, axis=1), axis=1, kind="stable"), axis=1)
    n = len(block_rows)
    take = np.take_along_axis(present, top, axis=1)  # reviews with fewer than k n-grams
    r_idx = np.repeat(np.arange(n), k).reshape(n, k)
    ranks = np.tile(np.arange(1, k + 1), (n, 1))
    top_phi = np.take_along_axis(phi, top, axis=1)
    tokens = pd.DataFrame({
        "row": block_rows[r_idx[take]],
        "kind": "token",
        "rank": ranks[take],
        "token": vocab[top[take]],
        "feature_value": np.take_along_axis(values, top, axis=1)[take],
        "shap_value": top_phi[take],
    })
    present_sum = np.where(present, phi, 0.0).sum(axis=1)
    other = present_sum - np.where(take, top_phi, 0.0).sum(axis=1)
    n_taken = take.sum(axis=1)
    summary = pd.DataFrame({
        "row": np.concatenate([block_rows, block_rows]),
        "kind": ["other_present"] * n + ["absent"] * n,
        "rank": np.concatenate([n_taken + 1, n_taken + 2]),
        "token": ["(other n-grams in the review)"] * n + ["(n-grams absent from the review)"] * n,
        "feature_value": np.nan,
        "shap_value": np.concatenate([other, absent]),
    })
    return pd.concat([tokens, summary], ignore_index=True)
