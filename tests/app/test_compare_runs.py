"""The Compare runs page through app.py: two runs of one store, compared on the texts both hold, checked against
the store."""

import json
import urllib.parse

import pyarrow as pa
import pytest

from pages.common.widgets import pct
from pipeline.store import files
from tests.app.conftest import open_page, publish_copy_of_run
from tests.app.conftest import store_frame as _rows
from tests.app.test_pages import N_REVIEWS

LATER = "second-run"


def make_later_run(store) -> dict[str, list[str]]:
    """A second run of the same data, a day later, in which the linear model's prediction of three texts turned
    over, two labels were changed by --relabel, and the most and least suspect texts swapped ranks; returns the ids
    of each kind."""
    publish_copy_of_run(store, LATER)
    picked = {}

    def change(con):
        ids = [r[0] for r in con.execute("SELECT sample_id FROM sample_summary WHERE run_id = ? ORDER BY sample_id "
                                         "LIMIT 5", [LATER]).fetchall()]
        picked["flipped"], picked["relabeled"] = ids[:3], ids[3:]
        picked["swapped"] = [r[0] for r in con.execute(
            "SELECT sample_id FROM sample_summary WHERE run_id = ? AND issue_rank IN (1, (SELECT max(issue_rank) "
            "FROM sample_summary)) ORDER BY issue_rank", [LATER]).fetchall()]
        con.execute("UPDATE sample_summary SET pred_label = 1 - pred_label, correct = NOT correct WHERE run_id = ? "
                    "AND list_contains(?, sample_id)", [LATER, picked["flipped"]])
        con.execute("UPDATE samples SET original_label = label, label = 1 - label WHERE run_id = ? "
                    "AND list_contains(?, sample_id)", [LATER, picked["relabeled"]])
        con.execute("UPDATE sample_summary SET label = 1 - label, correct = NOT correct WHERE run_id = ? "
                    "AND list_contains(?, sample_id)", [LATER, picked["relabeled"]])
        con.execute("UPDATE sample_summary SET issue_rank = CASE WHEN issue_rank = 1 THEN (SELECT max(issue_rank) "
                    "FROM sample_summary) ELSE 1 END WHERE run_id = ? AND list_contains(?, sample_id)",
                    [LATER, picked["swapped"]])

    files.publish(store, change)
    return picked


def _compare(app):
    return open_page(app, "pages/compare_runs.py", "Compare runs")


def _frame(app, column: str):
    """The table of the page that has ``column``."""
    (frame,) = [d.value for d in app.dataframe if column in d.value]
    return frame


def _link(url: str) -> tuple[str, dict]:
    parts = urllib.parse.urlsplit(url)
    return parts.path, urllib.parse.parse_qs(parts.query)


@pytest.fixture
def compared(app, store):
    picked = make_later_run(store)
    return _compare(app), picked


def test_accuracy_of_both_runs_on_the_shared_texts(compared, store):
    app, picked = compared
    (earlier,) = _rows(store, "SELECT run_id FROM runs WHERE run_id <> ?", [LATER])["run_id"]
    oof = _rows(store, "SELECT run_id, avg(correct::INT) AS a FROM sample_summary GROUP BY run_id").set_index(
        "run_id")["a"]
    metrics = {m.label: m for m in app.metric}
    assert metrics["Out-of-fold accuracy, A"].value == pct(oof[earlier])
    assert metrics["Out-of-fold accuracy, B"].value == pct(oof[LATER])
    assert metrics["Out-of-fold accuracy, B"].delta == f"{(oof[LATER] - oof[earlier]) * 100:+.1f} pp"
    assert metrics["Predictions changed"].value == "3" and metrics["Labels run B changed"].value == "2"
    assert f"Compared on the **{N_REVIEWS:,}** texts both runs hold" in app.caption[0].value
    per = _frame(app, "delta_pp").set_index("name")
    truth = _rows(store, "SELECT s.run_id, c.name, avg(s.correct::INT) AS accuracy FROM sample_summary s JOIN classes "
                         "c ON c.run_id = s.run_id AND c.class = s.label GROUP BY ALL").set_index(["run_id", "name"])
    for name in ("negative", "positive"):
        delta = truth.loc[(LATER, name), "accuracy"] - truth.loc[(earlier, name), "accuracy"]
        assert per.loc[name, "delta_pp"] == pytest.approx(delta * 100)


