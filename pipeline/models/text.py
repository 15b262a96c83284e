"""Texts as word n-gram counts, computed once and shared by every model and the maps.

``tokenize(texts, *, ngram_max, min_df)`` -> ``Corpus``: one (N, V) sparse count matrix over
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
        return np.flatnonzero(_single_words(self.vocab))

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


def tokenize(texts: pd.Series, *, ngram_max: int, min_df: int = 1, engine=None, chunk: int = 100_000) -> Corpus:
    """Count every word n-gram (1..ngram_max) of every text.

    Longer n-grams found in fewer than ``min_df`` texts are left out (every single word is kept): no model can use
    them, as each keeps the n-grams in at least ``min_df`` of its own training texts (models.linear), the maps
    those in ``min_df`` texts (analyses.project), and the dense network single words only. On review text they
    are most of the vocabulary (IMDB: 3.0 M of 3.5 M), so the counts and the vocabulary shrink without changing a
    figure.

    With more than ``chunk`` texts (``cfg.chunk_rows``) they are counted a chunk at a time, through ``engine``
    (Ray tasks with ``--engine ray``; None: in this process): a first pass finds in how many texts each n-gram
    occurs (each chunk's n-grams, merged), a second counts the kept n-grams. sklearn's counting holds a Python list
    entry per count, so one pass over a million reviews holds one for each of their 330 M counts at once; in chunks
    that list is one chunk's. The first pass holds every chunk's n-grams until they are merged, so on small data
    chunks cost more memory than one pass (5,000 reviews in chunks of 1,000: 654 MiB against 444), and about twice
    the time. The result is the same matrix as one pass (tests/pipeline/models/test_text.py)."""
    from pipeline.engine import LocalEngine, spans

    texts = pd.Series(texts).reset_index(drop=True)
    bounds = spans(len(texts), chunk)
    if len(bounds) <= 1:
        try:
            counts, vocab = _count(texts, ngram_max, None)
        except ValueError:  # no text holds a single word: an empty vocabulary
            return _no_words(len(texts), ngram_max)
        keep = _kept(vocab, _doc_freq(counts), min_df, len(texts))
        return Corpus(counts[:, keep] if len(keep) < len(vocab) else counts, vocab[keep], ngram_max)
    engine = engine or LocalEngine()
    chunks = [texts[a:b].tolist() for a, b in bounds]  # both passes' jobs
    found = [f for f in engine.map(_doc_freq_chunk, (ngram_max,), chunks, desc="tokenize: find") if len(f[0])]
    if not found:
        return _no_words(len(texts), ngram_max)
    doc_freq = pd.concat([pd.Series(df, index=pd.Index(vocab, dtype=object)) for vocab, df in found])
    doc_freq = doc_freq.groupby(level=0, sort=True).sum()  # sorted, as one CountVectorizer orders its columns
    del found
    vocab = doc_freq.index.to_numpy(dtype=object)
    vocab = vocab[_kept(vocab, doc_freq.to_numpy(), min_df, len(texts))]
    parts = engine.map(_count_chunk, (ngram_max, vocab), chunks, desc="tokenize: count")
    return Corpus(sp.vstack(parts, format="csr", dtype=np.float32), vocab, ngram_max)


def _no_words(n: int, ngram_max: int) -> Corpus:
    """The corpus of ``n`` texts none of which holds a word: an empty vocabulary."""
    return Corpus(sp.csr_matrix((n, 0), dtype=np.float32), np.array([], dtype=object), ngram_max)


def _single_words(vocab: np.ndarray) -> np.ndarray:
    """(V,) bool: which terms are single words (an n-gram's words are joined by spaces)."""
    return np.fromiter((" " not in term for term in vocab), dtype=bool, count=len(vocab))


def _doc_freq(counts: sp.csr_matrix) -> np.ndarray:
    """(V,) how many texts (rows) hold each term."""
    return np.asarray((counts > 0).sum(axis=0)).ravel().astype(np.int64)


def _vectorizer(ngram_max: int, vocabulary) -> CountVectorizer:
    return CountVectorizer(lowercase=True, token_pattern=TOKEN_PATTERN, ngram_range=(1, ngram_max),
                           dtype=np.float32, vocabulary=vocabulary)


def _count(texts, ngram_max: int, vocabulary) -> tuple[sp.csr_matrix, np.ndarray]:
    vec = _vectorizer(ngram_max, vocabulary)
    counts = vec.fit_transform(texts).tocsr()
    return counts, np.asarray(vec.get_feature_names_out(), dtype=object)


def _kept(vocab: np.ndarray, doc_freq: np.ndarray, min_df: int, n: int) -> np.ndarray:
    """Columns kept: every single word, and the longer n-grams in at least min(min_df, n) texts."""
    return np.flatnonzero(_single_words(vocab) | (doc_freq >= min(min_df, n)))


def _doc_freq_chunk(shared, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A chunk's n-grams and the number of its texts holding each (nothing when no text holds a word)."""
    try:
        counts, vocab = _count(texts, shared[0], None)
    except ValueError:
        return np.array([], dtype=object), np.array([], dtype=np.int64)
    return vocab, _doc_freq(counts)


def _count_chunk(shared, texts: list[str]) -> sp.csr_matrix:
    ngram_max, vocab = shared
    return _vectorizer(ngram_max, vocab).transform(texts).tocsr().astype(np.float32)
