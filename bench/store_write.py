"""Time and peak memory of writing one stored run again into a fresh store, the way a run's store stage writes it.

    .venv/bin/python bench/store_write.py --db build/bench/scale/run-1000000-linear-local/lossmap.duckdb
    .venv/bin/python bench/store_write.py --db DB --memory default     # DuckDB's own limit (80% of memory)

Reads the tables of the newest run in --db one at a time (as a run builds them) and writes them with the
pipeline's own writer (pipeline.store.write, through pipeline.store.files.publish: a table committed on the
private copy once inserted, the derived tables last) into build/bench/store-write/. DuckDB's memory while
writing is capped at --memory (default: the pipeline's WRITE_MEMORY). Prints per table its rows, seconds and
this process's peak resident memory so far, then the whole write's. The peak includes reading the tables
back as Arrow (DuckDB's cache of the source and the tables), which a run does not do, so it is a figure to
compare between settings rather than a run's own.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.store import files, schema, write  # noqa: E402


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, required=True, help="a store holding the run to write again")
    parser.add_argument("--memory", default=files.WRITE_MEMORY,
                        help=f"DuckDB's memory while writing, e.g. 2GiB, or 'default' (default: {files.WRITE_MEMORY})")
    args = parser.parse_args()
    files.WRITE_MEMORY = None if args.memory == "default" else args.memory

    source = files.open_readonly(args.db)
    run_id = source.execute("SELECT run_id FROM runs ORDER BY completed_at DESC LIMIT 1").fetchone()[0]
    names = [t for t in schema.RUN_TABLES if t not in schema.DERIVED_TABLES and t != "runs"]
    written: dict[str, tuple[int, float]] = {}  # table: (rows, peak GiB once read)

    def reader(name: str):
        def build():  # names come from the schema, never from input
            rows = source.execute(f"SELECT * EXCLUDE (run_id) FROM {name} WHERE run_id = ?",
                                  [run_id]).to_arrow_table()  # Arrow: far less to read back than pandas objects
            written[name] = (len(rows), peak_gib())
            return rows
        return build

    tables = {name: reader(name) for name in names}
    run_row = source.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]).df()
    out = ROOT / "build" / "bench" / "store-write"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    files.publish(out / "lossmap.duckdb", lambda con: write._write(con, run_id, tables, run_row))
    wall = time.perf_counter() - start
    print(f"run {run_id} of {args.db} written again, DuckDB memory {args.memory}: {wall:.1f} s, "
          f"peak {peak_gib():.2f} GiB (this process, reading included)")
    for name, (rows, peak) in written.items():
        print(f"  {name:<18} {rows:>12,} rows   peak so far {peak:5.2f} GiB")
    print(json.dumps({"memory": args.memory, "seconds": round(wall, 1), "peak_gib": round(peak_gib(), 2)}))


if __name__ == "__main__":
    main()
