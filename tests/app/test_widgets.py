"""Shared UI pieces: a link to a text on Sample analysis keeps hostile ids inside its own parameter."""

from urllib.parse import parse_qs, urlsplit

import pytest

from pages.common.widgets import sample_link
from tests.conftest import HOSTILE_CLASSES


@pytest.mark.parametrize("sample_id", ["test/neg/10003_3", "a&run=other#top ?x=1", "javascript:alert(1)", " 5",
                                       "//evil.example/x", "\x00\u202e", *HOSTILE_CLASSES])
def test_a_sample_link_carries_the_id_and_run_as_given_and_stays_in_the_app(sample_id):
    link = urlsplit(sample_link("run-1", sample_id))
    assert (link.scheme, link.netloc, link.path, link.fragment) == ("", "", "sample_analysis", "")
    assert parse_qs(link.query, keep_blank_values=True) == {"run": ["run-1"], "sample": [sample_id]}
