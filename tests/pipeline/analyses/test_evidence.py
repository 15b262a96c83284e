"""``analyses.evidence``: each signal on crafted reviews, then a whole run on a crafted table."""

import numpy as np
import pandas as pd
import pytest

from pipeline.analyses import evidence

CLASSES = ("negative", "positive")
RATINGS = np.array([1, 2, 3, 4, 7, 8, 9, 10] * 4, dtype=float)  # IMDB's scale: negative 1-4, positive 7-10
LABELS = (RATINGS >= 7).astype(int)


def _stated(texts, labels=None):
    """stated_labels over the crafted texts, the score ranges learnt from RATINGS/LABELS."""
    n = len(texts)
    labels = np.resize(LABELS, n) if labels is None else np.asarray(labels)
    ratings = np.resize(RATINGS, n)
    return evidence.stated_labels(texts, ratings, labels, 2)


@pytest.mark.parametrize("text, cls, words", [
    ("Dull and long. I give it 2/10.", 0, "2/10"),
    ("Wonderful cast, 7 out of 10 from me", 1, "7 out of 10"),
    ("one star, and that is generous", 0, "one star"),
    ("A 9.5/10 film", 1, "9.5/10"),
])
def test_a_stated_score_belongs_to_the_class_whose_ratings_hold_it(text, cls, words):
    texts = [text] + ["plain words"] * 31
    stated, stated_words, between = _stated(texts)
    assert stated[0] == cls and stated_words[0] == words and between[0] == ""
    assert (stated[1:] == -1).all() and stated_words[1] is None


@pytest.mark.parametrize("text", [
    "released on 3/10/2005 in cinemas",  # a date
    "9 out of 10 people will hate it",  # a share of people, not a score
    "it ran 24/7 on TV",  # not out of 5 or 10
])
def test_what_is_not_a_score_is_not_read_as_one(text):
    stated, words, between = _stated([text] + ["plain words"] * 31)
    assert stated[0] == -1 and words[0] is None and between[0] == ""


def test_a_middle_score_or_scores_of_two_classes_read_as_between_the_classes():
    stated, _, between = _stated(["It is a 5/10, no more", "0/10 for the plot, 10/10 for the music",
                                  "four stars"] + ["plain"] * 29)
    assert list(stated[:3]) == [-1, -1, -1]
    assert "'5/10', a score that no one class holds" in between[0]
    assert between[1].startswith("scores of different classes (0/10, 10/10")
    assert stated[2] == -1 and between[2] == ""  # 4 of 10 is negative, 4 of 5 positive: the phrase says nothing


def test_without_a_score_column_no_score_is_read():
    stated, words, between = evidence.stated_labels(["2/10"] * 4, np.full(4, np.nan), np.array([1, 1, 0, 0]), 2)
    assert (stated == -1).all() and words == [None] * 4


def test_model_votes_count_only_the_predictors_that_never_saw_the_review():
    labels = np.array([0, 1, 1])
    fold = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])  # disagrees on review 1
    theirs = np.array([[0.2, 0.8], [0.1, 0.9], [0.9, 0.1]])  # disagrees on 0 and 2, but saw review 2
    n, disagree = evidence.model_votes(labels, [(fold, np.ones(3, bool)), (theirs, np.array([True, True, False]))])
    assert list(n) == [2, 2, 1] and list(disagree) == [1, 1, 0]


def _neighbours(vectors: np.ndarray, k: int = 5) -> pd.DataFrame:
    from sklearn.neighbors import NearestNeighbors

    dist, idx = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(vectors).kneighbors(vectors)
    rows = [(r, rank, int(j), 1 - d) for r in range(len(vectors))
            for rank, (j, d) in enumerate([(j, d) for j, d in zip(idx[r], dist[r]) if j != r][:k], start=1)]
    return pd.DataFrame(rows, columns=["row", "rank", "neighbour_row", "similarity"])


