"""Small PyTorch text classifiers and their inputs.

Every network's ``forward(x)`` returns ``(probs (N, K), embedding (N, d))``, the
embedding being the penultimate layer. The output layer has one unit and a sigmoid for
two classes (so the binary networks are exactly the ones the IMDB figures were measured
with) and K units and a softmax for more. ``logit(x)`` is what training optimises
((N,) log-odds, or (N, K) softmax inputs; ``objective`` is its loss), and ``trace(x)``
returns ``(logit, [Layer, ...])`` with each layer's values for the training telemetry
(``pipeline.analyses.telemetry``).

- ``DenseNet``: Chollet's IMDB model (Deep Learning with Python, ch. 4): a multi-hot
  vector over the most frequent words, Dense(16, relu), Dense(16, relu), sigmoid/softmax.
  Input (N, V) float32.
- ``ConvNet``: word embeddings, one 1-D convolution with ReLU, global max and mean
  pooling over the words, Dense(relu), sigmoid. Input (N, L) int64 word ids, 0 = padding.
- ``BiLSTMNet``: word embeddings, a bidirectional LSTM, max pooling over the words,
  Dense(relu), sigmoid. Same input as ``ConvNet``.
- ``multi_hot_vocabulary(corpus, rows, size)``: the ``size`` unigrams found in most
  training reviews, as column indices into the corpus.
- ``multi_hot(corpus, columns, rows)``: (n, V) 0/1 float32 matrix for those columns.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from pipeline.models.text import Corpus

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


@dataclasses.dataclass
class Layer:
    """One layer's values on a batch, for telemetry. ``pre``/``post``: before and after
    the activation (None where the layer has none), (N, units) or, for layers applied
    at every word, (N, L, units) with ``positions`` (N, L) marking the real words;
    ``representation``: (N, d) what the layer passes on per review (the information
    plane's T)."""

    name: str
    module: nn.Module | None
    pre: torch.Tensor | None
    post: torch.Tensor | None
    representation: torch.Tensor | None
    relu: bool = False
    positions: torch.Tensor | None = None


def n_outputs(n_classes: int) -> int:
    """Output units: one (sigmoid) for two classes, else one per class (softmax)."""
    return 1 if n_classes == 2 else n_classes


def probabilities(logit: torch.Tensor) -> torch.Tensor:
    """(N, K) class probabilities from ``logit``: (N,) log-odds, or (N, K) softmax inputs."""
    if logit.dim() == 1:
        p = torch.sigmoid(logit)
        return torch.stack([1.0 - p, p], dim=1)
    return torch.softmax(logit, dim=1)


def objective(logit: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``logit`` against class indices ``y``: binary on log-odds, else categorical."""
    if logit.dim() == 1:
        return nn.functional.binary_cross_entropy_with_logits(logit, y.to(torch.float32))
    return nn.functional.cross_entropy(logit, y.to(torch.int64))


class DenseNet(nn.Module):
    def __init__(self, n_inputs: int, *, hidden: int = 16, layers: int = 2, activation: str = "relu",
                 n_classes: int = 2):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
        blocks, width = [], n_inputs
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
            width = hidden
        self.hidden = nn.Sequential(*blocks)
        self.out = nn.Linear(width, n_outputs(n_classes))
        self.relu = activation == "relu"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.hidden(x)
        return probabilities(_squeezed(self.out(embedding))), embedding

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) log-odds of class 1, or (N, K) softmax inputs; what training optimises."""
        return _squeezed(self.out(self.hidden(x)))

    def trace(self, x: torch.Tensor) -> tuple[torch.Tensor, list[Layer]]:
        layers, h = [], x
        for i in range(0, len(self.hidden), 2):
            linear, act = self.hidden[i], self.hidden[i + 1]
            pre = linear(h)
            h = act(pre)
            layers.append(Layer(f"hidden{i // 2 + 1}", linear, pre, h, h, self.relu))
        return _with_output(self.out, h, layers)


class _SequenceNet(nn.Module):
    """What the sequence networks share: forward and logit are both read off ``trace``."""

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _forward(self, ids)

    def logit(self, ids: torch.Tensor) -> torch.Tensor:
        return self.trace(ids)[0]


class ConvNet(_SequenceNet):
    def __init__(self, vocab_size: int, *, embed: int = 64, filters: int = 64, kernel: int = 5,
                 hidden: int = 32, dropout: float = 0.2, n_classes: int = 2):
        super().__init__()
        self.embedding = _embedding(vocab_size, embed)
        self.word_dropout = nn.Dropout1d(dropout)  # drops whole word vectors: as accurate as dropping single
        # values and a fifth faster to train (a mask per word, not per value; bench/network_accuracy.py)
        self.dropout = nn.Dropout(dropout)
        self.conv = nn.Conv1d(embed, filters, kernel, padding=kernel // 2)
        self.dense = nn.Linear(2 * filters, hidden)
        self.out = nn.Linear(hidden, n_outputs(n_classes))

    def trace(self, ids: torch.Tensor) -> tuple[torch.Tensor, list[Layer]]:
        mask = (ids != 0).unsqueeze(1).to(torch.float32)  # (N, 1, L)
        pre = self.conv(self.word_dropout(self.embedding(ids)).transpose(1, 2))  # (N, F, L); words as channels
        post = torch.relu(pre) * mask  # >= 0, so padding (0) never wins the max
        pooled = torch.cat([post.amax(dim=2), post.sum(dim=2) / mask.sum(dim=2).clamp(min=1.0)], dim=1)
        pre_dense = self.dense(self.dropout(pooled))
        h = torch.relu(pre_dense)
        layers = [
            Layer("embedding", self.embedding, None, None, None),
            Layer("conv", self.conv, pre.transpose(1, 2), post.transpose(1, 2), pooled, True, ids != 0),
            Layer("dense", self.dense, pre_dense, h, h, True),
        ]
        return _with_output(self.out, h, layers)


class BiLSTMNet(_SequenceNet):
    def __init__(self, vocab_size: int, *, embed: int = 64, hidden: int = 64, dense: int = 32, dropout: float = 0.2,
                 n_classes: int = 2):
        super().__init__()
        self.embedding = _embedding(vocab_size, embed)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True, bidirectional=True)
        self.dense = nn.Linear(2 * hidden, dense)
        self.out = nn.Linear(dense, n_outputs(n_classes))

    def trace(self, ids: torch.Tensor) -> tuple[torch.Tensor, list[Layer]]:
        mask = (ids != 0).unsqueeze(2).to(torch.float32)  # (N, L, 1)
        states, _ = self.lstm(self.dropout(self.embedding(ids)))  # (N, L, 2H), each in (-1, 1)
        pooled = (states * mask + (mask - 1.0) * 2.0).amax(dim=1)  # padding pushed below -1
        pooled = pooled.clamp(min=-1.0)  # an empty review pools to -1
        pre_dense = self.dense(self.dropout(pooled))
        h = torch.relu(pre_dense)
        layers = [
            Layer("embedding", self.embedding, None, None, None),
            Layer("lstm", self.lstm, None, states, pooled, positions=ids != 0),
            Layer("dense", self.dense, pre_dense, h, h, True),
        ]
        return _with_output(self.out, h, layers)


def _embedding(vocab_size: int, dim: int) -> nn.Embedding:
    emb = nn.Embedding(vocab_size, dim, padding_idx=0)
    with torch.no_grad():  # small uniform start (as Keras does); N(0, 1) made training several times slower
        emb.weight.uniform_(-0.05, 0.05)
        emb.weight[0].zero_()
    return emb


def _squeezed(raw: torch.Tensor) -> torch.Tensor:
    """A one-unit output as (N,) log-odds; K units stay (N, K)."""
    return raw.squeeze(-1) if raw.shape[-1] == 1 else raw


def _with_output(out: nn.Linear, h: torch.Tensor, layers: list[Layer]) -> tuple[torch.Tensor, list[Layer]]:
    raw = out(h)
    logit = _squeezed(raw)
    post = torch.sigmoid(raw) if raw.shape[-1] == 1 else torch.softmax(raw, dim=1)
    layers.append(Layer("output", out, raw, post, post))
    return logit, layers


def _forward(net, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logit, layers = net.trace(x)
    return probabilities(logit), layers[-2].representation


def multi_hot_vocabulary(corpus: Corpus, rows: np.ndarray, size: int) -> np.ndarray:
    """Column indices of the ``size`` unigrams in most of ``rows``' reviews (ties: corpus order)."""
    unigram = corpus.unigrams
    doc_freq = np.asarray((corpus.counts[rows] > 0).sum(axis=0)).ravel()[unigram]
    top = np.argsort(-doc_freq, kind="stable")[:size]
    return np.sort(unigram[top[doc_freq[top] > 0]])


def multi_hot(corpus: Corpus, columns: np.ndarray, rows: np.ndarray | None = None) -> sp.csr_matrix:
    """(n, len(columns)) sparse 0/1 matrix: does the review contain the word."""
    counts = corpus.counts if rows is None else corpus.counts[rows]
    x = counts[:, columns].tocsr()
    x.data[:] = 1.0
    return x.astype(np.float32)
