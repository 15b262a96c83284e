"""What a model's (N, K) class probabilities say about each review: one prediction row.

``prediction_frame(ids, labels, probs, *, family, protocol, model_id, seen)`` returns
``PREDICTION_COLUMNS``: the probabilities (``probs``, one per class, class order of the
dataset), ``p_given`` (of the given label), ``pred_label`` and ``p_pred`` (the
predicted class and its probability), ``loss`` (cross-entropy against the given label,
nats) and ``margin`` (p_given minus the largest other probability, -1..1; below 0 the
model prefers another class). For two classes this is the margin 2 p_given - 1 and the
predicted class is 1 when p >= 0.5, as always.

``predicted_class(probs)`` and ``loss(probs, labels)`` are the same rules for code that
needs only them (label issues, the truncation analysis, training curves).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PREDICTION_COLUMNS = ["family", "protocol", "sample_id", "model_id", "seen_in_training", "probs", "p_given",
                      "pred_label", "p_pred", "loss", "margin"]
EPSILON = 1e-12  # probabilities are clipped here before the log


def predicted_class(probs: np.ndarray) -> np.ndarray:
    """(N,) the most probable class; for two classes class 1 exactly when p(1) >= 0.5."""
    probs = np.asarray(probs)
    if probs.shape[1] == 2:
        return (probs[:, 1] >= 0.5).astype(np.int16)
    return probs.argmax(axis=1).astype(np.int16)


def loss(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) cross-entropy of each row against its label, nats."""
    p_given = np.asarray(probs)[np.arange(len(labels)), np.asarray(labels, dtype=int)]
    return -np.log(np.clip(p_given, EPSILON, 1.0))


def binary_probs(p_pos: np.ndarray) -> np.ndarray:
    """(N, 2) [1 - p, p] from P(class 1)."""
    p_pos = np.asarray(p_pos, dtype=np.float64)
    return np.column_stack([1.0 - p_pos, p_pos])


def prediction_frame(ids, labels, probs, *, family: str, protocol: str, model_id: str, seen) -> pd.DataFrame:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    n = len(labels)
    p_given = probs[np.arange(n), labels]
    others = probs.copy()
    others[np.arange(n), labels] = -np.inf
    pred = predicted_class(probs)
    return pd.DataFrame({
        "family": family, "protocol": protocol, "sample_id": np.asarray(ids, dtype=object), "model_id": model_id,
        "seen_in_training": np.asarray(seen, dtype=bool), "probs": list(probs), "p_given": p_given,
        "pred_label": pred, "p_pred": probs[np.arange(n), pred], "loss": loss(probs, labels),
        "margin": p_given - others.max(axis=1),
    })