def test_a_duplicate_pair_with_opposite_labels_names_the_other_and_neighbours_disagree():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 8))
    vectors[1] = vectors[0]  # the same text twice, labeled both ways
    labels = np.array([0, 1] + [0, 1] * 19)
    ids = np.array([f"r{i}" for i in range(40)], dtype=object)
    near = _neighbours(vectors)
    duplicate_of, is_outlier, score = evidence.datalab_issues(labels, ids, near)
    assert duplicate_of[0] == "r1" and duplicate_of[1] == "r0"
    assert all(d is None for d in duplicate_of[2:])
    assert np.isfinite(score).all() and ((score >= 0) & (score <= 1)).all() and is_outlier.dtype == bool
    disagree = evidence.neighbour_disagreement(labels, near)
    assert disagree[0] == pytest.approx(np.mean(labels[near[near.row == 0].neighbour_row] != 0))


def test_too_few_reviews_for_a_neighbour_graph_give_no_datalab_evidence():
    duplicate_of, is_outlier, score = evidence.datalab_issues(np.array([0, 1]), np.array(["a", "b"]), None)
    assert duplicate_of == [None, None] and not is_outlier.any() and np.isnan(score).all()


def _gather(texts, labels, probs, votes=None):
    n = len(texts)
    ratings = np.resize(RATINGS, n)
    votes = votes or [(probs, np.ones(n, bool))]
    return evidence.gather(np.asarray(labels), CLASSES, np.array([f"r{i}" for i in range(n)]), texts, ratings,
                           probs, votes, None)


def test_a_positive_label_on_a_review_quoting_2_of_10_is_relabeled_and_says_why():
    texts = ["Awful, boring, 2/10."] + ["plain"] * 31
    labels = np.resize(LABELS, 32)
    labels[0] = 1
    probs = np.where(labels[:, None] == np.arange(2), 0.9, 0.1)
    probs[0] = [0.95, 0.05]  # the models read it as negative too
    ev = _gather(texts, labels, probs)
    assert ev.at[0, "suggestion"] == "relabel" and ev.at[0, "stated_label"] == 0
    found = pd.DataFrame({"reason": ["the model is 95% sure this is 'negative'"] * 32})
    reason = evidence.attach(found, ev, CLASSES).at[0, "reason"]
    assert "the text states '2/10', a score of 'negative'" in reason
    assert (ev["suggestion"].iloc[1:] == "keep").all()


def test_a_label_its_text_scores_the_same_way_is_kept_though_the_models_doubt_it():
    texts = ["Loved the actors, 8/10 though the plot drags"] + ["plain"] * 31
    labels = np.resize(LABELS, 32)
    labels[0] = 1
    probs = np.where(labels[:, None] == np.arange(2), 0.9, 0.1)
    probs[0] = [0.97, 0.03]  # the models read negative, the text's own score says positive
    ev = _gather(texts, labels, probs)
    assert ev.at[0, "suggestion"] == "keep" and ev.at[0, "ambiguity"] is None
    reason = evidence.attach(pd.DataFrame({"reason": ["why"] * 32}), ev, CLASSES).at[0, "reason"]
    assert "keep the label: the text's own score ('8/10') agrees with it" in reason


@pytest.mark.parametrize("text, cls", [
    ("the two stars of the film shine", -1),  # a cast, not a rating
    ("as good as Star Wars, Episode 4 - Star Wars", -1),
    ("4 out of 5 stars", 1),  # 8 of 10
    ("2 out of 10 stars", 0),
    ("I give it one star.", 0),
    ("Five stars.", -1),  # alone: 5 of 10 or 5 of 5, the readings disagree on IMDB's scale
    ("Ten stars.", 1),
    ("see v1/10 of the manual", -1),
    ("it lasts 7/10 minutes", -1),
    ("a 7,5/10 for me", -1),
    ("rated -3/10", -1),
])
def test_only_a_rating_reads_as_a_stated_score(text, cls):
    stated, words, between = _stated([text] + ["plain"] * 31)
    assert stated[0] == cls, (text, words[0], between[0])


def test_a_hostile_text_is_read_in_bounded_time_and_words():
    import time

    text = "1* " * 350_000 + "7" + " " * 500_000 + "/10"
    start = time.perf_counter()
    stated, words, between = _stated([text] + ["plain"] * 31)
    assert time.perf_counter() - start < 5
    assert words[0] is None or len(words[0]) < 100


