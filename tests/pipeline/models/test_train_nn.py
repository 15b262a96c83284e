import numpy as np
import pytest

from pipeline.config import Config
from pipeline.data.imdb import load_reviews
from pipeline.models import export, networks, score, train_nn
from pipeline.models.text import tokenize
from tests.conftest import real_archive


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    frame = load_reviews(real_archive(), sample=800, seed=4, progress=False).frame
    cfg = Config(dense_vocab=2000, dense_epochs=3, dense_batch=128)
    corpus = tokenize(frame["display_text"], ngram_max=cfg.ngram_max)
    rows = np.flatnonzero(frame["split"].to_numpy() == "train")
    held = np.flatnonzero(frame["split"].to_numpy() == "test")
    net = train_nn.fit_dense(corpus, frame["label"].to_numpy(), rows, cfg, model_id="dense-train", val_rows=held)
    path = export.export_network(net, tmp_path_factory.mktemp("onnx") / "dense.onnx",
                                 tokenizer_spec=corpus.tokenizer_spec(), classes=("negative", "positive"))
    return frame, corpus, net, path, rows, cfg


def test_onnx_matches_pytorch_on_every_review(dense):
    frame, corpus, net, path, _, _ = dense
    session = score.OnnxNetwork.load(path, device="cpu")
    assert list(session.vocab) == list(net.vocab) and session.model_id == "dense-train"
    x = networks.multi_hot(corpus, net.columns)
    p, emb = session.score_multi_hot(x)
    p_native, emb_native = net.predict(corpus)
    assert p.shape == (len(frame), 2) and emb.shape == (len(frame), 16)
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
    corpus = tokenize(texts, ngram_max=2)
    columns = networks.multi_hot_vocabulary(corpus, np.arange(4), 2)
    assert list(corpus.vocab[columns]) == ["film", "good"]
    x = networks.multi_hot(corpus, columns).toarray()
    assert x.tolist() == [[1, 1], [0, 1], [1, 1], [0, 0]]


def test_unknown_activation_names_the_choices():
    with pytest.raises(ValueError, match="relu, tanh"):
        networks.DenseNet(10, activation="gelu")


@pytest.fixture(scope="module", params=["cnn", "bilstm"])
def sequence_net(request, tmp_path_factory):
    from pipeline.models import sequences

    frame = load_reviews(real_archive(), sample=500, seed=5, progress=False).frame
    cfg = Config(seq_vocab=3000, seq_embed=16, cnn_filters=16, lstm_units=8, seq_hidden=8, cnn_epochs=2,
                 bilstm_epochs=2, max_len=64, probe_size=200)
    seqs = sequences.tokenize_sequences(frame["display_text"])
    data = train_nn.NetworkData(None, seqs)
    rows = np.flatnonzero(frame["split"].to_numpy() == "train")
    held = np.flatnonzero(frame["split"].to_numpy() == "test")
    net = train_nn.fit_network(request.param, data, frame["label"].to_numpy(), rows, cfg,
                               model_id=f"{request.param}-train", val_rows=held, telemetry=True)
    path = export.export_network(net, tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx", tokenizer_spec={},
                                 classes=("negative", "positive"))
    return frame, data, net, path, cfg


def test_sequence_network_onnx_matches_pytorch_for_any_batch_and_length(sequence_net):
    frame, data, net, path, cfg = sequence_net
    session = score.OnnxNetwork.load(path, device="cpu")
    ids = net.inputs.encode(data)
    for x in (ids, ids[:1], ids[:, :17], ids[:3, :200 if ids.shape[1] >= 200 else ids.shape[1]]):
        p, emb = session.score_ids(x)
        p_native, emb_native = net.predict_inputs(x)
        assert p.shape == (len(x), 2) and emb.shape == (len(x), cfg.seq_hidden)
        assert np.max(np.abs(p - p_native)) <= 1e-4
        assert np.max(np.abs(emb - emb_native)) <= 1e-4
    longer = np.concatenate([ids, ids], axis=1)  # twice max_len: the token axis is dynamic
    assert np.max(np.abs(session.score_ids(longer)[0] - net.predict_inputs(longer)[0])) <= 1e-4


def _check_telemetry(net, epochs: int, n_probe: int, n_classes: int = 2):
    stats, hist, plane = net.layer_stats, net.layer_histograms, net.info_plane
    assert sorted(stats["epoch"].unique()) == list(range(epochs + 1))
    counts = hist.groupby(["epoch", "layer", "quantity"])["count"].sum()
    n = stats.set_index(["epoch", "layer", "quantity"])["n"]
    assert counts.sort_index().equals(n.sort_index().astype(counts.dtype))  # every histogram adds up
    assert (hist.groupby(["epoch", "layer", "quantity"]).size() == 30).all()
    dead = stats["dead_fraction"].dropna()
    assert len(dead) > 0 and dead.between(0, 1).all()
    grads = stats[stats["quantity"] == "grad"]
    assert len(grads) > 0 and (grads["norm"] > 0).all()
    assert (plane["i_xt"] >= 0).all() and (plane["i_xt"] <= np.log2(n_probe) + 1e-9).all()
    assert (plane["i_ty"] >= 0).all() and (plane["i_ty"] <= np.log2(n_classes) + 1e-9).all()
    assert (plane["i_ty"] <= plane["i_xt"] + 1e-9).all()
    output = plane[plane["layer"] == "output"]
    assert len(output) == epochs + 1
    if n_classes == 2:  # one unit: at most one state per bin
        assert (output["i_xt"] <= np.log2(output["bins"]) + 1e-9).all()


