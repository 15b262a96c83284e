"""How well each label-issue method finds labels flipped on purpose.

    .venv/bin/python bench/label_noise.py                          # every scenario, NB-LR + dense + CNN (about 45 min)
    .venv/bin/python bench/label_noise.py --models nblr            # the linear model alone (about 10 min)
    .venv/bin/python bench/label_noise.py --scenarios random:0.05 --sample 10000

Scenarios (seeded): ``random:<share>`` flips that share of all labels, chosen at
random; ``middle:<share>`` flips the same share of all labels, but chosen only among
the reviews rated 4 or 7 stars, the ambiguous middle of the scale, which is where a
tired annotator errs.

For each scenario the pipeline's fold models are cross-fitted on the noisy labels
exactly as ``python -m pipeline run`` does (same grouped folds; NB-LR with its
pruning round; the dense network and the CNN with the run's settings; native
scikit-learn / PyTorch scores, which ONNX matches within 1e-4). Then every method
ranks every source of out-of-fold probabilities:

- methods: ``self_confidence``, ``normalized_margin`` and ``confidence_weighted_entropy``
  (cleanlab.rank; for two classes the first two give the same order), and
  ``confident_learning`` (cleanlab.filter's flags first, then the rest);
- sources: each model alone, ``ensemble``, the mean of the models' probabilities, and ``stacked``,
  their cross-fitted logistic-regression stack (``analyses.issues.stack``), as the pipeline ranks.

Prints precision and recall at the top 1%, 5% and 10% of the ranking and the average
precision (AP) of the whole ranking, per scenario, then each (source, method)'s mean
AP over the scenarios and the best of them, which is what the pipeline's defaults
(``issue_source``, ``issue_method`` in pipeline/config.py) should be.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.analyses import evidence, issues  # noqa: E402
from pipeline.config import Config  # noqa: E402
from pipeline.data import imdb  # noqa: E402
from pipeline.models import linear, sequences, train_nn  # noqa: E402
from pipeline.models.folds import make_folds  # noqa: E402
from pipeline.models.outputs import binary_probs  # noqa: E402
from pipeline.models.text import tokenize  # noqa: E402

DEFAULT_DATA = os.environ.get("IMDB_DATA", str(ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"))
METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy", "confident_learning")
DEPTHS = (0.01, 0.05, 0.10)
MIDDLE = (4, 7)


def oof_probabilities(corpus, data, folds, cfg) -> np.ndarray:
    """Out-of-fold P(positive) from the pipeline's own fold models (pipeline.models.linear.train_models)."""
    p = np.empty(len(data.frame))
    for k, model in enumerate(linear.train_models(corpus, data, folds, cfg).folds):
        held = np.flatnonzero(folds == k)
        p[held] = model.predict_proba(corpus, held)[:, 1]
    return p


def network_oof(family: str, corpus, frame, folds, cfg, seqs=None) -> np.ndarray:
    """Out-of-fold p_pos of one network family, trained as the pipeline trains it."""
    labels = frame["label"].to_numpy()
    data = train_nn.NetworkData(corpus, seqs)
    p = np.empty(len(frame))
    for k in np.unique(folds):
        held = np.flatnonzero(folds == k)
        net = train_nn.fit_network(family, data, labels, np.flatnonzero(folds != k), cfg, model_id=f"{family}-fold{k}")
        p[held] = net.predict(data, held)[0][:, 1]
    return p


def flip(frame, kind: str, share: float, seed: int) -> np.ndarray:
    """A boolean mask of the reviews whose label the scenario flips."""
    rng = np.random.default_rng(seed)
    n_flip = round(share * len(frame))
    pool = np.arange(len(frame)) if kind == "random" else np.flatnonzero(frame["rating"].isin(MIDDLE).to_numpy())
    if kind not in ("random", "middle"):
        raise SystemExit(f"unknown scenario kind {kind!r}: use random:<share> or middle:<share>")
    if n_flip > len(pool):
        raise SystemExit(f"{kind}:{share} needs {n_flip:,} reviews to flip but only {len(pool):,} qualify")
    flipped = np.zeros(len(frame), bool)
    flipped[rng.choice(pool, size=n_flip, replace=False)] = True
    return flipped


def scores(flipped: np.ndarray, rank: np.ndarray) -> dict:
    """Precision and recall at each depth, and AP, of a ranking (1 = most suspect)."""
    order = np.argsort(rank)
    out = {}
    for share in DEPTHS:
        k = max(1, round(share * len(flipped)))
        hits = flipped[order[:k]].sum()
        out[f"P@{share:.0%}"], out[f"R@{share:.0%}"] = hits / k, hits / flipped.sum()
    out["AP"] = average_precision_score(flipped, -rank)
    return out


def run_scenario(name, frame, corpus, seqs, families, cfg, cache: Path | None = None) -> dict:
    flipped, noisy, p_by = scenario_probabilities(name, frame, corpus, seqs, families, cfg, cache)
    ratings = frame["rating"].to_numpy()
    result = {}
    for source, p in p_by.items():
        for method in METHODS:
            found = issues.find_label_issues(noisy, binary_probs(p), ratings, classes=imdb.CLASSES, method=method)
            result[source, method] = scores(flipped, found["issue_rank"].to_numpy())
            if method == "confident_learning":
                flag = found["is_label_issue"].to_numpy()
                result[source, method]["flag"] = (flag.sum(), flipped[flag].mean() if flag.any() else 0.0,
                                                  flag[flipped].mean())
    return {"flipped": int(flipped.sum()), "results": result}


