"""One pipeline run, stage by stage: load, own (the user's own predictors, read and scored
before any training), tokenize, train, export, score, dense, cnn, bilstm, explain,
project, issues, store.

``run_pipeline(cfg, frame=None)`` returns a ``RunSummary``; the run is written to the
store only when every stage has succeeded (``pipeline.store.write``). Each stage is a
module of its own; this file only wires their results together and times them.
"""

from __future__ import annotations

import ctypes
import dataclasses
import datetime as dt
import secrets
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pipeline import engine
from pipeline.analyses import evidence, explain, issues, project
from pipeline.config import Config
from pipeline.data.load import load_dataset
from pipeline.data.relabel import relabel
from pipeline.models import devices, export, linear, outputs, own, sequences, train_nn
from pipeline.models.folds import make_folds
from pipeline.models.run_folder import run_folder
from pipeline.models.score import OnnxTextModel
from pipeline.models.text import tokenize
from pipeline.names import FAMILY_NAMES, LINEAR, SEQUENCE_NETWORKS, model_id
from pipeline.store import files
from pipeline.store.write import RunRecord, write_run


@dataclasses.dataclass
class RunSummary:
    run_id: str
    db: Path
    n_samples: int
    classes: tuple[str, ...]
    test_accuracy: float | None  # conventional model on the rows outside the train split
    oof_accuracy: float
    n_flagged: int
    provider: str
    parity_max_abs: float
    stage_seconds: dict[str, float]
    warnings: list[str]  # what loading repaired or left out
    notes: list[str]  # how the data was read: columns recognised, ids derived, no train split
    model_test_accuracy: dict[str, float]  # family name -> its conventional model's accuracy outside the train split
    own_accuracy: dict[str, tuple[float | None, int, float | None]] = dataclasses.field(default_factory=dict)
    # the user's predictors: name -> (accuracy on the texts it never saw, how many, accuracy on the texts it may have
    # trained on); an accuracy is None where there are no such texts
    stage_peak_mib: dict[str, float] = dataclasses.field(default_factory=dict)  # stage -> peak RSS, MiB
    suggestions: dict[str, int] = dataclasses.field(default_factory=dict)  # 'relabel' / 'ambiguous' -> texts
    ranked_by: str = ""  # who ranked the label issues, as the reasons name it

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
        reset_peak()
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 2)
        self.peak_mib[name] = round(rss_mib("VmHWM"), 1)
        release_memory()
        self.bar.update(1)


def release_memory() -> None:
    """Hand memory that a stage freed back to the system: Arrow's pool (a table read) and glibc's heap (millions
    of small strings), which otherwise stay resident and add to every later stage's peak (200,000 reviews: 2.6 GiB
    resident after loading, 1.0 GiB after this)."""
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except ImportError:
        pass
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def reset_peak() -> None:
    """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM); elsewhere a no-op."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def rss_mib(field: str = "VmHWM") -> float:
    """Resident memory in MiB: ``VmRSS`` (now) or ``VmHWM`` (the peak since ``reset_peak``); where /proc is absent,
    the process's peak since it started. Benches use these too (bench/own_model.py)."""
    try:
        with open("/proc/self/status") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith(field)) / 1024
    except (OSError, StopIteration, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_pipeline(cfg: Config, frame: pd.DataFrame | None = None) -> RunSummary:
    """Run every stage on ``cfg.data`` (or on ``frame``, a pandas DataFrame) and write one run to ``cfg.db``.

    The store and the models folder are checked and held before the first stage (``files.reserve``,
    ``run_folder``): a store that cannot be written, or another run writing it, is said before any work."""
    devices.providers(cfg.device)  # --device cuda on a machine that cannot: said before any work
    if cfg.families():
        devices.torch_device(cfg.device)
    started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    run_id = started.strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)
    # a cluster out of reach is said by connect, before any work
    with (files.reserve(Path(cfg.db)), run_folder(Path(cfg.models_dir), run_id, Path(cfg.db)) as model_dir,
          engine.connect(cfg.engine, cfg.ray_address, scratch=model_dir / "shards") as on):
        return _run(cfg, frame, started, run_id, model_dir, on)


