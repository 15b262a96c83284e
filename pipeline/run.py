"""One pipeline run, stage by stage: load, tokenize, train, export, score, dense,
cnn, bilstm, explain, project, issues, store.

``run_pipeline(cfg)`` returns a ``RunSummary``; the run is written to the store only
when every stage has succeeded (``pipeline.store.publish``). Each stage is a module
of its own; this file only wires their artifacts together and times them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import secrets
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from pipeline.analyses import explain
from pipeline.models import export
from pipeline.analyses import issues
from pipeline.data import imdb as load
from pipeline.analyses import project
from pipeline.store import schema
from pipeline.models import score
from pipeline.models import sequences
from pipeline.store import files as store
from pipeline.models import linear as train
from pipeline.models import train_nn
from pipeline.analyses import truncation
from pipeline.config import Config

FAMILY = "nblr"
OOF = f"{FAMILY}-oof"
CONVENTIONAL = f"{FAMILY}-train"
NETWORKS = ("dense", "cnn", "bilstm")  # PyTorch families, in training order
SEQUENCE_NETWORKS = ("cnn", "bilstm")


@dataclasses.dataclass
class RunSummary:
    run_id: str
    db: Path
    n_samples: int
    test_accuracy: float | None  # conventional model on the test split
    oof_accuracy: float
    n_flagged: int
    provider: str
    parity_max_abs: float
    stage_seconds: dict[str, float]
    warnings: list[str]
    model_test_accuracy: dict[str, float]  # conventional model id -> accuracy on the test split
    stage_peak_mib: dict[str, float] = dataclasses.field(default_factory=dict)  # stage -> peak RSS, MiB

    @property
    def seconds(self) -> float:
        return sum(self.stage_seconds.values())


class _Timer:
    """Wall seconds and peak resident memory (MiB) of each stage, plus the progress bar."""

    def __init__(self, progress: bool, stages: int):
        self.seconds: dict[str, float] = {}
        self.peak_mib: dict[str, float] = {}
        self.bar = tqdm(total=stages, desc="pipeline", unit="stage", disable=not progress)

    @contextmanager
    def stage(self, name: str):
        self.bar.set_postfix_str(name)
        _reset_peak()
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 2)
        self.peak_mib[name] = _peak_mib()
        self.bar.update(1)


def _reset_peak() -> None:
    """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM); elsewhere a no-op."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def _peak_mib() -> float:
    """Peak resident memory since the last reset (VmHWM), else since the process started."""
    try:
        with open("/proc/self/status") as handle:
            return round(next(int(line.split()[1]) for line in handle if line.startswith("VmHWM")) / 1024, 1)
    except (OSError, StopIteration, ValueError):
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_pipeline(cfg: Config) -> RunSummary:
    started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    run_id = started.strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)
    timer = _Timer(cfg.progress, stages=9 + len(_families(cfg)))  # load .. score, one per network, explain .. store
    with timer.stage("load"):
        loaded = load.load_reviews(load.locate_data(cfg), sample=cfg.sample, seed=cfg.seed, progress=cfg.progress)
        frame = loaded.frame
        labels = frame["label"].to_numpy()
    with timer.stage("tokenize"):
        corpus = train.tokenize(frame["display_text"], cfg)
    with timer.stage("train"):
        folds = train.make_folds(frame, n_folds=cfg.folds, seed=cfg.seed)
        models = _train_models(corpus, labels, folds, frame, cfg)
    model_dir = Path(cfg.models_dir) / run_id
    with timer.stage("export"):
        paths = {m.model_id: export.export_onnx(m, model_dir / f"{m.model_id}.onnx",
                                                tokenizer_spec=corpus.tokenizer_spec()) for m in models}
    with timer.stage("score"):
        scored = _score(models, paths, corpus, folds, frame, cfg)
    data = train_nn.NetworkData(corpus)
    nets = {}
    for family in _families(cfg):
        with timer.stage(family):
            if family in SEQUENCE_NETWORKS and data.sequences is None:
                data = train_nn.NetworkData(corpus, sequences.tokenize_sequences(frame["display_text"]))
            nets[family] = _network(family, data, frame, folds, cfg, model_dir)
    with timer.stage("explain"):
        shap_rows, bases = _explain(models, corpus, folds, cfg)
    with timer.stage("project"):
        maps = project.project(corpus, cfg, {f"{f}-hidden": n["embedding"] for f, n in nets.items()
                                             if n["embedding"] is not None})
    with timer.stage("issues"):
        oof = scored["predictions"].query("predictor == @OOF").set_index("sample_id").loc[frame["sample_id"]]
        found = issues.find_label_issues(labels, _issue_probabilities(oof, nets, frame, cfg),
                                         frame["rating"].to_numpy(), method=cfg.issue_method)
        found.insert(0, "sample_id", frame["sample_id"].to_numpy())
        found.insert(1, "method", f"{cfg.issue_method} on {_issue_source(nets, cfg)}")
    all_models = pd.concat([scored["models"], *(n["models"] for n in nets.values())])
    test_acc = scored["test_accuracy"]
    oof_acc = float((oof["pred_label"].to_numpy() == labels).mean())
    summary = RunSummary(run_id, Path(cfg.db), len(frame), test_acc, oof_acc, int(found["is_label_issue"].sum()),
                         scored["provider"], float(all_models["parity_max_abs"].max()), timer.seconds,
                         loaded.report.lines(), _test_accuracies(all_models))
    with timer.stage("store"):
        tables = {
            "samples": frame.assign(fold=folds),
            "models": all_models.assign(onnx_path=lambda d: [_relative(p, cfg.db) for p in d["onnx_path"]]),
            "predictions": pd.concat([scored["predictions"], *(n["predictions"] for n in nets.values())]),
            "embeddings": pa.concat_tables([_embedding_table(frame, m) for m in maps]),
            "clusters": pd.concat([m.cluster_terms.assign(space=m.space) for m in maps]),
            "neighbours": _neighbour_table(frame, maps[0]),
            "shap_base": bases,
            "shap_tokens": shap_rows.assign(sample_id=frame["sample_id"].to_numpy()[shap_rows["row"]]).drop(columns="row"),
            "label_issues": found,
            **{table: pd.concat([n[table] for n in nets.values()], ignore_index=True)
               for table in _NETWORK_TABLES if nets},
        }
        finished = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        run_row = pd.DataFrame([{
            "run_id": run_id, "started_at": started, "completed_at": finished, "source": str(loaded.source),
            "n_samples": len(frame), "test_accuracy": test_acc, "oof_accuracy": oof_acc,
            "n_flagged": summary.n_flagged, "seconds": (finished - started).total_seconds(),
            "stage_seconds": json.dumps(timer.seconds), "stage_peak_mib": json.dumps(timer.peak_mib),
            "load_warnings": json.dumps(loaded.report.problems),
            "config": json.dumps(dataclasses.asdict(cfg), default=str),
        }])
        store.publish(cfg.db, lambda con: _write(con, run_id, tables, run_row))
    timer.bar.close()
    summary.stage_seconds = timer.seconds
    summary.stage_peak_mib = timer.peak_mib
    return summary


