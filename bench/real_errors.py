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

``--sources nblr,ensemble,stacked`` ranks the run again from what the store holds (each
family's out-of-fold probabilities, the folds, the texts and the TF-IDF neighbours), as
``python -m pipeline run --issue-source S`` would, and prints the same table for each
source, then how the default's suggestions (``relabel`` / ``ambiguous``, analyses.evidence)
split the judged reviews of its top 200: clear flips, other real errors (mixed or neutral,
by the votes) and correct labels.

``--noise random:0.05,middle:0.05`` prints the same table for labels flipped on purpose
(bench/label_noise.py's scenarios, its fold models trained on the noisy labels; add
``--cache`` to reuse the out-of-fold probabilities it saved): every review is judged
there, so it gives the precision at k = 50, 100 and 200 and the share of the flips in
the top 5% of each ranking.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.analyses import evidence, issues  # noqa: E402
from pipeline.config import Config  # noqa: E402
from pipeline.models.score import load_stored  # noqa: E402
from pipeline.names import model_id  # noqa: E402
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
            out[row["sample_id"]] = {"real": votes["given"] < 3, "flip": votes["opposite"] >= 3,
                                     "mixed": votes["given"] < 3 and votes["opposite"] < 3}
    return out


def ranked_test_reviews(db: Path, run_id: str | None) -> tuple[str, str, list[str]]:
    """(run_id, how it ranked, the test reviews' ids most suspect first)."""
    con = open_readonly(db)
    try:
        c = cursor(con)
        run_id = run_id or c.execute("SELECT run_id FROM runs ORDER BY completed_at DESC LIMIT 1").fetchone()[0]
        method, ranked_on, source = c.execute(
            "SELECT any_value(i.method), any_value(i.ranked_on), any_value(json_extract_string(r.config, "
            "'$.issue_source')) FROM label_issues i JOIN runs r USING (run_id) WHERE run_id = ?", [run_id]).fetchone()
        method = f"{method} on {source} of {', '.join(ranked_on)}" if len(ranked_on) > 1 else \
            f"{method} on {ranked_on[0]}"
        ids = [r[0] for r in c.execute(
            "SELECT i.sample_id FROM label_issues i JOIN samples s USING (run_id, sample_id) "
            "WHERE i.run_id = ? AND s.split = 'test' ORDER BY i.issue_rank", [run_id]).fetchall()]
    finally:
        con.close()
    return run_id, method, ids


def rerank(db: Path, run_id: str | None, sources: list[str]) -> dict[str, tuple[list[str], pd.DataFrame]]:
    """source -> (the test reviews' ids most suspect first, the evidence of every review) from the stored run."""
    con = open_readonly(db)
    try:
        c = cursor(con)
        run_id = run_id or c.execute("SELECT run_id FROM runs ORDER BY completed_at DESC LIMIT 1").fetchone()[0]
        samples = c.execute("SELECT sample_id, split, label, fold, rating, display_text FROM samples WHERE run_id = ? "
                            "ORDER BY sample_id", [run_id]).df()
        probs = c.execute("SELECT family, sample_id, probs FROM predictions WHERE run_id = ? AND protocol = 'oof' "
                          "ORDER BY family, sample_id", [run_id]).df()
        names = [r[0] for r in c.execute("SELECT name FROM classes WHERE run_id = ? ORDER BY class",
                                         [run_id]).fetchall()]
        near = c.execute("SELECT sample_id, rank, neighbour_id, similarity FROM neighbours WHERE run_id = ? AND "
                         "space = 'tfidf-svd'", [run_id]).df()
    finally:
        con.close()
    row = pd.Series(np.arange(len(samples)), index=samples["sample_id"])
    oof = {f: np.stack(g["probs"].to_numpy()) for f, g in probs.groupby("family", sort=False)}
    labels, folds = samples["label"].to_numpy(int), samples["fold"].to_numpy()
    neighbours = pd.DataFrame({"row": row[near["sample_id"]].to_numpy(), "rank": near["rank"].to_numpy(),
                               "neighbour_row": row[near["neighbour_id"]].to_numpy(),
                               "similarity": near["similarity"].to_numpy()})
    test = samples["split"].to_numpy() == "test"
    stated = evidence.stated_labels(samples["display_text"], samples["rating"].to_numpy(float), labels, len(names))
    readers = {}  # fold -> its linear model's score_texts, loaded once for every source

    def reader(fold: int):
        if fold not in readers:
            readers[fold] = load_stored(db, run_id, model_id("nblr", fold), device="cpu").score_texts
        return readers[fold]

    out = {}
    for source in sources:
        start = time.perf_counter()
        p, _ = issues.issue_probabilities(oof, source, labels, folds, stated[0])
        found = issues.find_label_issues(labels, p, samples["rating"].to_numpy(float), classes=names)
        ranked_at = time.perf_counter()
        mixed = evidence.sentence_mix_by_fold(samples["display_text"], folds, evidence.doubted(labels, p, stated[0]),
                                              reader)
        ev = evidence.gather(labels, names, samples["sample_id"].to_numpy(), samples["display_text"],
                             samples["rating"].to_numpy(float), p, [(q, np.ones(len(q), bool)) for q in oof.values()],
                             neighbours, stated, mixed)
        print(f"{source}: ranked in {ranked_at - start:.1f} s (the stated scores read once before), evidence "
              f"gathered in {time.perf_counter() - ranked_at:.1f} s ({len(labels):,} texts)")
        order = np.argsort(found["issue_rank"].to_numpy())
        out[source] = ([s for s in samples["sample_id"].to_numpy()[order] if s.startswith("test/")],
                       ev.set_index(samples["sample_id"]))
        assert test.sum() == len(out[source][0])
    return out


def suggestions(ranked: list[str], ev: pd.DataFrame, truth: dict[str, dict], k: int = 200) -> pd.DataFrame:
    """How the suggestions split the judged reviews of the top k."""
    rows = [{"suggestion": ev.at[s, "suggestion"], "clear flip": truth[s]["flip"], "mixed": truth[s]["mixed"],
             "correct": not truth[s]["real"]} for s in ranked[:k] if s in truth]
    return pd.DataFrame(rows).groupby("suggestion")[["clear flip", "mixed", "correct"]].sum()


def suggestions_all(ev: pd.DataFrame, truth: dict[str, dict]) -> pd.DataFrame:
    """How the suggestions split every judged review (the file's reviews are all ones some model doubted)."""
    rows = [{"suggestion": ev.at[s, "suggestion"], "clear flip": t["flip"], "mixed": t["mixed"],
             "correct": not t["real"]} for s, t in truth.items() if s in ev.index]
    return pd.DataFrame(rows).groupby("suggestion")[["clear flip", "mixed", "correct"]].sum()


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
    parser.add_argument("--sources", default=None,
                        help="rank again from the store with each of these issue sources (comma-separated, e.g. "
                             "nblr,ensemble,stacked) instead of reading the run's ranking")
    parser.add_argument("--noise", default=None,
                        help="also rank injected flips: bench/label_noise.py scenarios, comma-separated (e.g. "
                             "random:0.05,middle:0.05); the full archive and all three families (about 40 minutes)")
    parser.add_argument("--cache", action="store_true", help="with --noise: reuse bench/label_noise.py --cache files")
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV, help="the judged reviews (default: %(default)s)")
    args = parser.parse_args()
    truth = judged(args.dev)
    if args.noise:
        noise_tables(args.noise.split(","), args.cache)
        return
    if args.sources:
        for source, (ranked, ev) in rerank(args.db, args.run, args.sources.split(",")).items():
            default = " - the default" if source == Config.issue_source else ""
            print(f"\n### ranked again on {source} (self_confidence){default}\n")
            print_table(ranked, truth)
            print(f"\nsuggestions among the judged reviews of its top 200 (analyses.evidence):\n"
                  f"{suggestions(ranked, ev, truth).to_string()}")
            print(f"\nsuggestions among all {len(truth)} judged reviews (votes: clear flip = 3+ of 5 chose the other "
                  f"label; mixed = a real error that is not a clear flip):\n{suggestions_all(ev, truth).to_string()}")
        return
    run_id, method, ranked = ranked_test_reviews(args.db, args.run)
    if not ranked:
        sys.exit(f"run {run_id} of {args.db} has no test reviews: measure a run on the IMDB archive.")
    in_run = sum(s in truth for s in ranked)
    print(f"run {run_id} ({method}): {len(ranked):,} test reviews ranked; {in_run} of the file's {len(truth)} "
          f"judged reviews are among them ({sum(t['real'] for t in truth.values())} real errors in the file)\n")
    print_table(ranked, truth)


