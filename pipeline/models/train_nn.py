"""Train the PyTorch networks, recording training telemetry.

``fit_network(family, data, labels, rows, cfg, *, model_id, val_rows=None,
telemetry=False)`` trains one network of ``family`` (``dense``, ``cnn`` or
``bilstm``; see ``pipeline.models.networks``) on ``rows`` only (its vocabulary too) and
returns a ``TrainedNetwork``:

- ``batches``: loss, accuracy and learning rate per batch;
- ``epochs``: train loss and accuracy (on up to ``_TRAIN_EVAL`` of the training
  reviews, seeded) and validation loss and accuracy (on ``val_rows``) after each epoch;
- with ``telemetry``: ``layer_stats``, ``layer_histograms`` and ``info_plane`` per
  epoch (``pipeline.analyses.telemetry``) on a fixed probe of ``cfg.probe_size`` training reviews.

``TrainedNetwork.predict(data, rows)`` is the native PyTorch score, (p_pos,
embedding); the ONNX copy must match it (``pipeline.models.score.check_parity``).
``fit_dense`` is the dense case, kept for the sweep and tests.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn

from pipeline.models import sequences
from pipeline.analyses import telemetry
from pipeline.config import Config
from pipeline.models.networks import BiLSTMNet, ConvNet, DenseNet, multi_hot, multi_hot_vocabulary
from pipeline.models.sequences import Sequences
from pipeline.models.linear import Corpus

FAMILIES = ("dense", "cnn", "bilstm")
_EVAL_BATCH = 1024
_TRAIN_EVAL = 5000


@dataclasses.dataclass(frozen=True)
class NetworkData:
    """What the networks read: n-gram counts (dense) and word sequences (cnn, bilstm)."""

    corpus: Corpus
    sequences: Sequences | None = None


@dataclasses.dataclass(frozen=True)
class MultiHotInput:
    columns: np.ndarray  # (V,) corpus columns of the words
    vocab: np.ndarray  # (V,) the words

    name = "x"

    def encode(self, data: NetworkData, rows=None) -> sp.csr_matrix:
        return multi_hot(data.corpus, self.columns, rows)

    def tensor(self, x) -> torch.Tensor:
        return torch.from_numpy(np.asarray(x.todense(), dtype=np.float32))

    def spec(self) -> dict:
        return {"input": "multi-hot over the vocabulary, 1.0 if the word occurs", "ngram_range": [1, 1]}


@dataclasses.dataclass(frozen=True)
class SequenceInput:
    remap: np.ndarray  # (G,) corpus word id -> model id
    vocab: np.ndarray  # (V,) the words; model id i + 2
    max_len: int
    truncation: str

    name = "token_ids"

    def encode(self, data: NetworkData, rows=None, *, truncation: str | None = None) -> np.ndarray:
        rows = np.arange(len(data.sequences.offsets) - 1) if rows is None else rows
        return sequences.encode(data.sequences, rows, self.remap, self.max_len, truncation or self.truncation)

    def tensor(self, x) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x))

    def spec(self) -> dict:
        return {"input": "word ids in order: 0 padding, 1 unknown word, i + 2 the i-th vocabulary word",
                "ngram_range": [1, 1], "max_len": self.max_len, "truncation": self.truncation}


@dataclasses.dataclass
class TrainedNetwork:
    model_id: str
    family: str
    net: nn.Module
    inputs: MultiHotInput | SequenceInput
    train_rows: np.ndarray
    batches: pd.DataFrame = None  # epoch, batch, step, loss, accuracy, lr
    epochs: pd.DataFrame = None  # epoch, train_loss, train_accuracy, val_loss, val_accuracy
    layer_stats: pd.DataFrame | None = None
    layer_histograms: pd.DataFrame | None = None
    info_plane: pd.DataFrame | None = None

    @property
    def vocab(self) -> np.ndarray:
        return self.inputs.vocab

    @property
    def columns(self) -> np.ndarray:  # the dense network's corpus columns
        return self.inputs.columns

    def predict(self, data: NetworkData | Corpus, rows=None) -> tuple[np.ndarray, np.ndarray]:
        """(p_pos (n,), embedding (n, d)) from PyTorch."""
        data = data if isinstance(data, NetworkData) else NetworkData(data)
        return self.predict_inputs(self.inputs.encode(data, rows))

    @torch.no_grad()
    def predict_inputs(self, x) -> tuple[np.ndarray, np.ndarray]:
        """The same, for inputs already encoded (multi-hot matrix or word-id array)."""
        self.net.eval()
        ps, embs = [], []
        for start in range(0, x.shape[0], _EVAL_BATCH):
            p, emb = self.net(self.inputs.tensor(x[start:start + _EVAL_BATCH]))
            ps.append(p.numpy())
            embs.append(emb.numpy())
        if not ps:
            return np.empty(0), np.empty((0, 0), dtype=np.float32)
        return np.concatenate(ps).astype(np.float64), np.concatenate(embs)


@dataclasses.dataclass(frozen=True)
class Recipe:
    epochs: int
    batch: int
    lr: float
    lr_decay: float  # learning rate multiplied by this after each epoch
    optimizer: str  # 'rmsprop' | 'adam'
    loss: str = "bce"  # 'bce' | 'mse' (on the probability; the sweep only)


def recipe(family: str, cfg: Config) -> Recipe:
    if family == "dense":
        return Recipe(cfg.dense_epochs, cfg.dense_batch, cfg.dense_lr, 1.0, "rmsprop")
    if family == "cnn":
        return Recipe(cfg.cnn_epochs, cfg.seq_batch, cfg.seq_lr, cfg.seq_lr_decay, "adam")
    if family == "bilstm":
        return Recipe(cfg.bilstm_epochs, cfg.seq_batch, cfg.seq_lr, cfg.seq_lr_decay, "adam")
    raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {family!r}")


def fit_network(family: str, data: NetworkData, labels: np.ndarray, rows: np.ndarray, cfg: Config, *,
                model_id: str, val_rows: np.ndarray | None = None, telemetry: bool = False,
                make_net=None, how: Recipe | None = None) -> TrainedNetwork:
    """Train one network; ``make_net(n_inputs)`` and ``how`` override the dense network and recipe (the sweep)."""
    labels = np.asarray(labels)
    rows = np.asarray(rows)
    if len(np.unique(labels[rows])) != 2:
        raise ValueError(f"{model_id}: training rows must hold both labels")
    torch.manual_seed(cfg.seed)
    if family == "dense":
        columns = multi_hot_vocabulary(data.corpus, rows, cfg.dense_vocab)
        inputs = MultiHotInput(columns, data.corpus.vocab[columns])
        net = (make_net or (lambda n: DenseNet(n, hidden=cfg.dense_hidden, layers=cfg.dense_layers)))(len(columns))
    else:
        if data.sequences is None:
            raise ValueError(f"{model_id}: the {family} network needs word sequences")
        vocab, remap = data.sequences.vocabulary(rows, cfg.seq_vocab)
        inputs = SequenceInput(remap, vocab, cfg.max_len, cfg.truncation)
        if family == "cnn":
            net = ConvNet(len(vocab) + 2, embed=cfg.seq_embed, filters=cfg.cnn_filters, kernel=cfg.cnn_kernel,
                          hidden=cfg.seq_hidden)
        else:
            net = BiLSTMNet(len(vocab) + 2, embed=cfg.seq_embed, hidden=cfg.lstm_units, dense=cfg.seq_hidden)
    trained = TrainedNetwork(model_id, family, net, inputs, rows)
    _train(trained, data, labels, val_rows, cfg, how or recipe(family, cfg), telemetry)
    return trained


def fit_dense(corpus: Corpus, labels, rows, cfg: Config, *, model_id: str, val_rows=None,
              telemetry: bool = False) -> TrainedNetwork:
    """Chollet's dense IMDB model, trained on ``rows`` of the corpus."""
    return fit_network("dense", NetworkData(corpus), labels, rows, cfg, model_id=model_id, val_rows=val_rows,
                       telemetry=telemetry)