def train_fold_models(corpus, frame, folds, cfg) -> list[train.LinearTextModel]:
    """The cross-fitted fold models; with cfg.prune, in two rounds.

    Round one cross-fits on every review and flags label issues from its (native,
    never stored) out-of-fold scores; round two cross-fits again without the flagged
    reviews, so suspected mislabels do not teach the models that judge them
    (cleanlab's confident learning: prune, then retrain). Each review is still
    scored by a model that never saw it.
    """
    labels = frame["label"].to_numpy()
    models, p_pos = train.cross_fit(corpus, labels, folds, cfg, family=FAMILY, progress=cfg.progress)
    if not cfg.prune:
        return models
    flagged = issues.find_label_issues(labels, p_pos, frame["rating"].to_numpy(), method=cfg.issue_method)
    models, _ = train.cross_fit(corpus, labels, folds, cfg, family=FAMILY, progress=cfg.progress,
                                exclude=flagged["is_label_issue"].to_numpy())
    return models


def _train_models(corpus, labels, folds, frame, cfg) -> list[train.LinearTextModel]:
    models = train_fold_models(corpus, frame, folds, cfg)
    train_rows = np.flatnonzero(frame["split"].to_numpy() == "train")
    if len(np.unique(labels[train_rows])) == 2:
        models.append(train.fit(corpus, labels, train_rows, cfg, model_id=CONVENTIONAL))
    return models


