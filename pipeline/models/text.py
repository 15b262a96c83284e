"""Texts as word n-gram counts, computed once and shared by every model and the maps.

``tokenize(texts, *, ngram_max)`` -> ``Corpus``: one (N, V) sparse count matrix over
every word n-gram (1..ngram_max) in the corpus, label-free, so all folds and families
share it; each model then keeps the columns its own training rows support.
``TOKEN_PATTERN`` is the one definition of a word, for these counts and for the
sequence networks' word ids (``pipeline.models.sequences``).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

TOKEN_PATTERN = r"(?u)\b\w[\w']*\b"  # words, keeping inner apostrophes ("didn't")


@dataclasses.dataclass(frozen=True)
class Corpus:
    counts: sp.csr_matrix  # (N, V) float32 n-gram counts
    vocab: np.ndarray  # (V,) n-gram strings, column order of counts
    ngram_max: int

    @functools.cached_property
    def unigrams(self) -> np.ndarray:
        """Column indices of the single words (computed once: the vocabulary holds millions of n-grams)."""
        return np.flatnonzero(np.fromiter((" " not in term for term in self.vocab), dtype=bool, count=len(self.vocab)))

    @functools.cached_property
    def vocab_index(self) -> pd.Index:
        """The vocabulary as an index (its hash table built once, not once per model looking its terms up)."""
        return pd.Index(self.vocab)

    def tokenizer_spec(self) -> dict:
        """How text becomes n-grams; shipped with every exported model."""
        return {
            "lowercase": True,
            "html_line_breaks": "replaced by a newline before tokenizing",
            "token_pattern": TOKEN_PATTERN,
            "ngram_range": [1, self.ngram_max],
            "analyzer": "sklearn.feature_extraction.text.CountVectorizer(analyzer='word')",
        }


def tokenize(texts: pd.Series, *, ngram_max: int) -> Corpus:
    """Count every word n-gram (1..ngram_max) of every text."""
    vec = CountVectorizer(lowercase=True, token_pattern=TOKEN_PATTERN, ngram_range=(1, ngram_max), dtype=np.float32)
    try:
        counts = vec.fit_transform(texts)
    except ValueError:  # no text holds a single word: an empty vocabulary
        return Corpus(sp.csr_matrix((len(texts), 0), dtype=np.float32), np.array([], dtype=object), ngram_max)
    return Corpus(counts.tocsr(), vec.get_feature_names_out(), ngram_max)
