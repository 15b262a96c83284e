"""Dense embeddings, a 2-D map and clusters of the reviews.

``project(corpus, cfg, networks={family: vectors})`` returns one ``Projection`` per
space (``pipeline.names.space``), the TF-IDF one (the linear family's) first:

- ``vectors`` (N, svd_dim) float32: truncated SVD (LSA) of the L2-normalised TF-IDF
  matrix, label-free;
- ``xy`` (N, 2) float32: UMAP of the vectors (cosine metric);
- ``cluster`` (N,) int16: k-means on the vectors;
- ``cluster_terms``: per cluster, the n-grams whose mean TF-IDF most exceeds the
  corpus mean;
- ``neighbours`` (the TF-IDF space and a user's own embedding): each review's ``cfg.neighbours`` most similar
  reviews by cosine similarity of the vectors, from the nearest-neighbour search UMAP
  runs anyway (NN-descent from 4,096 reviews: approximate, over 98% recall in
  tests/pipeline/test_project.py; exact below),
  so the app looks them up instead of comparing a vector with every other review on each
  visit.

Each network space (``<family>-hidden``: the penultimate layer of the family's
reference network, the one trained on the train split, scored through ONNX) gets the same treatment, with a Euclidean
UMAP (ReLU units can be all zero, where cosine is undefined). A user's own embedding
(``<family>-embedding``, from ``--predictions`` or ``--model``) is treated like the TF-IDF
space: cosine, with stored neighbours.

At scale (more than ``cfg.map_fit_rows`` reviews, 100,000 by default: IMDB's 50,000 are mapped exactly), the
TF-IDF weights, the SVD and k-means are *fit on a seeded sample and applied to every review*: its vectors come a
batch at a time through the run's engine (``engine.map_batches``: Ray Data actors with ``--engine ray``), its
cluster is the nearest k-means centre, and the whole TF-IDF matrix is never held. On 200,000 reviews the exact SVD
was the map's largest cost (122 s, 3 GiB above the rest) and grows with the data; fit on 100,000 it is a fixed cost.
Each review's 10 nearest neighbours are not a stable property of the SVD anyway: two exact SVDs with different seeds
share 42% of them on IMDB, one fit on 25,000 reviews shares 38% with the exact one (bench/map_sample.py). What
stays on every review: the neighbour search (NN-descent, approximate already, about n^1.1), which the stored
neighbours need, and UMAP's layout from it. Fitting UMAP on the sample and placing the rest by its ``transform``
was tried and dropped: on 200,000 reviews it took 74 s against 13 s for the layout of every review from the
neighbours already found. How close the sampled maps come to the exact ones is tested in
tests/pipeline/analyses/test_project.py and measured by bench/map_sample.py.

UMAP starts from the first two principal components and optimises for ``cfg.umap_epochs`` (100): on 50,000
reviews its default (a spectral start, 200 epochs) took 2-3 times as long per map and kept as many of each review's
15 nearest neighbours in the map (TF-IDF space 2.3% against 2.1%, the CNN's 29.1-29.4% against 28.9%; README).
UMAP runs on both cores without a fixed random state (a fixed one forces a single
thread), so the map's layout can differ between runs; the SVD and clusters are
seeded.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import traceback
import warnings

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.metrics import pairwise_distances_argmin

from pipeline.config import Config
from pipeline.engine import LocalEngine, spread, stacked
from pipeline.names import LINEAR, OWN_FAMILIES, TEXT_SPACE, space
from pipeline.models.text import Corpus

SPACE = TEXT_SPACE
_TERMS_PER_CLUSTER = 8
_VECTOR_BATCH = 8192  # reviews per batch of the engine (a Ray Data batch)
_SMALL = 4096  # below this many rows UMAP compares every pair itself, and so does the neighbour search


@dataclasses.dataclass
class Projection:
    family: str  # whose view of the reviews: the linear model's features or a network's embedding
    space: str
    vectors: np.ndarray  # (N, d) float32
    xy: np.ndarray  # (N, 2) float32
    cluster: np.ndarray  # (N,) int16
    cluster_terms: pd.DataFrame  # cluster, size, top_terms
    neighbours: pd.DataFrame | None = None  # row, rank, neighbour_row, similarity


def project(corpus: Corpus, cfg: Config, networks: dict[str, np.ndarray] | None = None,
            engine=None) -> list[Projection]:
    """One Projection per space, the TF-IDF one first; exact up to ``cfg.map_fit_rows`` reviews, with the TF-IDF
    weights, SVD and k-means fit on a sample of that many above (module doc). ``engine`` (pipeline.engine) then gives
    every review its vectors, a batch at a time (``map_batches``); None: in this process."""
    n = corpus.counts.shape[0]
    doc_freq = np.asarray((corpus.counts > 0).sum(axis=0)).ravel()
    columns = np.flatnonzero(doc_freq >= min(cfg.min_df, n))
    fit = fit_rows(n, cfg)
    fitted = corpus.counts[:, columns] if fit is None else corpus.counts[fit][:, columns]
    tfidf = TfidfTransformer(sublinear_tf=True).fit(fitted)
    x = tfidf.transform(fitted)  # the rows the SVD is fit on, and the cluster terms read
    del fitted
    dim = max(1, min(cfg.svd_dim, len(columns) - 1, x.shape[0] - 1))
    svd = TruncatedSVD(dim, n_iter=4, random_state=cfg.seed)
    vectors = svd.fit_transform(x).astype(np.float32)
    if fit is not None:  # every review's vectors, a batch at a time: the whole TF-IDF matrix is never held
        found = (engine or LocalEngine()).map_batches(_Vectors, (tfidf, svd, columns, corpus.counts),
                                                      pd.DataFrame({"row": np.arange(n)}), desc="map: vectors",
                                                      batch_rows=_VECTOR_BATCH, progress=cfg.progress)
        vectors = stacked(found, "v", np.float32)
    spaces = [(LINEAR, vectors, "cosine"), *((family, v, "cosine" if family in OWN_FAMILIES else "euclidean")
                                             for family, v in (networks or {}).items())]
    return [_map(family, v, metric, x, corpus.vocab[columns], cfg, fit) for family, v, metric in spaces]


def fit_rows(n: int, cfg: Config) -> np.ndarray | None:
    """The rows the maps are fit on when there are more than ``cfg.map_fit_rows``: a seeded sample, sorted; else
    None (every row, exact)."""
    if n <= cfg.map_fit_rows:
        return None
    return np.sort(np.random.default_rng(cfg.seed).choice(n, cfg.map_fit_rows, replace=False))


class _Vectors:
    """A batch worker (``engine.map_batches``): each job's review's vectors, its TF-IDF weights and SVD as fit on the
    sample."""

    def __init__(self, shared):
        self.tfidf, self.svd, self.columns, self.counts = shared

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = batch["row"].to_numpy()
        v = self.svd.transform(self.tfidf.transform(self.counts[rows][:, self.columns])).astype(np.float32)
        return pd.DataFrame({"job": batch["job"].to_numpy(), **spread("v", v)})


def _map(family: str, vectors: np.ndarray, metric: str, x, vocab, cfg: Config,
         fit: np.ndarray | None = None) -> Projection:
    """The map of one space: ``x`` holds the TF-IDF rows of ``fit`` (every row when None), whose cluster terms it
    reads; k-means is fit on those rows and every row given its nearest centre."""
    vectors = np.asarray(vectors, dtype=np.float32)
    knn = _knn(vectors, max(cfg.umap_neighbors, cfg.neighbours + 1), metric)
    xy = _umap(vectors, cfg, metric, knn)
    sample = vectors if fit is None else vectors[fit]
    kmeans = KMeans(max(1, min(cfg.clusters, len(sample))), n_init=3, random_state=cfg.seed).fit(sample)
    if fit is None:
        cluster = kmeans.labels_.astype(np.int16)
    else:  # the sample keeps its clusters; every other row joins its nearest centre among those the sample joined:
        # with repeated points a centre can be left empty (or be a twin of another), and a row must not found a
        # cluster that no sampled row, and so no cluster term, belongs to
        used = np.unique(kmeans.labels_)
        cluster = used[pairwise_distances_argmin(vectors, kmeans.cluster_centers_[used].astype(vectors.dtype))]
        cluster[fit] = kmeans.labels_
        cluster = cluster.astype(np.int16)
    terms = _cluster_terms(x, cluster if fit is None else cluster[fit], vocab)
    terms["size"] = np.bincount(cluster, minlength=terms["cluster"].max() + 1)[terms["cluster"].to_numpy()]
    # stored neighbours: the TF-IDF space's, and the user's own embedding's (both cosine)
    neighbours = _neighbour_rows(*knn, cfg.neighbours) if metric == "cosine" and knn is not None else None
    return Projection(family, space(family), vectors, xy, cluster, terms, neighbours)


def _knn(vectors: np.ndarray, k: int, metric: str):
    """(indices, distances), each (N, k), of every row's nearest rows, itself included; None below 4 rows.

    From 4,096 rows, UMAP's own nearest-neighbour search (NN-descent, approximate):
    computed once, it lays out the map and gives the stored neighbours. Below that,
    where UMAP itself compares every pair, an exact search (and no NN-descent compile).
    """
    n = len(vectors)
    if n < 4:
        return None
    if n < _SMALL:
        from sklearn.neighbors import NearestNeighbors

        dist, idx = NearestNeighbors(n_neighbors=min(k, n - 1), metric=metric, algorithm="brute").fit(
            vectors).kneighbors(vectors)
        return idx, dist
    from umap.umap_ import nearest_neighbors

    keep_umap_compiled()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idx, dist, _ = rebuilding_broken_caches(lambda: nearest_neighbors(vectors, min(k, n - 1), metric, {}, False,
                                                                          None, low_memory=True, n_jobs=2))
    return idx, dist


def _neighbour_rows(idx: np.ndarray, dist: np.ndarray, k: int) -> pd.DataFrame:
    """row, rank (1 = nearest), neighbour_row, similarity (1 - cosine distance) of each row's k nearest others."""
    n = len(idx)
    keep = (idx != np.arange(n)[:, None]) & (idx >= 0)  # NN-descent marks missing neighbours with -1
    rows, ranks, found, sims = [], [], [], []
    for r in range(n):
        others = np.flatnonzero(keep[r])[:k]
        rows.append(np.full(len(others), r))
        ranks.append(np.arange(1, len(others) + 1, dtype=np.int16))
        found.append(idx[r, others])
        sims.append((1.0 - dist[r, others]).astype(np.float32))
    cat = np.concatenate if n else (lambda parts: np.empty(0))
    return pd.DataFrame({"row": cat(rows), "rank": cat(ranks), "neighbour_row": cat(found), "similarity": cat(sims)})


