"""How well the label-issue ranking finds labels flipped on purpose.

    .venv/bin/python bench/label_noise.py                  # 5% flips, all 50,000 reviews
    .venv/bin/python bench/label_noise.py --flip 0.02 --sample 10000
    .venv/bin/python bench/label_noise.py --models nblr        # the linear model alone (fast)

Flips a seeded random share of the given labels, cross-fits the pipeline's fold
models on the noisy labels exactly as `python -m pipeline run` does (same grouped
folds, same pruning round for NB-LR; the dense network and the CNN with the run's
settings; native scikit-learn / PyTorch scores, which ONNX matches within 1e-4),
and ranks with `pipeline.issues.find_label_issues` on each model's out-of-fold
probabilities and on the ensemble (their mean). Prints, per source, precision and
recall at the top 5% and average precision, then for the pipeline's default source
precision and recall at 1%, 2.5%, 5% and 10% and cleanlab's flag.
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

from pipeline import issues, sequences, train, train_nn  # noqa: E402
from pipeline.config import Config  # noqa: E402
from pipeline.load import load_reviews  # noqa: E402
from pipeline.run import train_fold_models  # noqa: E402

DEFAULT_DATA = os.environ.get("IMDB_DATA", str(ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"))


def oof_probabilities(corpus, frame, folds, cfg) -> np.ndarray:
    """Out-of-fold p_pos from the pipeline's own fold models (pipeline.run.train_fold_models)."""
    p = np.empty(len(frame))
    for k, model in enumerate(train_fold_models(corpus, frame, folds, cfg)):
        held = np.flatnonzero(folds == k)
        p[held] = 1.0 / (1.0 + np.exp(-model.predict_logit(corpus, held)))
    return p


def network_oof(family: str, corpus, frame, folds, cfg, seqs=None) -> np.ndarray:
    """Out-of-fold p_pos of one network family, trained as the pipeline trains it."""
    labels = frame["label"].to_numpy()
    data = train_nn.NetworkData(corpus, seqs)
    p = np.empty(len(frame))
    for k in np.unique(folds):
        held = np.flatnonzero(folds == k)
        net = train_nn.fit_network(family, data, labels, np.flatnonzero(folds != k), cfg, model_id=f"{family}-fold{k}")
        p[held] = net.predict(data, held)[0]
    return p


def report(name: str, flipped: np.ndarray, found) -> tuple[float, float, float]:
    n, k = len(flipped), round(0.05 * len(flipped))
    order = np.argsort(found["issue_rank"].to_numpy())
    hits = flipped[order[:k]].sum()
    ap = average_precision_score(flipped, -found["label_score"].to_numpy())
    print(f"{name:<22} {hits / k:>12.1%} {hits / flipped.sum():>10.1%} {ap:>8.3f}")
    return hits / k, hits / flipped.sum(), ap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--sample", type=int, default=None)
    parser.add_argument("--flip", type=float, default=0.05, help="share of labels flipped (default: 0.05)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", default="self_confidence", choices=issues.METHODS)
    parser.add_argument("-C", dest="C", type=float, default=Config.C, help="logistic regression C (default: %(default)s)")
    parser.add_argument("--no-prune", action="store_true", help="one cross-fitting round, no pruning")
    parser.add_argument("--models", default="nblr,dense,cnn",
                        help="comma-separated families to compare; the ensemble is their mean (default: %(default)s)")
    args = parser.parse_args()
    families = args.models.split(",")

    cfg = Config(seed=args.seed, C=args.C, prune=not args.no_prune, progress=False)
    start = time.perf_counter()
    frame = load_reviews(Path(args.data), sample=args.sample, seed=args.seed, progress=False).frame
    rng = np.random.default_rng(args.seed)
    flipped = np.zeros(len(frame), bool)
    flipped[rng.choice(len(frame), size=round(args.flip * len(frame)), replace=False)] = True
    noisy = np.where(flipped, 1 - frame["label"].to_numpy(), frame["label"].to_numpy())

    corpus = train.tokenize(frame["display_text"], cfg)
    folds = train.make_folds(frame.assign(label=noisy), n_folds=cfg.folds, seed=cfg.seed)
    noisy_frame = frame.assign(label=noisy)
    seqs = sequences.tokenize_sequences(frame["display_text"]) if {"cnn", "bilstm"} & set(families) else None
    p_by = {}
    for family in families:
        t = time.perf_counter()
        p_by[family] = (oof_probabilities(corpus, noisy_frame, folds, cfg) if family == "nblr"
                        else network_oof(family, corpus, noisy_frame, folds, cfg, seqs))
        print(f"  {family}: out-of-fold probabilities in {time.perf_counter() - t:.0f} s", flush=True)
    if len(families) > 1:
        p_by["ensemble"] = np.mean([p_by[f] for f in families], axis=0)

    n, n_flip = len(frame), int(flipped.sum())
    print(f"\n{n:,} reviews, {n_flip:,} labels flipped ({args.flip:.1%}, seed {args.seed}), method {args.method}, C {args.C:g}, "
          f"{'one round' if args.no_prune else 'pruned second round'}")
    print(f"{'source':<22} {'precision@5%':>12} {'recall@5%':>10} {'AP':>8}")
    ratings = frame["rating"].to_numpy()
    results = {name: report(name + (" (mean)" if name == "ensemble" else ""), flipped,
                            issues.find_label_issues(noisy, p, ratings, method=args.method))
               for name, p in p_by.items()}
    best_single = max((f for f in families), key=lambda f: results[f][2])
    if "ensemble" in results:
        better = "ensemble" if results["ensemble"][2] > results[best_single][2] else best_single
        print(f"best single model by AP: {best_single}; better of it and the ensemble: {better}")
    default = "ensemble" if "ensemble" in p_by else families[0]
    found = issues.find_label_issues(noisy, p_by[default], ratings, method=args.method)
    order = np.argsort(found["issue_rank"].to_numpy())
    print(f"\n{default}, in detail:")
    print(f"{'top k':>14} {'precision':>10} {'recall':>8}")
    for share in (0.01, 0.025, 0.05, 0.10):
        k = round(share * n)
        hits = flipped[order[:k]].sum()
        print(f"{share:>6.1%} ({k:>5,}) {hits / k:>10.1%} {hits / n_flip:>8.1%}")
    ap = average_precision_score(flipped, -found["label_score"].to_numpy())
    flag = found["is_label_issue"].to_numpy()
    print(f"average precision {ap:.3f}")
    print(f"cleanlab flag: {flag.sum():,} flagged, precision {flipped[flag].mean():.1%}, "
          f"recall {flag[flipped].mean():.1%}")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
