"""The Models page through app.py: every predictor's accuracy, agreement, disagreements and calibration, each
checked against an independent computation over the store."""

import json
import re
import urllib.parse

import numpy as np
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from pipeline.store import files
from tests.app.conftest import open_page
from tests.app.conftest import store_frame as _rows
from tests.conftest import ROOT

OWN_NAME = "<b>my</b> [model](https://evil.example/m) :material/home: BERT"  # the user's name: untrusted
FLIPPED = 20  # texts on which the user's predictions differ from the linear model's


def add_own_predictor(store) -> None:
    """Store the user's own predictions the way a run with --predictions does (family 'imported', protocol 'own',
    named by the user): the linear model's out-of-fold predictions with the first ``FLIPPED`` texts' classes turned
    over, seen in training on the train split."""
    def add(con):
        (run,) = con.execute("SELECT run_id FROM runs").fetchone()
        con.execute("INSERT INTO models (run_id, model_id, family, role, reference, n_features, n_train, name, "
                    "source) VALUES (?, 'imported', 'imported', 'own', false, 0, 0, ?, 'preds.csv')", [run, OWN_NAME])
        con.execute("""
            INSERT INTO predictions (run_id, family, protocol, sample_id, model_id, seen_in_training, probs, p_given,
                                     pred_label, p_pred, loss, margin)
            SELECT p.run_id, 'imported', 'own', p.sample_id, 'imported', coalesce(s.split = 'train', true),
                   CASE WHEN f THEN list_reverse(p.probs) ELSE p.probs END,
                   CASE WHEN f THEN 1 - p.p_given ELSE p.p_given END,
                   CASE WHEN f THEN 1 - p.pred_label ELSE p.pred_label END, p.p_pred,
                   CASE WHEN f THEN -ln(greatest(1 - p.p_given, 1e-12)) ELSE p.loss END,
                   CASE WHEN f THEN -p.margin ELSE p.margin END
            FROM (SELECT *, row_number() OVER (ORDER BY sample_id) <= ? AS f FROM predictions
                  WHERE family = 'nblr' AND protocol = 'oof') p
            JOIN samples s ON s.run_id = p.run_id AND s.sample_id = p.sample_id
        """, [FLIPPED])

    files.publish(store, add)


def _chart(at, i: int, column: str):
    """The data behind the i-th Altair chart of the page: the one of its datasets that has ``column``."""
    datasets = at.get("vega_lite_chart")[i].proto.datasets
    frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in datasets]
    (frame,) = [f for f in frames if column in f]
    return frame


def _models_page(app):
    return open_page(app, "pages/models.py", "Models")


def _unescaped(markdown: str) -> str:
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


@pytest.fixture
def own_app(app, store):
    add_own_predictor(store)
    return _models_page(app)


def test_accuracy_per_predictor_matches_the_store_and_seen_texts_are_told_apart(own_app, store):
    table = own_app.dataframe[0].value.set_index("predictor")
    truth = _rows(store, """
        SELECT family, protocol, count(*) AS texts, avg((p.pred_label = s.label)::INT) AS accuracy,
               avg((p.pred_label = s.label)::INT) FILTER (WHERE NOT seen_in_training) AS accuracy_unseen,
               count(*) FILTER (WHERE seen_in_training) AS seen
        FROM predictions p JOIN samples s USING (run_id, sample_id) GROUP BY ALL""")
    assert len(table) == len(truth) == 7  # three families, two protocols each, and the user's model
    own = truth.set_index(["family", "protocol"]).loc[("imported", "own")]
    assert table.loc[OWN_NAME, "texts"] == own["texts"] and table.loc[OWN_NAME, "seen"] == own["seen"] > 0
    assert table.loc[OWN_NAME, "accuracy_unseen"] == pytest.approx(own["accuracy_unseen"] * 100)  # percent
    linear = truth.set_index(["family", "protocol"]).loc[("nblr", "oof")]
    assert table.loc["NB-LR (linear), out of fold", "accuracy"] == pytest.approx(linear["accuracy"] * 100)
    assert table.loc["NB-LR (linear), conventional", "accuracy_seen"] > table.loc[
        "NB-LR (linear), conventional", "accuracy_unseen"]  # trained on them: optimistic
    said = own_app.caption[0].value
    assert "optimistic" in said and "compare predictors on the texts they never trained on" in said
    assert "](" not in said and "\\[model\\]" in said and "<b>" not in said  # the user's name, as text
    assert OWN_NAME in _unescaped(said)