def scenario_probabilities(name, frame, corpus, seqs, families, cfg, cache: Path | None = None):
    """(flipped mask, noisy labels, source -> out-of-fold p(class 1)) of one scenario: each family cross-fitted on
    the noisy labels, plus ``ensemble`` and ``stacked`` when there are several (bench/real_errors.py uses it too)."""
    kind, share = name.split(":")
    flipped = flip(frame, kind, float(share), cfg.seed)
    noisy = np.where(flipped, 1 - frame["label"].to_numpy(), frame["label"].to_numpy())
    noisy_frame = frame.assign(label=noisy)
    data = imdb.to_dataset(imdb.Loaded(noisy_frame, imdb.LoadReport(), Path("imdb")))
    folds = make_folds(noisy, noisy_frame["movie_id"], noisy_frame["sample_id"], n_folds=cfg.folds, seed=cfg.seed)
    p_by = {}
    for family in families:
        t = time.perf_counter()
        saved = None if cache is None else cache / f"{name.replace(':', '-')}-{family}-n{len(frame)}-seed{cfg.seed}" \
                                                   f"{'' if cfg.prune else '-noprune'}.npy"
        if saved is not None and saved.exists():
            p_by[family] = np.load(saved)
            print(f"  {name} {family}: out-of-fold probabilities from {saved}", flush=True)
            continue
        p_by[family] = (oof_probabilities(corpus, data, folds, cfg) if family == "nblr"
                        else network_oof(family, corpus, noisy_frame, folds, cfg, seqs))
        if saved is not None:
            saved.parent.mkdir(parents=True, exist_ok=True)
            np.save(saved, p_by[family])
        print(f"  {name} {family}: out-of-fold probabilities in {time.perf_counter() - t:.0f} s", flush=True)
    if len(families) > 1:
        p_by["ensemble"] = np.mean([p_by[f] for f in families], axis=0)
        stated = evidence.stated_labels(frame["display_text"], frame["rating"].to_numpy(float), noisy, 2)[0]
        p_by["stacked"] = issues.stack({f: binary_probs(p_by[f]) for f in families}, noisy, folds, stated)[:, 1]
    return flipped, noisy, p_by


def print_scenario(name, out, n) -> None:
    kind, share = name.split(":")
    where = "at random" if kind == "random" else f"among reviews rated {' or '.join(map(str, MIDDLE))}"
    print(f"\n### {float(share):.0%} of labels flipped {where} ({out['flipped']:,} of {n:,} reviews)\n")
    cols = [f"{m}@{d:.0%}" for d in DEPTHS for m in "PR"] + ["AP"]
    print("| source | method | " + " | ".join(cols) + " |")
    print("|---|---|" + "---:|" * len(cols))
    for (source, method), r in out["results"].items():
        cells = [f"{r[c]:.1%}" for c in cols[:-1]] + [f"{r['AP']:.3f}"]
        print(f"| {source} | {method} | " + " | ".join(cells) + " |")
    flags = [(s, r["flag"]) for (s, m), r in out["results"].items() if "flag" in r]
    print("\ncleanlab's flag (confident learning's set): " + "; ".join(
        f"{s} {k:,} flagged, precision {p:.1%}, recall {rc:.1%}" for s, (k, p, rc) in flags))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--sample", type=int, default=None, help="a seeded sample of this many reviews (default: all)")
    parser.add_argument("--scenarios", default="random:0.02,random:0.05,random:0.10,middle:0.05",
                        help="comma-separated kind:share (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-prune", action="store_true", help="NB-LR in one cross-fitting round, no pruning")
    parser.add_argument("--models", default="nblr,dense,cnn",
                        help="comma-separated families; the ensemble is their mean (default: %(default)s)")
    parser.add_argument("--cache", action="store_true",
                        help="keep each scenario's out-of-fold probabilities in build/bench/label_noise/ and reuse "
                             "them when the same scenario, family, sample and seed come again (to compare rankings; "
                             "leave it off after changing a model)")
    args = parser.parse_args()
    families = args.models.split(",")
    scenarios = args.scenarios.split(",")

    cfg = Config(seed=args.seed, prune=not args.no_prune, progress=False)
    start = time.perf_counter()
    frame = imdb.load_reviews(Path(args.data), sample=args.sample, seed=args.seed, progress=False).frame
    corpus = tokenize(frame["display_text"], ngram_max=cfg.ngram_max)
    seqs = sequences.tokenize_sequences(frame["display_text"]) if {"cnn", "bilstm"} & set(families) else None
    cache = ROOT / "build" / "bench" / "label_noise" if args.cache else None
    outs = {name: run_scenario(name, frame, corpus, seqs, families, cfg, cache) for name in scenarios}

    print(f"\n{len(frame):,} reviews, seed {args.seed}, models {', '.join(families)}"
          f"{' (NB-LR without pruning)' if args.no_prune else ''}; P = precision, R = recall at the top k% of the "
          "ranking, AP = average precision over the whole ranking")
    for name, out in outs.items():
        print_scenario(name, out, len(frame))
    mean_ap = {key: np.mean([o["results"][key]["AP"] for o in outs.values()]) for key in outs[scenarios[0]]["results"]}
    print(f"\n### Mean AP over the {len(scenarios)} scenarios\n")
    print("| source | method | mean AP |\n|---|---|---:|")
    for (source, method), ap in sorted(mean_ap.items(), key=lambda kv: -kv[1]):
        print(f"| {source} | {method} | {ap:.3f} |")
    (source, method), ap = max(mean_ap.items(), key=lambda kv: kv[1])
    print(f"\nbest: {method} on {source} (mean AP {ap:.3f}); pipeline default: {Config.issue_method} on "
          f"{Config.issue_source}")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
