"""Train the PyTorch networks, recording training telemetry; run a network family's folds.

``fit_network(family, data, labels, rows, cfg, *, model_id, n_classes=2,
val_rows=None, telemetry=False)`` trains one network of ``family`` (``dense``,
``cnn`` or ``bilstm``; see ``pipeline.models.networks``) on ``rows`` only (its
vocabulary too) and returns a ``TrainedNetwork``:

- ``batches``: loss, accuracy and learning rate per batch;
- ``epochs``: train loss and accuracy (on up to ``_TRAIN_EVAL`` of the training
  reviews, seeded) and validation loss and accuracy (on ``val_rows``) after each epoch;
- with ``telemetry``: ``layer_stats``, ``layer_histograms`` and ``info_plane`` per
  epoch (``pipeline.analyses.telemetry``) on a fixed probe of ``cfg.probe_size`` training reviews.

``TrainedNetwork.predict(data, rows)`` is the native PyTorch score, (probs (n, K),
embedding); the ONNX copy must match it (``pipeline.models.score.check_parity``).
``fit_dense`` is the dense case, kept for the sweep and tests.

``run_family(family, data, dataset, folds, cfg, model_dir)`` is a family's whole
stage: its fold models and conventional model trained, exported, scored through ONNX
Runtime (parity checked) and, for sequence networks, the truncation analysis; it
returns a ``NetworkRun``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn

from pipeline.analyses import telemetry, truncation
from pipeline.config import Config
from pipeline.data.dataset import Dataset
from pipeline.models import export, outputs, score, sequences
from pipeline.models.devices import torch_device, torch_device_name
from pipeline.models.linear import conventional_rows
from pipeline.models.networks import (BiLSTMNet, ConvNet, DenseNet, multi_hot, multi_hot_vocabulary, objective,
                                      probabilities)
from pipeline.models.sequences import Sequences
from pipeline.models.text import Corpus
from pipeline.names import CONVENTIONAL, NETWORKS, OOF, SEQUENCE_NETWORKS, model_id as name_model

FAMILIES = NETWORKS
_EVAL_BATCH = 1024
_TRAIN_EVAL = 5000


@dataclasses.dataclass(frozen=True)
class NetworkData:
    """What the networks read: n-gram counts (dense) and word sequences (cnn, bilstm)."""

    corpus: Corpus | None  # None where only the sequences are read
    sequences: Sequences | None = None

    @property
    def n_rows(self) -> int:
        return self.corpus.counts.shape[0] if self.corpus is not None else len(self.sequences.offsets) - 1


@dataclasses.dataclass(frozen=True)
class MultiHotInput:
    columns: np.ndarray  # (V,) corpus columns of the words
    vocab: np.ndarray  # (V,) the words

    name = "x"

    def encode(self, data: NetworkData, rows=None) -> sp.csr_matrix:
        return multi_hot(data.corpus, self.columns, rows)

    def reads(self, data: NetworkData) -> NetworkData:
        """The part of ``data`` that ``encode`` reads (what a Ray actor is sent): the n-gram counts."""
        return NetworkData(data.corpus)

    def tensor(self, x) -> torch.Tensor:
        return torch.from_numpy(np.asarray(x.todense(), dtype=np.float32))

    def spec(self) -> dict:
        return {"input": "multi-hot over the vocabulary, 1.0 if the word occurs", "ngram_range": [1, 1]}


@dataclasses.dataclass(frozen=True)
class SequenceInput:
    remap: np.ndarray  # (G,) corpus word id -> model id
    vocab: np.ndarray  # (V,) the words; model id i + 2
    max_len: int
    truncation: str

    name = "token_ids"

    def encode(self, data: NetworkData, rows=None, *, truncation: str | None = None) -> np.ndarray:
        rows = np.arange(data.n_rows) if rows is None else rows
        return sequences.encode(data.sequences, rows, self.remap, self.max_len, truncation or self.truncation)

    def reads(self, data: NetworkData) -> NetworkData:
        """The part of ``data`` that ``encode`` reads (what a Ray actor is sent): the word sequences."""
        return NetworkData(None, data.sequences)

    def tensor(self, x) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x))

    def spec(self) -> dict:
        return {"input": "word ids in order: 0 padding, 1 unknown word, i + 2 the i-th vocabulary word",
                "ngram_range": [1, 1], "max_len": self.max_len, "truncation": self.truncation}


@dataclasses.dataclass
class TrainedNetwork:
    model_id: str
    family: str
    net: nn.Module
    inputs: MultiHotInput | SequenceInput
    train_rows: np.ndarray
    batches: pd.DataFrame = None  # epoch, batch, step, loss, accuracy, lr
    epochs: pd.DataFrame = None  # epoch, train_loss, train_accuracy, val_loss, val_accuracy
    layer_stats: pd.DataFrame | None = None
    val_probs: np.ndarray | None = None  # (len(val_rows), K) PyTorch's probabilities after the last epoch
    layer_histograms: pd.DataFrame | None = None
    info_plane: pd.DataFrame | None = None

    @property
    def vocab(self) -> np.ndarray:
        return self.inputs.vocab

    @property
    def columns(self) -> np.ndarray:  # the dense network's corpus columns
        return self.inputs.columns

    def predict(self, data: NetworkData | Corpus, rows=None) -> tuple[np.ndarray, np.ndarray]:
        """(probs (n, K), embedding (n, d)) from PyTorch."""
        data = data if isinstance(data, NetworkData) else NetworkData(data)
        return self.predict_inputs(self.inputs.encode(data, rows))

    @torch.no_grad()
    def predict_inputs(self, x) -> tuple[np.ndarray, np.ndarray]:
        """The same, for inputs already encoded (multi-hot matrix or word-id array), on the network's device."""
        self.net.eval()
        device = next(self.net.parameters()).device
        ps, embs = [], []
        for start in range(0, x.shape[0], _EVAL_BATCH):
            p, emb = self.net(self.inputs.tensor(x[start:start + _EVAL_BATCH]).to(device))
            ps.append(p.cpu().numpy())
            embs.append(emb.cpu().numpy())
        if not ps:
            return np.empty((0, self.n_classes)), np.empty((0, 0), dtype=np.float32)
        return np.concatenate(ps).astype(np.float64), np.concatenate(embs)

    @property
    def n_classes(self) -> int:
        return max(2, self.net.out.out_features)


