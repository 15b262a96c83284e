"""Wall time and peak memory of one pipeline run, per stage.

    .venv/bin/python bench/pipeline_time.py                 # all 50,000 reviews
    .venv/bin/python bench/pipeline_time.py --sample 2000   # the quick run

Runs `python -m pipeline run` in a child process on a fresh store under build/bench/,
then prints the wall time, the run's peak resident memory, and the seconds and
peak resident memory per stage that the run recorded in the store (``runs.stage_seconds``,
``runs.stage_peak_mib``). The run resets its peak (VmHWM) at each stage's start, so
the child's max RSS as its parent sees it is the last stage's (store) peak, and the
run's peak is the largest of the stages'.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = os.environ.get("IMDB_DATA", str(ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="the IMDB archive")
    parser.add_argument("--sample", type=int, default=None, help="reviews to keep (default: all)")
    args = parser.parse_args()

    out = ROOT / "build" / "bench" / f"pipeline-{args.sample or 'full'}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    db = out / "lossmap.duckdb"
    cmd = [sys.executable, "-m", "pipeline", "run", "--data", args.data, "--db", str(db),
           "--models-dir", str(out / "models"), "--no-progress"]
    if args.sample:
        cmd += ["--sample", str(args.sample)]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    store_peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # since the store stage began

    con = duckdb.connect(str(db), read_only=True)
    n, stages, peaks, test_acc, flagged = con.execute(
        "SELECT n_samples, stage_seconds, stage_peak_mib, test_accuracy, n_flagged FROM runs").fetchone()
    peaks = json.loads(peaks)
    peaks.setdefault("store", store_peak_mib)
    peak_mib = max(peaks.values())
    size_mib = db.stat().st_size / 2**20
    print(f"\npipeline run on {n:,} reviews ({os.cpu_count()} cores)")
    print(f"  wall time        {wall:8.1f} s   (process start to exit)")
    print(f"  peak memory      {peak_mib:8.0f} MiB (the largest stage's peak RSS)")
    print(f"  store size       {size_mib:8.1f} MiB")
    print(f"  test accuracy    {test_acc:8.2%}" if test_acc is not None else "  test accuracy         n/a")
    print(f"  flagged          {flagged:8,d}")
    for model_id, acc in con.execute("SELECT model_id, accuracy FROM models WHERE role = 'conventional' "
                                     "AND accuracy IS NOT NULL ORDER BY model_id").fetchall():
        print(f"  test acc {model_id:<12} {acc:6.2%}")
    for family, acc in con.execute("""
            SELECT p.family, avg((p.pred_label = s.label)::INT) FROM predictions p JOIN samples s USING (run_id, sample_id)
            WHERE p.protocol = 'oof' GROUP BY p.family ORDER BY list_position(['nblr', 'dense', 'cnn', 'bilstm'], p.family)
            """).fetchall():
        print(f"  out-of-fold acc {family:<6} {acc:6.2%}")
    print(f"\n  {'stage':<16} {'wall (s)':>9} {'peak RSS (MiB)':>15}")
    for stage, seconds in json.loads(stages).items():
        print(f"  {stage:<16} {seconds:9.1f} {peaks[stage]:15,.0f}")
    rest = wall - sum(json.loads(stages).values())
    print(f"  {'store, start-up':<16} {rest:9.1f} {peaks['store']:15,.0f}   (the rest of the wall time)")
    target = 120 if args.sample else 900
    print(f"\n  target           {target:8d} s   {'met' if wall < target else 'MISSED'}")


if __name__ == "__main__":
    main()
