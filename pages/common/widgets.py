"""UI pieces shared by pages: SHAP-highlighted review text and the decision panel.

Review text is untrusted: ``highlight_html`` escapes every word with
``html.escape`` before wrapping it in markup, so ``<script>`` shows as text.
"""

from __future__ import annotations

import html
import re

import pandas as pd
import streamlit as st

from pages.common import decisions
from pages.common.state import Context

LABELS = {0: "negative", 1: "positive"}
_WORD = re.compile(r"\w[\w']*|\s+|[^\w\s]+")
_POS, _NEG = (22, 163, 74), (220, 38, 38)


def word_scores(text: str, tokens: pd.DataFrame) -> list[tuple[str, float]]:
    """Split ``text`` into pieces, each with the SHAP mass of the n-grams it is part of.

    A unigram's value goes to the word; a bigram's is split between its two words.
    """
    values = {r.token: r.shap_value for r in tokens.itertuples() if r.kind == "token"}
    pieces = _WORD.findall(text)
    words = [(i, p.lower()) for i, p in enumerate(pieces) if re.match(r"\w", p)]
    score = [0.0] * len(pieces)
    for n, (i, w) in enumerate(words):
        score[i] += values.get(w, 0.0)
        if n + 1 < len(words):
            j, w2 = words[n + 1]
            half = values.get(f"{w} {w2}", 0.0) / 2
            score[i] += half
            score[j] += half
    return list(zip(pieces, score))


def highlight_html(text: str, tokens: pd.DataFrame) -> str:
    """Escaped HTML of ``text`` with words tinted green (toward positive) or red (toward negative)."""
    scored = word_scores(text, tokens)
    top = max((abs(s) for _, s in scored), default=0.0) or 1.0
    out = []
    for piece, s in scored:
        safe = html.escape(piece).replace("\n", "<br>")
        if s == 0.0:
            out.append(safe)
            continue
        r, g, b = _POS if s > 0 else _NEG
        alpha = 0.15 + 0.6 * abs(s) / top
        out.append(f'<span title="SHAP {s:+.3f}" style="background:rgba({r},{g},{b},{alpha:.2f});'
                   f'border-radius:3px;padding:0 1px">{safe}</span>')
    return '<div class="lossmap-review" style="line-height:1.7">' + "".join(out) + "</div>"


LEGEND_HTML = (
    '<span style="background:rgba(22,163,74,.6);padding:0 6px;border-radius:3px">pushes toward positive</span> '
    '<span style="background:rgba(220,38,38,.6);padding:0 6px;border-radius:3px">pushes toward negative</span> '
    '<span style="color:gray">stronger tint = larger |SHAP value| (logit units); top 30 n-grams shown</span>'
)


def decision_panel(ctx: Context, row: dict, *, key: str) -> str | None:
    """Buttons to decide on one review, plus a note. Returns the decision recorded, if any."""
    st.text_input("Note (optional)", key=f"note_{key}", max_chars=500)
    cols = st.columns(4)
    chosen = None
    for col, (value, label) in zip(cols, [*decisions.DECISIONS.items(), ("skip", "Skip")]):
        if col.button(label, key=f"{value}_{key}", width="stretch",
                      type="primary" if value == "mislabeled" else "secondary"):
            chosen = value
    if chosen and chosen != "skip":
        decisions.record(
            ctx.decisions, sample_id=row["sample_id"], decision=chosen, old_label=int(row["label"]),
            rating=int(row["rating"]), score=float(row["label_score"]), sample_path=row.get("path"),
            note=st.session_state.get(f"note_{key}", ""), run_id=ctx.run_id, reviewer=ctx.reviewer,
        )
        st.toast(f"Recorded: {decisions.DECISIONS[chosen]} for {row['sample_id']}")
    return chosen


def pct(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.1%}"
