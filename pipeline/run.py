"""One pipeline run, stage by stage: load, tokenize, train, export, score, explain,
project, issues, store.

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

from pipeline import explain, export, issues, load, networks, project, score, store, train, train_nn
from pipeline.config import Config

FAMILY = "nblr"
OOF = f"{FAMILY}-oof"
CONVENTIONAL = f"{FAMILY}-train"
DENSE = "dense"
DENSE_OOF = f"{DENSE}-oof"
DENSE_CONVENTIONAL = f"{DENSE}-train"


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

    @property
    def seconds(self) -> float:
        return sum(self.stage_seconds.values())


class _Timer:
    def __init__(self, progress: bool):
        self.seconds: dict[str, float] = {}
        self.bar = tqdm(total=10, desc="pipeline", unit="stage", disable=not progress)

    @contextmanager
    def stage(self, name: str):
        self.bar.set_postfix_str(name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 2)
        self.bar.update(1)


def run_pipeline(cfg: Config) -> RunSummary:
    started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    run_id = started.strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)
    timer = _Timer(cfg.progress)
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
    with timer.stage("dense"):
        dense = _dense(corpus, frame, folds, cfg, model_dir) if cfg.dense else None
    with timer.stage("explain"):
        shap_rows, bases = _explain(models, corpus, folds, cfg)
    with timer.stage("project"):
        proj = project.project(corpus, cfg)
    with timer.stage("issues"):
        oof = scored["predictions"].query("predictor == @OOF").set_index("sample_id").loc[frame["sample_id"]]
        found = issues.find_label_issues(labels, oof["p_pos"].to_numpy(), frame["rating"].to_numpy(),
                                         method=cfg.issue_method)
        found.insert(0, "sample_id", frame["sample_id"].to_numpy())
        found.insert(1, "method", cfg.issue_method)
    all_models = pd.concat([scored["models"], dense["models"]]) if dense else scored["models"]
    test_acc = scored["test_accuracy"]
    oof_acc = float((oof["pred_label"].to_numpy() == labels).mean())
    summary = RunSummary(run_id, Path(cfg.db), len(frame), test_acc, oof_acc, int(found["is_label_issue"].sum()),
                         scored["provider"], float(all_models["parity_max_abs"].max()), timer.seconds,
                         loaded.report.lines(), _test_accuracies(all_models))
    with timer.stage("store"):
        tables = {
            "samples": frame.assign(fold=folds),
            "models": all_models.assign(onnx_path=lambda d: [_relative(p, cfg.db) for p in d["onnx_path"]]),
            "predictions": pd.concat([scored["predictions"], *([dense["predictions"]] if dense else [])]),
            "embeddings": _embedding_table(frame, proj),
            "clusters": proj.cluster_terms.assign(space=proj.space),
            "shap_base": bases,
            "shap_tokens": shap_rows.assign(sample_id=frame["sample_id"].to_numpy()[shap_rows["row"]]).drop(columns="row"),
            "label_issues": found,
            **({"training_batches": dense["batches"], "training_epochs": dense["epochs"]} if dense else {}),
        }
        finished = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        run_row = pd.DataFrame([{
            "run_id": run_id, "started_at": started, "completed_at": finished, "source": str(loaded.source),
            "n_samples": len(frame), "test_accuracy": test_acc, "oof_accuracy": oof_acc,
            "n_flagged": summary.n_flagged, "seconds": (finished - started).total_seconds(),
            "stage_seconds": json.dumps(timer.seconds), "load_warnings": json.dumps(loaded.report.problems),
            "config": json.dumps(dataclasses.asdict(cfg), default=str),
        }])
        store.publish(cfg.db, lambda con: _write(con, run_id, tables, run_row))
    timer.bar.close()
    summary.stage_seconds = timer.seconds
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


def _dense(corpus, frame, folds, cfg, model_dir: Path) -> dict:
    """Train, export and score the dense network: cross-fitted plus conventional."""
    labels = frame["label"].to_numpy()
    is_train = frame["split"].to_numpy() == "train"
    jobs = [(f"{DENSE}-fold{k}", k, np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in np.unique(folds)]
    if len(np.unique(labels[is_train])) == 2:
        jobs.append((DENSE_CONVENTIONAL, None, np.flatnonzero(is_train), np.flatnonzero(~is_train)))
    preds, model_rows, batches, epochs = [], [], [], []
    for model_id, k, train_rows, held in tqdm(jobs, desc="dense network", leave=False, disable=not cfg.progress):
        net = train_nn.fit_dense(corpus, labels, train_rows, cfg, model_id=model_id, val_rows=held)
        path = export.export_network(net, model_dir / f"{model_id}.onnx", tokenizer_spec=corpus.tokenizer_spec())
        session = score.OnnxNetwork.load(path, device=cfg.device)
        rows = held if k is not None else np.arange(len(frame))
        x = networks.multi_hot(corpus, net.columns, rows)
        p, _ = session.score_multi_hot(x)
        parity = score.check_parity(p, net.predict_multi_hot(x)[0], model_id=model_id)
        logit = np.log(np.clip(p, 1e-7, 1.0)) - np.log(np.clip(1.0 - p, 1e-7, 1.0))
        seen = np.zeros(len(rows), bool) if k is not None else is_train
        preds.append(_prediction_frame(frame, rows, p, logit, DENSE_OOF if k is not None else DENSE_CONVENTIONAL,
                                       model_id, seen))
        accuracy = float(((p[~seen] >= 0.5) == labels[rows][~seen]).mean()) if (~seen).any() else None
        model_rows.append(_model_row(net, DENSE, k, path, accuracy, parity, session.provider))
        batches.append(net.batches.assign(model_id=model_id))
        epochs.append(net.epochs.assign(model_id=model_id))
    return {"predictions": pd.concat(preds, ignore_index=True), "models": pd.DataFrame(model_rows),
            "batches": pd.concat(batches, ignore_index=True), "epochs": pd.concat(epochs, ignore_index=True)}


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
    n, d = proj.vectors.shape
    vectors = pa.ListArray.from_arrays(np.arange(0, n * d + 1, d, dtype=np.int32), pa.array(proj.vectors.ravel()))
    return pa.table({
        "space": pa.array([proj.space] * n), "sample_id": pa.array(frame["sample_id"].to_numpy()),
        "vector": vectors, "x": pa.array(proj.xy[:, 0]), "y": pa.array(proj.xy[:, 1]),
        "cluster": pa.array(proj.cluster),
    })


def _write(con, run_id: str, tables: dict, run_row: pd.DataFrame) -> None:
    for name, table in tables.items():  # names come from the dict above, never from input
        con.register("_incoming", table)
        con.execute(f"INSERT INTO {name} BY NAME SELECT ? AS run_id, * FROM _incoming", [run_id])
        con.unregister("_incoming")
    con.register("_incoming", run_row)
    con.execute("INSERT INTO runs BY NAME SELECT * FROM _incoming")
    con.unregister("_incoming")


def _relative(path: str, db: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(db).resolve().parent))
    except ValueError:
        return str(Path(path).resolve())


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
