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
