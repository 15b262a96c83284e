import numpy as np
import pytest

from pipeline.models import sequences


def test_words_keep_their_character_offsets():
    texts = ["Hello, World! It's fine", ""]
    seqs = sequences.tokenize_sequences(texts)
    words = [seqs.words[i] for i in seqs.review(0)]
    assert words == ["hello", "world", "it's", "fine"]
    assert [texts[0][s:s + len(w)].lower() for s, w in zip(seqs.starts[:4], words)] == words
    assert list(seqs.lengths) == [4, 0]


def test_vocabulary_keeps_the_words_in_most_reviews_and_maps_the_rest_to_unknown():
    seqs = sequences.tokenize_sequences(["good good film", "good plot", "bad film", "rare"])
    vocab, remap = seqs.vocabulary(np.arange(3), 2)  # the 4th review is not a training row
    assert list(vocab) == ["good", "film"]
    ids = {w: remap[i] for i, w in enumerate(seqs.words)}
    assert ids["good"] == 2 and ids["film"] == 3
    assert ids["plot"] == ids["bad"] == ids["rare"] == sequences.UNKNOWN


def test_head_and_head_tail_cuts_and_padding():
    seqs = sequences.tokenize_sequences(["w0 w1 w2 w3 w4 w5 w6 w7 w8 w9", "w0 w1"])
    remap = np.arange(len(seqs.words)) + 2  # every word known, id = position + 2
    head = sequences.encode(seqs, [0, 1], remap, 4, "head")
    both = sequences.encode(seqs, [0, 1], remap, 4, "head_tail")
    assert head[0].tolist() == [2, 3, 4, 5]
    assert both[0].tolist() == [2, 3, 10, 11]  # w0 w1 ... w8 w9
    assert head[1].tolist() == both[1].tolist() == [2, 3, 0, 0]
    with pytest.raises(ValueError, match="head, head_tail"):
        sequences.encode(seqs, [0], remap, 4, "tail")


def test_windows_cover_every_word_of_long_reviews_only():
    seqs = sequences.tokenize_sequences([" ".join(f"w{i}" for i in range(11)), "short review"])
    remap = np.arange(len(seqs.words)) + 2
    ids, owner = sequences.windows(seqs, [0, 1], remap, 4, 3)
    assert set(owner) == {0}
    covered = set(ids.ravel()) - {0}
    assert covered == set(range(2, 13))  # all 11 words of the long review
    assert ids.shape[1] == 4 and ids[-1].tolist() == [9, 10, 11, 12]  # the last window ends at the last word
