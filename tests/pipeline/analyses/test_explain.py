import numpy as np
import pandas as pd

from pipeline.analyses import explain
from pipeline.models import linear as train
from pipeline.config import Config
from pipeline.data.imdb import load_reviews
from tests.conftest import real_archive


def test_shap_values_add_up_to_the_logit_for_every_review():
    frame = load_reviews(real_archive(), sample=700, seed=2, progress=False).frame
    cfg = Config(min_df=2)
    corpus = train.tokenize(frame["display_text"], cfg)
    train_rows, rows = np.arange(0, 700, 2), np.arange(1, 700, 2)
    model = train.fit(corpus, frame["label"].to_numpy(), train_rows, cfg, model_id="m")
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
    cfg = Config(min_df=1)
    corpus = train.tokenize(texts, cfg)
    model = train.fit(corpus, labels, np.arange(20), cfg, model_id="m")
    attributions, _ = explain.explain(model, corpus, np.array([0, 1]), top_k=3)
    values = attributions[attributions["kind"] == "token"].set_index(["row", "token"])["shap_value"]
    assert values.loc[(0, "great")] > 0 > values.loc[(1, "awful")]