def test_a_mixed_review_the_models_are_unsure_of_is_ambiguous_not_a_flip():
    texts = ["Great acting, terrible script; I liked it and I did not."] + ["plain"] * 31
    labels = np.resize(LABELS, 32)
    labels[0] = 1
    probs = np.where(labels[:, None] == np.arange(2), 0.9, 0.1)
    probs[0] = [0.62, 0.38]
    ev = _gather(texts, labels, probs)
    assert ev.at[0, "suggestion"] == "ambiguous" and ev.at[0, "ambiguity"].startswith("the ranking is unsure (62%")
    found = pd.DataFrame({"reason": ["why"] * 32})
    assert "ambiguous rather than mislabeled: the ranking is unsure" in evidence.attach(found, ev, CLASSES).at[
        0, "reason"]


def test_a_model_that_disagrees_alone_is_told_but_decides_nothing():
    labels = np.resize(LABELS, 32)
    probs = np.where(labels[:, None] == np.arange(2), 0.9, 0.1)
    probs[0] = [0.05, 0.95] if labels[0] == 0 else [0.95, 0.05]
    other = probs.copy()
    other[0] = [0.49, 0.51] if labels[0] == 1 else [0.51, 0.49]  # a network at chance agrees with the label
    ev = _gather(["plain"] * 32, labels, probs, votes=[(probs, np.ones(32, bool)), (other, np.ones(32, bool))])
    assert ev.at[0, "suggestion"] == "relabel" and ev.at[0, "ambiguity"] is None
    reason = evidence.attach(pd.DataFrame({"reason": ["why"] * 32}), ev, CLASSES).at[0, "reason"]
    assert "1 of 2 models that never saw it disagree with the label" in reason


@pytest.mark.parametrize("text, cls", [("5 stars!", 1), ("four stars", 1), ("1 star", 0), ("3 stars out of 5", -1),
                                       ("2 stars out of 5", 0)])
def test_on_a_five_point_scale_star_counts_read_out_of_five(text, cls):
    ratings = np.array([1, 2, 3, 4, 5] * 6, dtype=float)
    labels = (ratings >= 4).astype(int)
    labels[ratings == 3] = np.resize([0, 1], 6)  # 3 stars: half and half, no class owns it
    stated, words, between = evidence.stated_labels([text] + ["plain"] * 29, ratings, labels, 2)
    assert stated[0] == cls
    assert (between[0] != "") == (cls == -1)


def test_a_score_value_without_a_clear_majority_belongs_to_no_class():
    values, owners = evidence.score_owners(np.array([3, 3, 3, 3, 3, 8, 8, 8.0]), np.array([1, 1, 1, 0, 0, 1, 1, 1]), 2)
    assert list(values) == [3, 8] and list(owners) == [-1, 1]  # 3 of 5 is short of two thirds


def test_sentence_mix_is_the_share_of_sentence_evidence_against_the_majority():
    def score(sentences):  # a stand-in reader: 'good' sentences positive, 'bad' negative, sure as 0.9
        return np.array([[0.1, 0.9] if "good" in s.lower() else [0.9, 0.1] for s in sentences])

    texts = ["It was good in parts. The cast is good here. The plot was bad overall.",
             "A good film with a good cast. Good music too, all along.",
             "Short one.",
             "Only one sentence that is long enough here"]
    mix = evidence.sentence_mix(texts, score)
    assert mix[0] == pytest.approx(5 / 15)  # three sentences of 5 words, equally sure: one of them against
    assert mix[1] == 0.0 and np.isnan(mix[2]) and np.isnan(mix[3])


