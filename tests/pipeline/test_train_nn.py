import numpy as np
import pytest

from pipeline import export, networks, score, train, train_nn
from pipeline.config import Config
from pipeline.load import load_reviews
from tests.conftest import real_archive


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    frame = load_reviews(real_archive(), sample=800, seed=4, progress=False).frame
    cfg = Config(dense_vocab=2000, dense_epochs=3, dense_batch=128)
    corpus = train.tokenize(frame["display_text"], cfg)
    rows = np.flatnonzero(frame["split"].to_numpy() == "train")
    held = np.flatnonzero(frame["split"].to_numpy() == "test")
    net = train_nn.fit_dense(corpus, frame["label"].to_numpy(), rows, cfg, model_id="dense-train", val_rows=held)
    path = export.export_network(net, tmp_path_factory.mktemp("onnx") / "dense.onnx",
                                 tokenizer_spec=corpus.tokenizer_spec())
    return frame, corpus, net, path, rows, cfg


def test_onnx_matches_pytorch_on_every_review(dense):
    frame, corpus, net, path, _, _ = dense
    session = score.OnnxNetwork.load(path, device="cpu")
    assert list(session.vocab) == list(net.vocab) and session.model_id == "dense-train"
    x = networks.multi_hot(corpus, net.columns)
    p, emb = session.score_multi_hot(x)
    p_native, emb_native = net.predict(corpus)
    assert len(p) == len(frame) and emb.shape == (len(frame), 16)
    assert np.max(np.abs(p - p_native)) <= 1e-4
    assert np.max(np.abs(emb - emb_native)) <= 1e-4


def test_telemetry_is_complete_and_sane(dense):
    _, _, net, _, rows, cfg = dense
    per_epoch = -(-len(rows) // cfg.dense_batch)
    assert len(net.batches) == cfg.dense_epochs * per_epoch
    assert list(net.batches["step"]) == list(range(1, len(net.batches) + 1))
    assert net.batches["loss"].gt(0).all() and net.batches["accuracy"].between(0, 1).all()
    assert (net.batches["lr"] == cfg.dense_lr).all()
    assert list(net.epochs["epoch"]) == [1, 2, 3]
    assert net.epochs[["train_accuracy", "val_accuracy"]].stack().between(0, 1).all()
    assert net.epochs["train_loss"].iloc[-1] < net.epochs["train_loss"].iloc[0]  # it learns


def test_multi_hot_vocabulary_keeps_the_most_frequent_words():
    import pandas as pd

    texts = pd.Series(["good film", "good plot", "good acting film", "bad"])
    corpus = train.tokenize(texts, Config(min_df=1))
    columns = networks.multi_hot_vocabulary(corpus, np.arange(4), 2)
    assert list(corpus.vocab[columns]) == ["film", "good"]
    x = networks.multi_hot(corpus, columns).toarray()
    assert x.tolist() == [[1, 1], [0, 1], [1, 1], [0, 0]]


def test_unknown_activation_names_the_choices():
    with pytest.raises(ValueError, match="relu, tanh"):
        networks.DenseNet(10, activation="gelu")
