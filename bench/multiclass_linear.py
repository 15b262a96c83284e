"""Which linear model for more than two classes: one-vs-rest NB-LR or a multinomial logistic regression.

    .venv/bin/python bench/multiclass_linear.py            # IMDB's 8 star ratings, train on train, test on test

NB-LR (Wang & Manning 2012) is defined for two classes: each feature is scaled by the
log-count ratio of the positive against the negative class. For K classes there are
two natural generalisations, both measured here on the same TF-IDF features the
pipeline uses (word 1-2 grams, min_df 3, sublinear TF):

- ``ovr-nblr``: one binary NB-LR per class (its own ratio, liblinear), probabilities
  as the normalised sigmoids (scikit-learn's one-vs-rest rule);
- ``multinomial``: one softmax logistic regression on the unscaled TF-IDF (lbfgs), at
  the pipeline's C and tolerance, and at a tighter tolerance for reference.

Prints accuracy, the share within one class of the given one (adjacent ratings), the
share within one star, the mean cross-entropy (NLL, nats; what label-issue scores
read) and the fit time. The pipeline uses the multinomial model for K > 2
(``pipeline.models.linear``); README gives the figures.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import Config  # noqa: E402
from pipeline.data.imdb import load_reviews  # noqa: E402
from pipeline.models.linear import MULTICLASS_TOL  # noqa: E402
from pipeline.models.text import tokenize  # noqa: E402

DEFAULT_DATA = os.environ.get("IMDB_DATA", str(ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"))


def main() -> None:
    cfg = Config()
    frame = load_reviews(Path(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_DATA), progress=False).frame
    corpus = tokenize(frame["display_text"], ngram_max=cfg.ngram_max)
    stars = np.unique(frame["rating"])
    y = np.searchsorted(stars, frame["rating"].to_numpy())
    tr = np.flatnonzero(frame["split"].to_numpy() == "train")
    te = np.flatnonzero(frame["split"].to_numpy() == "test")
    counts = corpus.counts[tr]
    doc_freq = np.asarray((counts > 0).sum(axis=0)).ravel()
    cols = np.flatnonzero(doc_freq >= cfg.min_df)
    tfidf = TfidfTransformer(sublinear_tf=True).fit(counts[:, cols])
    x_tr, x_te = tfidf.transform(counts[:, cols]).tocsr(), tfidf.transform(corpus.counts[te][:, cols]).tocsr()
    y_tr, y_te = y[tr], y[te]
    print(f"\n{len(tr):,} training and {len(te):,} test reviews, {len(stars)} classes (stars {list(stars)}), "
          f"{len(cols):,} n-grams, {os.cpu_count()} cores")
    print("| model | accuracy | within one class | within one star | NLL (nats) | fit (s) |\n|---|---:|---:|---:|---:|---:|")

    def report(name: str, probs: np.ndarray, seconds: float) -> None:
        pred = probs.argmax(axis=1)
        nll = -np.log(np.clip(probs[np.arange(len(y_te)), y_te], 1e-12, 1)).mean()
        print(f"| {name} | {(pred == y_te).mean():.2%} | {(np.abs(pred - y_te) <= 1).mean():.2%} | "
              f"{(np.abs(stars[pred] - stars[y_te]) <= 1).mean():.2%} | {nll:.3f} | {seconds:.1f} |", flush=True)

    for C in (cfg.C, 4.0):
        start, columns = time.perf_counter(), []
        for k in range(len(stars)):
            yk = (y_tr == k).astype(int)
            pos = np.asarray(x_tr[yk == 1].sum(axis=0)).ravel() + cfg.nb_alpha
            neg = np.asarray(x_tr[yk == 0].sum(axis=0)).ravel() + cfg.nb_alpha
            ratio = np.log((pos / pos.sum()) / (neg / neg.sum()))
            clf = LogisticRegression(C=C, solver="liblinear", max_iter=1000).fit(x_tr.multiply(ratio).tocsr(), yk)
            columns.append(1 / (1 + np.exp(-clf.decision_function(x_te.multiply(ratio).tocsr()))))
        p = np.column_stack(columns)
        report(f"one-vs-rest NB-LR, C={C:g}", p / p.sum(axis=1, keepdims=True), time.perf_counter() - start)
    for tol in (MULTICLASS_TOL, 1e-4):
        start = time.perf_counter()
        clf = LogisticRegression(C=cfg.C_multiclass, tol=tol, max_iter=1000).fit(x_tr, y_tr)
        report(f"multinomial, C={cfg.C_multiclass:g}, tol={tol:g} ({int(clf.n_iter_[0])} iterations)",
               clf.predict_proba(x_te), time.perf_counter() - start)


if __name__ == "__main__":
    main()
