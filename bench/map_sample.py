"""How close a map fit on a sample comes to the exact map (``--map-fit-rows``, analyses.project), and its seconds.

    .venv/bin/python bench/map_sample.py                            # IMDB's 50,000 reviews, fit on 10,000 and 25,000
    .venv/bin/python bench/map_sample.py --data build/bench/scale/reviews-200000.parquet --fit 100000

Maps the TF-IDF space of the reviews exactly (every review in UMAP and k-means) and then fit on each sample size,
every review placed by transform, and prints per map:

- seconds of the whole projection (TF-IDF, SVD, neighbour search, UMAP, k-means), after a first small projection
  that compiles UMAP's code (numba), which every run pays once;
- trustworthiness (scikit-learn) of the 2-D layout against the embedding's 15 nearest neighbours, on a seeded
  subset of 5,000 reviews (the measure needs every pair of them), beside a random layout's;
- the share of the TF-IDF matrix the SVD keeps (its rows have unit length: the vectors' squared norm over n),
  against the exact SVD's;
- k-means inertia of every review against the exact clustering's (1.00 = as tight), and the adjusted Rand index
  between the two clusterings, beside the exact clustering's own agreement with another seed's.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = os.environ.get("IMDB_DATA", str(ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"))
SUBSET = 5000


def texts(data: str):
    if data.endswith(".parquet"):
        import pandas as pd

        return pd.read_parquet(data, columns=["text"])["text"]
    from pipeline.data.imdb import load_reviews, to_dataset

    return to_dataset(load_reviews(Path(data), progress=False)).frame["display_text"]


def inertia(vectors: np.ndarray, cluster: np.ndarray) -> float:
    return float(sum(((vectors[cluster == c] - vectors[cluster == c].mean(axis=0)) ** 2).sum()
                     for c in np.unique(cluster)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="the IMDB archive, or a Parquet table with a text column")
    parser.add_argument("--fit", default="10000,25000", help="sample sizes to fit on, comma-separated")
    args = parser.parse_args()
    from sklearn.manifold import trustworthiness
    from sklearn.metrics import adjusted_rand_score

    from pipeline.analyses import project
    from pipeline.config import Config
    from pipeline.models.text import tokenize

    corpus = tokenize(texts(args.data), ngram_max=Config().ngram_max)
    n = corpus.counts.shape[0]
    exact_cfg = Config(map_fit_rows=n)
    warm = tokenize(texts(args.data)[:6000], ngram_max=Config().ngram_max)  # numba compiles UMAP's fit and
    project.project(warm, Config(map_fit_rows=5000))  # transform once per process: not in the figures
    maps, seconds = {}, {}
    for name, cfg in [("exact", exact_cfg), ("exact, seed 1", dataclasses.replace(exact_cfg, seed=1)),
                      *((f"fit on {int(f):,}", dataclasses.replace(exact_cfg, map_fit_rows=int(f)))
                        for f in args.fit.split(","))]:
        start = time.perf_counter()
        maps[name] = project.project(corpus, cfg)[0]
        seconds[name] = time.perf_counter() - start
    exact = maps["exact"]
    subset = np.sort(np.random.default_rng(0).choice(n, min(SUBSET, n), replace=False))
    unit = exact.vectors / np.linalg.norm(exact.vectors, axis=1, keepdims=True)
    noise = trustworthiness(unit[subset], np.random.default_rng(0).normal(size=(len(subset), 2)), n_neighbors=15)
    base = inertia(exact.vectors, exact.cluster)
    print(f"map of {n:,} reviews' TF-IDF space ({os.cpu_count()} cores); trustworthiness on {len(subset):,} of "
          f"them, a random layout's: {noise:.3f}")
    kept = float((exact.vectors.astype(np.float64) ** 2).sum())
    print(f"  {'map':<16} {'seconds':>8} {'SVD keeps / exact':>18} {'trustworthiness':>16} {'inertia / exact':>16} "
          f"{'ARI vs exact':>13}")
    for name, found in maps.items():
        trust = trustworthiness(unit[subset], found.xy[subset], n_neighbors=15)
        print(f"  {name:<16} {seconds[name]:8.1f} {(found.vectors.astype(np.float64) ** 2).sum() / kept:18.3f} "
              f"{trust:16.3f} {inertia(exact.vectors, found.cluster) / base:16.3f} "
              f"{adjusted_rand_score(exact.cluster, found.cluster):13.3f}")


if __name__ == "__main__":
    main()
