"""The evidence beside each suspect's rank, and whether to relabel it or call it ambiguous (issue 14).

``gather(...)`` returns one row per review, in dataset order, with ``EVIDENCE_COLUMNS``:

- ``n_models`` / ``models_disagree``: the predictors that never saw the review (every
  family's fold model that held it out; a user's own model only where it is known not to
  have trained on it) and how many of them predict another class than the given one;
- ``neighbours_disagree``: the share of its nearest reviews (the stored TF-IDF neighbours)
  whose given label differs from its own; NaN without neighbours;
- ``stated_label`` / ``stated_text``: for data with a score column (IMDB: the stars), the
  class of a score the text itself states ("4/10", "7 out of 10", "one star") and the
  words that state it; -1 / None when the text states none, or none that one class owns;
- ``duplicate_of``: a near-duplicate of the review that carries another label (its id),
  and ``is_outlier`` / ``outlier_score``: the review lies far from the others; both from
  cleanlab's Datalab (issue types ``near_duplicate`` and ``outlier``), run on the stored
  neighbour graph rather than a search of its own;
- ``sentence_mix``: for the reviews whose label is doubted, how mixed the text is (below);
- ``suggestion``: ``relabel`` (the evidence points to one other class; always when the
  text's own score and the ranking agree on it), ``ambiguous`` (the
  ranked models or the text disagree with the label, but the text reads as mixed or
  neutral, so a flip would be a guess) or ``keep``; ``ambiguity`` names the signal: the
  text's own score between the classes or of its given class, its sentences pulling both
  ways (``sentence_mix``: a third or more of their evidence against the majority), or the
  ranking unsure (under 75% for its class). How many single models disagree is told but
  decides nothing: on a quick run a network can sit at chance, and the stack already
  weighs each model by how well it predicts.

A stated score's class comes from the score column itself: each score value belongs to the
class two thirds or more of its rows carry (so a share of wrong labels does not move it); a
stated score between values of two classes (IMDB's 5/10) is "between the classes". The
score column is only read to learn that mapping, never per review.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd

from pipeline.models.outputs import predicted_class

EVIDENCE_COLUMNS = ["n_models", "models_disagree", "neighbours_disagree", "stated_label", "stated_text",
                    "duplicate_of", "is_outlier", "outlier_score", "sentence_mix", "suggestion", "ambiguity"]
SUGGESTIONS = ("relabel", "ambiguous", "keep")
UNSURE = 0.75  # the ranked models' belief in their own class below this: the text reads as mixed
OWNED = 2 / 3  # a score value belongs to a class when at least this share of its rows (and 3 or more) carry it
MIXED = 1 / 3  # a third or more of a review's sentence evidence against its majority: the text reads as mixed
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")

_WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "nine": 9, "ten": 10}
_NUMBER = r"(\d{1,2}(?:\.\d{1,2})?|zero|one|two|three|four|five|six|seven|eight|nine|ten)"
_AFTER_NOUN = (r"(?!\s{0,3}(?:people|persons|times|viewers|critics|users|reviewers|films|movies|minutes?|mins?|"
               r"hours?|seconds?|episodes?|years?|of|are|were|have)\b)")
# "7/10", "7 / 10", "7 out of 10", "4 stars out of 5", "2 outta 5" (not a date "3/10/2005", "v1/10", "-3/10",
# "7,5/10", nor "9 out of 10 people" or "7/10 minutes")
_FRACTION = re.compile(r"(?<![\w/.,-])" + _NUMBER + r"\s{0,3}(?:stars?\s{0,3})?(?:/|out of|outta)\s{0,3}"
                       r"(10|ten|5|five|4|four)\b(?!\s{0,3}/|\d)" + _AFTER_NOUN, re.IGNORECASE)
# "I give it one star", "rated 2 stars", "4-star", "Five stars." as a sentence of its own: a star count counts only
# as a rating (after a rating verb, or standing alone), so "the two stars" of a cast and "Star Wars" do not; out of 5
# where the data's scale is 5 or less, else read out of 5 and of 10 and used only when both readings agree
_STARS = re.compile(_NUMBER + r"(?:[\s-]{0,3}stars?\b(?![\s-]{0,3}(?:wars|trek)\b)|\s{0,3}\*(?![\w*]))", re.IGNORECASE)
# what must come just before a star count (searched in the 12 characters before it: one lookbehind per phrase in the
# pattern above made this pass 12 s over 50,000 reviews)
_RATED = re.compile(r"(?:give it |gave it |giving it |rate it |rated |rating: |rating of |deserves |earns |gets |"
                    r"give this |gave this |give it a |gave it a |score: |verdict: |[.!?:]\s|\n)\Z", re.IGNORECASE)
_MOST = 20  # stated scores read per text: enough for any review, bounded for a hostile one


def gather(labels, classes, ids, texts, ratings, ranked_probs, votes: list[tuple[np.ndarray, np.ndarray]],
           neighbours: pd.DataFrame | None, stated=None, mixed=None) -> pd.DataFrame:
    """Every review's evidence; see the module doc. ``votes``: (probabilities (N, K), unseen (N,) bool) of each
    predictor; ``neighbours``: rows of (row, neighbour_row, similarity), or None; ``stated``: stated_labels(...)
    when already read; ``mixed``: sentence_mix(...) of the doubted reviews (NaN elsewhere), or None."""
    labels = np.asarray(labels, dtype=int)
    n = len(labels)
    n_models, disagree = model_votes(labels, votes)
    stated, stated_text, between = stated or stated_labels(texts, ratings, labels, len(classes))
    neighbours_disagree = neighbour_disagreement(labels, neighbours)
    duplicate_of, is_outlier, outlier_score = datalab_issues(labels, ids, neighbours)
    believed = predicted_class(np.asarray(ranked_probs))
    sure = np.asarray(ranked_probs).max(axis=1)
    mixed = np.full(n, np.nan) if mixed is None else np.asarray(mixed, dtype=float)
    doubt = doubted(labels, ranked_probs, stated)
    suggestion, ambiguity = [], []
    for i in range(n):
        backed = stated[i] == labels[i]  # the author's own score agrees with the label: keep it, whatever the models
        agreed = stated[i] >= 0 and stated[i] == believed[i]  # the text's own score and the ranking point one way
        signal = None if agreed else _ambiguity(sure[i], between[i], stated[i], believed[i], labels[i], mixed[i])
        suggestion.append("keep" if not doubt[i] or backed else "ambiguous" if signal else "relabel")
        ambiguity.append(signal if doubt[i] and not backed else None)
    return pd.DataFrame({
        "n_models": n_models.astype("int16"), "models_disagree": disagree.astype("int16"),
        "neighbours_disagree": neighbours_disagree, "stated_label": stated.astype("int16"),
        "stated_text": stated_text, "duplicate_of": duplicate_of, "is_outlier": is_outlier,
        "outlier_score": outlier_score, "sentence_mix": mixed, "suggestion": suggestion, "ambiguity": ambiguity,
    }, index=range(n))


def _ambiguity(sure, between, stated, believed, label, mixed=np.nan) -> str | None:
    if between:
        return f"the text states {between}"
    if stated >= 0 and stated != label and believed == label:
        return "the text's own score belongs to another class, while the ranking agrees with the label"
    if mixed >= MIXED:
        return f"its sentences pull both ways ({mixed:.0%} of their evidence against the majority)"
    if sure < UNSURE:
        return f"the ranking is unsure ({sure:.0%} for its own class)"
    return None


def sentence_mix(texts, score_texts) -> np.ndarray:
    """How mixed each text is, 0..1 - 1/K (NaN for a text of fewer than two sentences of three words or more): its
    sentences scored one by one (``score_texts``: list of texts -> (n, K) probabilities, e.g. the linear fold model
    that never saw the review, through ONNX), each weighing its words times its margin (log-probability of its class
    over the next one); the share of that weight on classes other than the heaviest one."""
    pieces, owner = [], []
    for i, text in enumerate(texts):
        sentences = [s for s in _SENTENCE.split(text) if len(s.split()) >= 3]
        if len(sentences) >= 2:
            pieces += sentences
            owner += [i] * len(sentences)
    out = np.full(len(texts), np.nan)
    if not pieces:
        return out
    probs = np.clip(np.asarray(score_texts(pieces), dtype=float), 1e-9, 1.0)
    top2 = np.sort(np.log(probs), axis=1)[:, -2:]
    weight = (top2[:, 1] - top2[:, 0]) * np.array([len(p.split()) for p in pieces])
    owner = np.asarray(owner)
    mass = np.zeros((len(texts), probs.shape[1]))
    np.add.at(mass, (owner, probs.argmax(axis=1)), weight)
    total = mass.sum(axis=1)
    has = np.isin(np.arange(len(texts)), owner)
    out[has] = np.where(total[has] > 0, 1 - mass[has].max(axis=1) / np.maximum(total[has], 1e-12), 0.0)
    return out


def sentence_mix_by_fold(texts, folds, doubted_rows, reader) -> np.ndarray:
    """sentence_mix of the doubted texts (NaN elsewhere), each read by the model of its fold: ``reader(fold)`` gives
    that fold's ``score_texts`` (the linear fold model that never saw the text); folds without a doubted text are
    not read."""
    texts, folds = np.asarray(texts, dtype=object), np.asarray(folds)
    mixed = np.full(len(texts), np.nan)
    for fold in np.unique(folds):
        rows = np.flatnonzero(doubted_rows & (folds == fold))
        if len(rows):
            mixed[rows] = sentence_mix(texts[rows], reader(int(fold)))
    return mixed


def model_votes(labels: np.ndarray, votes: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(how many predictors never saw each review, how many of them predict another class than the given one)."""
    n_models = np.zeros(len(labels), dtype=int)
    disagree = np.zeros(len(labels), dtype=int)
    for probs, unseen in votes:
        unseen = np.asarray(unseen, dtype=bool)
        n_models += unseen
        disagree += unseen & (predicted_class(np.asarray(probs)) != labels)
    return n_models, disagree