def test_mixed_sentences_make_a_doubted_label_ambiguous():
    labels = np.resize(LABELS, 32)
    probs = np.where(labels[:, None] == np.arange(2), 0.9, 0.1)
    probs[0] = [0.05, 0.95] if labels[0] == 0 else [0.95, 0.05]
    mixed = np.full(32, np.nan)
    mixed[0] = 0.4
    ev = evidence.gather(labels, CLASSES, np.array([f"r{i}" for i in range(32)]), ["plain"] * 32,
                         np.resize(RATINGS, 32), probs, [(probs, np.ones(32, bool))], None, mixed=mixed)
    assert ev.at[0, "suggestion"] == "ambiguous"
    assert ev.at[0, "ambiguity"] == "its sentences pull both ways (40% of their evidence against the majority)"
    assert ev.at[0, "sentence_mix"] == 0.4


def test_a_run_stores_the_evidence_with_each_suspect(tmp_path):
    """A crafted table through the whole pipeline: a duplicate pair with opposite labels, a positive review that
    quotes 2/10, a mixed one; the evidence lands in label_issues and its reason."""
    from pipeline import analyze
    from pipeline.store.files import cursor, open_readonly

    good = ("superb wonderful moving", "brilliant touching great", "lovely warm funny")
    bad = ("awful dreadful boring", "dull clumsy tedious", "terrible weak lifeless")
    filler = np.array("plot actor scene music camera story ending script light colour sound night city river "
                      "train house garden winter summer letter voice dance war money family school".split())
    rng = np.random.default_rng(1)
    rows = []
    for i in range(90):
        positive = i % 2 == 0
        words = (good if positive else bad)[i % 3]
        rows.append({"id": f"r{i}", "body": f"{words} film about {' '.join(rng.choice(filler, 6, replace=False))}",
                     "sentiment": "positive" if positive else "negative", "stars": 8 if positive else 2})
    rows.append({"id": "quote", "body": "awful dreadful boring film, 2/10 at most", "sentiment": "positive",
                 "stars": 9})
    rows.append({"id": "twin-a", "body": rows[7]["body"], "sentiment": "positive", "stars": 7})  # r7 is negative
    summary = analyze(pd.DataFrame(rows), text="body", label="sentiment", id="id", score="stars",
                      db=tmp_path / "e.duckdb", models_dir=tmp_path / "models", dense=False, cnn=False,
                      progress=False, clusters=3, svd_dim=8, neighbours=5)
    con = open_readonly(summary.db)
    try:
        got = cursor(con).execute(
            "SELECT sample_id, suggestion, stated_label, stated_text, duplicate_of, n_models, reason "
            "FROM label_issues WHERE sample_id IN ('quote', 'twin-a', 'r7') ORDER BY sample_id").fetchall()
        same = cursor(con).execute("SELECT count(*) FROM sample_summary s JOIN label_issues i USING (run_id, sample_id)"
                                   " WHERE s.suggestion IS DISTINCT FROM i.suggestion").fetchone()[0]
    finally:
        con.close()
    by_id = {r[0]: r[1:] for r in got}
    assert by_id["quote"][:3] == ("relabel", 0, "2/10") and "a score of 'negative'" in by_id["quote"][5]
    assert by_id["twin-a"][3] == "r7" and by_id["r7"][3] == "twin-a"
    assert "a near-duplicate (r7) is labeled otherwise" in by_id["twin-a"][5]
    assert by_id["quote"][4] == 1 and same == 0


def test_a_stated_score_the_ranking_agrees_with_is_relabeled_even_when_the_sentences_are_mixed():
    texts = ["Some good bits. Mostly dull though, I give it 7/10 anyway."] + ["plain"] * 31
    labels = np.resize(LABELS, 32)
    labels[0] = 0
    probs = np.where(labels[:, None] == np.arange(2), 0.9, 0.1)
    probs[0] = [0.02, 0.98]  # the ranking reads positive, as the text's own 7/10 does
    mixed = np.full(32, np.nan)
    mixed[0] = 0.45
    ev = evidence.gather(labels, CLASSES, np.array([f"r{i}" for i in range(32)]), texts, np.resize(RATINGS, 32),
                         probs, [(probs, np.ones(32, bool))], None, mixed=mixed)
    assert ev.at[0, "suggestion"] == "relabel" and ev.at[0, "ambiguity"] is None and ev.at[0, "stated_label"] == 1
