import numpy as np
import pytest

from pipeline.analyses import project


def _exact(vectors, k):
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1)[:, :k], np.sort(sim, axis=1)[:, ::-1][:, :k]


@pytest.mark.parametrize("n", [600, 5000])  # exact below 4,096 rows, NN-descent above
def test_stored_neighbours_are_the_nearest_others_by_cosine(n):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, 16)).astype(np.float32)
    idx, dist = project._knn(vectors, 15, "cosine")
    found = project._neighbour_rows(idx, dist, 10)
    assert len(found) == n * 10
    assert not (found["row"] == found["neighbour_row"]).any()
    want_idx, _ = _exact(vectors, 10)
    got = found.sort_values(["row", "rank"])
    got_idx = got["neighbour_row"].to_numpy().reshape(n, 10)
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got_idx, want_idx)])
    assert recall > 0.98  # NN-descent is approximate
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    true_sim = np.einsum("ij,ij->i", unit[got["row"].to_numpy()], unit[got["neighbour_row"].to_numpy()])
    np.testing.assert_allclose(got["similarity"].to_numpy(), true_sim, atol=1e-4)
    assert (got.groupby("row")["similarity"].diff().dropna() <= 1e-6).all()  # nearest first


def test_tiny_corpus_has_no_neighbour_search():
    assert project._knn(np.ones((3, 4), np.float32), 15, "cosine") is None


@pytest.fixture(scope="module")
def maps_exact_and_sampled():
    """The TF-IDF space of 4,500 real reviews mapped exactly, and fit on a sample of 1,500 with the rest placed."""
    import dataclasses

    from pipeline.config import Config
    from pipeline.data.imdb import load_reviews
    from pipeline.models.text import tokenize
    from tests.conftest import real_archive

    frame = load_reviews(real_archive(), sample=4500, seed=0, progress=False).frame
    corpus = tokenize(frame["text"], ngram_max=2)
    cfg = Config(map_fit_rows=4500, svd_dim=20)  # 20 dimensions from 1,500 reviews: as 100 from 7,500
    exact = project.project(corpus, cfg)[0]
    sampled = project.project(corpus, dataclasses.replace(cfg, map_fit_rows=1500))[0]
    return exact, sampled, project.fit_rows(4500, dataclasses.replace(cfg, map_fit_rows=1500))


def test_above_map_fit_rows_the_map_is_fit_on_a_seeded_sample():
    from pipeline.config import Config

    assert project.fit_rows(100, Config(map_fit_rows=100)) is None  # at the limit: exact
    rows = project.fit_rows(1000, Config(map_fit_rows=300, seed=3))
    assert len(rows) == len(np.unique(rows)) == 300 and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, project.fit_rows(1000, Config(map_fit_rows=300, seed=3)))  # seeded
    with pytest.raises(ValueError, match="map_fit_rows must be at least 100"):
        Config(map_fit_rows=10)


def test_a_map_fit_on_a_sample_keeps_what_the_exact_one_shows(maps_exact_and_sampled):
    """Fit on a third of the reviews: the SVD captures nearly as much of the TF-IDF matrix, k-means is nearly as
    tight, the layout nearly as faithful to the exact embedding's neighbourhoods (trustworthiness), and the stored
    neighbours still come from a search over every review."""
    from sklearn.cluster import KMeans
    from sklearn.manifold import trustworthiness

    exact, sampled, fit = maps_exact_and_sampled
    assert sampled.vectors.shape == exact.vectors.shape and sampled.xy.shape == (4500, 2)
    assert np.isfinite(sampled.xy).all() and np.isfinite(sampled.vectors).all()
    # TF-IDF rows have unit length: the share of the matrix an SVD keeps is its vectors' squared norm over n
    kept = {name: float((p.vectors.astype(np.float64) ** 2).sum() / 4500) for name, p in (("exact", exact),
                                                                                           ("sampled", sampled))}
    assert kept["sampled"] >= 0.88 * kept["exact"], kept  # 0.92 here; 0.97 on 50,000 fit on 25,000 (bench)
    whole = KMeans(12, n_init=3, random_state=0).fit(sampled.vectors).labels_  # k-means fit on every review
    assert _inertia(sampled.vectors, sampled.cluster) <= 1.02 * _inertia(sampled.vectors, whole)
    assert sampled.cluster_terms["size"].sum() == 4500 and len(sampled.cluster_terms) == 12
    assert (sampled.cluster_terms["size"].to_numpy() == np.bincount(sampled.cluster, minlength=12)).all()
    unit = exact.vectors / np.linalg.norm(exact.vectors, axis=1, keepdims=True)
    noise = np.random.default_rng(0).normal(size=(4500, 2))  # a layout that ignores the embedding
    trust = {name: trustworthiness(unit, xy, n_neighbors=15)
             for name, xy in (("exact", exact.xy), ("sampled", sampled.xy), ("noise", noise))}
    assert trust["sampled"] >= trust["exact"] - 0.05 and trust["sampled"] > trust["noise"] + 0.1, trust
    want, _ = _exact(sampled.vectors, 10)  # the stored neighbours: one search over every review
    got = sampled.neighbours.sort_values(["row", "rank"])["neighbour_row"].to_numpy().reshape(4500, 10)
    assert np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)]) > 0.9
    assert len(fit) == 1500


