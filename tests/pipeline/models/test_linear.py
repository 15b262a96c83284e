import numpy as np
import pandas as pd
import pytest

from pipeline.models import linear as train
from pipeline.config import Config


def _frame(n_movies=30, per_movie=4, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(n_movies):
        for j in range(per_movie):
            rows.append({"sample_id": f"train/x/{m}_{j}", "movie_id": f"tt{m:07d}", "label": int(rng.random() < 0.5)})
    return pd.DataFrame(rows)


def test_folds_never_split_a_movie_and_cover_every_review():
    frame = _frame()
    folds = train.make_folds(frame, n_folds=5, seed=0)
    assert set(np.unique(folds)) == {0, 1, 2, 3, 4}
    per_movie = pd.Series(folds).groupby(frame["movie_id"]).nunique()
    assert (per_movie == 1).all()
    assert np.array_equal(folds, train.make_folds(frame, n_folds=5, seed=0))


def test_reviews_without_movie_are_their_own_group():
    frame = _frame(n_movies=3, per_movie=10)
    frame.loc[:, "movie_id"] = None
    folds = train.make_folds(frame, n_folds=5, seed=0)
    assert len(np.unique(folds)) == 5


def test_too_few_movies_is_a_clear_error():
    with pytest.raises(ValueError, match="too few for 5 grouped folds"):
        train.make_folds(_frame(n_movies=3), n_folds=5, seed=0)


def test_fit_only_looks_at_training_rows():
    texts = pd.Series(["good film good", "bad film bad", "good acting", "bad acting", "zebra zebra good"])
    labels = np.array([1, 0, 1, 0, 1])
    cfg = Config(min_df=1)
    corpus = train.tokenize(texts, cfg)
    model = train.fit(corpus, labels, np.arange(4), cfg, model_id="m")
    assert "zebra" not in set(model.vocab)  # only in the held-out review
    assert "good" in set(model.vocab)
    logits = model.predict_logit(corpus)
    assert logits[0] > 0 > logits[1]


def test_fit_needs_both_labels():
    cfg = Config(min_df=1)
    corpus = train.tokenize(pd.Series(["a b", "c d"]), cfg)
    with pytest.raises(ValueError, match="both labels"):
        train.fit(corpus, np.array([1, 1]), np.arange(2), cfg, model_id="m")
