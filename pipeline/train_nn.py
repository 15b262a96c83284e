"""Train the PyTorch networks, recording training telemetry.

``fit_dense(corpus, labels, rows, cfg, *, model_id, val_rows=None)`` trains a
``networks.DenseNet`` on ``rows`` only (its multi-hot vocabulary too) with RMSprop
and binary cross-entropy, and returns a ``TrainedNetwork`` whose ``batches`` frame
holds loss, accuracy and learning rate per batch and whose ``epochs`` frame holds
train and validation loss and accuracy per epoch (validation on ``val_rows``).
``TrainedNetwork.predict(corpus, rows)`` is the native PyTorch score, (p_pos,
embedding); the ONNX copy must match it (``pipeline.score.check_parity``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipeline.config import Config
from pipeline.networks import DenseNet, multi_hot, multi_hot_vocabulary
from pipeline.train import Corpus

_EVAL_BATCH = 4096


@dataclasses.dataclass
class TrainedNetwork:
    model_id: str
    net: DenseNet
    columns: np.ndarray  # (V,) corpus columns of the multi-hot vocabulary
    vocab: np.ndarray  # (V,) the words
    train_rows: np.ndarray
    batches: pd.DataFrame  # epoch, batch, step, loss, accuracy, lr
    epochs: pd.DataFrame  # epoch, train_loss, train_accuracy, val_loss, val_accuracy

    def predict(self, corpus: Corpus, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(p_pos (n,), embedding (n, hidden)) from PyTorch."""
        return self.predict_multi_hot(multi_hot(corpus, self.columns, rows))

    @torch.no_grad()
    def predict_multi_hot(self, x) -> tuple[np.ndarray, np.ndarray]:
        """The same, for an (n, V) multi-hot matrix already built over ``columns``."""
        self.net.eval()
        ps, embs = [], []
        for start in range(0, x.shape[0], _EVAL_BATCH):
            p, emb = self.net(torch.from_numpy(x[start:start + _EVAL_BATCH].toarray()))
            ps.append(p.numpy())
            embs.append(emb.numpy())
        return np.concatenate(ps).astype(np.float64), np.concatenate(embs)


def fit_dense(corpus: Corpus, labels: np.ndarray, rows: np.ndarray, cfg: Config, *, model_id: str,
              val_rows: np.ndarray | None = None) -> TrainedNetwork:
    """Chollet's dense IMDB model, trained on ``rows`` of the corpus."""
    labels = np.asarray(labels)
    rows = np.asarray(rows)
    if len(np.unique(labels[rows])) != 2:
        raise ValueError(f"{model_id}: training rows must hold both labels")
    columns = multi_hot_vocabulary(corpus, rows, cfg.dense_vocab)
    torch.manual_seed(cfg.seed)
    net = DenseNet(len(columns), hidden=cfg.dense_hidden, layers=cfg.dense_layers)
    trained = TrainedNetwork(model_id, net, columns, corpus.vocab[columns], rows, pd.DataFrame(), pd.DataFrame())
    _train(trained, corpus, labels, val_rows, cfg)
    return trained


def _train(trained: TrainedNetwork, corpus, labels, val_rows, cfg) -> None:
    net, rows = trained.net, trained.train_rows
    optimiser = torch.optim.RMSprop(net.parameters(), lr=cfg.dense_lr)
    loss_fn = nn.BCEWithLogitsLoss()
    x_all = multi_hot(corpus, trained.columns, rows)
    x_val = multi_hot(corpus, trained.columns, val_rows) if val_rows is not None and len(val_rows) else None
    y_all = torch.from_numpy(labels[rows].astype(np.float32))
    rng = np.random.default_rng(cfg.seed)
    batches, epochs, step = [], [], 0
    for epoch in range(1, cfg.dense_epochs + 1):
        net.train()
        order = rng.permutation(len(rows))
        for b, start in enumerate(range(0, len(order), cfg.dense_batch)):
            idx = order[start:start + cfg.dense_batch]
            x, y = torch.from_numpy(x_all[idx].toarray()), y_all[idx]
            logit = net.logit(x)
            loss = loss_fn(logit, y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
            batches.append((epoch, b, step, float(loss.detach()), float(((logit.detach() > 0).float() == y).float().mean()),
                            optimiser.param_groups[0]["lr"]))
        train_loss, train_acc = _evaluate(trained, x_all, labels[rows])
        val = _evaluate(trained, x_val, labels[val_rows]) if x_val is not None else (None, None)
        epochs.append((epoch, train_loss, train_acc, *val))
    trained.batches = pd.DataFrame(batches, columns=["epoch", "batch", "step", "loss", "accuracy", "lr"])
    trained.epochs = pd.DataFrame(epochs, columns=["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"])


def _evaluate(trained: TrainedNetwork, x, y: np.ndarray) -> tuple[float, float]:
    p, _ = trained.predict_multi_hot(x)
    p_given = np.clip(np.where(y == 1, p, 1 - p), 1e-7, 1.0)
    return float(-np.log(p_given).mean()), float(((p >= 0.5) == y).mean())