def _score(models, paths, corpus, folds, frame, cfg) -> dict:
    labels = frame["label"].to_numpy()
    is_train = frame["split"].to_numpy() == "train"
    preds, model_rows, test_acc, provider = [], [], None, "CPUExecutionProvider"
    for model in tqdm(models, desc="score (ONNX Runtime)", leave=False, disable=not cfg.progress):
        session = score.OnnxTextModel.load(paths[model.model_id], device=cfg.device)
        provider = session.provider
        if model.model_id == CONVENTIONAL:
            rows, predictor, seen, held_out = np.arange(len(frame)), CONVENTIONAL, is_train, ~is_train
        else:
            k = int(model.model_id.removeprefix(f"{FAMILY}-fold"))
            rows = np.flatnonzero(folds == k)
            predictor, seen, held_out = OOF, np.zeros(len(frame), bool), np.ones(len(frame), bool)
        cols = session.columns_in(corpus.vocab)
        p, logit = session.score_counts(corpus.counts[rows][:, cols])
        native = 1.0 / (1.0 + np.exp(-model.predict_logit(corpus, rows)))
        parity = score.check_parity(p, native, model_id=model.model_id)
        preds.append(_prediction_frame(frame, rows, p, logit, predictor, model.model_id, seen[rows]))
        ho = held_out[rows]
        acc = float(((p[ho] >= 0.5) == labels[rows][ho]).mean()) if ho.any() else None
        if model.model_id == CONVENTIONAL:
            test_acc = acc
        model_rows.append(_model_row(model, FAMILY, None if model.model_id == CONVENTIONAL else k,
                                     paths[model.model_id], acc, parity, provider))
    return {"predictions": pd.concat(preds, ignore_index=True), "models": pd.DataFrame(model_rows),
            "test_accuracy": test_acc, "provider": provider}


def _test_accuracies(models: pd.DataFrame) -> dict[str, float]:
    conventional = models[(models["role"] == "conventional") & models["accuracy"].notna()]
    return dict(zip(conventional["model_id"], conventional["accuracy"].astype(float)))


def _model_row(model, family: str, fold: int | None, path: Path, accuracy, parity: float, provider: str) -> dict:
    return {
        "model_id": model.model_id, "family": family, "role": "conventional" if fold is None else "fold",
        "fold": fold, "onnx_path": str(path), "onnx_sha256": _sha256(path), "n_features": len(model.vocab),
        "n_train": len(model.train_rows), "accuracy": accuracy, "parity_max_abs": parity, "provider": provider,
    }


_NETWORK_TABLES = ("training_batches", "training_epochs", "layer_stats", "layer_histograms", "information_plane",
                   "truncation")


def _families(cfg) -> list[str]:
    return [f for f in NETWORKS if getattr(cfg, f)]


