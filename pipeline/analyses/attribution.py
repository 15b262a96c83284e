"""What a network read: word attributions by occlusion, through its ONNX file, on demand (issue 14).

``occlusion(model, text, target)`` scores ``text`` with a stored network (an
``OnnxNetwork`` from ``models.score.load_stored``: the fold model that never saw the
review) once as it is and once without each word, all in one batch through ONNX Runtime,
and returns one row per word of the text: ``token`` (lowercased, as the model's
tokenizer reads it), ``start`` / ``end`` (character offsets in the text), ``value`` (how much the
model's log-odds of class ``target`` fall when the word is left out, so > 0 means the word
pushes toward ``target``), and ``read`` (False for the words a sequence network's cut to
``max_len`` words never shows it; they get no value).

- a sequence network (word ids) loses the word at that position: the words after it move
  up, as if it had never been written; its own cut (head or head+tail) applies first;
- the dense network (multi-hot) loses the word everywhere, so every occurrence of a word
  gets the same value.

Occlusion is model-agnostic and exact for what it measures (no sampling), and needs no
gradient, so it runs on the exported graph the run scored with, never on a retrained or
re-loaded PyTorch model. Its cost is one forward pass per word read: 257 sequences of 256
words for a long review, well under a second on a CPU.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from pipeline.models import sequences

_BLOCK = 256  # dense network: the texts without one word each are scored this many at a time (bounded memory)


def occlusion(model, text: str, target: int) -> pd.DataFrame:
    """One row per word of ``text``: token, start, value (log-odds of ``target`` lost without it), read."""
    spec = model.tokenizer
    pattern = re.compile(spec.get("token_pattern", sequences.TOKEN_PATTERN))
    found = [(m.group().lower() if spec.get("lowercase", True) else m.group(), m.start(), m.end())
             for m in pattern.finditer(text)]
    words = [w for w, _, _ in found]
    index = {w: i for i, w in enumerate(model.vocab)}
    if "max_len" in spec:
        values, read, base = _sequence(model, words, index, spec, target)
    else:
        values, read, base = _multi_hot(model, words, index, target)
    out = pd.DataFrame({"token": words, "start": [a for _, a, _ in found], "end": [b for _, _, b in found],
                        "value": values, "read": read})
    out.attrs["p_target"] = base  # the model's probability of ``target`` for the whole text as it reads it
    return out


def _log_odds(probs: np.ndarray, target: int) -> np.ndarray:
    p = np.clip(probs[:, target], 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def _sequence(model, words, index, spec, target) -> tuple[np.ndarray, np.ndarray]:
    max_len = int(spec["max_len"])
    ids = np.array([index.get(w, -1) + 2 if w in index else sequences.UNKNOWN for w in words], dtype=np.int64)
    head, tail = sequences.cut(len(ids), max_len, spec.get("truncation", "head"))
    kept = np.r_[np.arange(head), np.arange(len(ids) - tail, len(ids))].astype(int)
    read = np.zeros(len(ids), dtype=bool)
    read[kept] = True
    values = np.full(len(ids), np.nan)
    if not len(kept):  # no word at all: the model reads padding alone, as the run scored it
        return values, read, float(model.score_ids(np.zeros((1, max_len), dtype=np.int64))[0][0, target])
    seq = ids[kept]
    batch = np.zeros((len(kept) + 1, max_len), dtype=np.int64)  # padded to max_len, as the run encoded it
    batch[0, :len(seq)] = seq
    for j in range(len(seq)):
        without = np.delete(seq, j)
        batch[j + 1, :len(without)] = without
    probs = model.score_ids(batch)[0]
    logit = _log_odds(probs, target)
    values[kept] = logit[0] - logit[1:]
    return values, read, float(probs[0, target])


def _multi_hot(model, words, index, target) -> tuple[np.ndarray, np.ndarray, float]:
    import scipy.sparse as sp

    present = np.array(sorted({index[w] for w in words if w in index}), dtype=np.int64)
    n = len(present)
    whole = sp.csr_matrix((np.ones(n, np.float32), present, [0, n]), shape=(1, len(model.vocab)))
    probs = [model.score_multi_hot(whole)[0]]
    for first in range(0, n, _BLOCK):  # the text without each word in turn, a block of rows at a time
        drops = np.arange(first, min(first + _BLOCK, n))
        keep = np.ones((len(drops), n), dtype=bool)
        keep[np.arange(len(drops)), drops] = False
        x = sp.csr_matrix((np.ones(keep.sum(), np.float32), np.tile(present, len(drops))[keep.ravel()],
                           np.arange(len(drops) + 1) * (n - 1)), shape=(len(drops), len(model.vocab)))
        probs.append(model.score_multi_hot(x)[0])
    probs = np.concatenate(probs)
    logit = _log_odds(probs, target)
    by_column = dict(zip(present.tolist(), logit[0] - logit[1:]))
    values = np.array([by_column.get(index.get(w, -1), np.nan) for w in words], dtype=float)
    return values, np.array([w in index for w in words], dtype=bool), float(probs[0, target])