def test_changed_predictions_show_their_direction_and_link_to_the_later_run(compared, store):
    app, picked = compared
    changed = _frame(app, "pred_b").set_index("sample_id")
    assert sorted(changed.index) == picked["flipped"]
    names = dict(enumerate(_rows(store, "SELECT name FROM classes WHERE run_id = ? ORDER BY class", [LATER])["name"]))
    truth = _rows(store, "SELECT a.sample_id, a.pred_label AS pa, b.pred_label AS pb, a.correct AS ca, b.correct "
                         "AS cb FROM sample_summary a JOIN sample_summary b ON b.sample_id = a.sample_id "
                         "AND b.run_id = ? WHERE a.run_id <> ?", [LATER, LATER]).set_index("sample_id")
    for sample_id, row in changed.iterrows():
        expected = truth.loc[sample_id]
        assert (row["pred_a"], row["pred_b"]) == (names[expected["pa"]], names[expected["pb"]])
        assert (row["correct_a"], row["correct_b"]) == (expected["ca"], expected["cb"]) and row["correct_a"] != \
            row["correct_b"]
        assert _link(row["open"]) == ("sample_analysis", {"run": [LATER], "sample": [sample_id]})
    (dataset,) = app.get("vega_lite_chart")[1].proto.datasets  # the directions chart
    flows = pa.ipc.open_stream(dataset.data.data).read_all().to_pandas()
    first = truth.loc[picked["flipped"][0]]
    direction = f"{names[first['pa']]} → {names[first['pb']]}"
    outcome = "became right" if first["cb"] else "became wrong"
    assert flows["texts"].sum() == 3
    assert flows[(flows["direction"] == direction) & (flows["outcome"] == outcome)]["texts"].sum() >= 1


def test_moved_ranks_and_changed_labels_are_listed(compared, store):
    app, picked = compared
    moves = _frame(app, "rank_b")
    top = _rows(store, "SELECT max(issue_rank) AS m FROM sample_summary")["m"].iloc[0]
    first, last = picked["swapped"]  # rank 1 and the last rank of run A, swapped in run B
    moved = moves.set_index("sample_id").loc[[first, last]]
    assert list(moved["rank_change"]) == [top - 1, 1 - top]  # rank B - rank A: the sign agrees with the name
    assert list(moved["direction"]) == ["less suspect in B", "more suspect in B"]
    (config,) = [json.loads(d.proto.columns) for d in app.dataframe if "rank_b" in d.value]
    assert config["rank_change"]["label"] == "rank change, B - A"
    relabels = _frame(app, "new_label").set_index("sample_id")
    assert sorted(relabels.index) == picked["relabeled"]
    stored = _rows(store, "SELECT s.sample_id, o.name AS old, n.name AS new FROM samples s JOIN classes o ON o.run_id "
                          "= s.run_id AND o.class = s.original_label JOIN classes n ON n.run_id = s.run_id AND n.class "
                          "= s.label WHERE s.run_id = ?", [LATER]).set_index("sample_id")
    for sample_id, row in relabels.iterrows():
        assert (row["old_label"], row["new_label"]) == tuple(stored.loc[sample_id, ["old", "new"]])
        assert row["old_label"] != row["new_label"]
        assert _link(row["open"])[1] == {"run": [LATER], "sample": [sample_id]}


def test_one_run_says_how_to_make_another(app):
    _compare(app)
    assert "holds one run" in app.info[0].value and "--relabel" in app.info[0].value


def test_runs_of_different_data_are_said_to_share_no_text(app, store):
    publish_copy_of_run(store, "other-data", source="tickets.csv")
    files.publish(store, lambda con: con.execute("UPDATE sample_summary SET sample_id = 'other/' || sample_id "
                                                 "WHERE run_id = 'other-data'"))
    _compare(app)
    assert "hold different data" in app.warning[0].value and not app.dataframe