def neighbour_disagreement(labels: np.ndarray, neighbours: pd.DataFrame | None) -> np.ndarray:
    """Share of each review's stored neighbours labeled otherwise; NaN for a review without neighbours."""
    out = np.full(len(labels), np.nan)
    if neighbours is None or not len(neighbours):
        return out
    rows = neighbours["row"].to_numpy()
    differs = labels[neighbours["neighbour_row"].to_numpy()] != labels[rows]
    counts = np.bincount(rows, minlength=len(labels))
    has = counts > 0
    out[has] = np.bincount(rows, weights=differs, minlength=len(labels))[has] / counts[has]
    return out


def score_owners(ratings, labels, n_classes: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(the score values the data holds, sorted; the class two thirds or more of each value's rows carry, -1 where
    none does or a value has under 3 rows), or None when the data has no score column. A clear majority per value,
    so that a share of wrong labels does not move it."""
    ratings = np.asarray(ratings, dtype=float)
    known = ~np.isnan(ratings)
    if known.sum() < n_classes:
        return None
    values, where = np.unique(ratings[known], return_inverse=True)
    counts = np.zeros((len(values), n_classes))
    np.add.at(counts, (where, np.asarray(labels)[known]), 1)
    best = counts.argmax(axis=1)
    clear = (counts.max(axis=1) >= OWNED * counts.sum(axis=1)) & (counts.sum(axis=1) >= 3)
    return values, np.where(clear, best, -1)


def stated_labels(texts, ratings, labels, n_classes: int) -> tuple[np.ndarray, list, list]:
    """(the class each text's stated scores belong to, or -1; the words; what makes it 'between the classes'
    ('' when nothing does)). Every stated score must fall in one class's range, and all in the same one."""
    labels = np.asarray(labels, dtype=int)
    stated = np.full(len(labels), -1)
    words: list[str | None] = [None] * len(labels)
    between = [""] * len(labels)
    owners_of = score_owners(ratings, labels, n_classes)
    if owners_of is None:
        return stated, words, between
    top = float(np.nanmax(np.asarray(ratings, dtype=float)))
    bottom = float(np.nanmin(np.asarray(ratings, dtype=float)))
    for i, text in enumerate(texts):
        found = scores_in(text, top, bottom)
        if not found:
            continue
        owners = []
        for phrase, readings in found:
            read = {_owner(value, *owners_of) for value in readings}
            if len(read) == 1:
                owners.append((phrase, read.pop()))  # readings that disagree say nothing: the phrase is left out
        if not owners:
            continue
        words[i] = ", ".join(list(dict.fromkeys(p for p, _ in owners))[:3])
        classes = {c for _, c in owners}
        if -1 in classes:
            middle = next(p for p, c in owners if c == -1)
            between[i] = f"{middle!r}, a score that no one class holds"
        elif len(classes) > 1:
            between[i] = "scores of different classes (" + words[i] + ")"
        else:
            stated[i] = classes.pop()
    return stated, words, between


def scores_in(text: str, top: float, bottom: float = 0.0) -> list[tuple[str, list[float]]]:
    """(phrase, its readings on the data's scale) of each score the text states (the first ``_MOST`` of each form):
    one for "7/10"; a star count without its scale, two (out of 5 and out of 10) unless the data's own scale is 5 or
    less. A score v of n is v / n of the scale's top (of the range ``bottom``..``top`` when it goes below 0)."""
    def scaled(fraction: float) -> float:
        return fraction * top if bottom >= 0 else bottom + fraction * (top - bottom)

    found, taken = [], []
    lower = text.lower()
    fractions = _FRACTION.finditer(text) if "/" in text or "out" in lower else ()
    for m in itertools.islice(fractions, _MOST):
        value, of = _number(m.group(1)), _number(m.group(2))
        taken.append(m.span())
        if value <= of:
            found.append((m.group(0), [scaled(value / of)]))
    stars = _STARS.finditer(text) if "star" in lower or "*" in text else ()
    rated = (m for m in stars if m.start() == 0 or _RATED.search(text, max(m.start() - 12, 0), m.start()))
    for m in itertools.islice(rated, _MOST):
        value = _number(m.group(1))
        if any(a <= m.start() < b for a, b in taken) or not 0 <= value <= (5 if top <= 5 else 10):
            continue  # "4 stars out of 10" is read above; a count past the scale is no score
        readings = [scaled(value / 5)] if top <= 5 or value > 5 else [scaled(value / 10), scaled(value / 5)]
        found.append((m.group(0), readings))
    return found


def _number(word: str) -> float:
    return float(_WORDS.get(word.lower(), word))


def _owner(value: float, values: np.ndarray, owners: np.ndarray) -> int:
    """The class of a stated score: that of the data's score it equals, or of the data's scores on both sides of it
    when they agree (past either end of the scale: the end's); -1 between scores of two classes."""
    at = int(np.searchsorted(values, value))
    if at < len(values) and np.isclose(values[at], value):
        return int(owners[at])
    below, above = owners[max(at - 1, 0)], owners[min(at, len(values) - 1)]
    return int(below) if below == above else -1


def datalab_issues(labels: np.ndarray, ids, neighbours: pd.DataFrame | None):
    """(id of a near-duplicate with another label or None, is an outlier, outlier score 0..1 (lower = more
    outlying; NaN without neighbours)) per review, from cleanlab's Datalab on the stored neighbour graph."""
    n = len(labels)
    duplicate_of: list[str | None] = [None] * n
    is_outlier, outlier_score = np.zeros(n, dtype=bool), np.full(n, np.nan)
    graph = _knn_graph(n, neighbours)
    if graph is None:
        return duplicate_of, is_outlier, outlier_score
    from cleanlab import Datalab

    lab = Datalab(data={"label": np.asarray(labels)}, label_name="label", verbosity=0)
    lab.find_issues(knn_graph=graph, issue_types={"near_duplicate": {}, "outlier": {}})
    near = lab.get_issues("near_duplicate")
    for i in np.flatnonzero(near["is_near_duplicate_issue"].to_numpy()):
        other = [j for j in near["near_duplicate_sets"].iloc[i] if labels[j] != labels[i]]
        if other:
            duplicate_of[i] = str(ids[other[0]])
    outliers = lab.get_issues("outlier")
    return duplicate_of, outliers["is_outlier_issue"].to_numpy(bool), outliers["outlier_score"].to_numpy(float)


def _knn_graph(n: int, neighbours: pd.DataFrame | None):
    """The neighbours as the sparse distance graph Datalab takes (each row nearest first, the same count per
    row); None when there are too few reviews for one."""
    import scipy.sparse as sp

    if neighbours is None or n < 5 or not len(neighbours):
        return None
    counts = np.bincount(neighbours["row"].to_numpy(), minlength=n)
    k = int(counts.min())
    if k < 1:
        return None
    kept = neighbours.sort_values(["row", "rank"]).groupby("row", sort=True).head(k)  # each row's k nearest
    distance = np.clip(1.0 - kept["similarity"].to_numpy(np.float64), 0.0, None)
    return sp.csr_matrix((distance, kept["neighbour_row"].to_numpy(), np.arange(0, n * k + 1, k)), shape=(n, n))


def attach(found: pd.DataFrame, evidence: pd.DataFrame, classes) -> pd.DataFrame:
    """``found`` (analyses.issues) with the evidence columns, and each reason told the evidence that speaks."""
    reasons = [reason + "".join(f"; {part}" for part in describe(row, classes))
               for reason, row in zip(found["reason"], evidence.itertuples(index=False))]
    return pd.concat([found.assign(reason=reasons), evidence.set_index(found.index)], axis=1)


def describe(row, classes) -> list[str]:
    """The evidence of one review (an ``EVIDENCE_COLUMNS`` row) as short phrases, the strongest first."""
    parts = []
    told = row.ambiguity if isinstance(row.ambiguity, str) else ""
    stated_text = row.stated_text if isinstance(row.stated_text, str) else ""
    if row.suggestion == "ambiguous":
        parts.append(f"ambiguous rather than mislabeled: {row.ambiguity}")
    if row.n_models > 1 and row.models_disagree:
        parts.append(f"{row.models_disagree} of {row.n_models} models that never saw it disagree with the label")
    if stated_text and "own score" not in told and row.stated_label >= 0 and row.suggestion != "keep":
        parts.append(f"the text states {row.stated_text!r}, a score of {classes[row.stated_label]!r}")
    elif stated_text and "own score" in told:
        parts.append(f"it states {row.stated_text!r}")
    if row.suggestion == "keep" and row.stated_label >= 0 and stated_text:
        parts.insert(0, f"keep the label: the text's own score ({row.stated_text!r}) agrees with it")
    if row.neighbours_disagree == row.neighbours_disagree and row.neighbours_disagree >= 0.5:
        parts.append(f"{row.neighbours_disagree:.0%} of its nearest reviews are labeled otherwise")
    if isinstance(row.duplicate_of, str):
        parts.append(f"a near-duplicate ({row.duplicate_of}) is labeled otherwise")
    if row.is_outlier:
        parts.append("it is unlike the other texts (an outlier)")
    return parts


def doubted(labels, ranked_probs, stated) -> np.ndarray:
    """The reviews whose label the ranked models or the text's own score doubt (those that get a suggestion)."""
    labels = np.asarray(labels)
    stated = np.asarray(stated)
    return (predicted_class(np.asarray(ranked_probs)) != labels) | ((stated >= 0) & (stated != labels))