def _run(cfg: Config, frame: pd.DataFrame | None, started: dt.datetime, run_id: str, model_dir: Path,
         on: engine.LocalEngine | engine.RayEngine) -> RunSummary:
    mine = cfg.predictions is not None or cfg.model is not None
    timer = _Timer(cfg.progress, stages=9 + len(cfg.families()) + mine)  # load, own, tokenize .. score, networks, ..
    with timer.stage("load"):
        data = load_dataset(cfg, frame)
        if cfg.relabel is not None:
            data = relabel(data, Path(cfg.relabel), split=cfg.relabel_split, folds=cfg.folds, limits=cfg.limits())
    theirs = []
    if mine:
        with timer.stage("own"):  # the user's predictors: read, checked and scored before any training
            theirs = own.score_own(own.read_own(cfg, data), cfg, data, model_dir)
    with timer.stage("tokenize"):
        corpus = tokenize(data.frame["display_text"], ngram_max=cfg.ngram_max, min_df=cfg.min_df, engine=on,
                          chunk=cfg.chunk_rows)
    with timer.stage("train"):
        folds = make_folds(data.labels, data.frame["group"], data.frame["sample_id"], n_folds=cfg.folds,
                           seed=cfg.seed)
        models = linear.train_models(corpus, data, folds, cfg, engine=on)
    with timer.stage("export"):
        paths = {m.model_id: export.export_onnx(m, model_dir / f"{m.model_id}.onnx", classes=data.classes,
                                                tokenizer_spec=corpus.tokenizer_spec()) for m in models.all()}
    with timer.stage("score"):
        scored = [linear.score_models(models, paths, corpus, data, folds, device=cfg.device, progress=cfg.progress,
                                      engine=on)]
    inputs = train_nn.NetworkData(corpus)
    networks = []
    for family in cfg.families():
        with timer.stage(family):
            if family in SEQUENCE_NETWORKS and inputs.sequences is None:
                inputs = train_nn.NetworkData(corpus, sequences.tokenize_sequences(data.frame["display_text"]))
            networks.append(train_nn.run_family(family, inputs, data, folds, cfg, model_dir, engine=on))
            scored.append(networks[-1].scored)
    with timer.stage("explain"):
        predicted = outputs.predicted_class(scored[0].oof)
        shap_tokens, shap_base = explain.explain_folds(models.folds, corpus, folds, data.labels, predicted,
                                                       top_k=cfg.shap_top_k, progress=cfg.progress, engine=on)
    with timer.stage("project"):
        maps = project.project(corpus, cfg, {n.scored.family: n.embedding for n in networks
                                             if n.embedding is not None}
                               | {t.scored.family: t.embedding for t in theirs if t.embedding is not None},
                               engine=on)
    data.report.notes.extend(_large_data_notes(len(data.frame), cfg, svd_dims=maps[0].vectors.shape[1]))
    if isinstance(on, engine.RayEngine):
        where = f"the cluster at {cfg.ray_address}" if cfg.ray_address else "started on this machine"
        data.report.notes.append(f"ran on Ray ({where}: {on.nodes} node(s), {on.workers} CPUs) (--engine ray)")
    if networks:  # as each training job said: with --engine ray, where the workers ran
        where = sorted(set().union(*(n.trained_on for n in networks)))
        data.report.notes.append(f"the networks trained with PyTorch on {' and '.join(where)} (--device)")
    with timer.stage("issues"):
        stated = evidence.stated_labels(data.frame["display_text"], data.frame["rating"].to_numpy(), data.labels,
                                        len(data.classes))
        probs, ranked_on = issues.issue_probabilities(
            {s.family: s.oof for s in scored + [t.scored for t in theirs]}, cfg.issue_source, data.labels, folds,
            stated[0])
        ranked_by = _ranker_name(ranked_on, theirs, cfg.issue_source)
        found = issues.find_label_issues(data.labels, probs, data.frame["rating"].to_numpy(), classes=data.classes,
                                         method=cfg.issue_method, rating_name=_rating_name(data.columns),
                                         model_name=ranked_by)
        mixed = evidence.sentence_mix_by_fold(
            data.frame["display_text"], folds, evidence.doubted(data.labels, probs, stated[0]),
            lambda fold: OnnxTextModel.load(paths[model_id(LINEAR, fold)], device=cfg.device).score_texts)
        votes = [(s.oof, np.ones(len(s.oof), bool)) for s in scored]  # fold models: none saw the review
        votes += [(t.scored.oof, ~t.scored.predictions["seen_in_training"].to_numpy(bool)) for t in theirs]
        found = evidence.attach(found, evidence.gather(
            data.labels, data.classes, data.frame["sample_id"].to_numpy(), data.frame["display_text"],
            data.frame["rating"].to_numpy(), probs, votes, maps[0].neighbours, stated, mixed), data.classes)
    summary = RunSummary(
        run_id, Path(cfg.db), len(data.frame), data.classes, scored[0].test_accuracy(),
        scored[0].oof_accuracy(data.labels), int(found["is_label_issue"].sum()), scored[-1].provider,
        max(s.parity_max_abs for s in scored), timer.seconds, data.report.lines(), list(data.report.notes),
        {FAMILY_NAMES[s.family]: s.test_accuracy() for s in scored[1:] if s.test_accuracy() is not None},
        {t.name: (t.scored.models["accuracy"].iloc[0], t.n_unseen, t.seen_accuracy) for t in theirs})
    summary.suggestions = {k: int(v) for k, v in found["suggestion"].value_counts().items() if k != "keep"}
    summary.ranked_by = ranked_by
    cautions = own.ranking_warnings(theirs, cfg.issue_source)
    summary.warnings += cautions
    data.report.notes.extend(f"warning: {c}" for c in cautions)  # stored with the run (runs.load_notes)
    del corpus, inputs, models  # the counts are not stored: give their memory back before the tables are built
    release_memory()
    with timer.stage("store"):
        write_run(RunRecord(
            run_id, started, dataclasses.asdict(cfg), Path(cfg.db), data, folds, scored + [t.scored for t in theirs],
            networks, maps, shap_tokens,
            shap_base, found, cfg.issue_method, ranked_on, summary.test_accuracy, summary.oof_accuracy,
            timer.seconds, timer.peak_mib))
    timer.bar.close()
    summary.stage_seconds = timer.seconds
    summary.stage_peak_mib = timer.peak_mib
    return summary


