"""The load stage: find the data, read it with the reader its kind needs, check it.

``load_dataset(cfg, frame=None)`` returns a checked ``Dataset``:

- ``frame`` given (``pipeline.analyze``): that pandas DataFrame, columns mapped as a table's;
- ``--data`` a ``.csv``/``.tsv``/``.parquet``/``.jsonl`` file: ``pipeline.data.tables``;
- ``--data`` a folder laid out ``[split/]label/*.txt``: ``pipeline.data.folders``;
- ``--data`` the IMDB archive (``aclImdb_v1.tar.gz``, ``aclImdb_v1_labeled.tar.gz``) or
  an extracted ``aclImdb/`` folder, or no ``--data`` at all: ``pipeline.data.imdb``, as
  always (the archive is looked for in ``$IMDB_DATA`` and ``data/``, then downloaded).

Column options (``--text``, ``--label``, ``--id``, ``--split``, ``--group``, ``--score``)
apply to tables; a text folder's labels and splits are its folder names, and the IMDB
archive's columns are fixed. ``--sample`` keeps a seeded, class-stratified sample.
Every check that can fail runs here, before any model is trained.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from pipeline.config import Config
from pipeline.data import dataset, folders, imdb, tables
from pipeline.data.dataset import Dataset, LoadError, LoadReport

KINDS = ("imdb", "folder", "table", "frame")


def load_dataset(cfg: Config, frame: pd.DataFrame | None = None) -> Dataset:
    if frame is not None:
        data = _from_table(frame.copy(), cfg, source=frame_source(frame), report=LoadReport())
    else:
        path = imdb.locate_data(cfg)
        kind = data_kind(path)
        if kind != "table" and _column_options(cfg):
            raise LoadError(
                f"{', '.join(_column_options(cfg))} apply to tables (CSV, TSV, Parquet, JSON Lines); {path} is "
                + ("a text folder, whose labels and splits are its folder names." if kind == "folder"
                   else "the IMDB archive, whose columns are fixed. To use its star rating as the label, save it "
                        "as a table first (bench/rating_task.py shows how)."))
        if kind == "imdb":
            loaded = imdb.load_reviews(path, sample=cfg.sample, seed=cfg.seed, progress=cfg.progress,
                                       limits=cfg.limits())
            data = imdb.to_dataset(loaded)
        elif kind == "folder":
            report = LoadReport()
            table, relative = folders.read_folder(path, report=report, memory_limit_mib=cfg.memory_limit_mib,
                                                 limits=cfg.limits())
            data = dataset.from_table(table, {"text": "text", "label": "label",
                                              "split": "split" if "split" in table else None},
                                      source=str(path), report=report, paths=relative + ".txt", sample_ids=relative)
        else:
            report = LoadReport()
            table = tables.read_table(path, report=report, memory_limit_mib=cfg.memory_limit_mib,
                                      limits=cfg.limits())
            data = _from_table(table, cfg, source=str(path), report=report)
    if cfg.sample is not None:
        data = dataset.stratified_sample(data, cfg.sample, cfg.seed)
    dataset.check(data, folds=cfg.folds)
    return data


def frame_source(frame: pd.DataFrame) -> str:
    """'<DataFrame 1a2b3c4d5e6f>': a DataFrame named by a fingerprint of its content (index, columns, values), so
    decisions made on one DataFrame's run never show on another's kept in the same store (ids such as 0, 1, 2
    collide). Editing the frame (fixing labels included) gives it a new fingerprint."""
    try:
        hashed = pd.util.hash_pandas_object(frame, index=True)
    except TypeError:  # cells pandas cannot hash (lists, dicts): their text
        hashed = pd.util.hash_pandas_object(frame.astype(str), index=True)
    digest = hashlib.sha256(hashed.to_numpy().tobytes())
    digest.update(repr([str(c) for c in frame.columns]).encode())
    return f"<DataFrame {digest.hexdigest()[:12]}>"


def data_kind(path: Path) -> str:
    """Which reader a path needs: 'imdb' | 'folder' | 'table' (LoadError when none fits)."""
    path = Path(path)
    if path.is_dir():
        return "imdb" if path.name == "aclImdb" or (path / "aclImdb").is_dir() else "folder"
    if tables.table_format(path):
        return "table"
    if path.name.lower().endswith((".tar.gz", ".tgz", ".tar")):
        return "imdb"
    raise LoadError(f"{path}: cannot tell what this is from its name. --data takes a table (.csv, .tsv, .parquet, "
                    f".jsonl), a folder laid out {folders.LAYOUTS}, or the IMDB archive (aclImdb_v1.tar.gz).")


def _from_table(table: pd.DataFrame, cfg: Config, *, source: str, report: LoadReport) -> Dataset:
    roles = {"text": cfg.text_column, "label": cfg.label_column, "id": cfg.id_column, "split": cfg.split_column,
             "group": cfg.group_column, "score": cfg.score_column}
    return dataset.from_table(table, roles, source=source, report=report)


def _column_options(cfg: Config) -> list[str]:
    given = {"--text": cfg.text_column, "--label": cfg.label_column, "--id": cfg.id_column,
             "--split": cfg.split_column, "--group": cfg.group_column, "--score": cfg.score_column}
    return [flag for flag, value in given.items() if value is not None]
