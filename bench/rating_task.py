"""IMDB as an 8-class task: the star rating is the label. Accuracy per model, within one star, time.

    .venv/bin/python bench/rating_task.py                 # all 50,000 reviews (about 14 minutes on 2 cores)
    .venv/bin/python bench/rating_task.py --sample 4000   # a quick look

Writes the IMDB archive as a Parquet table (build/bench/rating/ratings.parquet: id,
review, stars, split, movie), then runs `python -m pipeline run --data ratings.parquet
--label stars --split split --group movie --score stars` in a child process, exactly as
a user with their own table would, on a fresh store. Prints, per model family: the
conventional model's accuracy on the test split, the out-of-fold accuracy over all
reviews, and the share of reviews whose predicted rating is within one star of the given
one (|predicted - given| <= 1 star: 4 and 7 are three stars apart), both ways; then the
wall time and seconds per stage against the 15-minute target.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = os.environ.get("IMDB_DATA", str(ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"))
TARGET_SECONDS = 900


def write_table(archive: str, path: Path, sample: int | None) -> int:
    from pipeline.data.imdb import load_reviews

    frame = load_reviews(archive, sample=sample, seed=0, progress=False).frame
    frame.assign(id=frame["sample_id"], review=frame["text"], stars=frame["rating"].astype(int),
                 movie=frame["movie_id"])[["id", "review", "stars", "split", "movie"]].to_parquet(path, index=False)
    return len(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="the IMDB archive")
    parser.add_argument("--sample", type=int, default=None, help="reviews to keep (default: all)")
    parser.add_argument("--report-only", action="store_true",
                        help="read the store of an earlier run of this bench instead of running again (wall time "
                             "is then the run's own, without the process start)")
    args = parser.parse_args()

    out = ROOT / "build" / "bench" / f"rating-{args.sample or 'full'}"
    db = out / "lossmap.duckdb"
    if args.report_only:
        wall = None
    else:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        table = out / "ratings.parquet"
        write_table(args.data, table, args.sample)
        cmd = [sys.executable, "-m", "pipeline", "run", "--data", str(table), "--label", "stars", "--split", "split",
               "--group", "movie", "--score", "stars", "--db", str(db), "--models-dir", str(out / "models"),
               "--no-progress"]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True)
        wall = time.perf_counter() - start

    con = duckdb.connect(str(db), read_only=True)
    n, run_seconds = con.execute("SELECT n_samples, seconds FROM runs").fetchone()
    wall = wall if wall is not None else run_seconds
    stages, peaks, classes = con.execute("SELECT stage_seconds, stage_peak_mib, n_classes FROM runs").fetchone()
    print(f"\n{n:,} IMDB reviews as a {classes}-class rating task ({os.cpu_count()} cores)")
    print(f"  {'model':<8} {'protocol':<13} {'accuracy':>9} {'within 1 star':>14} {'reviews':>9}")
    rows = con.execute("""
        SELECT p.family, p.protocol, avg((p.pred_label = s.label)::INT) AS accuracy,
               avg((abs(c.name::INT - g.name::INT) <= 1)::INT) AS within_one, count(*) AS n
        FROM predictions p JOIN samples s USING (run_id, sample_id)
        JOIN classes c ON c.run_id = p.run_id AND c.class = p.pred_label
        JOIN classes g ON g.run_id = p.run_id AND g.class = s.label
        WHERE p.protocol = 'oof' OR s.split <> 'train'
        GROUP BY p.family, p.protocol ORDER BY list_position(['nblr', 'dense', 'cnn', 'bilstm'], p.family), p.protocol DESC
    """).fetchall()
    for family, protocol, acc, within, count in rows:
        where = "out of fold" if protocol == "oof" else "test split"
        print(f"  {family:<8} {where:<13} {acc:9.2%} {within:14.2%} {count:9,}")
    print(f"  chance (most common class) {con.execute('SELECT max(n) / sum(n) FROM classes').fetchone()[0]:.2%}")
    print(f"\n  wall time {wall:8.1f} s (target < {TARGET_SECONDS} s: {'met' if wall < TARGET_SECONDS else 'MISSED'})")
    peaks = json.loads(peaks)
    print("  " + ", ".join(f"{k} {v:.1f} s / {peaks.get(k, 0):,.0f} MiB" for k, v in json.loads(stages).items()))


if __name__ == "__main__":
    main()
