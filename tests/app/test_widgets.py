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


def test_spans_tint_only_the_positions_scored_and_escape_the_rest():
    import pandas as pd

    from pages.common.widgets import spans_html

    text = "<b>good</b> and good\nend"
    spans = pd.DataFrame({"start": [3, 16], "end": [7, 20], "value": [1.5, float("nan")]})  # the 2nd was not read
    out = spans_html(text, spans, what="occlusion")
    assert out.count('title="occlusion') == 1 and 'title="occlusion +1.500"' in out
    assert "&lt;b&gt;" in out and "<b>" not in out and "and good<br>end" in out
