import numpy as np
import pytest

from pipeline.analyses import issues
from pipeline.analyses.issues import METHODS, find_label_issues as _find

NAMES = ("negative", "positive")


def find_label_issues(labels, p_pos, ratings, **options):
    """The two-class case, from P(positive)."""
    p_pos = np.asarray(p_pos, dtype=float)
    return _find(labels, np.column_stack([1 - p_pos, p_pos]), ratings, classes=NAMES, **options)


def test_confidently_contradicted_review_ranks_first_with_a_readable_reason():
    rng = np.random.default_rng(0)
    labels = np.array([1] * 50 + [0] * 50)
    p_pos = np.where(labels == 1, rng.uniform(0.7, 0.99, 100), rng.uniform(0.01, 0.3, 100))
    p_pos[7] = 0.03  # labeled positive, model 97% sure it is negative
    ratings = np.where(labels == 1, 8, 2)
    ratings[7] = 3
    found = find_label_issues(labels, p_pos, ratings)
    assert found.loc[7, "issue_rank"] == 1
    assert bool(found.loc[7, "is_label_issue"])
    assert found.loc[7, "suggested_label"] == 0
    assert found.loc[7, "reason"] == ("the model is 97% sure this is 'negative', but it is labeled 'positive'; "
                                      "rating 3")
    assert found["is_label_issue"].sum() < 10
    assert sorted(found["issue_rank"]) == list(range(1, 101))
    assert found.loc[0, "reason"].startswith("the model agrees it is 'positive'")
    sure = find_label_issues([0, 1], [0.9999, 0.9], [2, 9])
    assert sure.loc[0, "reason"].startswith("the model is over 99% sure this is 'positive'")


@pytest.mark.parametrize("method", METHODS)
def test_every_method_puts_the_contradicted_review_first(method):
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    p_pos = np.array([0.1, 0.9, 0.2, 0.8, 0.1, 0.9, 0.99, 0.7, 0.3, 0.8, 0.2, 0.9])
    found = find_label_issues(labels, p_pos, np.full(12, 5), method=method)
    assert found["issue_rank"].idxmin() == 6


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="self_confidence, normalized_margin, confidence_weighted_entropy"):
        find_label_issues([0, 1], [0.1, 0.9], [1, 9], method="vibes")
    with pytest.raises(ValueError, match="same length"):
        find_label_issues([0, 1], [0.1], [1, 9])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        find_label_issues([0, 1], [0.1, 1.2], [1, 9])
    with pytest.raises(ValueError, match=r"one column per class"):
        _find([0, 1], np.array([[0.5, 0.5], [0.2, 0.8]]), [1, 9], classes=("a", "b", "c"))
    with pytest.raises(ValueError, match="class indices 0..1"):
        find_label_issues([0, 2], [0.1, 0.9], [1, 9])


def test_many_classes_suggest_the_most_probable_class_and_name_it():
    classes = ("billing", "shipping", "returns", "other")
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 25)
    probs = np.full((100, 4), 0.02)
    probs[np.arange(100), labels] = 0.94
    probs += rng.uniform(0, 0.01, probs.shape)
    probs[5] = [0.03, 0.90, 0.05, 0.02]  # labeled billing, the model says shipping
    probs /= probs.sum(axis=1, keepdims=True)
    found = _find(labels, probs, np.full(100, np.nan), classes=classes, rating_name=None)
    assert found.loc[5, "issue_rank"] == 1 and found.loc[5, "suggested_label"] == 1
    assert found.loc[5, "reason"] == ("the model is 90% sure this is 'shipping', but it is labeled 'billing'; "
                                      "it gives the label 3%")
    together = _find(labels, probs, np.full(100, np.nan), classes=classes, rating_name=None,
                     model_name="the models together (stacked)")  # a plural subject
    assert together.loc[5, "reason"] == ("the models together (stacked) are 90% sure this is 'shipping', but it is "
                                         "labeled 'billing'; they give the label 3%")
    assert together.loc[0, "reason"].startswith("the models together (stacked) agree it is 'billing'")
    priority = _find(labels, probs, np.full(100, 2.0), classes=classes, rating_name="priority")
    assert priority.loc[5, "reason"].endswith("; priority 2")
    assert (found.drop(index=5)["suggested_label"] == np.delete(labels, 5)).all()


def test_stacked_probabilities_come_from_the_other_folds_and_weigh_the_better_model():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 600)
    folds = np.arange(600) % 5
    good = np.where(labels[:, None] == np.arange(2), 0.8, 0.2)  # right on every review
    noise = rng.uniform(0.05, 0.95, 600)
    bad = np.column_stack([1 - noise, noise])  # a coin
    p, ranked_on = issues.issue_probabilities({"nblr": good, "dense": bad}, "stacked", labels, folds)
    assert ranked_on == ("nblr", "dense") and np.allclose(p.sum(axis=1), 1)
    assert (p.argmax(axis=1) == labels).all()  # the coin gets (almost) no weight
    alone, on = issues.issue_probabilities({"nblr": good}, "stacked", labels, folds)
    assert on == ("nblr",) and alone is good  # one family: nothing to stack
    mine, on = issues.issue_probabilities({"nblr": good, "dense": bad, "imported": good}, "stacked", labels, folds)
    assert on == ("nblr", "dense")  # a user's predictor may have seen the texts: left out
