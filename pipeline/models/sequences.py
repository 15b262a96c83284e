"""Reviews as word-id sequences, for the sequence networks (CNN, BiLSTM).

- ``tokenize_sequences(texts)`` -> ``Sequences``: every review's words in order, as ids
  into one label-free corpus vocabulary, with each word's character offset in the
  text (so a page can mark the part a model never saw). Same token pattern as the
  linear model, lowercased.
- ``Sequences.vocabulary(rows, size)``: the ``size`` words in most of ``rows``'
  reviews, and a remap from corpus ids to model ids (0 = padding, 1 = unknown word,
  2.. = the vocabulary in order).
- ``encode(seqs, rows, remap, max_len, truncation)`` -> (n, max_len) int64 ids,
  padded with 0. ``truncation``: ``head`` keeps the first ``max_len`` words;
  ``head_tail`` keeps the first half and the last half (Sun et al. 2019, "How to
  fine-tune BERT for text classification?", found head+tail best on IMDB).
- ``windows(seqs, rows, remap, max_len, stride)``: every review longer than
  ``max_len`` cut into overlapping windows that together cover all of it.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import scipy.sparse as sp

from pipeline.models.text import TOKEN_PATTERN

PAD, UNKNOWN = 0, 1
TRUNCATIONS = ("head", "head_tail")
_PATTERN = re.compile(TOKEN_PATTERN)


@dataclasses.dataclass(frozen=True)
class Sequences:
    ids: np.ndarray  # (total words,) int32 corpus word ids, review after review
    starts: np.ndarray  # (total words,) int32 character offset of each word in its review
    offsets: np.ndarray  # (N + 1,) int64: review i is ids[offsets[i]:offsets[i + 1]]
    words: np.ndarray  # (G,) the corpus vocabulary, by id

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def review(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    def vocabulary(self, rows: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(words (V,), remap (G,) corpus id -> model id) for the ``size`` words in most of ``rows``."""
        rows = np.asarray(rows)
        n_rows = len(self.offsets) - 1
        lengths = self.lengths
        row_of_word = np.repeat(np.arange(n_rows), lengths)
        present = sp.csr_matrix((np.ones(len(self.ids), np.float32), (row_of_word, self.ids)),
                                shape=(n_rows, len(self.words)))
        doc_freq = np.asarray((present[rows] > 0).sum(axis=0)).ravel()
        top = np.argsort(-doc_freq, kind="stable")[:size]
        top = top[doc_freq[top] > 0]
        remap = np.full(len(self.words), UNKNOWN, dtype=np.int64)
        remap[top] = np.arange(2, len(top) + 2)
        return self.words[top], remap


def tokenize_sequences(texts) -> Sequences:
    ids, starts, offsets, index = [], [], [0], {}
    for text in texts:
        for match in _PATTERN.finditer(text):
            ids.append(index.setdefault(match.group().lower(), len(index)))
            starts.append(match.start())
        offsets.append(len(ids))
    words = np.empty(len(index), dtype=object)
    words[list(index.values())] = list(index.keys())
    return Sequences(np.asarray(ids, dtype=np.int32), np.asarray(starts, dtype=np.int32),
                     np.asarray(offsets, dtype=np.int64), words)


def cut(n_words: int, max_len: int, truncation: str) -> tuple[int, int]:
    """(head, tail): how many leading and trailing words a cut to ``max_len`` keeps."""
    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation must be one of {', '.join(TRUNCATIONS)}; got {truncation!r}")
    if n_words <= max_len:
        return n_words, 0
    if truncation == "head":
        return max_len, 0
    head = max_len // 2
    return head, max_len - head


def encode(seqs: Sequences, rows, remap: np.ndarray, max_len: int, truncation: str) -> np.ndarray:
    rows = np.asarray(rows)
    out = np.zeros((len(rows), max_len), dtype=np.int64)
    for i, r in enumerate(rows):
        review = seqs.review(r)
        head, tail = cut(len(review), max_len, truncation)
        kept = review[:head] if tail == 0 else np.concatenate([review[:head], review[len(review) - tail:]])
        out[i, :len(kept)] = remap[kept]
    return out


def windows(seqs: Sequences, rows, remap: np.ndarray, max_len: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids (W, max_len), owner (W,) position in ``rows``) for the reviews longer than ``max_len``."""
    parts, owner = [], []
    for i, r in enumerate(np.asarray(rows)):
        review = seqs.review(r)
        if len(review) <= max_len:
            continue
        starts = list(range(0, len(review) - max_len + 1, stride))
        if starts[-1] != len(review) - max_len:
            starts.append(len(review) - max_len)
        for s in starts:
            parts.append(remap[review[s:s + max_len]])
            owner.append(i)
    if not parts:
        return np.zeros((0, max_len), dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.stack(parts).astype(np.int64), np.asarray(owner, dtype=np.int64)