def _formats(element) -> dict[str, str]:
    """The number format of each column of a table on the page."""
    return {k: v.get("type_config", {}).get("format") for k, v in json.loads(element.proto.columns).items()}


def test_the_caption_tells_predictors_that_trained_on_some_texts_from_one_that_trained_on_all(app, store):
    add_own_predictor(store)
    files.publish(store, lambda con: con.execute("UPDATE predictions SET seen_in_training = true "
                                                 "WHERE family = 'imported'"))  # not told which it never saw
    said = _unescaped(_models_page(app).caption[0].value)
    assert ("Trained on some of the texts they scored: \u201cNB-LR (linear), conventional\u201d, \u201cdense "
            "network, conventional\u201d and \u201cCNN, conventional\u201d.") in said
    assert f"Trained on every text they scored (as far as the run knows): \u201c{OWN_NAME}\u201d." in said
    assert "; " not in said  # names that hold commas are not joined by semicolons
    (warning,) = [_unescaped(w.value) for w in app.warning]
    assert warning.startswith(f"Not known on any text it never saw: \u201c{OWN_NAME}\u201d.")


def test_accuracy_is_one_percent_format_and_a_dash_where_a_predictor_saw_no_text(own_app):
    accuracy, ece = own_app.dataframe[0], own_app.dataframe[2]
    formats = _formats(accuracy)
    assert formats["accuracy"] == formats["accuracy_unseen"] == formats["accuracy_seen"] == "%.1f%%"
    assert _formats(ece)["ece"] == "%.1f%%"  # one decimal place everywhere: never 85.33% beside 85.2%
    table = accuracy.value.set_index("predictor")
    assert table.loc["NB-LR (linear), out of fold", "seen"] == 0
    assert table["accuracy_seen"].isna()["NB-LR (linear), out of fold"]
    assert accuracy.proto.placeholder == "\u2013"  # shown as a dash, not None
    assert table["accuracy"].between(0, 100).all() and table["accuracy"].max() > 1


def test_agreement_matrix_is_the_share_of_same_predictions(own_app, store):
    cells = _chart(own_app, 1, "agreement").set_index(["a", "b"])["agreement"]
    preds = _rows(store, "SELECT sample_id, family, protocol, pred_label FROM predictions")
    wide = preds.pivot(index="sample_id", columns=["family", "protocol"], values="pred_label")
    mine = wide[("imported", "own")]
    linear = wide[("nblr", "oof")]
    assert cells[(OWN_NAME, "NB-LR (linear), out of fold")] == pytest.approx((mine == linear).mean())
    assert (mine != linear).sum() == FLIPPED
    cnn = wide[("cnn", "conventional")]
    assert cells[("CNN, conventional", OWN_NAME)] == pytest.approx((cnn == mine).mean())
    assert cells[(OWN_NAME, OWN_NAME)] == 1.0 and len(cells) == 7 * 7


def test_the_most_disagreed_texts_show_each_prediction_and_link_to_sample_analysis(own_app, store):
    table = own_app.dataframe[1].value
    (config,) = [json.loads(own_app.dataframe[1].proto.columns)]
    labels = {k: v.get("label") for k, v in config.items()}
    preds = _rows(store, "SELECT sample_id, family, protocol, pred_label, p_given FROM predictions")
    spread = preds.groupby("sample_id").agg(classes=("pred_label", "nunique"),
                                            spread=("p_given", lambda p: p.max() - p.min()))
    disagreeing = spread[spread["classes"] > 1].sort_values(["classes", "spread"], ascending=False)
    assert list(table["sample_id"]) == list(disagreeing.index[:len(table)])
    (run,) = _rows(store, "SELECT run_id FROM runs")["run_id"]
    first = table.iloc[0]
    link = urllib.parse.urlsplit(first["open"])
    assert link.path == "sample_analysis" and urllib.parse.parse_qs(link.query) == {
        "run": [run], "sample": [first["sample_id"]]}
    column = next(k for k, v in labels.items() if v == OWN_NAME)
    names = dict(enumerate(_rows(store, "SELECT name FROM classes ORDER BY class")["name"]))
    mine = preds[(preds["sample_id"] == first["sample_id"]) & (preds["family"] == "imported")]["pred_label"].item()
    assert first[column] == names[mine]
    assert f"{len(disagreeing):,} of" in own_app.caption[3].value


