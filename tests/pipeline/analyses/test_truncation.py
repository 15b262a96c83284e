"""Truncation scoring on a crafted review whose sentiment flips after max_len words."""

import numpy as np
import pytest

from pipeline.analyses import truncation
from pipeline.config import Config
from pipeline.models import export, score, sequences, train_nn

POSITIVE = ["great", "wonderful", "superb", "loved", "brilliant"]
NEGATIVE = ["awful", "boring", "terrible", "hated", "dreadful"]
NEUTRAL = ["the", "film", "plot", "actor", "scene", "story"]
MAX_LEN = 8


def _review(rng, words, n=6):
    return " ".join(rng.choice(words + NEUTRAL, size=n))


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    rng = np.random.default_rng(0)
    texts = [_review(rng, POSITIVE) for _ in range(150)] + [_review(rng, NEGATIVE) for _ in range(150)]
    labels = np.array([1] * 150 + [0] * 150)
    # labeled negative; the first MAX_LEN words rave, everything after them pans the film
    flip = " ".join(POSITIVE[i % 5] for i in range(MAX_LEN)) + " " + " ".join(NEGATIVE[i % 5] for i in range(40))
    texts.append(flip)
    labels = np.append(labels, 0)
    seqs = sequences.tokenize_sequences(texts)
    cfg = Config(max_len=MAX_LEN, truncation="head", seq_vocab=100, seq_embed=8, cnn_filters=8, cnn_kernel=3,
                 seq_hidden=4, cnn_epochs=15, seq_batch=16, seq_lr=1e-2, seq_lr_decay=1.0, probe_size=50)
    net = train_nn.fit_network("cnn", train_nn.NetworkData(None, seqs), labels, np.arange(300), cfg, model_id="cnn-x")
    path = export.export_network(net, tmp_path_factory.mktemp("onnx") / "cnn.onnx", tokenizer_spec={},
                                 classes=("negative", "positive"))
    session = score.OnnxNetwork.load(path, device="cpu")
    rows = np.arange(len(texts))
    found = truncation.analyse(session, net.inputs, seqs, rows, labels, stride=4,
                               text_lengths=np.array([len(t) for t in texts]))
    found["harm_rank"] = truncation.rank(found)
    return texts, found


def test_the_head_misleads_and_the_whole_review_corrects_it(crafted):
    texts, found = crafted
    row = found.iloc[-1]
    assert row["truncated"] and row["n_words"] == MAX_LEN + 40
    # p_* are the probabilities of the given label, negative
    assert row["pred_head"] == 1 and row["p_head"] < 0.5 and row["p_model"] == row["p_head"]  # it read the praise
    assert row["pred_windows"] == 0 and row["p_windows"] > 0.5  # the whole review reads negative
    assert row["prediction_changes"] and row["harm"] > 0
    assert row["harm_rank"] == 1 and found["harm_rank"].notna().sum() == 1  # the only truncated review


def test_the_unseen_part_is_marked_in_the_text(crafted):
    texts, found = crafted
    row = found.iloc[-1]
    unseen = texts[-1][row["unseen_start"]:row["unseen_end"]]
    assert unseen.split() == [NEGATIVE[i % 5] for i in range(40)]


def test_short_reviews_score_the_same_every_way(crafted):
    _, found = crafted
    short = found[~found["truncated"]]
    assert np.allclose(short["p_head"], short["p_windows"]) and np.allclose(short["p_head"], short["p_head_tail"])
    assert (short["harm"] == 0).all() and short["unseen_start"].isna().all()
    assert (short["pred_model"] == (np.arange(len(short)) < 150)).mean() > 0.95  # it learned the words