def _large_data_notes(n: int, cfg: Config, *, svd_dims: int) -> list[str]:
    """What a run on large data did differently (README, Large data), and what it could not do as asked (the map's
    ``svd_dims`` and clusters); said with the run."""
    notes = []
    if svd_dims < cfg.svd_dim:
        notes.append(f"the text map's vectors have {svd_dims:,} dimensions, not the {cfg.svd_dim:,} asked (--svd-dim): "
                     "a truncated SVD has fewer than both the texts it is fit on and the n-grams it reads")
    fit_on = min(n, cfg.map_fit_rows)
    if cfg.clusters > fit_on:
        notes.append(f"the maps have at most {fit_on:,} clusters, not the {cfg.clusters:,} asked (--clusters): k-means "
                     f"cannot make more clusters than the {fit_on:,} texts it is fit on")
    if n > cfg.chunk_rows:
        notes.append(f"n-grams counted in {-(-n // cfg.chunk_rows):,} chunks of up to {cfg.chunk_rows:,} texts, in "
                     "two passes (--chunk-rows)")
    if n > cfg.map_fit_rows:
        notes.append(f"the map's TF-IDF weights, SVD and k-means were fit on a seeded sample of {cfg.map_fit_rows:,} "
                     f"of the {n:,} texts and applied to every text (--map-fit-rows); the neighbour search and the "
                     "layout cover every text")
    return notes


def _ranker_name(ranked_on: tuple[str, ...], theirs: list, cfg_source: str) -> str:
    """Who 'the model' is in each suspect's reason: the probabilities the ranking used."""
    mine = {t.scored.family: t.name for t in theirs}
    if len(ranked_on) > 1:
        return "the models together (stacked)" if cfg_source == "stacked" else "the models together (mean)"
    return f"your model {mine[ranked_on[0]]!r}" if ranked_on[0] in mine else "the linear model"


def _rating_name(columns: dict) -> str | None:
    """What reasons call the rating: the --score column's name, unless there is none or it is the label itself."""
    score = columns.get("score")
    return score if score and score != columns.get("label") else None
