"""Generate a large store with the same schema by replicating a real run's reviews.

    .venv/bin/python bench/make_store.py --from build/bench/pipeline-full/lossmap.duckdb \\
        --samples 1000000 --out build/bench/store-1m/lossmap.duckdb

Each review of the source run is copied ``ceil(samples / n)`` times (copies get
``sample_id`` '<id>~<k>'), so every per-review table (samples, predictions,
label_issues, embeddings, shap_tokens, truncation) grows by that factor, and the
per-run tables (runs, clusters, models, telemetry) are copied with the counts they
hold scaled. Map positions and losses are jittered by a few percent so copies do not
sit on top of each other; the rest is copied as is, and the derived tables
(pipeline.store.schema.DERIVED) are then filled exactly as a pipeline run fills them. The result passes the app's
version check and is only for measuring: its figures are not a real model's.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.store import schema  # noqa: E402

# per-review columns jittered in the copies: column -> SQL over the source row s and two hashes in [0, 1)
JITTER = {
    "x": "s.x + (keep.h - 0.5) * 0.2", "y": "s.y + (keep.h2 - 0.5) * 0.2",
    "loss": "s.loss * (0.95 + 0.1 * keep.h)", "loss_model": "s.loss_model * (0.95 + 0.1 * keep.h)",
}


def _columns(con, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = 'src' AND table_name = ? ORDER BY column_index",
        [table]).fetchall()]


def generate(source: Path, out: Path, samples: int) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    schema.ensure_schema(con)
    con.execute("ATTACH ? AS src (READ_ONLY)", [str(source)])
    n = con.execute("SELECT count(*) FROM src.samples").fetchall()[0][0]
    if n == 0:
        raise SystemExit(f"{source} holds no reviews")
    copies = math.ceil(samples / n)
    print(f"{n:,} reviews x {copies} copies, cut to {samples:,}", flush=True)
    con.execute("CREATE TEMP TABLE keep AS SELECT sample_id, k, CASE WHEN k = 0 THEN sample_id ELSE sample_id || '~' || k "
                "END AS new_id, hash(sample_id, k) / 18446744073709551615.0 AS h, "
                "hash(k, sample_id) / 18446744073709551615.0 AS h2 "
                "FROM src.samples, range(?) r(k) ORDER BY k, sample_id LIMIT ?", [copies, samples])
    for table in schema.TABLES:
        if table == "lossmap_meta" or table in schema.DERIVED_TABLES:
            continue
        t = time.perf_counter()
        cols = _columns(con, table)
        if "sample_id" in cols:
            select = []
            for c in cols:
                if c == "sample_id":
                    select.append("keep.new_id")
                elif c == "neighbour_id":  # the neighbour's copy in the same replica
                    select.append("CASE WHEN keep.k = 0 THEN s.neighbour_id ELSE s.neighbour_id || '~' || keep.k END")
                elif c == "path":
                    select.append("CASE WHEN keep.k = 0 THEN s.path ELSE s.path || '~' || keep.k END")
                elif c in JITTER:
                    select.append(f"CASE WHEN keep.k = 0 THEN s.{c} ELSE {JITTER[c]} END")
                else:
                    select.append(f"s.{c}")
            con.execute(f"INSERT INTO {table} SELECT {', '.join(select)} FROM src.{table} s "
                        "JOIN keep ON keep.sample_id = s.sample_id")
        else:
            con.execute(f"INSERT INTO {table} SELECT * FROM src.{table}")
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        print(f"  {table}: {rows:,} rows ({time.perf_counter() - t:.0f} s)", flush=True)
    total = con.execute("SELECT count(*) FROM samples").fetchall()[0][0]
    con.execute("UPDATE runs SET n_samples = ?, n_flagged = (SELECT count(*) FROM label_issues WHERE is_label_issue)",
                [total])
    con.execute("UPDATE classes SET n = (SELECT count(*) FROM samples s WHERE s.run_id = classes.run_id "
                "AND s.label = classes.class)")
    con.execute("UPDATE clusters SET size = (SELECT count(*) FROM embeddings e WHERE e.run_id = clusters.run_id "
                "AND e.space = clusters.space AND e.cluster = clusters.cluster)")
    con.execute("UPDATE label_issues SET issue_rank = r.rank FROM (SELECT run_id, sample_id, row_number() OVER "
                "(PARTITION BY run_id ORDER BY "
                "label_score, sample_id) AS rank FROM label_issues) r "
                "WHERE r.run_id = label_issues.run_id AND r.sample_id = label_issues.sample_id")
    con.execute("UPDATE truncation SET harm_rank = r.rank FROM (SELECT run_id, family, sample_id, row_number() OVER "
                "(PARTITION BY run_id, family ORDER BY harm DESC, sample_id) AS rank FROM truncation "
                "WHERE harm_rank IS NOT NULL) r WHERE r.run_id = truncation.run_id AND r.family = truncation.family "
                "AND r.sample_id = truncation.sample_id")
    for (run_id,) in con.execute("SELECT run_id FROM runs").fetchall():
        t = time.perf_counter()
        schema.derive(con, run_id)
        print(f"  derived tables of {run_id} ({time.perf_counter() - t:.0f} s)", flush=True)
    con.execute("DETACH src")
    con.execute("CHECKPOINT")
    con.close()
    tmp.replace(out)
    print(f"wrote {out} ({out.stat().st_size / 2**30:.2f} GiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", type=Path, default=ROOT / "build/bench/pipeline-full/lossmap.duckdb",
                        help="the real store to replicate (default: the full pipeline bench's)")
    parser.add_argument("--samples", type=int, default=1_000_000, help="reviews in the result (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "build/bench/store-1m/lossmap.duckdb")
    args = parser.parse_args()
    if not args.source.exists():
        raise SystemExit(f"no store at {args.source}: run `.venv/bin/python bench/pipeline_time.py` first, or pass --from")
    t = time.perf_counter()
    generate(args.source, args.out, args.samples)
    print(f"({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
