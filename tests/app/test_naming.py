"""How pages name what a run holds (pages/common/naming.py): a user's own embedding by the name they gave their
model, and the ranking behind the label issues, on Population map, Mislabel review and Sample analysis."""

import re

import pytest

from pages.common.naming import ranking, ranking_text, space_label
from pipeline.store import files
from tests.app.test_models_page import OWN_NAME, add_own_predictor

OPEN, CLOSE = "\u201c", "\u201d"  # how a name the user gave is quoted


def _unescaped(markdown: str) -> str:
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


@pytest.mark.parametrize("stored, expected", [
    (("self_confidence", ("nblr",)), "cleanlab's self_confidence on the out-of-fold probabilities of the linear model"),
    (("normalized_margin", ("imported",)), f"cleanlab's normalized_margin on the probabilities of {OPEN}my BERT{CLOSE} "
                                           "(your predictions), as given"),
    (("confident_learning", ("nblr", "dense", "cnn")), "cleanlab's confident_learning on the mean of the "
     "out-of-fold probabilities of the linear model, the dense network and the CNN"),
    (("self_confidence", ("nblr", "onnx")), "cleanlab's self_confidence on the mean of the probabilities of "
     "the linear model and your ONNX model (out of fold for Lossmap's models; as given for yours)"),
    (("self_confidence", ()), "self_confidence on  (as the run recorded it)"),  # no families: shown as stored
    (("self_confidence", ("nblr-train",)), "self_confidence on nblr-train (as the run recorded it)"),
    (None, "not recorded by this run"),
])
def test_a_ranking_reads_as_words(stored, expected):
    assert ranking_text(stored, {"imported": "my BERT"}, explain=False) == expected


def test_a_ranking_names_the_families_whose_probabilities_it_used():
    assert ranking(("self_confidence", ("nblr", "dense", "imported"))).families == ("nblr", "dense", "imported")
    assert ranking(("self_confidence", ["onnx"])).families == ("onnx",) and ranking(("", ("nblr",))) is None


def test_a_space_of_your_own_is_named_as_you_named_your_model():
    assert space_label("imported-embedding", {"imported": "my BERT"}) == f"Embedding of {OPEN}my BERT{CLOSE} " \
                                                                         "(your predictions)"
    assert space_label("onnx-embedding", {}) == "Your ONNX model's embedding"  # no name given: as before
    assert space_label("cnn-hidden", {"imported": "my BERT"}) == "CNN, penultimate layer"


def _own_map(store):
    """The user's predictions with an embedding: their map (a copy of the TF-IDF one) in space 'imported-embedding'."""
    add_own_predictor(store)

    def own_space(con):
        for table in ("map_points", "clusters"):  # names from this test, not from data
            con.execute(f"INSERT INTO {table} BY NAME SELECT * REPLACE ('imported-embedding' AS space) FROM {table} "
                        "WHERE space = 'tfidf-svd'")

    files.publish(store, own_space)


def test_population_map_names_your_embedding_by_the_name_you_gave(app, store):
    _own_map(store)
    app.run()
    app.switch_page("pages/population_map.py").run()
    pick = app.sidebar.selectbox(key="map_space")
    assert f"Embedding of {OPEN}{OWN_NAME}{CLOSE} (your predictions)" in pick.options
    assert "Your predictions' embedding" not in pick.options
    assert "out of fold for Lossmap's models; as given for your own" in pick.help
    pick.select("imported-embedding").run()
    assert not app.exception
    said = app.caption[0].value
    assert _unescaped(said).startswith(f"Embedding of {OPEN}{OWN_NAME}{CLOSE} (your predictions): the vectors")
    assert "](" not in said and "<b>" not in said  # the name as text


def test_mislabel_review_says_the_stacked_models_ranked_the_suspects(app):
    app.run()
    app.switch_page("pages/mislabel_review.py").run()
    assert not app.exception and not app.warning
    said = _unescaped(app.caption[0].value)
    assert said.startswith("Suspects are ranked, and **Why flagged** is written, from cleanlab's self_confidence")
    assert said.endswith("on a logistic-regression stack of the out-of-fold probabilities of the linear model, the "
                         "dense network and the CNN (and of any score the text states), fitted on the other folds' "
                         "labels.")


def test_a_ranking_by_your_model_that_saw_every_text_is_warned_of(app, store):
    add_own_predictor(store)

    def ranked_by_yours(con):  # --issue-source imported, and the run not told which texts it never saw
        con.execute("UPDATE label_issues SET method = 'self_confidence', ranked_on = ['imported']")
        con.execute("UPDATE predictions SET seen_in_training = true WHERE family = 'imported'")

    files.publish(store, ranked_by_yours)
    app.run()
    app.switch_page("pages/mislabel_review.py").run()
    assert not app.exception
    said = app.caption[0].value
    assert _unescaped(said).endswith(f"on the probabilities of {OPEN}{OWN_NAME}{CLOSE} (your predictions), as given.")
    assert "](" not in said and "<b>" not in said
    (warning,) = [_unescaped(w.value) for w in app.warning]
    assert warning.startswith(f"The ranking used {OPEN}{OWN_NAME}{CLOSE} (your predictions), and every text counts "
                              "as seen in its training") and "optimistic" in warning
    app.switch_page("pages/sample_analysis.py").run()  # the reason there names the same ranking
    assert not app.exception
    (said,) = [_unescaped(c.value) for c in app.caption if c.value.startswith("The issue rank")]
    assert f"{OPEN}{OWN_NAME}{CLOSE} (your predictions), as given" in said and len(app.warning) == 1


def test_a_ranking_by_your_model_told_what_it_never_saw_counts_what_it_did(app, store):
    add_own_predictor(store)  # seen in training on the train split only
    def ensemble(con):  # --issue-source ensemble: the mean, your model included
        con.execute("UPDATE label_issues SET method = 'self_confidence', ranked_on = ['nblr', 'dense', 'cnn', "
                    "'imported']")
        con.execute("""UPDATE runs SET config = replace(config::VARCHAR, '"stacked"', '"ensemble"')::JSON""")

    files.publish(store, ensemble)
    app.run()
    app.switch_page("pages/mislabel_review.py").run()
    assert not app.exception and not app.warning
    said = _unescaped(app.caption[0].value)
    assert "the mean of the probabilities of the linear model, the dense network, the CNN and " in said
    assert re.search(rf"{OPEN}.*{CLOSE} \(your predictions\) trained on [\d,]+ of its [\d,]+ texts", said)


def test_a_stacked_ranking_is_named_a_stack_not_a_mean():
    stacked = ranking_text(("self_confidence", ("nblr", "dense", "cnn"), "stacked"), {}, explain=False)
    assert stacked.startswith("cleanlab's self_confidence on a logistic-regression stack of the out-of-fold "
                              "probabilities of the linear model, the dense network and the CNN")
    mean = ranking_text(("self_confidence", ("nblr", "dense", "cnn"), "ensemble"), {}, explain=False)
    assert "the mean of the out-of-fold probabilities" in mean
    assert ranking(("self_confidence", ("nblr",), "stacked")).stacked is False  # one family: nothing stacked
