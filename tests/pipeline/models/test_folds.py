import numpy as np
import pandas as pd
import pytest

from pipeline.models.folds import make_folds


def _frame(n_movies=30, per_movie=4, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(n_movies):
        for j in range(per_movie):
            rows.append({"sample_id": f"train/x/{m}_{j}", "movie_id": f"tt{m:07d}", "label": int(rng.random() < 0.5)})
    return pd.DataFrame(rows)


def _folds(frame, n=5):
    return make_folds(frame["label"], frame["movie_id"], frame["sample_id"], n_folds=n, seed=0)


def test_folds_never_split_a_group_and_cover_every_row():
    frame = _frame()
    folds = _folds(frame)
    assert set(np.unique(folds)) == {0, 1, 2, 3, 4}
    per_movie = pd.Series(folds).groupby(frame["movie_id"]).nunique()
    assert (per_movie == 1).all()
    assert np.array_equal(folds, _folds(frame))


def test_rows_without_a_group_are_their_own_group():
    frame = _frame(n_movies=3, per_movie=10)
    frame.loc[:, "movie_id"] = None
    assert len(np.unique(_folds(frame))) == 5


def test_no_groups_at_all_is_plain_stratified_folds():
    labels = np.array([0, 1, 2] * 20)
    folds = make_folds(labels, None, n_folds=4, seed=0)
    assert set(np.unique(folds)) == {0, 1, 2, 3}
    for k in range(4):  # every class in every fold
        assert set(labels[folds == k]) == {0, 1, 2}


def test_too_few_groups_is_a_clear_error():
    with pytest.raises(ValueError, match="too few for 5 grouped folds"):
        _folds(_frame(n_movies=3))
