import numpy as np
import pandas as pd

from pipeline.analyses import explain
from pipeline.data.imdb import load_reviews
from pipeline.models import linear
from pipeline.models.text import tokenize
from tests.conftest import real_archive


def test_shap_values_add_up_to_the_logit_for_every_review():
    frame = load_reviews(real_archive(), sample=700, seed=2, progress=False).frame
    corpus = tokenize(frame["display_text"], ngram_max=2)
    train_rows, rows = np.arange(0, 700, 2), np.arange(1, 700, 2)
    model = linear.fit(corpus, frame["label"].to_numpy(), train_rows, model_id="m", min_df=2)
    attributions, base = explain.explain(model, corpus, rows, top_k=30)

    totals = attributions.groupby("row")["shap_value"].sum()
    logit = pd.Series(model.predict_logit(corpus, rows), index=rows)
    assert np.max(np.abs(totals.loc[rows] + base - logit)) <= 1e-4

    tokens = attributions[attributions["kind"] == "token"]
    per_review = tokens.groupby("row").size()
    assert per_review.max() == 30 and per_review.min() > 0
    ordered = tokens.sort_values(["row", "rank"]).groupby("row")["shap_value"].apply(lambda v: np.abs(v.to_numpy()))
    assert all(np.all(np.diff(v) <= 1e-12) for v in ordered)  # rank 1 = largest |value|
    assert set(attributions["kind"]) == {"token", "other_present", "absent"}
    assert (attributions.groupby("row")["rank"].nunique() == attributions.groupby("row").size()).all()


def test_strong_words_get_the_expected_sign():
    texts = pd.Series(["great great film", "awful awful film", "great acting", "awful acting"] * 5)
    labels = np.array([1, 0, 1, 0] * 5)
    corpus = tokenize(texts, ngram_max=2)
    model = linear.fit(corpus, labels, np.arange(20), model_id="m", min_df=1)
    attributions, _ = explain.explain(model, corpus, np.array([0, 1]), top_k=3)
    values = attributions[attributions["kind"] == "token"].set_index(["row", "token"])["shap_value"]
    assert values.loc[(0, "great")] > 0 > values.loc[(1, "awful")]


def test_multiclass_explains_the_given_and_the_predicted_class_and_adds_up():
    frame = load_reviews(real_archive(), sample=600, seed=9, progress=False).frame
    stars = np.unique(frame["rating"])
    labels = np.searchsorted(stars, frame["rating"].to_numpy())
    corpus = tokenize(frame["display_text"], ngram_max=1)
    folds = np.arange(len(frame)) % 2
    models = [linear.fit(corpus, labels, np.flatnonzero(folds != k), model_id=f"m{k}", n_classes=len(stars),
                         min_df=2) for k in range(2)]
    predicted = np.empty(len(frame), dtype=int)
    for k, m in enumerate(models):
        predicted[folds == k] = m.predict_proba(corpus, np.flatnonzero(folds == k)).argmax(axis=1)
    tokens, bases = explain.explain_folds(models, corpus, folds, labels, predicted, top_k=10)
    explained = tokens.groupby("row")["class"].apply(set)
    for row in range(len(frame)):
        assert explained[row] == {labels[row], predicted[row]}
    totals = tokens.groupby(["row", "model_id", "class"])["shap_value"].sum().reset_index()
    totals = totals.merge(bases, on=["model_id", "class"])
    for row, mid, cls, value, base in totals[["row", "model_id", "class", "shap_value", "base_value"]].itertuples(
            index=False):
        logit = models[int(mid[1:])].predict_scores(corpus, np.array([row]))[0, cls]
        assert abs(value + base - logit) <= 1e-4