def test_calibration_error_matches_a_numpy_computation(own_app, store):
    ece = own_app.dataframe[2].value.set_index("predictor")["ece"] / 100  # shown in percent
    rows = _rows(store, """SELECT family, protocol, p_pred, (p.pred_label = s.label)::INT AS hit, seen_in_training
                           FROM predictions p JOIN samples s USING (run_id, sample_id)""")
    for (family, protocol), name in [(("nblr", "oof"), "NB-LR (linear), out of fold"), (("imported", "own"), OWN_NAME),
                                     (("dense", "conventional"), "dense network, conventional")]:
        mine = rows[(rows["family"] == family) & (rows["protocol"] == protocol) & ~rows["seen_in_training"]]
        bins = np.minimum((mine["p_pred"].to_numpy() * 10).astype(int), 9)
        expected = sum((bins == b).sum() * abs(mine["hit"].to_numpy()[bins == b].mean()
                                               - mine["p_pred"].to_numpy()[bins == b].mean())
                       for b in range(10) if (bins == b).any()) / len(mine)
        assert ece[name] == pytest.approx(expected, abs=1e-9), name
    curve = _chart(own_app, 2, "bin")  # the reliability curve: one point per non-empty bin, in [0, 1]
    assert curve["confidence"].between(0.5, 1).all() and set(curve["bin"]) <= set(range(5, 10))
    own_app.radio(key="models_rows").set_value("all").run()  # every text: the seen ones too
    assert len(own_app.dataframe[2].value) == 7 and not own_app.exception


def test_a_model_of_your_own_appears_by_its_name_on_sample_analysis(app, store):
    add_own_predictor(store)
    (sample,) = _rows(store, "SELECT sample_id FROM samples WHERE split = 'train' ORDER BY sample_id LIMIT 1")[
        "sample_id"]
    app.query_params["sample"] = sample
    app.run()
    app.switch_page("pages/sample_analysis.py").run()
    app.query_params["sample"] = sample
    app.run()
    assert not app.exception
    bars = _chart(app, 0, "model")
    assert OWN_NAME in set(bars["model"]) and "your predictions, as given" not in set(bars["model"])
    (said,) = [c.value for c in app.caption if c.value.startswith("Optimistic here")]
    assert OWN_NAME in _unescaped(said) and "](" not in said
    assert "(a model of your own may have, unless you said it did not)" in _unescaped(said)


def test_every_predictor_is_named_on_the_predictions_chart_and_only_your_own_may_have_trained_unsaid(app, store):
    """Streamlit's chart theme drops y labels that would overlap: with seven predictors, every other one went
    missing."""
    (sample,) = _rows(store, "SELECT sample_id FROM samples WHERE split = 'train' ORDER BY sample_id LIMIT 1")[
        "sample_id"]
    app.query_params["sample"] = sample
    app.run()
    app.switch_page("pages/sample_analysis.py").run()
    assert not app.exception
    spec = json.loads(app.get("vega_lite_chart")[0].proto.spec)
    predictors = spec["encoding"]["y"]["sort"]
    assert len(predictors) == 6 and spec["encoding"]["y"]["axis"]["labelOverlap"] is False
    assert spec["height"] >= 30 * len(predictors)  # room for every label
    (said,) = [_unescaped(c.value) for c in app.caption if c.value.startswith("Optimistic here")]
    assert "\u201cNB-LR (linear), conventional\u201d" in said  # trained on the train split, where this text is
    assert "model of your own" not in said  # every predictor here is Lossmap's, and says what it saw


def test_the_eight_class_store_renders_the_models_page(rating_store, monkeypatch):
    monkeypatch.setenv("LOSSMAP_DB", str(rating_store.db))
    at = _models_page(AppTest.from_file(str(ROOT / "app.py"), default_timeout=60))
    per_class = _chart(at, 0, "class")
    assert per_class["class"].nunique() == 8 and per_class["accuracy"].between(0, 1).all()
    assert len(at.dataframe[2].value) == len(at.dataframe[0].value)  # an ECE for every predictor
    assert "With 8 classes confidence starts at 12%" in at.caption[-1].value
