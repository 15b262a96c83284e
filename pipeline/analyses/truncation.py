"""What a sequence network misses by reading only ``max_len`` words of a review.

``analyse(session, inputs, seqs, rows, labels)`` scores ``rows`` three more ways with
the same ONNX model and returns one row per review, with the probability of the given
label (``p_*``) and the predicted class (``pred_*``) for each way of reading:

- ``head``: the first ``max_len`` words; ``head_tail``: the first and last
  ``max_len / 2`` words; ``model``: whichever of the two the model was trained with;
- ``windows``: the whole review, as overlapping ``max_len``-word windows every
  ``stride`` words, aggregated by the mean of the windows' log-probabilities,
  renormalised (for two classes: the mean of the windows' log-odds);
- ``harm`` = loss_model - loss_windows (nats, against the given label): how much
  reading everything lowers the loss. Positive: the unseen part holds evidence the
  model missed. ``harm_rank`` orders the truncated reviews by it (1 = most harmed);
  ``prediction_changes`` says whether the whole text changes the predicted class.
- ``unseen_start`` / ``unseen_end``: character offsets (in ``display_text``) of the
  part the model never read; NULL when the review fits.

Reviews that fit in ``max_len`` words get the same probability everywhere and harm 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import softmax

from pipeline.engine import by_group
from pipeline.models import outputs, sequences


_BATCH_ROWS = 512  # reviews per batch of the engine (a Ray Data batch)


def analyse_models(models: list[tuple[bytes, object, np.ndarray]], seqs: sequences.Sequences, labels: np.ndarray, *,
                   stride: int, text_lengths: np.ndarray, device: str, engine=None,
                   progress: bool = False) -> pd.DataFrame:
    """``analyse`` for each of ``models`` ((ONNX bytes, its ``SequenceInput``, the rows it reads)), one frame with
    ``model`` (its index) and ``row``, in that order. The reviews go through ``engine.map_batches``
    (``pipeline.engine``; this process when None): on Ray, a pool of actors that each hold a session per model."""
    from pipeline.engine import LocalEngine

    jobs = pd.concat([pd.DataFrame({"model": j, "row": np.asarray(rows, dtype=np.int64)})
                      for j, (_, _, rows) in enumerate(models)], ignore_index=True)
    shared = ([(onnx, inputs) for onnx, inputs, _ in models], seqs, np.asarray(labels), stride,
              np.asarray(text_lengths), device)
    found = (engine or LocalEngine()).map_batches(_Reader, shared, jobs, desc="truncation windows",
                                                  batch_rows=_BATCH_ROWS, progress=progress)
    return found.drop(columns="job", errors="ignore")


class _Reader:
    """A batch worker (``engine.map_batches``): an ONNX Runtime session per model; each job's review read every way."""

    def __init__(self, shared):
        from pipeline.models.score import OnnxNetwork

        models, self.seqs, self.labels, self.stride, self.text_lengths, device = shared
        self.models = [(OnnxNetwork.from_bytes(onnx, device=device), inputs) for onnx, inputs in models]

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return by_group(batch, "model", self._read)

    def _read(self, j: int, rows: np.ndarray) -> pd.DataFrame:
        session, inputs = self.models[j]
        return analyse(session, inputs, self.seqs, rows, self.labels, stride=self.stride,
                       text_lengths=self.text_lengths).assign(model=j, row=rows)


def analyse(session, inputs, seqs: sequences.Sequences, rows: np.ndarray, labels: np.ndarray, *,
            stride: int, text_lengths: np.ndarray) -> pd.DataFrame:
    rows = np.asarray(rows)
    n_words = seqs.lengths[rows]
    probs = {}
    for how in sequences.TRUNCATIONS:
        probs[how], _ = session.score_ids(sequences.encode(seqs, rows, inputs.remap, inputs.max_len, how))
    probs["model"] = probs[inputs.truncation]
    ids, owner = sequences.windows(seqs, rows, inputs.remap, inputs.max_len, stride)
    whole = probs["model"].copy()
    n_windows = np.ones(len(rows), dtype=np.int32)
    if len(owner):
        pw, _ = session.score_ids(ids)
        logs = np.log(np.clip(pw, 1e-7, 1.0))
        sums = np.zeros((len(rows), pw.shape[1]))
        np.add.at(sums, owner, logs)
        counts = np.bincount(owner, minlength=len(rows))
        long = counts > 0
        whole[long] = softmax(sums[long] / counts[long, None], axis=1)
        n_windows[long] = counts[long]
    probs["windows"] = whole
    y = np.asarray(labels)[rows]
    loss_model, loss_windows = outputs.loss(probs["model"], y), outputs.loss(whole, y)
    truncated = n_words > inputs.max_len
    start, end = _unseen_span(seqs, rows, inputs.max_len, inputs.truncation, text_lengths[rows])
    given = {how: p[np.arange(len(rows)), y] for how, p in probs.items()}
    pred = {how: outputs.predicted_class(p) for how, p in probs.items()}
    frame = pd.DataFrame({
        "n_words": n_words, "truncated": truncated,
        **{f"p_{how}": given[how] for how in ("model", "head", "head_tail", "windows")},
        **{f"pred_{how}": pred[how] for how in ("model", "head", "head_tail", "windows")},
        "n_windows": n_windows, "loss_model": loss_model, "loss_windows": loss_windows,
        "harm": np.where(truncated, loss_model - loss_windows, 0.0),
        "prediction_changes": truncated & (pred["model"] != pred["windows"]),
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
