"""The linear family (``nblr``): TF-IDF word n-grams and logistic regression, cross-fitted.

Two classes: NB-LR, the logistic-regression variant of Wang & Manning's NB-SVM (2012):
each TF-IDF feature is scaled by its naive-Bayes log-count ratio
r = log((p/|p|)/(q/|q|)) before an L2 logistic regression (liblinear, ``C``).
More classes: a multinomial logistic regression on the TF-IDF features (lbfgs,
``C_multiclass``, tolerance 1e-3), with no ratio. On IMDB's 8 star ratings it beat
one-vs-rest NB-LR (46.6% vs 46.8% accuracy, 72.7% vs 71.2% within one class, NLL
1.40 vs 1.45 nats, 11 s vs 22 s to fit 25,000 reviews; see README), and its softmax
gives the calibrated probabilities label issues need.

- ``fit(corpus, labels, rows, *, n_classes, ...)`` -> ``LinearTextModel`` trained on
  ``rows`` only: its vocabulary (min_df), IDF and ratios come from those rows alone;
- ``cross_fit(...)`` -> one model per fold and the (N, K) native out-of-fold probabilities;
- ``train_models(corpus, data, folds, cfg)`` -> ``LinearModels``: the fold models (in
  two rounds with ``cfg.prune``: confident learning's prune-and-retrain) and the
  conventional model on the train split, when there is one;
- ``score_models(models, paths, corpus, data, folds, device=...)`` -> ``Scored``: every
  review through the ONNX files (``pipeline.models.export``), checked against the
  native model (``pipeline.models.score.check_parity``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.special import softmax
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression

from pipeline.data.dataset import Dataset
from pipeline.engine import LocalEngine, by_group, in_blocks, spread, stacked
from pipeline.models import outputs, score
from pipeline.models.text import Corpus
from pipeline.names import CONVENTIONAL, LINEAR, OOF, model_id

MULTICLASS_TOL = 1e-3  # lbfgs tolerance for the multinomial model: 56 iterations instead of 133, same accuracy


@dataclasses.dataclass
class LinearTextModel:
    """One trained linear model, restricted to the n-grams it saw in training."""

    model_id: str  # e.g. "nblr-fold2", "nblr-train"
    columns: np.ndarray  # (V_model,) indices into Corpus.vocab
    vocab: np.ndarray  # (V_model,) n-gram strings
    tfidf: TfidfTransformer  # fitted on the training rows
    scale: np.ndarray  # (V_model,) per-feature factor: the NB log-count ratio r (two classes), else 1
    clf: LogisticRegression  # fitted on tfidf * scale
    train_rows: np.ndarray  # (n_train,) row indices into the corpus
    n_classes: int = 2

    @property
    def weights(self) -> np.ndarray:
        """(V_model, K') effective weight per TF-IDF feature and output: scale * coef (K' = 1 for two classes)."""
        return (self.scale[:, None] * self.clf.coef_.T).astype(np.float64)

    @property
    def bias(self) -> np.ndarray:
        """(K',) intercepts."""
        return np.asarray(self.clf.intercept_, dtype=np.float64)

    def features(self, corpus: Corpus, rows: np.ndarray | None = None) -> sp.csr_matrix:
        """(n, V_model) scaled TF-IDF features, the logistic regression's input."""
        counts = corpus.counts if rows is None else corpus.counts[rows]
        return _scaled(self.tfidf.transform(counts[:, self.columns]), self.scale)

    def predict_scores(self, corpus: Corpus, rows: np.ndarray | None = None) -> np.ndarray:
        """(n, K') native logits: the log-odds of class 1 (two classes) or the K softmax inputs; the features of a
        block of rows at a time (``engine.in_blocks``)."""
        rows = np.arange(corpus.counts.shape[0]) if rows is None else np.asarray(rows)
        return in_blocks(lambda block: np.asarray(self.clf.decision_function(self.features(corpus, block)))
                         .reshape(-1, self.bias.size), rows)

    def predict_logit(self, corpus: Corpus, rows: np.ndarray | None = None) -> np.ndarray:
        """(n,) log-odds of class 1; two classes only."""
        return self.predict_scores(corpus, rows)[:, 0]

    def predict_proba(self, corpus: Corpus, rows: np.ndarray | None = None) -> np.ndarray:
        """(n, K) native class probabilities."""
        scores = self.predict_scores(corpus, rows)
        if self.n_classes == 2:
            return outputs.binary_probs(1.0 / (1.0 + np.exp(-scores[:, 0])))
        return softmax(scores, axis=1)


@dataclasses.dataclass(frozen=True)
class LinearModels:
    folds: list[LinearTextModel]  # index k: the model that never saw fold k
    conventional: LinearTextModel | None  # trained on the train split; None without one

    def all(self) -> list[LinearTextModel]:
        return [*self.folds, *([self.conventional] if self.conventional else [])]


def fit(corpus: Corpus, labels: np.ndarray, rows: np.ndarray, *, model_id: str, n_classes: int = 2,
        min_df: int = 3, max_features: int = 400_000, nb_alpha: float = 1.0, C: float = 30.0,
        C_multiclass: float = 10.0) -> LinearTextModel:
    """Fit on ``rows`` of the corpus; nothing outside ``rows`` is looked at."""
    labels = np.asarray(labels)
    rows = np.asarray(rows)
    if len(np.unique(labels[rows])) != n_classes:
        raise ValueError(f"{model_id}: training rows must hold every class ({n_classes}); "
                         f"they hold {len(np.unique(labels[rows]))}")
    return _fit(corpus, labels[rows], rows, model_id, n_classes, min_df, max_features, nb_alpha, C, C_multiclass)


def _fit(corpus, y, rows, model_id, n_classes, min_df, max_features, nb_alpha, C, C_multiclass) -> LinearTextModel:
    counts = corpus.counts[rows]
    doc_freq = np.asarray((counts > 0).sum(axis=0)).ravel()
    columns = np.flatnonzero(doc_freq >= min_df)
    if len(columns) == 0:
        raise ValueError(f"{model_id}: no n-gram occurs in {min_df} training texts; lower --min-df")
    if len(columns) > max_features:
        top = np.argsort(-doc_freq[columns], kind="stable")[:max_features]
        columns = np.sort(columns[top])
    counts = counts[:, columns]
    tfidf = TfidfTransformer(sublinear_tf=True).fit(counts)
    x = tfidf.transform(counts)
    del counts  # liblinear makes its own copy of x: hold no third
    if n_classes == 2:
        pos = np.asarray(x[y == 1].sum(axis=0)).ravel() + nb_alpha
        neg = np.asarray(x[y == 0].sum(axis=0)).ravel() + nb_alpha
        scale = np.log((pos / pos.sum()) / (neg / neg.sum()))
        clf = LogisticRegression(C=C, solver="liblinear", max_iter=1000)
    else:
        scale = np.ones(len(columns))
        clf = LogisticRegression(C=C_multiclass, tol=MULTICLASS_TOL, max_iter=1000)
    clf.fit(_scaled(x, scale), y)
    return LinearTextModel(model_id, columns, corpus.vocab[columns], tfidf, scale, clf, rows, n_classes)


def _scaled(x: sp.csr_matrix, scale: np.ndarray) -> sp.csr_matrix:
    """``x.multiply(scale).tocsr()``, the same numbers in the same dtype, without the copies that makes. ``x`` is
    consumed: when no wider dtype is needed, it is scaled in place."""
    x = sp.csr_matrix(x, dtype=np.result_type(x.dtype, scale.dtype))  # two classes: float32 both, so no copy
    x.data *= scale[x.indices]
    return x


def fit_options(cfg) -> dict:
    """The Config fields ``fit`` takes."""
    return {"min_df": cfg.min_df, "max_features": cfg.max_features, "nb_alpha": cfg.nb_alpha, "C": cfg.C,
            "C_multiclass": cfg.C_multiclass}


def cross_fit(corpus: Corpus, labels: np.ndarray, folds: np.ndarray, *, n_classes: int, options: dict,
              exclude: np.ndarray | None = None, progress: bool = False,
              engine=None) -> tuple[list[LinearTextModel], np.ndarray]:
    """One model per fold, trained on the other folds (less ``exclude``); and the (N, K) out-of-fold probabilities.

    Each fold is a job of ``engine`` (``pipeline.engine``; this process when None)."""
    exclude = np.zeros(len(labels), bool) if exclude is None else np.asarray(exclude, bool)
    shared = (corpus, np.asarray(labels), np.asarray(folds), exclude, n_classes, options)
    ks = [int(k) for k in np.unique(folds)]
    fitted = (engine or LocalEngine()).map(_fit_fold, shared, ks, desc="train folds", progress=progress)
    probs = np.empty((len(labels), n_classes))
    for k, (_, held_probs) in zip(ks, fitted):
        probs[folds == k] = held_probs
    return [model for model, _ in fitted], probs


def _fit_fold(shared, k: int) -> tuple[LinearTextModel, np.ndarray]:
    """The model that never sees fold ``k``, and its probabilities on fold ``k`` (one engine job)."""
    corpus, labels, folds, exclude, n_classes, options = shared
    model = fit(corpus, labels, np.flatnonzero((folds != k) & ~exclude), model_id=model_id(LINEAR, k),
                n_classes=n_classes, **options)
    return model, model.predict_proba(corpus, np.flatnonzero(folds == k))


def train_models(corpus: Corpus, data: Dataset, folds: np.ndarray, cfg, engine=None) -> LinearModels:
    """The fold models (two rounds with cfg.prune) and, when the data has a train split, the conventional model.

    Round one cross-fits on every review and flags label issues from its (native,
    never stored) out-of-fold probabilities; round two cross-fits again without the
    flagged reviews, so suspected mislabels do not teach the models that judge them
    (cleanlab's confident learning: prune, then retrain). Each review is still scored
    by a model that never saw it.
    """
    from pipeline.analyses import issues

    labels, k = data.labels, data.n_classes
    options = fit_options(cfg)
    models, probs = cross_fit(corpus, labels, folds, n_classes=k, options=options, progress=cfg.progress,
                              engine=engine)
    if cfg.prune:
        flagged = issues.find_label_issues(labels, probs, data.frame["rating"].to_numpy(), classes=data.classes,
                                           method=cfg.issue_method)["is_label_issue"].to_numpy()
        if len(np.unique(labels[~flagged])) == k and all(len(np.unique(labels[(folds != f) & ~flagged])) == k
                                                        for f in np.unique(folds)):
            models, _ = cross_fit(corpus, labels, folds, n_classes=k, options=options, exclude=flagged,
                                  progress=cfg.progress, engine=engine)
    rows = conventional_rows(data)
    conventional = None
    if rows is not None:
        conventional = fit(corpus, labels, rows, model_id=model_id(LINEAR, None), n_classes=k, **options)
    return LinearModels(models, conventional)


def conventional_rows(data: Dataset) -> np.ndarray | None:
    """The train split's rows, when the data has one holding every class and other rows to test on; else None."""
    is_train = data.is_train
    rows = np.flatnonzero(is_train)
    if len(rows) == 0 or is_train.all() or len(np.unique(data.labels[rows])) != data.n_classes:
        return None
    return rows


def score_models(models: LinearModels, paths: dict[str, Path], corpus: Corpus, data: Dataset, folds: np.ndarray, *,
                 device: str, progress: bool, engine=None) -> score.Scored:
    """Every review scored through ONNX Runtime: out of fold by its fold model, and by the conventional model,
    reading the run's counts (``onnx_probs``)."""
    labels = data.labels
    ids = data.frame["sample_id"].to_numpy()
    is_train = data.is_train
    every = models.all()
    row_sets = [np.arange(len(labels)) if m is models.conventional else np.flatnonzero(folds == models.folds.index(m))
                for m in every]
    found = onnx_probs([(paths[m.model_id], rows) for m, rows in zip(every, row_sets)], corpus, device=device,
                       engine=engine, progress=progress)
    preds, model_rows, oof = [], [], np.empty((len(labels), data.n_classes))
    for model, rows, (probs, provider) in zip(every, row_sets, found):
        conventional = model is models.conventional
        fold = None if conventional else models.folds.index(model)
        seen = is_train[rows] if conventional else np.zeros(len(rows), bool)
        parity = score.check_parity(probs, model.predict_proba(corpus, rows), model_id=model.model_id)
        preds.append(outputs.prediction_frame(ids[rows], labels[rows], probs, family=LINEAR,
                                              protocol=CONVENTIONAL if conventional else OOF,
                                              model_id=model.model_id, seen=seen))
        if not conventional:
            oof[rows] = probs
        model_rows.append(score.model_row(model.model_id, LINEAR, fold, paths[model.model_id], len(model.vocab),
                                          len(model.train_rows), score.accuracy(probs, labels[rows], ~seen), parity,
                                          provider, reference=False))
    return score.Scored.of(LINEAR, model_rows, preds, oof)


_SCORE_BATCH = 4096  # reviews per batch of the engine (a Ray Data batch)


def onnx_probs(models: list[tuple[Path, np.ndarray]], corpus: Corpus, *, device: str, engine=None,
               progress: bool = False) -> list[tuple[np.ndarray, str]]:
    """For each (ONNX file, rows) of ``models``: (the (len(rows), K) probabilities of those rows of the counts, the
    ONNX Runtime provider that ran it). The rows go through ``engine.map_batches`` (``pipeline.engine``; this process
    when None): on Ray, a pool of actors that each hold a session per model and read the counts from the object
    store."""
    jobs = score.model_jobs([rows for _, rows in models], corpus.counts.shape[0])
    found = (engine or LocalEngine()).map_batches(_Scorer, ([Path(path).read_bytes() for path, _ in models], corpus,
                                                            device), jobs, desc="score (ONNX Runtime)",
                                                  batch_rows=_SCORE_BATCH, progress=progress)
    return [(stacked(mine, "p"), str(mine["provider"].iloc[0]) if len(mine) else "")
            for mine in score.per_model(found, [len(rows) for _, rows in models])]


class _Scorer:
    """A batch worker (``engine.map_batches``): a session per model on its bytes; each job's row of the counts
    scored by its model, in that model's vocabulary order."""

    def __init__(self, shared):
        models, self.corpus, device = shared
        self.sessions = [score.OnnxTextModel.from_bytes(model, device=device) for model in models]
        self.columns = [session.columns_in(self.corpus.vocab_index) for session in self.sessions]

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return by_group(batch, "model", self._score)

    def _score(self, j: int, rows: np.ndarray) -> pd.DataFrame:
        session = self.sessions[j]
        probs = session.score_counts(self.corpus.counts[rows][:, self.columns[j]])
        return pd.DataFrame({"provider": session.provider, **spread("p", probs)})
