"""Write one complete run into the store: the stages' results as the schema's tables.

``write_run(record)`` turns a ``RunRecord`` (what every stage returned) into the rows
of ``pipeline.store.schema``'s tables, inserts them on a copy of the store and swaps it
in (``pipeline.store.files.publish``), filling the derived tables last. Each table is
built only when it is inserted and committed on the copy once inserted, so a large run
holds one table's rows at a time and DuckDB can write finished tables out of memory.
Table names come from the constants here, never from input; every value is bound or
passed as a registered frame.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.analyses.project import Projection
from pipeline.data.dataset import Dataset, as_text
from pipeline.models.score import Scored
from pipeline.models.train_nn import NetworkRun
from pipeline.store import files, schema


@dataclasses.dataclass(frozen=True)
class RunRecord:
    run_id: str
    started: dt.datetime  # UTC, naive
    config: dict  # the Config, as JSON-ready values
    db: Path
    data: Dataset
    folds: np.ndarray  # (N,) fold per row of data.frame
    scored: list[Scored]  # every family, the linear one first
    networks: list[NetworkRun]
    maps: list[Projection]  # the linear family's first
    shap_tokens: pd.DataFrame  # explain.explain_folds' attributions (with 'row')
    shap_base: pd.DataFrame
    issues: pd.DataFrame  # issues.ISSUE_COLUMNS, dataset row order
    issue_method: str  # the cleanlab method (analyses.issues.METHODS)
    ranked_on: tuple[str, ...]  # the families whose probabilities it ranked (several: their mean)
    test_accuracy: float | None
    oof_accuracy: float
    stage_seconds: dict[str, float]
    stage_peak_mib: dict[str, float]


def write_run(record: RunRecord) -> None:
    """Publish the run: every table, the derived ones, and the runs row, or nothing."""
    tables = _tables(record)
    finished = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    data = record.data
    run_row = pd.DataFrame([{
        "run_id": record.run_id, "started_at": record.started, "completed_at": finished, "source": data.source,
        "n_samples": len(data.frame), "n_classes": data.n_classes, "columns": json.dumps(data.columns),
        "test_accuracy": record.test_accuracy, "oof_accuracy": record.oof_accuracy,
        "n_flagged": int(record.issues["is_label_issue"].sum()), "seconds": (finished - record.started).total_seconds(),
        "stage_seconds": json.dumps(record.stage_seconds), "stage_peak_mib": json.dumps(record.stage_peak_mib),
        "load_warnings": json.dumps(data.report.problems), "load_notes": json.dumps(data.report.notes),
        "config": json.dumps(record.config, default=str),
    }])
    files.publish(record.db, lambda con: _write(con, record.run_id, tables, run_row))


def _tables(r: RunRecord) -> dict[str, Callable[[], pd.DataFrame | pa.Table]]:
    """Each table's rows, built only when ``_write`` inserts it (one table's copy of the data at a time)."""
    data, ids = r.data, r.data.frame["sample_id"].to_numpy()
    networks = r.networks
    return {
        "classes": lambda: pd.DataFrame({"class": np.arange(data.n_classes, dtype=np.int16),
                                         "name": list(data.classes), "n": data.class_counts().astype(np.int32)}),
        "samples": lambda: data.frame.drop(columns="group").assign(group_id=data.frame["group"], fold=r.folds),
        **_metadata(data),
        "models": lambda: _models(r),
        "predictions": lambda: _predictions(pd.concat([s.predictions for s in r.scored], ignore_index=True)),
        "embeddings": lambda: pa.concat_tables([_embedding_table(ids, m) for m in r.maps]),
        "clusters": lambda: pd.concat([m.cluster_terms.assign(space=m.space) for m in r.maps]),
        "neighbours": lambda: _concat([_neighbour_table(ids, m) for m in r.maps]),
        "shap_base": lambda: r.shap_base,
        "shap_tokens": lambda: r.shap_tokens.assign(sample_id=ids[r.shap_tokens["row"]]).drop(columns="row"),
        "label_issues": lambda: _label_issues(r.issues.assign(sample_id=ids, method=r.issue_method), r.ranked_on),
        "training_batches": lambda: _concat([n.batches for n in networks]),
        "training_epochs": lambda: _concat([n.epochs for n in networks]),
        "layer_stats": lambda: _concat([n.layer_stats for n in networks]),
        "layer_histograms": lambda: _concat([n.layer_histograms for n in networks]),
        "information_plane": lambda: _concat([n.information_plane for n in networks]),
        "truncation": lambda: _concat([n.truncation for n in networks]),
    }


def _models(r: RunRecord) -> pd.DataFrame:
    models = pd.concat([s.models for s in r.scored], ignore_index=True)
    return models.assign(onnx_path=[None if pd.isna(p) else _relative(p, r.db) for p in models["onnx_path"]])


def _label_issues(frame: pd.DataFrame, ranked_on: tuple[str, ...]) -> pa.Table:
    """The label issues, with ``ranked_on`` as a VARCHAR[] list column (the same list on every row)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.append_column("ranked_on", pa.array([list(ranked_on)] * len(frame), type=pa.list_(pa.string())))


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _metadata(data: Dataset) -> dict[str, Callable[[], pd.DataFrame]]:
    if data.metadata is None or not data.meta_columns:
        return {}
    columns = pd.DataFrame([{"name": c.name, "position": i, "kind": c.kind, "n_distinct": c.n_distinct,
                             "lo": c.lo, "hi": c.hi} for i, c in enumerate(data.meta_columns)])
    ids = data.frame["sample_id"].to_numpy()

    def long() -> pd.DataFrame:  # one row per text and column
        return pd.concat([pd.DataFrame({
            "name": c.name, "sample_id": ids, "value": as_text(data.metadata[c.name]).to_numpy(),
            "number": pd.to_numeric(data.metadata[c.name], errors="coerce").to_numpy(dtype=float)
            if c.kind == "number" else np.nan}) for c in data.meta_columns], ignore_index=True)
    return {"meta_columns": lambda: columns, "sample_meta": long}


