"""Cross-fitting folds shared by every model family.

``make_folds(labels, groups, ids, *, n_folds, seed)`` -> (N,) fold index, stratified by
label; rows that share a group (a movie for IMDB, the ``--group`` column for tables)
always land in the same fold, so a model is never judged on the group it trained on. A
row without a group forms a group of its own; with no groups at all the folds are
plainly stratified.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold


def make_folds(labels, groups=None, ids=None, *, n_folds: int, seed: int) -> np.ndarray:
    """See the module doc; ``ids`` name the groups of rows without one ('__<id>')."""
    labels = np.asarray(labels)
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    fold = np.full(len(labels), -1, dtype=np.int16)
    x = np.zeros(len(labels))
    if groups is None or pd.isna(pd.Series(groups, dtype=object)).all():
        splits = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(x, labels)
    else:
        ids = np.arange(len(labels)) if ids is None else np.asarray(ids)
        own = pd.Series([f"__{i}" for i in ids])
        groups = pd.Series(groups, dtype=object).reset_index(drop=True).fillna(own).to_numpy()
        if len(np.unique(groups)) < n_folds:
            raise ValueError(f"only {len(np.unique(groups))} groups: too few for {n_folds} grouped folds")
        splits = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(x, labels, groups)
    for k, (_, held_out) in enumerate(splits):
        fold[held_out] = k
    return fold
