"""Latency of every query the app issues, p50 and p95, on one store.

    .venv/bin/python bench/queries.py --db build/bench/pipeline-full/lossmap.duckdb          # target p95 < 100 ms
    .venv/bin/python bench/queries.py --db build/bench/store-1m/lossmap.duckdb --target 500  # (bench/make_store.py)

Calls each function of pages/common/queries/ past its Streamlit cache (the page
caches results, so this is what a first visit or a new filter costs), with the
arguments a user's visit produces: the top review, a flagged one, a harmed one,
filters of each kind, a text search, a page deep in the list, a box on the map.
Plus the decisions file's read (``decisions.current``) with 1,000 decisions in it.
Each query runs once unmeasured, then ``--repeat`` times; the store file is in the
OS page cache, as it is for a running app.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import logging  # noqa: E402

logging.getLogger("streamlit").setLevel(logging.ERROR)  # "no runtime" warnings: there is no app here

from pipeline.store import decisions  # noqa: E402
from pages.common import queries as q  # noqa: E402


def calls(ref: q.StoreRef, decisions_db: Path) -> list[tuple[str, object]]:
    """(name, zero-argument callable) for every query, with realistic arguments."""
    raw = {name: getattr(q, name).__wrapped__ for name in dir(q) if hasattr(getattr(q, name), "__wrapped__")}
    run = raw["runs"](ref)["run_id"].iloc[0]
    top = raw["top_loss"](ref, run, 1)["sample_id"].iloc[0]
    flagged_rows, _ = raw["suspects"](ref, run, 100)
    flagged = flagged_rows["sample_id"].iloc[0]
    decided = tuple(flagged_rows["sample_id"].iloc[:50])
    spaces = raw["spaces"](ref, run)
    families = raw["truncation_families"](ref, run)
    models = raw["telemetry_models"](ref, run)
    metas = raw["meta_columns"](ref, run)
    out = [
        ("runs", lambda: raw["runs"](ref)),
        ("classes", lambda: raw["classes"](ref, run)),
        ("confusion", lambda: raw["confusion"](ref, run)),
        ("per_class", lambda: raw["per_class"](ref, run)),
        ("meta_columns", lambda: raw["meta_columns"](ref, run)),
        ("spaces", lambda: raw["spaces"](ref, run)),
        ("filter_bounds", lambda: raw["filter_bounds"](ref, run)),
        ("top_loss (200)", lambda: raw["top_loss"](ref, run, 200)),
        ("loss_histogram", lambda: raw["loss_histogram"](ref, run)),
        ("loss_by_rating", lambda: raw["loss_by_rating"](ref, run)),
        ("training_batches", lambda: raw["training_batches"](ref, run)),
        ("training_epochs", lambda: raw["training_epochs"](ref, run)),
    ]
    filters = {
        "no filter": q.SampleFilter(),
        "split+label+outcome": q.SampleFilter(splits=("test",), labels=(1,), outcome="incorrect"),
        "rating 4-7, loss >= 1": q.SampleFilter(rating=(4, 7), loss=(1.0, None)),
        "words 500-1000, cluster 3": q.SampleFilter(words=(500, 1000), clusters=(3,)),
        "flagged, undecided": q.SampleFilter(flagged=True, except_ids=decided),
        "decided 'mislabeled'": q.SampleFilter(only_ids=decided[:20]),
        "search 'worst movie'": q.SampleFilter(search="worst movie"),
        "search, no match": q.SampleFilter(search="zqxj' OR 1=1 --"),
    }
    for m in metas.itertuples():  # the data's own columns, where it has any
        if m.kind == "category":
            values = raw["meta_values"](ref, run, m.name)
            out.append((f"meta_values ({m.name})", lambda n=m.name: raw["meta_values"](ref, run, n)))
            filters[f"column {m.name} = {values[0]}"] = q.SampleFilter(meta_values=((m.name, (values[0],)),))
        elif m.kind == "number":
            filters[f"column {m.name} in its lower half"] = q.SampleFilter(
                meta_ranges=((m.name, m.lo, (m.lo + m.hi) / 2),))
    for label, f in filters.items():
        out.append((f"sample_count ({label})", lambda f=f: raw["sample_count"](ref, run, f)))
        out.append((f"sample_page ({label})", lambda f=f: raw["sample_page"](ref, run, f, 0, 100)))
    out.append(("sample_page (no filter, page 100)", lambda: raw["sample_page"](ref, run, q.SampleFilter(), 9900, 100)))
    out += [
        ("suspects (1000)", lambda: raw["suspects"](ref, run, 1000)),
        ("next_suspect (50 skipped)", lambda: raw["next_suspect"](ref, run, decided)),
        ("count_among_flagged (50)", lambda: raw["count_among_flagged"](ref, run, decided)),
        ("sample_detail", lambda: raw["sample_detail"](ref, run, top)),
        ("predictions_for", lambda: raw["predictions_for"](ref, run, top)),
        ("shap_classes", lambda: raw["shap_classes"](ref, run, flagged)),
        ("shap_tokens", lambda: raw["shap_tokens"](ref, run, flagged, raw["shap_classes"](ref, run, flagged)[0])),
        ("sample_meta", lambda: raw["sample_meta"](ref, run, flagged)),
        ("neighbours", lambda: raw["neighbours"](ref, run, flagged)),
    ]
    for space in spaces:
        out.append((f"map_points ({space}, 10,000)", lambda s=space: raw["map_points"](ref, run, s, 10_000)))
        out.append((f"clusters ({space})", lambda s=space: raw["clusters"](ref, run, s)))
    if spaces:
        pts, _ = raw["map_points"](ref, run, spaces[0], 10_000)
        x, y = pts["x"].quantile([0.3, 0.6]).tolist(), pts["y"].quantile([0.3, 0.6]).tolist()
        out.append((f"map_points ({spaces[0]}, 50,000)", lambda: raw["map_points"](ref, run, spaces[0], 50_000)))
        out.append(("map_box (30% x 30% of the map)", lambda: raw["map_box"](ref, run, spaces[0], tuple(x), tuple(y))))
    if len(models):
        m, family = models["model_id"].iloc[-1], models["family"].iloc[-1]
        stats = raw["layer_stats"](ref, run, m)
        layer = stats["layer"].iloc[0]
        out += [
            ("telemetry_models", lambda: raw["telemetry_models"](ref, run)),
            (f"model_curves ({family})", lambda: raw["model_curves"](ref, run, family)),
            ("layer_stats", lambda: raw["layer_stats"](ref, run, m)),
            ("layer_histograms", lambda: raw["layer_histograms"](ref, run, m, layer, "weight")),
            ("information_plane", lambda: raw["information_plane"](ref, run, m)),
        ]
    out += [  # the Models page
        ("predictors", lambda: raw["predictors"](ref, run)),
        ("predictor_class_accuracy (unseen)", lambda: raw["predictor_class_accuracy"](ref, run, True)),
        ("agreement", lambda: raw["agreement"](ref, run)),
        ("disagreements (200)", lambda: raw["disagreements"](ref, run, 200)),
        ("calibration (unseen)", lambda: raw["calibration"](ref, run, True)),
        ("neighbour_spaces", lambda: raw["neighbour_spaces"](ref, run)),
    ]
    runs = raw["runs"](ref)["run_id"]
    other = runs.iloc[1] if len(runs) > 1 else run  # the Compare runs page (a run with itself when there is one)
    out += [
        ("shared_texts", lambda: raw["shared_texts"](ref, other, run)),
        ("class_accuracy_change", lambda: raw["class_accuracy_change"](ref, other, run)),
        ("changed_predictions (500)", lambda: raw["changed_predictions"](ref, other, run)),
        ("prediction_flows", lambda: raw["prediction_flows"](ref, other, run)),
        ("rank_moves (100)", lambda: raw["rank_moves"](ref, other, run)),
        ("relabeled", lambda: raw["relabeled"](ref, run)),
    ]
    sweeps = raw["sweeps"](ref)
    out.append(("sweeps", lambda: raw["sweeps"](ref)))
    if len(sweeps):
        sid = sweeps["sweep_id"].iloc[0]
        out += [("sweep_runs", lambda: raw["sweep_runs"](ref, sid)), ("sweep_curves", lambda: raw["sweep_curves"](ref, sid))]
    if families:
        fam = families[0]
        harmed = raw["harmed"](ref, run, fam)
        out += [
            ("truncation_families", lambda: raw["truncation_families"](ref, run)),
            ("accuracy_by_length", lambda: raw["accuracy_by_length"](ref, run, fam)),
            ("length_vs_loss", lambda: raw["length_vs_loss"](ref, run, fam)),
            ("harmed (200)", lambda: raw["harmed"](ref, run, fam)),
        ]
        if len(harmed):
            hid = harmed["sample_id"].iloc[0]
            out.append(("truncation_detail", lambda: raw["truncation_detail"](ref, run, fam, hid)))
    out.append(("decisions.current (1,000 decisions)", lambda: decisions.current(decisions_db)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=ROOT / "build/bench/pipeline-full/lossmap.duckdb")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per query (default: %(default)s)")
    parser.add_argument("--target", type=float, default=100.0, help="p95 target in ms (default: %(default)s)")
    args = parser.parse_args()
    if not args.db.exists():
        raise SystemExit(f"no store at {args.db}: run bench/pipeline_time.py (or bench/make_store.py) first")
    ref = q.StoreRef.of(args.db)
    with tempfile.TemporaryDirectory() as tmp:
        ddb = Path(tmp) / "decisions.duckdb"
        for i in range(1000):
            decisions.record(ddb, sample_id=f"train/pos/{i}_9", decision="mislabeled", old_label="positive",
                             new_label="negative", rating=9)
        n = int(q.runs.__wrapped__(ref)["n_samples"].iloc[0])
        print(f"{args.db} ({args.db.stat().st_size / 2**20:,.0f} MiB), {n:,} reviews; "
              f"{args.repeat} timed runs per query after one untimed; target p95 < {args.target:g} ms\n")
        print("| query | p50 (ms) | p95 (ms) | rows | |\n|---|---:|---:|---:|---|")
        misses = []
        for name, call in calls(ref, ddb):
            result = call()
            ms = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                call()
                ms.append((time.perf_counter() - t) * 1000)
            p50, p95 = np.percentile(ms, [50, 95])
            rows = len(result[0]) if isinstance(result, tuple) else (len(result) if hasattr(result, "columns") or isinstance(result, list) else 1)
            ok = p95 < args.target
            misses += [] if ok else [name]
            print(f"| {name} | {p50:.1f} | {p95:.1f} | {rows:,} | {'met' if ok else 'MISSED'} |", flush=True)
    print(f"\n{len(misses)} of the queries missed the target" + (f": {', '.join(misses)}" if misses else ""))


if __name__ == "__main__":
    main()
