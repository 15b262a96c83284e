"""What a sequence network misses by reading only ``max_len`` words of a review.

``analyse(session, inputs, seqs, rows, labels)`` scores ``rows`` three more ways with
the same ONNX model and returns one row per review:

- ``p_head``: the first ``max_len`` words; ``p_head_tail``: the first and last
  ``max_len / 2`` words; ``p_model``: whichever of the two the model was trained with;
- ``p_windows``: the whole review, as overlapping ``max_len``-word windows every
  ``stride`` words, aggregated by the mean of the windows' log-odds;
- ``harm`` = loss_model - loss_windows (nats, against the given label): how much
  reading everything lowers the loss. Positive: the unseen part holds evidence the
  model missed. ``harm_rank`` orders the truncated reviews by it (1 = most harmed);
  ``prediction_changes`` says whether the whole text flips the predicted label.
- ``unseen_start`` / ``unseen_end``: character offsets (in ``display_text``) of the
  part the model never read; NULL when the review fits.

Reviews that fit in ``max_len`` words get the same probability everywhere and harm 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.models import sequences


def analyse(session, inputs, seqs: sequences.Sequences, rows: np.ndarray, labels: np.ndarray, *,
            stride: int, text_lengths: np.ndarray) -> pd.DataFrame:
    rows = np.asarray(rows)
    n_words = seqs.lengths[rows]
    p = {}
    for how in sequences.TRUNCATIONS:
        p[how], _ = session.score_ids(sequences.encode(seqs, rows, inputs.remap, inputs.max_len, how))
    p_model = p[inputs.truncation]
    ids, owner = sequences.windows(seqs, rows, inputs.remap, inputs.max_len, stride)
    p_windows = p_model.copy()
    n_windows = np.ones(len(rows), dtype=np.int32)
    if len(owner):
        pw, _ = session.score_ids(ids)
        logit = np.log(np.clip(pw, 1e-7, 1)) - np.log(np.clip(1 - pw, 1e-7, 1))
        sums = np.bincount(owner, weights=logit, minlength=len(rows))
        counts = np.bincount(owner, minlength=len(rows))
        long = counts > 0
        p_windows[long] = 1.0 / (1.0 + np.exp(-sums[long] / counts[long]))
        n_windows[long] = counts[long]
    y = np.asarray(labels)[rows]
    loss_model, loss_windows = _loss(p_model, y), _loss(p_windows, y)
    truncated = n_words > inputs.max_len
    start, end = _unseen_span(seqs, rows, inputs.max_len, inputs.truncation, text_lengths[rows])
    frame = pd.DataFrame({
        "n_words": n_words, "truncated": truncated, "p_model": p_model, "p_head": p["head"],
        "p_head_tail": p["head_tail"], "p_windows": p_windows, "n_windows": n_windows, "loss_model": loss_model,
        "loss_windows": loss_windows, "harm": np.where(truncated, loss_model - loss_windows, 0.0),
        "prediction_changes": truncated & ((p_model >= 0.5) != (p_windows >= 0.5)),
        "unseen_start": pd.array(np.where(truncated, start, -1), dtype="Int32"),
        "unseen_end": pd.array(np.where(truncated, end, -1), dtype="Int32"),
    })
    frame.loc[~truncated, ["unseen_start", "unseen_end"]] = pd.NA
    return frame


def rank(frame: pd.DataFrame) -> pd.Series:
    """1.. over the truncated reviews by harm (largest first); NULL for the rest."""
    ranks = frame["harm"].where(frame["truncated"]).rank(ascending=False, method="first")
    return ranks.astype("Int32")


def _unseen_span(seqs, rows, max_len, truncation, text_lengths) -> tuple[np.ndarray, np.ndarray]:
    start = np.full(len(rows), -1, dtype=np.int64)
    end = np.full(len(rows), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        n = seqs.offsets[r + 1] - seqs.offsets[r]
        head, tail = sequences.cut(n, max_len, truncation)
        if n <= max_len:
            continue
        start[i] = seqs.starts[seqs.offsets[r] + head]
        end[i] = seqs.starts[seqs.offsets[r] + n - tail] if tail else text_lengths[i]
    return start, end


def _loss(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    return -np.log(np.clip(np.where(y == 1, p, 1 - p), 1e-12, 1.0))