def _predictions(frame: pd.DataFrame) -> pa.Table:
    """The predictions, with ``probs`` as a DOUBLE[] list column (built from offsets, not row by row)."""
    probs = np.stack(frame["probs"].to_numpy()) if len(frame) else np.zeros((0, 0))
    n, k = probs.shape
    table = pa.Table.from_pandas(frame.drop(columns="probs"), preserve_index=False)
    lists = pa.ListArray.from_arrays(np.arange(0, n * k + 1, k, dtype=np.int32), pa.array(probs.ravel()))
    return table.append_column("probs", lists)


def _embedding_table(ids: np.ndarray, proj: Projection) -> pa.Table:
    """One space's rows; FLOAT[] vectors passed as an Arrow list column."""
    n, d = proj.vectors.shape
    vectors = pa.ListArray.from_arrays(np.arange(0, n * d + 1, d, dtype=np.int32), pa.array(proj.vectors.ravel()))
    return pa.table({
        "space": pa.array([proj.space] * n), "family": pa.array([proj.family] * n), "sample_id": pa.array(ids),
        "vector": vectors, "x": pa.array(proj.xy[:, 0]), "y": pa.array(proj.xy[:, 1]), "cluster": pa.array(proj.cluster),
    })


def _neighbour_table(ids: np.ndarray, projection: Projection) -> pd.DataFrame:
    found = projection.neighbours
    if found is None:
        return pd.DataFrame()
    return pd.DataFrame({"space": projection.space, "sample_id": ids[found["row"].to_numpy()],
                         "rank": found["rank"].to_numpy(), "neighbour_id": ids[found["neighbour_row"].to_numpy()],
                         "similarity": found["similarity"].to_numpy()})


def _write(con, run_id: str, tables: dict, run_row: pd.DataFrame) -> None:
    for name, build in tables.items():  # names come from the dict above, never from input
        table = build()
        if len(table) == 0:
            continue
        con.register("_incoming", table)
        con.execute(f"INSERT INTO {name} BY NAME SELECT ? AS run_id, * FROM _incoming", [run_id])
        con.unregister("_incoming")
        del table  # before the next table is built
        con.execute("COMMIT")  # on the private copy (files.publish): DuckDB may now write the table out of memory
        con.execute("BEGIN TRANSACTION")
    con.register("_incoming", run_row)
    con.execute("INSERT INTO runs BY NAME SELECT * FROM _incoming")
    con.unregister("_incoming")
    schema.derive(con, run_id)


def _relative(path: str, db: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(db).resolve().parent))
    except ValueError:
        return str(Path(path).resolve())
