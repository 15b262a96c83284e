"""Per-layer training telemetry: histograms, summary figures and the information plane.

``snapshot(net, x, y, epoch)`` runs the network once on a fixed probe batch (eval
mode, so no dropout), back-propagates the cross-entropy of that batch, and
returns three frames for the epoch:

- ``stats``: per layer and quantity (``weight``, ``bias``, ``grad`` = gradient of the
  weights, ``preact``, ``postact``): n, mean, std, max_abs and L2 norm; ``postact``
  of a ReLU layer also gets ``dead_fraction``, the share of units that output 0 for
  every probe review (and every word, for convolutions).
- ``histograms``: the same values in ``HIST_BINS`` equal-width bins between their
  minimum and maximum; the counts of one histogram add up to its ``n``.
- ``info_plane``: I(X;T) and I(T;Y) in bits per layer, estimated by binning as in
  Shwartz-Ziv & Tishby (2017), "Opening the black box of deep neural networks via
  information": each layer's per-review output T is cut into ``bins`` equal-width bins
  between min(0, its smallest value) and max(0, its largest value) on the probe (so
  ReLU and sigmoid layers are binned from 0), each review's binned vector is one
  discrete state, and
  since the network is deterministic and every probe review is distinct,
  I(X;T) = H(T) and I(T;Y) = H(T) - H(T|Y). Both lie in [0, log2(probe size)], and
  I(T;Y) <= H(Y) <= log2(K) bits (1 bit for two classes).

Epoch 0 is the network before training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipeline.models.networks import objective

HIST_BINS = 30
IB_BINS = 30


def snapshot(net: nn.Module, x: torch.Tensor, y: np.ndarray, epoch: int, *,
             ib_bins: int = IB_BINS) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    was_training = net.training
    net.eval()
    net.zero_grad()
    logit, layers = net.trace(x)
    loss = objective(logit, torch.from_numpy(np.asarray(y)))
    loss.backward()
    stats, hists, plane = [], [], []
    for layer in layers:
        for quantity, values in _quantities(layer):
            stats.append({"epoch": epoch, "layer": layer.name, "quantity": quantity, **_summary(values),
                          "dead_fraction": _dead(layer) if quantity == "postact" and layer.relu else None})
            hists.append(_histogram(values).assign(epoch=epoch, layer=layer.name, quantity=quantity))
        if layer.representation is not None:
            i_xt, i_ty = information_plane(layer.representation.detach().numpy(), y, ib_bins)
            plane.append({"epoch": epoch, "layer": layer.name, "i_xt": i_xt, "i_ty": i_ty, "bins": ib_bins,
                          "n_probe": len(y)})
    net.zero_grad()
    net.train(was_training)
    return pd.DataFrame(stats), pd.concat(hists, ignore_index=True), pd.DataFrame(plane)


def information_plane(t: np.ndarray, y: np.ndarray, bins: int = IB_BINS) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) in bits for a deterministic layer output ``t`` (N, d) and labels ``y``."""
    t = np.asarray(t, dtype=np.float64).reshape(len(t), -1)
    lo, hi = float(t.min(initial=0.0)), float(t.max(initial=0.0))  # the range always includes 0
    edges = np.linspace(lo, hi, bins + 1)[1:-1] if hi > lo else np.empty(0)
    _, state = np.unique(np.digitize(t, edges), axis=0, return_inverse=True)
    state = state.ravel()
    h_t = _entropy(state)
    h_t_given_y = sum((y == c).mean() * _entropy(state[y == c]) for c in np.unique(y))
    return max(0.0, h_t), max(0.0, h_t - h_t_given_y)


def _entropy(states: np.ndarray) -> float:
    if len(states) == 0:
        return 0.0
    p = np.bincount(states) / len(states)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def _quantities(layer):
    module = layer.module
    if module is not None:
        params = dict(module.named_parameters())
        weights = [p for name, p in params.items() if name.startswith("weight")]
        biases = [p for name, p in params.items() if name.startswith("bias")]
        yield "weight", _flat(weights)
        if biases:
            yield "bias", _flat(biases)
        grads = [p.grad for p in weights if p.grad is not None]
        if grads:
            yield "grad", _flat(grads)
    for quantity, values in (("preact", layer.pre), ("postact", layer.post)):
        if values is not None:
            yield quantity, _values(values, layer.positions).ravel()


def _values(values: torch.Tensor, positions) -> np.ndarray:
    """(n, units): one row per review, or per real word for layers applied at every word."""
    values = values.detach()
    return (values[positions] if positions is not None else values).numpy()


def _flat(tensors) -> np.ndarray:
    return torch.cat([t.detach().reshape(-1) for t in tensors]).numpy()


def _summary(values: np.ndarray) -> dict:
    values = values.astype(np.float64)
    if values.size == 0:
        return {"n": 0, "mean": None, "std": None, "max_abs": None, "norm": None}
    return {"n": int(values.size), "mean": float(values.mean()), "std": float(values.std()),
            "max_abs": float(np.abs(values).max()), "norm": float(np.sqrt((values ** 2).sum()))}


def _dead(layer) -> float:
    post = _values(layer.post, layer.positions)
    if post.size == 0:
        return 0.0
    active = (post.reshape(-1, post.shape[-1]) > 0).sum(axis=0)
    return float((active == 0).mean())


def _histogram(values: np.ndarray) -> pd.DataFrame:
    if values.size == 0:
        return pd.DataFrame(columns=["bin", "lo", "hi", "count"])
    values = values.astype(np.float64)
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-9 * max(1.0, abs(lo)):  # constant values: one narrow range around them
        hi = lo + 1e-6 * max(1.0, abs(lo))
    counts, edges = np.histogram(values, bins=HIST_BINS, range=(lo, hi))
    return pd.DataFrame({"bin": np.arange(HIST_BINS), "lo": edges[:-1], "hi": edges[1:], "count": counts})