def test_a_run_that_changed_nothing_says_so_without_arrows_or_an_empty_chart(app, store):
    publish_copy_of_run(store, LATER)
    _compare(app)
    assert any(i.value.startswith("No class's accuracy changed") for i in app.info)
    assert not app.get("vega_lite_chart")  # no per-class chart with a lone 0.000000 tick (and no changed prediction)
    metrics = {m.label: m.proto for m in app.metric}
    zero = metrics["Out-of-fold accuracy, B"]
    assert zero.delta == "0.0 pp" and zero.color == zero.GRAY and zero.direction == zero.NONE  # no green up arrow
    assert any("Both runs were made with the same settings" in c.value for c in app.caption)
    assert not [d for d in app.dataframe if "setting" in d.value]


def test_accuracy_per_class_is_in_percent_with_one_decimal_place_and_every_column_sized(compared):
    app, _ = compared
    (table,) = [d for d in app.dataframe if "delta_pp" in d.value]
    config = json.loads(table.proto.columns)
    assert config["accuracy_a"]["type_config"]["format"] == config["accuracy_b"]["type_config"]["format"] == "%.1f%%"
    assert all(config[c].get("width") for c in ("name", "texts_a", "accuracy_a", "texts_b", "accuracy_b", "delta_pp"))
    assert table.value["accuracy_a"].max() > 1  # percent, not a share
    metrics = {m.label: m.proto for m in app.metric}
    moved = metrics["Out-of-fold accuracy, B"]
    assert moved.delta.endswith(" pp") and moved.delta != "0.0 pp" and moved.direction != moved.NONE


def test_what_differs_between_the_runs_lists_their_settings_and_ranking(app, store):
    make_later_run(store)
    own = "<b>my</b> [BERT](https://evil.example/)"

    def differently(con):  # run B: another seed, the user's predictions, ranked by the mean of every predictor's
        config = json.loads(con.execute("SELECT config FROM runs WHERE run_id = ?", [LATER]).fetchone()[0])
        config |= {"seed": 3, "predictions": "/data/preds.csv", "issue_source": "ensemble", "db": "/another/store"}
        con.execute("UPDATE runs SET config = ? WHERE run_id = ?", [json.dumps(config), LATER])
        con.execute("UPDATE label_issues SET method = 'self_confidence', ranked_on = ['nblr', 'dense', 'cnn', "
                    "'imported'] WHERE run_id = ?", [LATER])
        con.execute("INSERT INTO models (run_id, model_id, family, role, reference, n_features, n_train, name, "
                    "source) VALUES (?, 'imported', 'imported', 'own', false, 0, 0, ?, 'preds.csv')", [LATER, own])

    files.publish(store, differently)
    _compare(app)
    (table,) = [d.value for d in app.dataframe if "setting" in d.value]
    rows = table.set_index("setting")
    assert list(rows.index) == ["label-issue ranking", "predictors", "seed", "predictions"]  # not where it wrote
    assert rows.loc["label-issue ranking", "a"] == (
        "cleanlab's self_confidence on a logistic-regression stack of the out-of-fold probabilities of the linear "
        "model, the dense network and the CNN (and of any score the text states), fitted on the other folds' labels")
    assert rows.loc["label-issue ranking", "b"] == (
        "cleanlab's self_confidence on the mean of the probabilities of the linear model, the dense network, the CNN "
        f"and \u201c{own}\u201d (your predictions) (out of fold for Lossmap's models; as given for yours)")
    assert rows.loc["predictors", "b"].endswith(f", \u201c{own}\u201d (your predictions)")
    assert tuple(rows.loc["seed"]) == ("0", "3") and tuple(rows.loc["predictions"]) == ("\u2013", "/data/preds.csv")


def test_runs_that_number_their_classes_differently_are_compared_by_class_name(app, store):
    """A class added to the data shifts the others' numbers: the same predictions must not show as changes."""
    publish_copy_of_run(store, LATER)

    def renumber(con):  # run B numbers 'negative' 1 and 'positive' 0, with every label and prediction to match
        for table, columns in (("classes", ("class",)), ("sample_summary", ("label", "pred_label", "suggested_label")),
                               ("samples", ("label",))):
            sets = ", ".join(f"{c} = 1 - {c}" for c in columns)  # names from this test, not from data
            con.execute(f"UPDATE {table} SET {sets} WHERE run_id = ?", [LATER])

    files.publish(store, renumber)
    _compare(app)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Predictions changed"] == "0"
