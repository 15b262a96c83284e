import pandas as pd

from pipeline.models.text import tokenize


def test_counts_every_ngram_keeping_inner_apostrophes():
    corpus = tokenize(pd.Series(["I didn't like it", "didn't like"]), ngram_max=2)
    assert {"didn't", "didn't like", "like it"} <= set(corpus.vocab)
    assert corpus.counts.shape == (2, len(corpus.vocab))
    assert corpus.tokenizer_spec()["ngram_range"] == [1, 2]


def test_texts_without_a_word_give_an_empty_vocabulary():
    corpus = tokenize(pd.Series(["!!!", "..."]), ngram_max=2)
    assert corpus.counts.shape == (2, 0)
