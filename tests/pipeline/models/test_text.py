import numpy as np
import pandas as pd
import pytest

from pipeline.models.text import tokenize


def test_counts_every_ngram_keeping_inner_apostrophes():
    corpus = tokenize(pd.Series(["I didn't like it", "didn't like"]), ngram_max=2)
    assert {"didn't", "didn't like", "like it"} <= set(corpus.vocab)
    assert corpus.counts.shape == (2, len(corpus.vocab))
    assert corpus.tokenizer_spec()["ngram_range"] == [1, 2]


def test_texts_without_a_word_give_an_empty_vocabulary():
    corpus = tokenize(pd.Series(["!!!", "..."]), ngram_max=2)
    assert corpus.counts.shape == (2, 0)


TEXTS = pd.Series(["A fine film, a fine cast.", "The cast was fine but the film dragged.", "!!!",
                   "Dragged on and on; the film's end was fine.", "Fine, fine, fine.", "I didn't like the cast",
                   "the film the film the film", "An odd one: nothing here repeats"])


def test_longer_ngrams_in_too_few_texts_are_left_out_and_every_word_kept():
    every = tokenize(TEXTS, ngram_max=2)
    pruned = tokenize(TEXTS, ngram_max=2, min_df=2)
    words = [t for t in every.vocab if " " not in t]
    assert [t for t in pruned.vocab if " " not in t] == words  # "odd", "repeats": once each, kept
    doc_freq = dict(zip(every.vocab, (every.counts > 0).sum(axis=0).A1))
    assert [t for t in pruned.vocab if " " in t] == [t for t in every.vocab if " " in t and doc_freq[t] >= 2]
    assert "the film" in pruned.vocab and "odd one" not in pruned.vocab
    kept = every.vocab_index.get_indexer(pruned.vocab)
    assert (pruned.counts != every.counts[:, kept]).nnz == 0  # the same counts in the columns kept


@pytest.mark.parametrize("min_df", [1, 2, 3])
def test_counting_in_chunks_gives_the_one_pass_matrix(min_df):
    one = tokenize(TEXTS, ngram_max=2, min_df=min_df)
    chunked = tokenize(TEXTS, ngram_max=2, min_df=min_df, chunk=3)  # 3 chunks, one of them with a text of no word
    assert chunked.vocab.tolist() == one.vocab.tolist()
    assert chunked.counts.shape == one.counts.shape and (chunked.counts != one.counts).nnz == 0
    assert chunked.counts.dtype == np.float32


def test_chunks_of_texts_without_a_word_give_an_empty_vocabulary():
    corpus = tokenize(pd.Series(["!!!", "...", "?"]), ngram_max=2, chunk=2)
    assert corpus.counts.shape == (3, 0)
