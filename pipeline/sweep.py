"""``python -m pipeline sweep``: a hyperparameter grid over Chollet's dense IMDB model.

The grid is activation {relu, tanh} x loss {bce, mse} x hidden units {16, 32, 64} x
hidden layers {1, 2, 3}: 36 runs. Every run trains on the train split less a
held-out validation set of about ``val_size`` reviews (whole movies go to one side,
so no movie is on both), with the same multi-hot vocabulary, optimiser (RMSprop,
lr 1e-3, batch 512) and seed, and records train and validation loss and accuracy
after every epoch. ``quick=True`` runs a 4-run grid on a few hundred reviews for
2 epochs (for tests). The sweep is written to the store as one unit
(``pipeline.store.publish``), in the ``sweeps``, ``sweep_runs`` and ``sweep_curves``
tables.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import secrets
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pipeline.data import imdb as load
from pipeline.data.load import data_kind
from pipeline.store import files as store
from pipeline.models.text import tokenize
from pipeline.models import train_nn
from pipeline.config import Config
from pipeline.models.networks import DenseNet

GRID = {"activation": ("relu", "tanh"), "loss": ("bce", "mse"), "hidden_units": (16, 32, 64),
        "hidden_layers": (1, 2, 3)}
QUICK_GRID = {"activation": ("relu", "tanh"), "loss": ("bce", "mse"), "hidden_units": (16,), "hidden_layers": (1,)}
QUICK_SAMPLE = 600  # training reviews (about) in --quick mode, a third of them held out


@dataclasses.dataclass
class SweepSummary:
    sweep_id: str
    db: Path
    runs: pd.DataFrame  # one row per run, best validation accuracy first
    seconds: float
    n_train: int
    n_val: int


def grid(quick: bool = False) -> list[dict]:
    g = QUICK_GRID if quick else GRID
    return [dict(zip(g, values)) for values in itertools.product(*g.values())]


def run_sweep(cfg: Config, *, epochs: int = 20, val_size: int = 10_000, quick: bool = False) -> SweepSummary:
    """Train every network of the grid and write the sweep; the store is checked and held before any training."""
    with store.reserve(cfg.db):
        return _sweep(cfg, epochs, val_size, quick)


def _sweep(cfg: Config, epochs: int, val_size: int, quick: bool) -> SweepSummary:
    started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    clock = time.perf_counter()
    sweep_id = started.strftime("sweep-%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)
    sample = QUICK_SAMPLE if quick else cfg.sample
    path = load.locate_data(cfg)
    if data_kind(path) != "imdb":
        raise load.LoadError(f"{path}: the sweep trains Chollet's dense network on the IMDB archive's train split "
                             "only; pass --data the IMDB archive (aclImdb_v1.tar.gz or aclImdb_v1_labeled.tar.gz).")
    loaded = load.load_reviews(path, sample=2 * sample if sample else None, seed=cfg.seed, progress=cfg.progress,
                               limits=cfg.limits())
    frame = loaded.frame[loaded.frame["split"] == "train"].reset_index(drop=True)
    if frame["label"].nunique() != 2:
        raise ValueError("the sweep needs positive and negative reviews in the train split")
    if quick:
        epochs, val_size = min(epochs, 2), len(frame) // 3
    corpus = tokenize(frame["display_text"], ngram_max=1)
    labels = frame["label"].to_numpy()
    train_rows, val_rows = _split(frame, val_size, cfg.seed)
    data = train_nn.NetworkData(corpus)
    runs, curves = [], []
    for run_no, point in enumerate(tqdm(grid(quick), desc="sweep", unit="run", disable=not cfg.progress), start=1):
        t = time.perf_counter()
        def make_net(n_inputs, point=point):
            return DenseNet(n_inputs, hidden=point["hidden_units"], layers=point["hidden_layers"],
                            activation=point["activation"])

        how = train_nn.Recipe(epochs, cfg.dense_batch, cfg.dense_lr, 1.0, "rmsprop", point["loss"])
        trained = train_nn.fit_network("dense", data, labels, train_rows, cfg, model_id=f"sweep-{run_no}",
                                       val_rows=val_rows, make_net=make_net, how=how)
        e = trained.epochs
        best = e.loc[e["val_accuracy"].idxmax()]
        runs.append({"run_no": run_no, **point, "epochs": epochs, "best_epoch": int(best["epoch"]),
                     "best_val_accuracy": float(best["val_accuracy"]),
                     "final_val_accuracy": float(e["val_accuracy"].iloc[-1]),
                     "final_val_loss": float(e["val_loss"].iloc[-1]), "seconds": round(time.perf_counter() - t, 2)})
        curves.append(e.assign(run_no=run_no))
    runs_frame = pd.DataFrame(runs)
    seconds = time.perf_counter() - clock
    sweep_row = pd.DataFrame([{
        "sweep_id": sweep_id, "started_at": started, "seconds": seconds, "quick": quick, "n_train": len(train_rows),
        "n_val": len(val_rows), "source": str(loaded.source),
        "config": json.dumps({**dataclasses.asdict(cfg), "epochs": epochs, "val_size": val_size}, default=str),
    }])

    def write(con):
        for name, table in (("sweeps", sweep_row), ("sweep_runs", runs_frame), ("sweep_curves", pd.concat(curves))):
            con.register("_incoming", table)  # names are the constants above
            if name == "sweeps":
                con.execute("INSERT INTO sweeps BY NAME SELECT * FROM _incoming")
            else:
                con.execute(f"INSERT INTO {name} BY NAME SELECT ? AS sweep_id, * FROM _incoming", [sweep_id])
            con.unregister("_incoming")

    store.publish(cfg.db, write)
    ordered = runs_frame.sort_values("best_val_accuracy", ascending=False, kind="stable")
    return SweepSummary(sweep_id, Path(cfg.db), ordered, seconds, len(train_rows), len(val_rows))


def _split(frame: pd.DataFrame, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows): whole movies, in seeded order, until about ``val_size`` reviews."""
    movie = frame["movie_id"].fillna(frame["sample_id"]).to_numpy()
    movies, inverse, counts = np.unique(movie, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(movies))
    chosen = order[np.cumsum(counts[order]) <= val_size]
    is_val = np.isin(inverse, chosen)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)