def _train(trained: TrainedNetwork, data, labels, val_rows, cfg, how: Recipe, with_telemetry: bool) -> None:
    net, rows = trained.net, trained.train_rows
    params = net.parameters()
    optimiser = (torch.optim.RMSprop(params, lr=how.lr) if how.optimizer == "rmsprop"
                 else torch.optim.Adam(params, lr=how.lr))
    objective = _objective(how.loss)
    x_all = trained.inputs.encode(data, rows)
    y_all = torch.from_numpy(labels[rows].astype(np.float32))
    rng = np.random.default_rng(cfg.seed)
    eval_idx = np.sort(rng.permutation(len(rows))[:_TRAIN_EVAL])
    has_val = val_rows is not None and len(val_rows) > 0
    x_val = trained.inputs.encode(data, val_rows) if has_val else None
    probe_idx = np.sort(rng.permutation(len(rows))[:cfg.probe_size])
    x_probe, y_probe = trained.inputs.tensor(x_all[probe_idx]), labels[rows][probe_idx]
    snapshots = [telemetry.snapshot(net, x_probe, y_probe, 0)] if with_telemetry else []
    batches, epochs, step = [], [], 0
    for epoch in range(1, how.epochs + 1):
        net.train()
        order = rng.permutation(len(rows))
        for b, start in enumerate(range(0, len(order), how.batch)):
            idx = np.sort(order[start:start + how.batch])
            x, y = trained.inputs.tensor(x_all[idx]), y_all[idx]
            logit = net.logit(x)
            loss = objective(logit, y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
            batches.append((epoch, b, step, float(loss.detach()), float(((logit.detach() > 0).float() == y).float().mean()),
                            optimiser.param_groups[0]["lr"]))
        train_loss, train_acc = _evaluate(trained, x_all[eval_idx], labels[rows][eval_idx])
        val = _evaluate(trained, x_val, labels[val_rows]) if has_val else (None, None)
        epochs.append((epoch, train_loss, train_acc, *val))
        if with_telemetry:
            snapshots.append(telemetry.snapshot(net, x_probe, y_probe, epoch))
        for group in optimiser.param_groups:
            group["lr"] *= how.lr_decay
    trained.batches = pd.DataFrame(batches, columns=["epoch", "batch", "step", "loss", "accuracy", "lr"])
    trained.epochs = pd.DataFrame(epochs, columns=["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"])
    if snapshots:
        trained.layer_stats, trained.layer_histograms, trained.info_plane = (
            pd.concat([s[i] for s in snapshots], ignore_index=True) for i in range(3))


def _objective(name: str):
    if name == "bce":
        return nn.BCEWithLogitsLoss()
    if name == "mse":
        return lambda logit, y: nn.functional.mse_loss(torch.sigmoid(logit), y)
    raise ValueError(f"loss must be 'bce' or 'mse'; got {name!r}")


def _evaluate(trained: TrainedNetwork, x, y: np.ndarray) -> tuple[float, float]:
    """(cross-entropy in nats, accuracy) whatever the training objective."""
    p, _ = trained.predict_inputs(x)
    p_given = np.clip(np.where(y == 1, p, 1 - p), 1e-7, 1.0)
    return float(-np.log(p_given).mean()), float(((p >= 0.5) == y).mean())