@dataclasses.dataclass(frozen=True)
class Recipe:
    epochs: int
    batch: int
    lr: float
    lr_decay: float  # learning rate multiplied by this after each epoch
    optimizer: str  # 'rmsprop' | 'adam'
    loss: str = "bce"  # 'bce' (cross-entropy, binary or categorical) | 'mse' (on the probability; the sweep only)


def recipe(family: str, cfg: Config) -> Recipe:
    if family == "dense":
        return Recipe(cfg.dense_epochs, cfg.dense_batch, cfg.dense_lr, 1.0, "rmsprop")
    if family == "cnn":
        return Recipe(cfg.cnn_epochs, cfg.seq_batch, cfg.seq_lr, cfg.seq_lr_decay, "adam")
    if family == "bilstm":
        return Recipe(cfg.bilstm_epochs, cfg.seq_batch, cfg.seq_lr, cfg.seq_lr_decay, "adam")
    raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {family!r}")


def fit_network(family: str, data: NetworkData, labels: np.ndarray, rows: np.ndarray, cfg: Config, *,
                model_id: str, n_classes: int = 2, val_rows: np.ndarray | None = None, telemetry: bool = False,
                make_net=None, how: Recipe | None = None) -> TrainedNetwork:
    """Train one network; ``make_net(n_inputs)`` and ``how`` override the dense network and recipe (the sweep)."""
    labels = np.asarray(labels)
    rows = np.asarray(rows)
    if len(np.unique(labels[rows])) != n_classes:
        raise ValueError(f"{model_id}: training rows must hold every class ({n_classes})")
    torch.manual_seed(cfg.seed)
    if family == "dense":
        columns = multi_hot_vocabulary(data.corpus, rows, cfg.dense_vocab)
        inputs = MultiHotInput(columns, data.corpus.vocab[columns])
        net = (make_net or (lambda n: DenseNet(n, hidden=cfg.dense_hidden, layers=cfg.dense_layers,
                                               n_classes=n_classes)))(len(columns))
    else:
        if data.sequences is None:
            raise ValueError(f"{model_id}: the {family} network needs word sequences")
        vocab, remap = data.sequences.vocabulary(rows, cfg.seq_vocab)
        inputs = SequenceInput(remap, vocab, cfg.max_len, cfg.truncation)
        if family == "cnn":
            net = ConvNet(len(vocab) + 2, embed=cfg.seq_embed, filters=cfg.cnn_filters, kernel=cfg.cnn_kernel,
                          hidden=cfg.seq_hidden, n_classes=n_classes)
        else:
            net = BiLSTMNet(len(vocab) + 2, embed=cfg.seq_embed, hidden=cfg.lstm_units, dense=cfg.seq_hidden,
                            n_classes=n_classes)
    trained = TrainedNetwork(model_id, family, net, inputs, rows)
    _train(trained, data, labels, val_rows, cfg, how or recipe(family, cfg), telemetry)
    return trained


