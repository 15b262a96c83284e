"""How many of a run's top suspects are real label errors, judged by people (issue 14).

    .venv/bin/python bench/real_errors.py                                  # the latest run of data/lossmap.duckdb
    .venv/bin/python bench/real_errors.py --db other.duckdb --run RUN_ID

``../shared/data/imdb_label_errors_dev.jsonl`` holds 634 IMDB test reviews that five
crowd workers each judged (Northcutt et al. 2021): a review is a real error when fewer
than 3 of 5 chose its given label, a clear flip when 3 or more chose the opposite one.
The file is used to measure only, never to train, as a feature or to fit a threshold.

The run's ranking (``label_issues.issue_rank``) is read over the IMDB test reviews only
(those the file could judge) and cut at k = 50, 100 and 200. Reviews outside the file were
never judged (or are in the half kept apart for an independent check), so for each k it
prints: how many of the top k were judged, the precision among those judged (real errors
/ judged), the lower bound that counts every unjudged review as correct (real errors / k),
and the clear flips among them. Needs a store of the IMDB archive (its test/... ids).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.store.files import cursor, open_readonly  # noqa: E402

DEFAULT_DEV = ROOT.parent / "shared" / "data" / "imdb_label_errors_dev.jsonl"
DEPTHS = (50, 100, 200)


def judged(path: Path) -> dict[str, dict]:
    """sample_id -> {'real': bool, 'flip': bool} for each review of the file."""
    out = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            votes = row["votes"]
            out[row["sample_id"]] = {"real": votes["given"] < 3, "flip": votes["opposite"] >= 3}
    return out


def ranked_test_reviews(db: Path, run_id: str | None) -> tuple[str, str, list[str]]:
    """(run_id, how it ranked, the test reviews' ids most suspect first)."""
    con = open_readonly(db)
    try:
        c = cursor(con)
        run_id = run_id or c.execute("SELECT run_id FROM runs ORDER BY completed_at DESC LIMIT 1").fetchone()[0]
        method, ranked_on = c.execute("SELECT any_value(method), any_value(ranked_on) FROM label_issues WHERE "
                                      "run_id = ?", [run_id]).fetchone()
        method = f"{method} on {', '.join(ranked_on)}"
        ids = [r[0] for r in c.execute(
            "SELECT i.sample_id FROM label_issues i JOIN samples s USING (run_id, sample_id) "
            "WHERE i.run_id = ? AND s.split = 'test' ORDER BY i.issue_rank", [run_id]).fetchall()]
    finally:
        con.close()
    return run_id, method, ids


def table(ranked: list[str], truth: dict[str, dict]) -> list[dict]:
    rows = []
    for k in DEPTHS:
        top = ranked[:k]
        seen = [truth[s] for s in top if s in truth]
        real = sum(t["real"] for t in seen)
        rows.append({"k": k, "judged": len(seen), "real": real, "flips": sum(t["flip"] for t in seen),
                     "precision_judged": real / len(seen) if seen else float("nan"),
                     "lower_bound": real / k})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "lossmap.duckdb",
                        help="a store of a run on the IMDB archive (default: %(default)s)")
    parser.add_argument("--run", default=None, help="the run to measure (default: the latest)")
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV, help="the judged reviews (default: %(default)s)")
    args = parser.parse_args()
    truth = judged(args.dev)
    run_id, method, ranked = ranked_test_reviews(args.db, args.run)
    if not ranked:
        sys.exit(f"run {run_id} of {args.db} has no test reviews: measure a run on the IMDB archive.")
    in_run = sum(s in truth for s in ranked)
    print(f"run {run_id} ({method}): {len(ranked):,} test reviews ranked; {in_run} of the file's {len(truth)} "
          f"judged reviews are among them ({sum(t['real'] for t in truth.values())} real errors in the file)\n")
    print(f"{'k':>5} {'judged':>7} {'real errors':>12} {'clear flips':>12} {'precision among judged':>23} "
          f"{'lower bound':>12}")
    for r in table(ranked, truth):
        print(f"{r['k']:>5} {r['judged']:>7} {r['real']:>12} {r['flips']:>12} {r['precision_judged']:>23.3f} "
              f"{r['lower_bound']:>12.3f}")


if __name__ == "__main__":
    main()