def _umap(vectors: np.ndarray, cfg: Config, metric: str = "cosine", knn=None) -> np.ndarray:
    n = len(vectors)
    if n < 4:  # UMAP needs a few neighbours; a tiny corpus is laid out by its first two components
        return np.pad(vectors[:, :2], ((0, 0), (0, max(0, 2 - vectors.shape[1])))).astype(np.float32)
    import umap  # slow import (numba), so only when needed

    keep_umap_compiled()
    n_neighbors = min(cfg.umap_neighbors, n - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reducer = umap.UMAP(
            n_neighbors=n_neighbors, metric=metric, n_jobs=2, low_memory=True, n_epochs=cfg.umap_epochs,
            init="pca" if n > 50 else "random",
            precomputed_knn=(knn[0][:, :n_neighbors], knn[1][:, :n_neighbors], None)
            if knn is not None and n >= _SMALL else (None, None, None),
        )
        return rebuilding_broken_caches(lambda: reducer.fit_transform(vectors)).astype(np.float32)


@functools.cache
def keep_umap_compiled() -> int:
    """Turn on numba's on-disk cache for umap-learn's compiled functions; returns how many now keep their code.

    umap-learn asks numba to cache one of its functions, so every new process compiles the rest again before its
    first map: about 16 s on this project's 2-core machines (bench/umap_compile.py), in every run and, in the tests,
    every run started as a process. ``Dispatcher.enable_caching`` is what numba's ``cache=True`` does: the machine
    code is written beside umap's source (or under ``NUMBA_CACHE_DIR``; where that cannot be written, numba falls
    back to beside the source) and loaded by later processes. numba compiles again when the stamp (time and size) of
    the function's own source file changes, as a reinstall of umap does. A few small functions (umap's random
    numbers, about 0.2 s) still compile in each process. ``import umap`` itself needs a folder numba can write (for
    its one cached function), so the refusal caught below is not expected where umap imports at all.
    """
    from numba.core.registry import CPUDispatcher

    found = {id(obj): obj for name, module in list(sys.modules.items())  # a function umap's modules import from
             if (name == "umap" or name.startswith("umap.")) and module is not None  # each other: once
             for obj in list(vars(module).values()) if isinstance(obj, CPUDispatcher)}
    kept = 0
    for obj in found.values():
        try:
            obj.enable_caching()
        except RuntimeError:  # "cannot cache function ...: no locator available"
            continue
        kept += 1
    return kept


def rebuilding_broken_caches(work, attempts: int = 20):
    """``work()``; where it fails on a damaged file of numba's cache (a truncated index or code file), that
    function's cache is emptied and ``work`` runs again, so the function compiles and is kept anew. numba reads
    such a file on every call and never rewrites it: without this, every later run would stop on an unpickling
    error that names no file. Anything else ``work`` raises is raised as it is."""
    for _ in range(attempts):  # each attempt may meet another damaged file
        try:
            return work()
        except Exception as exc:
            cache = _numba_cache_that_failed(exc)
            if cache is None:
                raise
            cache.flush()  # an empty index: the next call compiles and saves
    return work()


def _numba_cache_that_failed(exc: BaseException):
    from numba.core.caching import Cache

    for frame, _ in traceback.walk_tb(exc.__traceback__):
        found = frame.f_locals.get("self")
        if isinstance(found, Cache):
            return found
    return None


def _cluster_terms(x, cluster: np.ndarray, vocab: np.ndarray) -> pd.DataFrame:
    overall = np.asarray(x.mean(axis=0)).ravel()
    rows = []
    for c in np.unique(cluster):
        members = cluster == c
        lift = np.asarray(x[members].mean(axis=0)).ravel() - overall
        top = np.argsort(-lift)[:_TERMS_PER_CLUSTER]
        rows.append((int(c), int(members.sum()), ", ".join(vocab[top])))
    return pd.DataFrame(rows, columns=["cluster", "size", "top_terms"])