def _network(family: str, data, frame, folds, cfg, model_dir: Path) -> dict:
    """Train, export and score one network family: cross-fitted plus conventional.

    The conventional model (train split only) also records per-layer telemetry and
    gives the family's embedding of every review; the fold models give the
    out-of-fold predictions and, for sequence networks, the truncation analysis.
    """
    labels = frame["label"].to_numpy()
    is_train = frame["split"].to_numpy() == "train"
    jobs = [(f"{family}-fold{k}", k, np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in np.unique(folds)]
    if len(np.unique(labels[is_train])) == 2:
        jobs.append((f"{family}-train", None, np.flatnonzero(is_train), np.flatnonzero(~is_train)))
    out = {table: [] for table in ("predictions", "models", *_NETWORK_TABLES)}
    embedding = None
    text_lengths = frame["display_text"].str.len().to_numpy()
    for model_id, k, train_rows, held in tqdm(jobs, desc=f"{family} network", leave=False, disable=not cfg.progress):
        net = train_nn.fit_network(family, data, labels, train_rows, cfg, model_id=model_id, val_rows=held,
                                   telemetry=k is None)
        path = export.export_network(net, model_dir / f"{model_id}.onnx", tokenizer_spec=data.corpus.tokenizer_spec())
        session = score.OnnxNetwork.load(path, device=cfg.device)
        rows = held if k is not None else np.arange(len(frame))
        x = net.inputs.encode(data, rows)
        p, emb = session.score(x)
        parity = score.check_parity(p, net.predict_inputs(x)[0], model_id=model_id)
        logit = np.log(np.clip(p, 1e-7, 1.0)) - np.log(np.clip(1.0 - p, 1e-7, 1.0))
        seen = np.zeros(len(rows), bool) if k is not None else is_train
        out["predictions"].append(_prediction_frame(frame, rows, p, logit, f"{family}-oof" if k is not None
                                                    else f"{family}-train", model_id, seen))
        accuracy = float(((p[~seen] >= 0.5) == labels[rows][~seen]).mean()) if (~seen).any() else None
        out["models"].append(_model_row(net, family, k, path, accuracy, parity, session.provider))
        out["training_batches"].append(net.batches.assign(model_id=model_id))
        out["training_epochs"].append(net.epochs.assign(model_id=model_id))
        if k is None:
            embedding = emb
            for table, part in (("layer_stats", net.layer_stats), ("layer_histograms", net.layer_histograms),
                                ("information_plane", net.info_plane)):
                out[table].append(part.assign(model_id=model_id))
        elif family in SEQUENCE_NETWORKS:
            found = truncation.analyse(session, net.inputs, data.sequences, rows, labels, stride=cfg.window_stride,
                                       text_lengths=text_lengths)
            out["truncation"].append(found.assign(sample_id=frame["sample_id"].to_numpy()[rows], model_id=model_id,
                                                  family=family))
    model_rows = out.pop("models")
    result = {key: pd.concat(parts, ignore_index=True) if parts else pd.DataFrame() for key, parts in out.items()}
    result["models"] = pd.DataFrame(model_rows)
    if len(result["truncation"]):
        result["truncation"]["harm_rank"] = truncation.rank(result["truncation"])
    result["embedding"] = embedding
    return result


def _issue_source(nets: dict, cfg) -> str:
    if cfg.issue_source == "nblr" or not nets:
        return FAMILY
    return "ensemble of " + ", ".join([FAMILY, *nets])


def _issue_probabilities(oof: pd.DataFrame, nets: dict, frame, cfg) -> np.ndarray:
    """Out-of-fold P(positive) that label issues are ranked on: NB-LR's, or the mean over every family."""
    if cfg.issue_source not in ("ensemble", "nblr"):
        raise ValueError(f"issue_source must be 'ensemble' or 'nblr'; got {cfg.issue_source!r}")
    p = [oof["p_pos"].to_numpy()]
    if cfg.issue_source == "ensemble":
        for family, n in nets.items():
            preds = n["predictions"]
            preds = preds[preds["predictor"] == f"{family}-oof"].set_index("sample_id")
            p.append(preds.loc[frame["sample_id"], "p_pos"].to_numpy())
    return np.mean(p, axis=0)


def _prediction_frame(frame, rows, p, logit, predictor, model_id, seen) -> pd.DataFrame:
    label = frame["label"].to_numpy()[rows]
    p_given = np.where(label == 1, p, 1.0 - p)
    return pd.DataFrame({
        "predictor": predictor, "sample_id": frame["sample_id"].to_numpy()[rows], "model_id": model_id,
        "seen_in_training": seen, "p_pos": p, "pred_label": (p >= 0.5).astype("int8"),
        "loss": -np.log(np.clip(p_given, 1e-12, 1.0)), "margin": 2.0 * p_given - 1.0, "logit": logit,
    })


def _explain(models, corpus, folds, cfg) -> tuple[pd.DataFrame, pd.DataFrame]:
    parts, bases = [], []
    for model in tqdm([m for m in models if m.model_id != CONVENTIONAL], desc="explain (SHAP)", leave=False,
                      disable=not cfg.progress):
        k = int(model.model_id.removeprefix(f"{FAMILY}-fold"))
        rows, base = explain.explain(model, corpus, np.flatnonzero(folds == k), top_k=cfg.shap_top_k)
        parts.append(rows.assign(model_id=model.model_id))
        bases.append({"model_id": model.model_id, "base_value": base})
    return pd.concat(parts, ignore_index=True), pd.DataFrame(bases)


def _embedding_table(frame: pd.DataFrame, proj: project.Projection) -> pa.Table:
    """One space's rows; FLOAT[] vectors passed as an Arrow list column."""
    n, d = proj.vectors.shape
    vectors = pa.ListArray.from_arrays(np.arange(0, n * d + 1, d, dtype=np.int32), pa.array(proj.vectors.ravel()))
    return pa.table({
        "space": pa.array([proj.space] * n), "sample_id": pa.array(frame["sample_id"].to_numpy()),
        "vector": vectors, "x": pa.array(proj.xy[:, 0]), "y": pa.array(proj.xy[:, 1]),
        "cluster": pa.array(proj.cluster),
    })


def _neighbour_table(frame, projection) -> pd.DataFrame:
    ids = frame["sample_id"].to_numpy()
    found = projection.neighbours
    return pd.DataFrame({"space": projection.space, "sample_id": ids[found["row"].to_numpy()],
                         "rank": found["rank"].to_numpy(), "neighbour_id": ids[found["neighbour_row"].to_numpy()],
                         "similarity": found["similarity"].to_numpy()})


def _write(con, run_id: str, tables: dict, run_row: pd.DataFrame) -> None:
    for name, table in tables.items():  # names come from the dict above, never from input
        if len(table) == 0:
            continue
        con.register("_incoming", table)
        con.execute(f"INSERT INTO {name} BY NAME SELECT ? AS run_id, * FROM _incoming", [run_id])
        con.unregister("_incoming")
    con.register("_incoming", run_row)
    con.execute("INSERT INTO runs BY NAME SELECT * FROM _incoming")
    con.unregister("_incoming")
    schema.derive(con, run_id)


def _relative(path: str, db: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(db).resolve().parent))
    except ValueError:
        return str(Path(path).resolve())


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
