import numpy as np
import pandas as pd
import pytest

from pipeline.models import linear
from pipeline.models.text import tokenize


def test_fit_only_looks_at_training_rows():
    texts = pd.Series(["good film good", "bad film bad", "good acting", "bad acting", "zebra zebra good"])
    labels = np.array([1, 0, 1, 0, 1])
    corpus = tokenize(texts, ngram_max=2)
    model = linear.fit(corpus, labels, np.arange(4), model_id="m", min_df=1)
    assert "zebra" not in set(model.vocab)  # only in the held-out review
    assert "good" in set(model.vocab)
    logits = model.predict_logit(corpus)
    assert logits[0] > 0 > logits[1]
    probs = model.predict_proba(corpus)
    assert probs.shape == (5, 2) and np.allclose(probs.sum(axis=1), 1)
    assert np.allclose(probs[:, 1], 1 / (1 + np.exp(-logits)))


def test_fit_needs_every_class():
    corpus = tokenize(pd.Series(["a b", "c d"]), ngram_max=1)
    with pytest.raises(ValueError, match="every class"):
        linear.fit(corpus, np.array([1, 1]), np.arange(2), model_id="m", min_df=1)


def test_more_than_two_classes_is_a_multinomial_model():
    words = {0: "awful dreadful", 1: "fine okay", 2: "superb wonderful"}
    texts = pd.Series([f"{words[k]} film number {i}" for i in range(30) for k in range(3)])
    labels = np.array([k for _ in range(30) for k in range(3)])
    corpus = tokenize(texts, ngram_max=1)
    model = linear.fit(corpus, labels, np.arange(90), model_id="m", n_classes=3, min_df=1)
    probs = model.predict_proba(corpus)
    assert probs.shape == (90, 3) and np.allclose(probs.sum(axis=1), 1)
    assert (probs.argmax(axis=1) == labels).all()
    assert model.weights.shape == (len(model.vocab), 3) and (model.scale == 1).all()  # no NB ratio