def fit_dense(corpus: Corpus, labels, rows, cfg: Config, *, model_id: str, val_rows=None,
              telemetry: bool = False) -> TrainedNetwork:
    """Chollet's dense IMDB model, trained on ``rows`` of the corpus."""
    return fit_network("dense", NetworkData(corpus), labels, rows, cfg, model_id=model_id, val_rows=val_rows,
                       telemetry=telemetry)


def _train(trained: TrainedNetwork, data, labels, val_rows, cfg, how: Recipe, with_telemetry: bool) -> None:
    """Train on ``cfg.device``'s PyTorch device (``devices.torch_device``); the network is left on the CPU, where it
    is exported, checked and probed."""
    net, rows = trained.net, trained.train_rows
    device = torch_device(cfg.device)
    net.to(device)
    params = net.parameters()
    optimiser = (torch.optim.RMSprop(params, lr=how.lr) if how.optimizer == "rmsprop"
                 else torch.optim.Adam(params, lr=how.lr))
    objective = _objective(how.loss)
    x_all = trained.inputs.encode(data, rows)
    y_all = torch.from_numpy(labels[rows].astype(np.int64))
    rng = np.random.default_rng(cfg.seed)
    eval_idx = np.sort(rng.permutation(len(rows))[:_TRAIN_EVAL])
    has_val = val_rows is not None and len(val_rows) > 0
    x_val = trained.inputs.encode(data, val_rows) if has_val else None
    probe_idx = np.sort(rng.permutation(len(rows))[:cfg.probe_size])
    x_probe, y_probe = trained.inputs.tensor(x_all[probe_idx]), labels[rows][probe_idx]
    snapshots = [_on_cpu(net, telemetry.snapshot, x_probe, y_probe, 0)] if with_telemetry else []
    batches, epochs, step = [], [], 0
    for epoch in range(1, how.epochs + 1):
        net.train()
        order = rng.permutation(len(rows))
        for b, start in enumerate(range(0, len(order), how.batch)):
            idx = np.sort(order[start:start + how.batch])
            x, y = trained.inputs.tensor(x_all[idx]).to(device), y_all[idx].to(device)
            logit = net.logit(x)
            loss = objective(logit, y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
            predicted = outputs.predicted_class(probabilities(logit.detach()).cpu().numpy())
            batches.append((epoch, b, step, float(loss.detach()), float((predicted == y_all[idx].numpy()).mean()),
                            optimiser.param_groups[0]["lr"]))
        train_loss, train_acc, _ = _evaluate(trained, x_all[eval_idx], labels[rows][eval_idx])
        val = (None, None)
        if has_val:
            *val, trained.val_probs = _evaluate(trained, x_val, labels[val_rows])
        epochs.append((epoch, train_loss, train_acc, *val))
        if with_telemetry:
            snapshots.append(_on_cpu(net, telemetry.snapshot, x_probe, y_probe, epoch))
        for group in optimiser.param_groups:
            group["lr"] *= how.lr_decay
    net.cpu()
    trained.batches = pd.DataFrame(batches, columns=["epoch", "batch", "step", "loss", "accuracy", "lr"])
    trained.epochs = pd.DataFrame(epochs, columns=["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"])
    if snapshots:
        trained.layer_stats, trained.layer_histograms, trained.info_plane = (
            pd.concat([s[i] for s in snapshots], ignore_index=True) for i in range(3))


def _on_cpu(net: nn.Module, probe, *args):
    """``probe(net, *args)`` with the network on the CPU (telemetry reads tensors with numpy), then back."""
    device = next(net.parameters()).device
    try:
        return probe(net.cpu(), *args)
    finally:
        net.to(device)


def _objective(name: str):
    if name == "bce":
        return objective
    if name == "mse":  # the sweep's binary networks: squared error of the probability
        return lambda logit, y: nn.functional.mse_loss(torch.sigmoid(logit), y.to(torch.float32))
    raise ValueError(f"loss must be 'bce' or 'mse'; got {name!r}")


def _evaluate(trained: TrainedNetwork, x, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(cross-entropy in nats, accuracy, the probabilities) whatever the training objective."""
    probs, _ = trained.predict_inputs(x)
    p_given = np.clip(probs[np.arange(len(y)), np.asarray(y, dtype=int)], 1e-7, 1.0)
    return float(-np.log(p_given).mean()), float((outputs.predicted_class(probs) == y).mean()), probs


def native_probs(net: TrainedNetwork, x, rows: np.ndarray, val_rows: np.ndarray) -> np.ndarray:
    """PyTorch's probabilities of ``rows`` (encoded as ``x``): those of the validation rows as the last epoch
    computed them (the same network in eval mode, so the same numbers), the others predicted now."""
    probs = np.empty((len(rows), net.n_classes))
    known = np.zeros(len(rows), bool)
    if net.val_probs is not None:
        at = {row: i for i, row in enumerate(val_rows)}
        where = np.array([at.get(row, -1) for row in rows], dtype=np.int64)
        known = where >= 0
        probs[known] = net.val_probs[where[known]]
    if (~known).any():
        probs[~known] = net.predict_inputs(x[np.flatnonzero(~known)])[0]
    return probs


@dataclasses.dataclass(frozen=True)
class NetworkRun:
    """What one network family's stage produced."""

    scored: score.Scored  # models and predictions (out of fold, and conventional when there is a train split)
    embedding: np.ndarray | None  # (N, d) the reference model's embedding of every review
    batches: pd.DataFrame  # training_batches rows of every model
    epochs: pd.DataFrame  # training_epochs rows of every model
    layer_stats: pd.DataFrame  # the reference model's per-layer telemetry
    layer_histograms: pd.DataFrame
    information_plane: pd.DataFrame
    truncation: pd.DataFrame  # sequence networks: one row per review, by its fold model; else empty
    trained_on: tuple[str, ...] = ()  # where its models trained (devices.torch_device_name), as each job said


def run_family(family: str, data: NetworkData, dataset: Dataset, folds: np.ndarray, cfg: Config,
               model_dir: Path, engine=None) -> NetworkRun:
    """Train, export and score one network family: cross-fitted, plus conventional when there is a train split.

    The reference model (the conventional one, or the fold-0 model when the data has no
    train split) records per-layer telemetry and gives the family's embedding of every
    review; the fold models give the out-of-fold predictions and, for sequence
    networks, the truncation analysis. Each model is a job of ``engine`` (``pipeline.engine``; this process when
    None) that trains it, scores the rows it held out through ONNX Runtime (parity checked) and returns its ONNX
    file's bytes, which are written here. Then two passes of ``engine.map_batches``: the reference model scores and
    embeds every review (``score.network_outputs``), and the sequence networks' fold models read their held-out
    reviews whole (``truncation.analyse_models``).
    """
    from pipeline.engine import LocalEngine

    labels, k_classes = dataset.labels, dataset.n_classes
    ids = dataset.frame["sample_id"].to_numpy()
    is_train = dataset.is_train
    jobs = [(int(k), np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in np.unique(folds)]
    train_rows = conventional_rows(dataset)
    if train_rows is not None:
        jobs.append((None, train_rows, np.flatnonzero(~is_train)))
    reference = None if train_rows is not None else jobs[0][0]
    shared = _FamilyJob(family, data, labels, k_classes, dataset.classes, is_train,
                        dataset.frame["display_text"].str.len().to_numpy(), cfg, reference, torch.get_num_threads())
    engine = engine or LocalEngine()
    done = engine.map(_fit_export_score, shared, jobs, desc=f"{family} network", progress=cfg.progress,
                      gpus=0 if cfg.device == "cpu" else 1)
    # the reference model's view of every review (its embedding; the conventional model's predictions too), through
    # the engine's scoring pass: the fold jobs scored only the rows they held out
    at = next(i for i, (fold, _, _) in enumerate(jobs) if fold == reference)
    whole = np.arange(len(labels))
    reference_inputs = done[at].inputs
    (all_probs, embedding, _), = score.network_outputs([(done[at].onnx, reference_inputs, whole)],
                                                       reference_inputs.reads(data), device=cfg.device,
                                                       engine=engine, progress=cfg.progress)
    # the pass must give the rows its job checked against PyTorch the scores the job gave them: the same file read
    # the same way, each row in its place
    score.check_parity(all_probs[jobs[at][2]], done[at].probs, model_id=f"{name_model(family, reference)} (pass)")
    model_rows, preds, parts = [], [], {key: [] for key in ("batches", "epochs", "layer_stats", "layer_histograms",
                                                             "information_plane", "truncation")}
    oof = np.empty((len(labels), k_classes))
    for (fold, fit_rows, held), got in zip(jobs, done):
        mid = name_model(family, fold)
        path = model_dir / f"{mid}.onnx"
        path.write_bytes(got.onnx)
        if fold is None:  # every review: trained on (the train split) or not
            rows, probs, seen = whole, all_probs, is_train
            preds.append(outputs.prediction_frame(ids, labels, probs, family=family, protocol=CONVENTIONAL,
                                                  model_id=mid, seen=seen))
        else:
            rows, probs, seen = held, got.probs, np.zeros(len(held), bool)
            oof[held] = probs
            preds.append(outputs.prediction_frame(ids[held], labels[held], probs, family=family, protocol=OOF,
                                                  model_id=mid, seen=seen))
        model_rows.append(score.model_row(mid, family, fold, path, got.n_vocab, len(fit_rows),
                                          score.accuracy(probs, labels[rows], ~seen), got.parity, got.provider,
                                          reference=fold == reference))
        parts["batches"].append(got.batches.assign(model_id=mid))
        parts["epochs"].append(got.epochs.assign(model_id=mid))
        if fold == reference:
            for key, part in got.telemetry.items():
                parts[key].append(part.assign(model_id=mid))
    tables = {key: pd.concat(p, ignore_index=True) if p else pd.DataFrame() for key, p in parts.items()}
    read = [(fold, held, got) for (fold, _, held), got in zip(jobs, done)
            if fold is not None and family in SEQUENCE_NETWORKS]
    if read:  # the fold models' held-out reviews, read whole (windows) and cut both ways
        found = truncation.analyse_models([(got.onnx, got.inputs, held) for _, held, got in read], data.sequences,
                                          labels, stride=cfg.window_stride, text_lengths=shared.text_lengths,
                                          device=cfg.device, engine=engine, progress=cfg.progress)
        mids = np.array([name_model(family, fold) for fold, _, _ in read], dtype=object)
        tables["truncation"] = found.assign(sample_id=ids[found["row"].to_numpy()],
                                            model_id=mids[found["model"].to_numpy()],
                                            family=family).drop(columns=["model", "row"])
    if len(tables["truncation"]):
        tables["truncation"]["harm_rank"] = truncation.rank(tables["truncation"])
    return NetworkRun(score.Scored.of(family, model_rows, preds, oof), embedding, **tables,
                      trained_on=tuple(sorted({got.trained_on for got in done})))


@dataclasses.dataclass(frozen=True)
class _FamilyJob:
    """What every model of a family reads (sent to a Ray cluster's object store once)."""

    family: str
    data: NetworkData
    labels: np.ndarray
    n_classes: int
    classes: tuple
    is_train: np.ndarray
    text_lengths: np.ndarray
    cfg: Config
    reference: int | None
    threads: int  # PyTorch threads, as here: with fewer (a Ray worker's default is 1) the CNN's sums round otherwise


@dataclasses.dataclass(frozen=True)
class _ModelDone:
    """One model's job done: its ONNX file, and its held-out rows scored through ONNX Runtime."""

    onnx: bytes
    probs: np.ndarray  # (len(held), K) through ONNX Runtime: its fold's rows, or the conventional model's test rows
    n_vocab: int
    parity: float  # largest |ONNX - PyTorch| over those rows
    provider: str
    batches: pd.DataFrame
    epochs: pd.DataFrame
    telemetry: dict  # the reference model's layer_stats, layer_histograms, information_plane
    inputs: MultiHotInput | SequenceInput  # how the model reads a review (for the scoring pass and the windows)
    trained_on: str  # devices.torch_device_name where the job ran (a Ray worker's own GPU or CPU)


def _fit_export_score(shared: _FamilyJob, job) -> _ModelDone:
    """Train one model of the family, export it to ONNX and score the rows it held out through ONNX Runtime, parity
    checked against PyTorch's scores of them from its last epoch (one engine job)."""
    import tempfile

    fold, fit_rows, held = job
    cfg, labels, data = shared.cfg, shared.labels, shared.data
    torch.set_num_threads(shared.threads)
    mid = name_model(shared.family, fold)
    is_reference = fold == shared.reference
    net = fit_network(shared.family, data, labels, fit_rows, cfg, model_id=mid, n_classes=shared.n_classes,
                      val_rows=held, telemetry=is_reference)
    with tempfile.TemporaryDirectory(prefix="lossmap-") as scratch:
        path = export.export_network(net, Path(scratch) / f"{mid}.onnx", tokenizer_spec=data.corpus.tokenizer_spec(),
                                     classes=shared.classes)
        onnx_bytes = path.read_bytes()
        session = score.OnnxNetwork.load(path, device=cfg.device)
        x = net.inputs.encode(data, held)
        probs, _ = session.score(x)
        parity = score.check_parity(probs, native_probs(net, x, held, held), model_id=mid)
    telemetry = ({"layer_stats": net.layer_stats, "layer_histograms": net.layer_histograms,
                  "information_plane": net.info_plane} if is_reference else {})
    return _ModelDone(onnx_bytes, probs, len(net.vocab), parity, session.provider, net.batches, net.epochs, telemetry,
                      net.inputs, torch_device_name(cfg.device))