def _inertia(vectors: np.ndarray, cluster: np.ndarray) -> float:
    """k-means' objective: squared distances of the rows to their cluster's mean."""
    return float(sum(((vectors[cluster == c] - vectors[cluster == c].mean(axis=0)) ** 2).sum()
                     for c in np.unique(cluster)))


def test_with_repeated_texts_every_cluster_of_a_sampled_map_has_its_terms_and_every_row_a_cluster():
    """A row outside the sample must not join a k-means centre that no sampled row joined (its cluster would have
    no terms, and the sizes would not add up). Found by the attack review: repeated texts, more clusters than
    distinct texts in the sample."""
    import pandas as pd

    from pipeline.config import Config
    from pipeline.models.text import tokenize

    for seed in [152, *range(20)]:  # 152: a corpus where a row outside the sample founded a cluster
        r = np.random.default_rng(seed)
        n, m, k = int(r.integers(101, 150)), int(r.integers(3, 15)), int(r.choice([12, 20, 40]))
        kinds = [" ".join(f"w{j}" for j in r.integers(0, 25, r.integers(2, 8))) for _ in range(m)]
        texts = [kinds[i] for i in r.integers(0, m, n)]
        for i in np.flatnonzero(r.random(n) < 0.15):
            texts[i] = " ".join(f"w{j}" for j in r.integers(0, 25, r.integers(2, 8)))
        found = project.project(tokenize(pd.Series(texts), ngram_max=2, min_df=3),
                                Config(map_fit_rows=100, clusters=k))[0]
        assert set(found.cluster) == set(found.cluster_terms["cluster"]), seed
        assert found.cluster_terms["size"].sum() == n, seed


_ONE_UMAP_FUNCTION = """
import numpy as np
from pipeline.analyses import project
import umap.distances as d
project.keep_umap_compiled()
d.euclidean(np.ones(5, dtype=np.float32), np.zeros(5, dtype=np.float32))
print(sum(d.euclidean.stats.cache_hits.values()), sum(d.euclidean.stats.cache_misses.values()))
"""


def test_umap_s_compiled_code_is_kept_for_the_next_process():
    """One of UMAP's functions, compiled (or loaded) in one process, is loaded from numba's cache by the next: its
    (hits, misses) there are (1, 0); without the cache every process compiles it, (0, 1)."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    runs = [subprocess.run([sys.executable, "-c", _ONE_UMAP_FUNCTION], cwd=ROOT, env=dict(os.environ),
                           capture_output=True, text=True, timeout=300) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr[-2000:] + runs[1].stderr[-2000:]
    assert runs[1].stdout.split() == ["1", "0"]


def test_a_umap_function_numba_cannot_keep_is_left_to_compile_as_before(monkeypatch):
    """numba raises where it has no folder to keep a function's code in; the map goes on without its cache."""
    from numba.core.registry import CPUDispatcher

    import umap  # noqa: F401  (its own cache=True function needs a cache folder at import already)

    asked = []

    def nowhere(self):
        asked.append(self.__name__)
        raise RuntimeError(f"cannot cache function {self.__name__!r}: no locator available for file 'x.py'")

    monkeypatch.setattr(CPUDispatcher, "enable_caching", nowhere)
    assert project.keep_umap_compiled.__wrapped__() == 0 and "smooth_knn_dist" in asked


def test_a_damaged_file_in_numba_s_cache_is_rebuilt_not_raised(tmp_path):
    """A truncated index file of numba's cache makes every later call fail on unpickling; the map's calls empty
    that function's cache and go on, and the next process loads the code saved anew."""
    import importlib.util
    import pickle
    from pathlib import Path

    (tmp_path / "kept.py").write_text("import numba\n\n\n@numba.njit(cache=True)\ndef double(x):\n    return 2 * x\n")

    def fresh_import(name):  # a module object of its own, as a new process would have
        spec = importlib.util.spec_from_file_location(name, tmp_path / "kept.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    first = fresh_import("lossmap_kept_a")
    assert first.double(2) == 4  # compiled and saved
    index = next(Path(first.double._cache.cache_path).glob("kept.double-*.nbi"))
    index.write_bytes(index.read_bytes()[:40])
    with pytest.raises(pickle.UnpicklingError):  # what a run met before
        fresh_import("lossmap_kept_b").double(2)
    damaged = fresh_import("lossmap_kept_c")
    assert project.rebuilding_broken_caches(lambda: damaged.double(3)) == 6
    again = fresh_import("lossmap_kept_d")
    assert again.double(5) == 10 and sum(again.double.stats.cache_hits.values()) == 1
    with pytest.raises(ZeroDivisionError):  # anything else is raised as it is
        project.rebuilding_broken_caches(lambda: 1 / 0)