def noise_tables(scenarios: list[str], cache: bool) -> None:
    """Precision at k = 50/100/200 and flips in the top 5% of each ranking, for labels flipped on purpose."""
    import label_noise
    from pipeline.data import imdb
    from pipeline.models import sequences
    from pipeline.models.outputs import binary_probs
    from pipeline.models.text import tokenize

    cfg = Config(progress=False)
    frame = imdb.load_reviews(Path(label_noise.DEFAULT_DATA), progress=False).frame
    corpus = tokenize(frame["display_text"], ngram_max=cfg.ngram_max)
    seqs = sequences.tokenize_sequences(frame["display_text"])
    folder = ROOT / "build" / "bench" / "label_noise" if cache else None
    for name in scenarios:
        flipped, noisy, p_by = label_noise.scenario_probabilities(name, frame, corpus, seqs, ("nblr", "dense", "cnn"),
                                                                  cfg, folder)
        print(f"\n### {name}: {flipped.sum():,} of {len(frame):,} labels flipped\n")
        print(f"{'ranking':>10} {'P@50':>6} {'P@100':>6} {'P@200':>6} {'flips in top 5%':>16}")
        for source in ("nblr", "ensemble", "stacked"):
            rank = issues.find_label_issues(noisy, binary_probs(p_by[source]), frame["rating"].to_numpy(float),
                                            classes=imdb.CLASSES)["issue_rank"].to_numpy()
            order = np.argsort(rank)
            top5 = flipped[order[:round(0.05 * len(order))]].mean()
            print(f"{source:>10} " + " ".join(f"{flipped[order[:k]].mean():>6.3f}" for k in DEPTHS)
                  + f" {top5:>16.1%}")


def print_table(ranked: list[str], truth: dict[str, dict]) -> None:
    print(f"{'k':>5} {'judged':>7} {'real errors':>12} {'clear flips':>12} {'precision among judged':>23} "
          f"{'lower bound':>12}")
    for r in table(ranked, truth):
        print(f"{r['k']:>5} {r['judged']:>7} {r['real']:>12} {r['flips']:>12} {r['precision_judged']:>23.3f} "
              f"{r['lower_bound']:>12.3f}")

if __name__ == "__main__":
    main()