def test_sequence_network_layer_telemetry_is_sane(sequence_net):
    _, _, net, _, cfg = sequence_net
    _check_telemetry(net, 2, cfg.probe_size)
    assert net.batches["lr"].iloc[-1] == pytest.approx(cfg.seq_lr * cfg.seq_lr_decay)  # decayed after epoch 1


def test_dense_layer_telemetry_is_sane(tmp_path):
    frame = load_reviews(real_archive(), sample=300, seed=6, progress=False).frame
    cfg = Config(dense_vocab=1000, dense_epochs=2, probe_size=100)
    corpus = tokenize(frame["display_text"], ngram_max=1)
    net = train_nn.fit_dense(corpus, frame["label"].to_numpy(), np.arange(len(frame)), cfg, model_id="d",
                             telemetry=True)
    _check_telemetry(net, 2, 100)
    assert set(net.info_plane["layer"]) == {"hidden1", "hidden2", "output"}


def test_information_plane_on_known_cases():
    from pipeline.analyses.telemetry import information_plane

    y = np.array([0, 1] * 50)
    assert information_plane(y[:, None].astype(float), y) == pytest.approx((1.0, 1.0))  # T is Y: one bit each
    assert information_plane(np.zeros((100, 3)), y) == pytest.approx((0.0, 0.0))  # a constant layer knows nothing
    unique = np.arange(100, dtype=float)[:, None]
    i_xt, i_ty = information_plane(unique, y, bins=100)
    assert i_xt == pytest.approx(np.log2(100)) and i_ty == pytest.approx(1.0)


@pytest.mark.parametrize("family", ["dense", "cnn"])
def test_a_multiclass_network_has_a_softmax_output_that_onnx_matches(family, tmp_path):
    from pipeline.models import sequences

    frame = load_reviews(real_archive(), sample=400, seed=8, progress=False).frame
    stars = np.unique(frame["rating"])
    labels = np.searchsorted(stars, frame["rating"].to_numpy())  # 8 classes: the stars
    cfg = Config(dense_vocab=1000, dense_epochs=2, seq_vocab=2000, seq_embed=8, cnn_filters=8, seq_hidden=8,
                 cnn_epochs=1, max_len=64, probe_size=100)
    corpus = tokenize(frame["display_text"], ngram_max=1)
    data = train_nn.NetworkData(corpus, sequences.tokenize_sequences(frame["display_text"]))
    net = train_nn.fit_network(family, data, labels, np.arange(len(frame)), cfg, model_id=f"{family}-x",
                               n_classes=len(stars), telemetry=True)
    path = export.export_network(net, tmp_path / "m.onnx", tokenizer_spec={}, classes=[str(s) for s in stars])
    session = score.OnnxNetwork.load(path, device="cpu")
    x = net.inputs.encode(data)
    probs, emb = session.score(x)
    assert probs.shape == (len(frame), len(stars)) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert np.max(np.abs(probs - net.predict_inputs(x)[0])) <= 1e-4
    _check_telemetry(net, 1 if family == "cnn" else 2, 100, n_classes=len(stars))


def test_the_scoring_pass_gives_each_model_s_rows_their_probabilities_and_embedding(dense, sequence_net, monkeypatch):
    """``score.network_outputs``: two networks (multi-hot and word ids), each with its own rows in no order, scored a
    few rows at a time by the engine; what comes back is each model's rows in the order given, as one session says."""
    from pipeline import engine

    monkeypatch.setattr(engine, "BLOCK_ROWS", 7)  # many blocks, some holding both models' rows
    _, corpus, dense_net, dense_path, _, _ = dense
    _, seq_data, seq_net, seq_path, _ = sequence_net
    rng = np.random.default_rng(0)
    dense_rows = rng.permutation(corpus.counts.shape[0])[:23]
    seq_rows = rng.permutation(len(seq_data.sequences.offsets) - 1)[:31]
    data = train_nn.NetworkData(corpus, seq_data.sequences)  # each network reads its own part
    found = score.network_outputs([(dense_path.read_bytes(), dense_net.inputs, dense_rows),
                                   (seq_path.read_bytes(), seq_net.inputs, seq_rows)], data, device="cpu")
    for (probs, embedding, provider), path, net, rows in zip(found, (dense_path, seq_path), (dense_net, seq_net),
                                                            (dense_rows, seq_rows)):
        want_p, want_e = score.OnnxNetwork.load(path, device="cpu").score(net.inputs.encode(data, rows))
        assert provider == "CPUExecutionProvider" and embedding.dtype == np.float32
        assert probs.shape == want_p.shape and np.abs(probs - want_p).max() <= 1e-6
        assert embedding.shape == want_e.shape and np.abs(embedding - want_e).max() <= 1e-6
    with pytest.raises(ValueError, match="whole numbers in"):  # numpy would read -1 as the last text
        score.network_outputs([(seq_path.read_bytes(), seq_net.inputs, np.array([-1, 0]))], data, device="cpu")
