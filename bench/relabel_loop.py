"""Close the relabel loop on IMDB: review the top suspects, rerun with --relabel, compare the test accuracy.

    .venv/bin/python bench/relabel_loop.py                      # 50,000 reviews, linear model only (about 15 min)
    .venv/bin/python bench/relabel_loop.py --sample 10000 --review 300

Two scenarios, each two real pipeline runs into one store (``run_pipeline`` with
``--no-dense --no-cnn``; the test accuracy is the conventional linear model's, trained
on the train split and scored on the test split, whose labels are never changed):

- ``as is``: the archive's own labels. The reviewer accepts the model's suggestion for
  the ``--review`` most suspect train reviews the model disagrees with. Nobody knows
  which IMDB train labels are really wrong, so this shows what trusting the ranking
  blindly does, not what a careful person would do.
- ``flipped``: ``--flip`` of the train labels are flipped at random first (seeded); the
  reviewer is an oracle that knows the original labels and reads the same top
  ``--review`` train suspects, deciding "mislabeled" (relabel to the original) where
  the label was flipped and "correct" elsewhere: a careful person's review.

Decisions go through the app's own decisions file (``pipeline.store.decisions``), and
the second run reads it with ``--relabel FILE --relabel-split train``. Prints, per
scenario: test accuracy before and after, labels changed, flips found, seconds.
The Compare runs page shows the same two runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import Config  # noqa: E402
from pipeline.data.imdb import load_reviews  # noqa: E402
from pipeline.run import run_pipeline  # noqa: E402
from pipeline.store import decisions  # noqa: E402
from pipeline.store.files import cursor, open_readonly  # noqa: E402

DEFAULT_DATA = os.environ.get("IMDB_DATA", str(ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"))
CLASSES = ("negative", "positive")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--data", default=DEFAULT_DATA, help="the IMDB archive (default: %(default)s)")
    parser.add_argument("--sample", type=int, default=None, help="reviews to use (default: all 50,000)")
    parser.add_argument("--review", type=int, default=1000,
                        help="train suspects a reviewer reads (default: %(default)s)")
    parser.add_argument("--flip", type=float, default=0.10, help="share of train labels flipped in the second "
                                                                 "scenario (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="keep the store here (default: a temporary folder)")
    args = parser.parse_args()
    frame = load_reviews(Path(args.data), sample=args.sample, seed=args.seed, progress=False).frame
    table = frame.assign(id=frame["sample_id"], review=frame["text"],
                         sentiment=frame["label"].map(dict(enumerate(CLASSES))))
    with tempfile.TemporaryDirectory(prefix="relabel_loop_") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        rng = np.random.default_rng(args.seed)
        train = (table["split"] == "train").to_numpy()
        flipped = np.zeros(len(table), dtype=bool)
        flipped[rng.choice(np.flatnonzero(train), int(args.flip * train.sum()), replace=False)] = True
        for name, flips in (("as is", np.zeros(len(table), dtype=bool)), ("flipped", flipped)):
            noisy = table.assign(sentiment=np.where(flips, table["sentiment"].map(
                {CLASSES[0]: CLASSES[1], CLASSES[1]: CLASSES[0]}), table["sentiment"]))
            path = folder / f"{name.replace(' ', '_')}.parquet"
            noisy[["id", "review", "sentiment", "split", "rating", "movie_id"]].to_parquet(path)
            rows.append(_scenario(name, path, noisy, table, flips, folder, args))
    print(f"\n{'scenario':<10} {'test acc before':>16} {'after':>8} {'change':>9} {'relabeled':>10} "
          f"{'flips in top':>13} {'flips fixed':>12} {'seconds':>8}")
    for r in rows:
        print(f"{r['name']:<10} {r['before']:>16.2%} {r['after']:>8.2%} {(r['after'] - r['before']) * 100:>+8.2f}pp "
              f"{r['relabeled']:>10,} {r['flips_in_top']:>13,} {r['fixed']:>12,} {r['seconds']:>8.0f}")
    print(f"\n(top {args.review:,} train suspects reviewed per scenario; {len(table):,} reviews; "
          f"{args.flip:.0%} of train labels flipped in 'flipped')")


def _scenario(name, path, noisy, truth, flips, folder, args) -> dict:
    started = time.perf_counter()
    db = folder / f"{path.stem}.duckdb"
    cfg = Config(data=path, text_column="review", label_column="sentiment", id_column="id", split_column="split",
                 group_column="movie_id", score_column="rating", db=db, models_dir=folder / "models", dense=False,
                 cnn=False, progress=False, seed=args.seed)
    before = run_pipeline(cfg)
    con = open_readonly(db)
    suspects = cursor(con).execute(
        "SELECT i.sample_id, s.label, i.suggested_label FROM label_issues i JOIN samples s USING (run_id, sample_id) "
        "WHERE i.run_id = ? AND s.split = 'train' AND i.suggested_label <> s.label ORDER BY i.issue_rank LIMIT ?",
        [before.run_id, args.review]).df()
    con.close()
    row_of = {sid: i for i, sid in enumerate(noisy["id"])}
    rows = np.array([row_of[s] for s in suspects["sample_id"]], dtype=int)
    was_flipped = flips[rows]
    decided = folder / f"{path.stem}.decisions.duckdb"
    reviews = [{"sample_id": s, "old_label": CLASSES[old], "new_label": CLASSES[new]}
               for s, old, new in zip(suspects["sample_id"], suspects["label"], suspects["suggested_label"])]
    oracle = name == "flipped"
    accept = [r for r, f in zip(reviews, was_flipped) if f or not oracle]
    reject = [r for r, f in zip(reviews, was_flipped) if oracle and not f]
    decisions.record_many(decided, accept, decision="mislabeled", source=str(path), run_id=before.run_id)
    decisions.record_many(decided, reject, decision="correct", source=str(path), run_id=before.run_id)
    after = run_pipeline(Config(**{**cfg.__dict__, "relabel": decided, "relabel_split": "train"}))
    fixed = int(sum(f and truth.iloc[row_of[r["sample_id"]]]["sentiment"] == r["new_label"]
                    for r, f in zip(reviews, was_flipped)))
    print(f"{name}: before {before.test_accuracy:.2%}, after {after.test_accuracy:.2%} "
          f"({len(accept):,} relabeled, store {db})", flush=True)
    return {"name": name, "before": before.test_accuracy, "after": after.test_accuracy, "relabeled": len(accept),
            "flips_in_top": int(was_flipped.sum()), "fixed": fixed, "seconds": time.perf_counter() - started}


if __name__ == "__main__":
    main()
