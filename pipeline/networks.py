"""Small PyTorch text classifiers and their inputs.

- ``DenseNet``: Chollet's IMDB model (Deep Learning with Python, ch. 4): a multi-hot
  vector over the most frequent words, Dense(16, relu), Dense(16, relu), sigmoid.
  ``forward(x)`` takes (N, V) float32 and returns ``(p_pos (N,), embedding (N, 16))``,
  the embedding being the last hidden layer.
- ``multi_hot_vocabulary(corpus, rows, size)``: the ``size`` unigrams found in most
  training reviews, as column indices into the corpus.
- ``multi_hot(corpus, columns, rows)``: (n, V) 0/1 float32 matrix for those columns.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from pipeline.train import Corpus

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


class DenseNet(nn.Module):
    def __init__(self, n_inputs: int, *, hidden: int = 16, layers: int = 2, activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
        blocks, width = [], n_inputs
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
            width = hidden
        self.hidden = nn.Sequential(*blocks)
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.hidden(x)
        return torch.sigmoid(self.out(embedding)).squeeze(-1), embedding

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) log-odds of positive; what training optimises."""
        return self.out(self.hidden(x)).squeeze(-1)


def multi_hot_vocabulary(corpus: Corpus, rows: np.ndarray, size: int) -> np.ndarray:
    """Column indices of the ``size`` unigrams in most of ``rows``' reviews (ties: corpus order)."""
    unigram = np.flatnonzero(np.char.find(corpus.vocab.astype(str), " ") < 0)
    doc_freq = np.asarray((corpus.counts[rows][:, unigram] > 0).sum(axis=0)).ravel()
    top = np.argsort(-doc_freq, kind="stable")[:size]
    return np.sort(unigram[top[doc_freq[top] > 0]])


def multi_hot(corpus: Corpus, columns: np.ndarray, rows: np.ndarray | None = None) -> sp.csr_matrix:
    """(n, len(columns)) sparse 0/1 matrix: does the review contain the word."""
    counts = corpus.counts if rows is None else corpus.counts[rows]
    x = counts[:, columns].tocsr()
    x.data[:] = 1.0
    return x.astype(np.float32)
