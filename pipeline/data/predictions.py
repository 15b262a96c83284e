"""Read a model's own predictions for the data (issue 13, "bring a model's outputs"), checked before any work.

``read_predictions(path, *, ids, classes, name)`` reads a CSV, TSV, Parquet or JSON Lines
file (``.gz`` too, through ``data.tables`` with its caps) holding, per text:

- an id column matching the data's ids (``sample_id`` or ``id``, or ``id_column``);
- the class probabilities: one column per class named as the class (or ``p_<class>``), or
  one list column ``probs`` / ``probabilities`` in the data's class order;
- optionally an ``embedding`` list column (one vector per text, all the same length);
- optionally an ``out_of_sample`` column (true where the model never saw the text).

and returns a ``Predictions`` in the data's row order: ``probs`` (N, K) float64,
``embedding`` (N, D) float32 or None, ``out_of_sample`` (N,) bool or None (unknown).
Anything that does not fit is a ``LoadError`` naming what is wrong, how often, with
examples: ids missing or unknown, duplicate ids, a wrong number of classes, values that
are not numbers, outside [0, 1] or not summing to 1 (logits are named as a likely cause),
vectors of different lengths. Nothing is read into a run until all of it holds.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data import tables
from pipeline.data.dataset import LoadError, LoadReport, examples
from pipeline.data.unpack import Limits

SUM_TOLERANCE = 1e-3  # how far a row's probabilities may sum from 1
_ID_COLUMNS = ("sample_id", "id")
_LIST_COLUMNS = ("probs", "probabilities")
_EMBEDDING = "embedding"
_OUT_OF_SAMPLE = ("out_of_sample", "oof")


@dataclasses.dataclass(frozen=True)
class Predictions:
    name: str  # the predictor's name, as the app shows it
    probs: np.ndarray  # (N, K) float64, rows in the data's order, columns in its class order
    embedding: np.ndarray | None  # (N, D) float32
    out_of_sample: np.ndarray | None  # (N,) bool: the model never saw the text; None: not known
    source: str  # the file read
    notes: tuple[str, ...] = ()  # what was read and how (rows left out: texts the run does not analyse)


def read_predictions(path: Path, *, ids: pd.Series, classes: tuple[str, ...], name: str,
                     id_column: str | None = None, limits: Limits = Limits(), derived_ids: bool = False) -> Predictions:
    """``ids``: the data's ids in row order; ``classes``: its class names, label i is classes[i]; ``derived_ids``:
    the data has no id column (its ids are hashes of the texts), said when nothing matches.

    Rows for ids the run does not analyse (left out while loading, or outside ``--sample``) are skipped and counted in
    ``notes``; every text analysed needs a row."""
    path = Path(path)
    if not name.strip():
        raise LoadError("--predictor-name must not be empty: it names the model on every page.")
    raw = tables.read_table(path, report=LoadReport(), limits=limits)
    column = id_column or next((c for c in _ID_COLUMNS if c in raw.columns), None)
    if column is None or column not in raw.columns:
        raise LoadError(f"{path} has no id column ({id_column or ' or '.join(_ID_COLUMNS)}); its columns are "
                        f"{examples(raw.columns)}. Name it with --predictions-id COLUMN, or add the data's ids in a "
                        "column named sample_id.")
    raw = raw.set_index(raw[column].astype(str))  # examples in messages name rows by id
    order, skipped = _row_order(raw, ids, path, derived_ids)
    notes = ((f"--predictions {path}: {skipped:,} row(s) for texts this run does not analyse were skipped",)
             if skipped else ())
    unused = _unused(raw, classes)
    if unused:
        notes += (f"--predictions {path}: numeric column(s) {examples(unused)} are not the data's classes "
                  f"({examples(classes)}) and were not used",)
    raw = raw.iloc[np.sort(order)]  # checks only the rows used
    order = np.argsort(np.argsort(order))  # the same rows, now in the trimmed frame
    probs = _probabilities(raw, classes, path)[order]
    embedding = _embedding(raw, path)
    return Predictions(name.strip(), probs, None if embedding is None else embedding[order],
                       _out_of_sample(raw, path, order), str(path), notes)


def _row_order(raw: pd.DataFrame, ids: pd.Series, path: Path, derived_ids: bool) -> tuple[np.ndarray, int]:
    """For each of the data's ids, the row of the file (indexed by id) that holds it; and how many rows hold ids the
    data does not analyse."""
    found = raw.index.to_series()
    repeated = found[found.duplicated()]
    if len(repeated):
        raise LoadError(f"{path}: {repeated.nunique():,} id(s) appear more than once ({examples(repeated.unique())}); "
                        "give one row per text.")
    wanted = ids.astype(str)
    position = pd.Index(found).get_indexer(wanted)
    missing = wanted[position < 0]
    unknown = found[~found.isin(set(wanted))]
    if len(missing):
        parts = [f"{len(missing):,} of the data's {len(wanted):,} ids have no prediction ({examples(missing)})"]
        if len(unknown):
            parts.append(f"{len(unknown):,} of its ids are not in the data ({examples(unknown)})")
        hint = (" The data has no id column, so its ids are derived from each text (a hash): give the data an id "
                "column (--id COLUMN) and use the same ids in the predictions." if derived_ids and
                len(missing) == len(wanted) else "")
        raise LoadError(f"{path}: " + "; ".join(parts) + ". Predictions must cover every text analysed, under the "
                        "data's ids." + hint)
    return position, len(unknown)


def _probabilities(raw: pd.DataFrame, classes: tuple[str, ...], path: Path) -> np.ndarray:
    listed = next((c for c in _LIST_COLUMNS if c in raw.columns), None)
    named = [next((c for c in (k, f"p_{k}") if c in raw.columns), None) for k in classes]
    if listed is not None:
        rows = [_vector(v) for v in raw[listed]]
        widths = {len(r) for r in rows if r is not None}
        if widths != {len(classes)}:
            raise LoadError(f"{path}: the {listed!r} lists hold {examples(sorted(widths))} values, but the data has "
                            f"{len(classes)} classes ({examples(classes)}), in that order.")
        probs = np.array([r if r is not None else [np.nan] * len(classes) for r in rows], dtype=float)
    elif all(named):
        probs = np.column_stack([pd.to_numeric(raw[c], errors="coerce").to_numpy(dtype=float) for c in named])
    else:
        absent = [k for k, c in zip(classes, named) if c is None]
        raise LoadError(f"{path} has no probabilities for {len(absent)} of the data's {len(classes)} classes "
                        f"({examples(absent)}). Give one column per class, named as the class (or p_<class>), or "
                        f"one list column 'probs'; its columns are {examples(raw.columns)}.")
    bad = ~np.isfinite(probs).all(axis=1)
    if bad.any():
        raise LoadError(f"{path}: {bad.sum():,} row(s) hold a probability that is missing or not a number "
                        f"({_rows(raw, bad)}).")
    outside = ((probs < 0) | (probs > 1)).any(axis=1)
    sums = probs.sum(axis=1)
    off = np.abs(sums - 1) > SUM_TOLERANCE
    if outside.any() or off.any():
        which = outside | off
        others = _unused(raw, classes)
        if np.all(np.abs(sums - 100) <= 100 * SUM_TOLERANCE):
            hint = " They look like percentages: divide them by 100."
        elif others and listed is None:
            hint = (f" The file also has numeric columns that are not the data's classes ({examples(others)}); the "
                    f"data has {len(classes)} classes ({examples(classes)}): give one column per class, no more.")
        elif outside.any():
            hint = " They look like logits or scores: apply a softmax first."
        else:
            hint = " Give probabilities, not scores."
        raise LoadError(f"{path}: {which.sum():,} row(s) are not probabilities (each between 0 and 1, summing to 1 "
                        f"within {SUM_TOLERANCE:g}; {_rows(raw, which)}).{hint}")
    return probs / sums[:, None]


def _unused(raw: pd.DataFrame, classes: tuple[str, ...]) -> list[str]:
    """Numeric columns the predictions do not use: not the id, a class, the embedding or the flags."""
    used = {raw.index.name, _EMBEDDING, *_LIST_COLUMNS, *_OUT_OF_SAMPLE, *classes, *(f"p_{k}" for k in classes)}
    return [c for c in raw.columns if c not in used and len(raw)
            and pd.to_numeric(raw[c], errors="coerce").notna().all()]


def _embedding(raw: pd.DataFrame, path: Path) -> np.ndarray | None:
    if _EMBEDDING not in raw.columns:
        return None
    rows = [_vector(v) for v in raw[_EMBEDDING]]
    widths = {len(r) if r is not None else 0 for r in rows}
    if len(widths) != 1 or 0 in widths:
        raise LoadError(f"{path}: the embedding vectors have {examples(sorted(widths))} values; every text needs one "
                        "vector of the same length.")
    vectors = np.array(rows, dtype=np.float32)
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        raise LoadError(f"{path}: {bad.sum():,} embedding vector(s) hold values that are not numbers "
                        f"({_rows(raw, bad)}).")
    return vectors


def _out_of_sample(raw: pd.DataFrame, path: Path, order: np.ndarray) -> np.ndarray | None:
    column = next((c for c in _OUT_OF_SAMPLE if c in raw.columns), None)
    if column is None:
        return None
    words = raw[column].astype(str).str.strip().str.lower()
    mapping = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    unknown = ~words.isin(set(mapping))
    if unknown.any():
        raise LoadError(f"{path}: {column!r} must be true or false; {unknown.sum():,} row(s) hold something else "
                        f"({_rows(raw, unknown.to_numpy())}).")
    return words.map(mapping).to_numpy(dtype=bool)[order]


def _vector(value) -> list[float] | None:
    """A list cell: a list or array (Parquet, JSON Lines) or JSON text such as '[0.1, 0.9]' (CSV)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if value is None or np.ndim(value) != 1:
        return None
    try:
        return [float(x) for x in value]
    except (TypeError, ValueError):
        return None


def _rows(raw: pd.DataFrame, mask: np.ndarray) -> str:
    return "ids " + examples(raw.index[mask])


