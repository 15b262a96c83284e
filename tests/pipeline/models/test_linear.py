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


def test_predictions_and_scores_by_blocks_of_rows_equal_the_whole(tmp_path, monkeypatch):
    """Large runs predict, score and average a block of rows at a time (engine.BLOCK_ROWS): the same numbers."""
    from pipeline import engine
    from pipeline.analyses import explain
    from pipeline.data.imdb import load_reviews
    from pipeline.models import export
    from pipeline.models.score import OnnxTextModel
    from tests.conftest import real_archive

    frame = load_reviews(real_archive(), sample=600, seed=4, progress=False).frame
    corpus = tokenize(frame["display_text"], ngram_max=2)
    labels, rows = frame["label"].to_numpy(), np.arange(1, 600, 2)
    model = linear.fit(corpus, labels, np.arange(0, 600, 2), model_id="m", min_df=2)
    path = export.export_onnx(model, tmp_path / "m.onnx", classes=("negative", "positive"),
                              tokenizer_spec=corpus.tokenizer_spec())

    def every_way():
        return (model.predict_scores(corpus, rows), explain._background_mean(model, corpus),
                linear.onnx_probs([(path, rows)], corpus, device="cpu")[0][0])

    whole = every_way()
    scored, predicted = [], []
    original_score, original_features = OnnxTextModel.score_counts, linear.LinearTextModel.features
    monkeypatch.setattr(OnnxTextModel, "score_counts", lambda self, c: scored.append(c.shape[0]) or
                        original_score(self, c))
    monkeypatch.setattr(linear.LinearTextModel, "features", lambda self, c, r=None: predicted.append(len(r)) or
                        original_features(self, c, r))
    monkeypatch.setattr(engine, "BLOCK_ROWS", 7)
    monkeypatch.setattr(explain, "BLOCK_ROWS", 7)
    blocked = every_way()
    assert max(scored) == 7 and sum(scored) == len(rows)  # really in blocks: ONNX scoring
    assert max(predicted) == 7 and sum(predicted) == 2 * len(rows)  # predictions, and the mean over the train rows
    assert np.array_equal(whole[0], blocked[0])
    assert np.allclose(whole[1], blocked[1], rtol=1e-12, atol=1e-15)
    assert np.abs(whole[2] - blocked[2]).max() <= 1e-6  # ONNX batches are made of other rows: float32 sums round
    every_row = original_features(model, corpus, model.train_rows).toarray().astype(np.float64).mean(axis=0)
    assert np.allclose(whole[1], every_row, rtol=1e-6, atol=1e-9)  # SHAP's background: every training row's mean
    assert np.array_equal(engine.in_blocks(lambda b: b * 2, np.arange(20), 3), np.arange(20) * 2)
    assert engine.in_blocks(lambda b: b, np.arange(0), 3).shape == (0,)


def test_scaled_features_are_multiply_s_bit_for_bit():
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    for x_type, scale_type in [(np.float32, np.float32), (np.float32, np.float64), (np.float64, np.float64)]:
        x = sp.random(50, 40, density=0.2, format="csr", random_state=1, dtype=x_type)
        scale = rng.normal(size=40).astype(scale_type)
        expected = x.multiply(scale).tocsr()
        got = linear._scaled(x.copy(), scale)
        assert got.dtype == expected.dtype and np.array_equal(got.toarray(), expected.toarray())

