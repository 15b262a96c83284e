"""``analyses.attribution.occlusion`` on the networks a real run stored: the whole text gives the stored score, and
each word's value is the score lost without it."""

import re

import numpy as np
import pytest

from pipeline.analyses.attribution import occlusion
from pipeline.models.score import load_stored
from pipeline.models.text import TOKEN_PATTERN


def _longest(store_ro, run_id, family):
    return store_ro.execute(
        "SELECT s.sample_id, s.display_text, p.model_id, p.probs FROM samples s JOIN predictions p "
        "USING (run_id, sample_id) WHERE run_id = ? AND p.family = ? AND p.protocol = 'oof' "
        "ORDER BY s.n_words DESC, s.sample_id LIMIT 1", [run_id, family]).fetchone()


def _log_odds(p):
    return np.log(p) - np.log1p(-p)


def test_a_cnn_reading_is_the_stored_score_and_each_word_the_score_lost_without_it(sample_run, store_ro):
    sample_id, text, model_id, probs = _longest(store_ro, sample_run.run_id, "cnn")
    model = load_stored(sample_run.db, sample_run.run_id, model_id, device="cpu")
    words = occlusion(model, text, 1)
    assert words.attrs["p_target"] == pytest.approx(probs[1], abs=1e-6)  # the fold model's stored score
    tokens = [w.lower() for w in re.findall(TOKEN_PATTERN, text)]
    assert words["token"].tolist() == tokens
    max_len = model.tokenizer["max_len"]
    assert len(tokens) > max_len, "the longest review of the sample should be cut"
    assert words["read"].sum() == max_len and words.loc[~words["read"], "value"].isna().all()
    # head+tail: the first and last max_len / 2 words are read, the middle is not
    assert words["read"].iloc[: max_len // 2].all() and words["read"].iloc[-(max_len // 2):].all()
    # one word, checked by hand: the read words without it, through the same ONNX file
    index = {w: i + 2 for i, w in enumerate(model.vocab)}
    read = [index.get(w, 1) for w in words.loc[words["read"], "token"]]
    j = 5
    without = np.zeros((1, max_len), dtype=np.int64)
    without[0, : len(read) - 1] = read[:j] + read[j + 1:]
    lost = _log_odds(probs[1]) - _log_odds(model.score_ids(without)[0][0, 1])
    assert words.loc[words["read"], "value"].iloc[j] == pytest.approx(lost, abs=1e-4)


def test_the_dense_network_values_a_word_the_same_wherever_it_occurs(sample_run, store_ro):
    sample_id, text, model_id, probs = _longest(store_ro, sample_run.run_id, "dense")
    model = load_stored(sample_run.db, sample_run.run_id, model_id, device="cpu")
    words = occlusion(model, text, 0)
    assert words.attrs["p_target"] == pytest.approx(probs[0], abs=1e-6)
    known = words[words["read"]]
    assert len(known) and known.groupby("token")["value"].nunique().max() == 1
    assert words.loc[~words["read"], "value"].isna().all()  # words outside its vocabulary have no say
    assert set(words.loc[~words["read"], "token"]).isdisjoint(set(model.vocab))
