"""Train the linear text model: TF-IDF word n-grams, NB log-count ratio, logistic regression.

This is the NB-LR variant of Wang & Manning's NB-SVM (2012): each TF-IDF feature is
scaled by its log-count ratio r = log((p/|p|)/(q/|q|)) before an L2 logistic
regression. Public entries:

- ``tokenize(texts, cfg)`` -> ``Corpus``: one (N, V) sparse count matrix over every
  n-gram in the corpus (label-free, so it is shared by all folds).
- ``make_folds(frame, *, n_folds, seed)`` -> (N,) fold index, grouped by ``movie_id``
  so reviews of one movie never sit on both sides of a split.
- ``fit(corpus, labels, rows, cfg)`` -> ``LinearTextModel`` trained on ``rows`` only:
  its vocabulary (min_df), IDF and NB ratios are computed from those rows alone.
- ``cross_fit(corpus, labels, folds, cfg, family=...)`` -> one model per fold and the
  (N,) out-of-fold probabilities.

A model predicts natively with ``predict_logit(corpus)``; the ONNX copy written by
``pipeline.models.export`` must agree with it (checked in ``pipeline.models.score``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold

from pipeline.config import Config

TOKEN_PATTERN = r"(?u)\b\w[\w']*\b"  # words, keeping inner apostrophes ("didn't")


@dataclasses.dataclass(frozen=True)
class Corpus:
    counts: sp.csr_matrix  # (N, V) float32 n-gram counts
    vocab: np.ndarray  # (V,) n-gram strings, column order of counts
    ngram_max: int

    def tokenizer_spec(self) -> dict:
        """How text becomes n-grams; shipped with every exported model."""
        return {
            "lowercase": True,
            "html_line_breaks": "replaced by a newline before tokenizing",
            "token_pattern": TOKEN_PATTERN,
            "ngram_range": [1, self.ngram_max],
            "analyzer": "sklearn.feature_extraction.text.CountVectorizer(analyzer='word')",
        }


@dataclasses.dataclass
class LinearTextModel:
    """One trained NB-LR model, restricted to the n-grams it saw in training."""

    model_id: str  # e.g. "nblr-fold2", "nblr-train"
    columns: np.ndarray  # (V_model,) indices into Corpus.vocab
    vocab: np.ndarray  # (V_model,) n-gram strings
    tfidf: TfidfTransformer  # fitted on the training rows
    nb_ratio: np.ndarray  # (V_model,) log-count ratio r
    clf: LogisticRegression  # fitted on tfidf * r
    train_rows: np.ndarray  # (n_train,) row indices into the corpus

    @property
    def weights(self) -> np.ndarray:
        """(V_model,) effective weight per TF-IDF feature: r * coef."""
        return (self.nb_ratio * self.clf.coef_.ravel()).astype(np.float64)

    @property
    def bias(self) -> float:
        return float(self.clf.intercept_[0])

    def features(self, corpus: Corpus, rows: np.ndarray | None = None) -> sp.csr_matrix:
        """(n, V_model) NB-scaled TF-IDF features, the logistic regression's input."""
        counts = corpus.counts if rows is None else corpus.counts[rows]
        return self.tfidf.transform(counts[:, self.columns]).multiply(self.nb_ratio).tocsr()

    def predict_logit(self, corpus: Corpus, rows: np.ndarray | None = None) -> np.ndarray:
        """(n,) native scikit-learn logit (log-odds of positive)."""
        return self.clf.decision_function(self.features(corpus, rows))


def tokenize(texts: pd.Series, cfg: Config) -> Corpus:
    """Count every word n-gram (1..cfg.ngram_max) of every text."""
    vec = CountVectorizer(
        lowercase=True, token_pattern=TOKEN_PATTERN, ngram_range=(1, cfg.ngram_max), dtype=np.float32
    )
    counts = vec.fit_transform(texts)
    return Corpus(counts.tocsr(), vec.get_feature_names_out(), cfg.ngram_max)


def make_folds(frame: pd.DataFrame, *, n_folds: int, seed: int) -> np.ndarray:
    """(N,) fold index per review, stratified by label and grouped by movie_id.

    A review without a movie id forms a group of its own.
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    groups = frame["movie_id"].fillna("__" + frame["sample_id"]).to_numpy()
    if len(np.unique(groups)) < n_folds:
        raise ValueError(f"only {len(np.unique(groups))} movies: too few for {n_folds} grouped folds")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    fold = np.full(len(frame), -1, dtype=np.int16)
    for k, (_, held_out) in enumerate(splitter.split(np.zeros(len(frame)), frame["label"].to_numpy(), groups)):
        fold[held_out] = k
    return fold


def cross_fit(corpus: Corpus, labels: np.ndarray, folds: np.ndarray, cfg: Config, *, family: str,
              exclude: np.ndarray | None = None, progress: bool = False) -> tuple[list[LinearTextModel], np.ndarray]:
    """One model per fold, trained on the other folds (less ``exclude``).

    Returns the models (``<family>-fold<k>``) and the (N,) native out-of-fold
    probability of positive for every review.
    """
    from tqdm.auto import tqdm

    exclude = np.zeros(len(labels), bool) if exclude is None else np.asarray(exclude, bool)
    models, p_pos = [], np.empty(len(labels))
    for k in tqdm(np.unique(folds), desc="train folds", leave=False, disable=not progress):
        model = fit(corpus, labels, np.flatnonzero((folds != k) & ~exclude), cfg, model_id=f"{family}-fold{k}")
        held = np.flatnonzero(folds == k)
        p_pos[held] = 1.0 / (1.0 + np.exp(-model.predict_logit(corpus, held)))
        models.append(model)
    return models, p_pos


def fit(corpus: Corpus, labels: np.ndarray, rows: np.ndarray, cfg: Config, *, model_id: str) -> LinearTextModel:
    """Fit NB-LR on ``rows`` of the corpus; nothing outside ``rows`` is looked at."""
    labels = np.asarray(labels)
    rows = np.asarray(rows)
    if len(np.unique(labels[rows])) != 2:
        raise ValueError(f"{model_id}: training rows must hold both labels")
    return _fit(corpus, labels[rows], rows, cfg, model_id)


def _fit(corpus: Corpus, y: np.ndarray, rows: np.ndarray, cfg: Config, model_id: str) -> LinearTextModel:
    counts = corpus.counts[rows]
    doc_freq = np.asarray((counts > 0).sum(axis=0)).ravel()
    columns = np.flatnonzero(doc_freq >= cfg.min_df)
    if len(columns) == 0:
        raise ValueError(f"{model_id}: no n-gram occurs in {cfg.min_df} training reviews; lower --min-df")
    if len(columns) > cfg.max_features:
        top = np.argsort(-doc_freq[columns], kind="stable")[: cfg.max_features]
        columns = np.sort(columns[top])
    counts = counts[:, columns]
    tfidf = TfidfTransformer(sublinear_tf=True).fit(counts)
    x = tfidf.transform(counts)
    pos = np.asarray(x[y == 1].sum(axis=0)).ravel() + cfg.nb_alpha
    neg = np.asarray(x[y == 0].sum(axis=0)).ravel() + cfg.nb_alpha
    ratio = np.log((pos / pos.sum()) / (neg / neg.sum()))
    clf = LogisticRegression(C=cfg.C, solver="liblinear", max_iter=1000)
    clf.fit(x.multiply(ratio).tocsr(), y)
    return LinearTextModel(model_id, columns, corpus.vocab[columns], tfidf, ratio, clf, rows)
