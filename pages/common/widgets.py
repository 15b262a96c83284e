"""UI pieces shared by pages: SHAP-highlighted review text, literal text for Markdown, class colours.

Deciding on reviews (one at a time, in batches, undo) lives in ``pages.common.review``.

Review text is untrusted: ``highlight_html`` and ``marked_html`` escape every piece
with ``html.escape`` before wrapping it in markup, so ``<script>`` shows as text;
``visible`` turns control characters and bidirectional overrides into visible marks
(a right-to-left override would otherwise reorder what a reviewer reads), and reviews
longer than ``SHOWN_CHARS`` are shown in part, saying how much is left out.
"""

from __future__ import annotations

import html
import re
import unicodedata
import urllib.parse

import altair as alt
import pandas as pd

from pages.common.naming import quoted


SHOWN_CHARS = 15_000  # longest text a page renders as HTML; the rest is elided, with a note
PERCENT = "%.1f%%"  # every share a table shows: one decimal place, of the share times 100 (``percent``)
MISSING = "\u2013"  # what a table shows for a value it does not have (``st.dataframe(placeholder=...)``)
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# every format character (Unicode category Cf: zero-width, direction, soft hyphen, tags, ...), the C1 controls and
# the line and paragraph separators; the C0 controls get their Control Pictures instead
_MARKED = [c for c in (*range(0x80, 0x30000), *range(0xE0000, 0xE1000))
           if unicodedata.category(chr(c)) in ("Cf", "Cc", "Zl", "Zp")]
_SHOW = {**{c: chr(0x2400 + c) for c in range(32) if chr(c) not in "\n\t"}, 0x7F: "\u2421",
         **{c: f"\u27e6U+{c:04X}\u27e7" for c in _MARKED}}


def visible(text: str) -> str:
    """``text`` with C0 control characters as their Control Pictures (NUL as U+2400) and
    bidirectional controls, C1 controls, zero-width and tag characters as '⟦U+202E⟧' marks,
    so nothing invisible changes what is shown."""
    return text.translate(_SHOW)


def _elided(n: int) -> str:
    return (f'<span class="lossmap-elided" style="color:#6b7280;font-style:italic">[… {n:,} characters not '
            "shown …]</span>")
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


def spans_html(text: str, spans: pd.DataFrame, what: str, limit: int = SHOWN_CHARS) -> str:
    """Escaped HTML of ``text`` with each span (``start``, ``end``, ``value``: character offsets) tinted green
    (value > 0) or red, by position, so that the same word is tinted only where it was scored; the rest plain."""
    rest = max(0, len(text) - limit)
    shown = spans[(spans["end"] <= limit) & spans["value"].notna()].sort_values("start")
    top = float(shown["value"].abs().max()) if len(shown) else 0.0
    top = top or 1.0
    out, at = [], 0
    for start, end, value in shown[["start", "end", "value"]].itertuples(index=False):
        if start < at:
            continue
        out.append(html.escape(visible(text[at:start])).replace("\n", "<br>"))
        r, g, b = _POS if value > 0 else _NEG
        tint = f"background:rgba({r},{g},{b},{0.15 + 0.6 * abs(value) / top:.2f})"
        out.append(f'<span title="{html.escape(what)} {value:+.3f}" style="{tint}">'
                   f"{html.escape(visible(text[start:end]))}</span>")
        at = end
    out.append(html.escape(visible(text[at:limit])).replace("\n", "<br>"))
    if rest:
        out.append(_elided(rest))
    return ("<style>.lossmap-review span{border-radius:3px;padding:0 1px}</style>"
            '<div class="lossmap-review" style="line-height:1.7;overflow-wrap:anywhere;unicode-bidi:isolate">'
            + "".join(out) + "</div>")


def highlight_html(text: str, tokens: pd.DataFrame, limit: int = SHOWN_CHARS, what: str = "SHAP") -> str:
    """Escaped HTML of ``text`` with words tinted green (toward positive) or red (toward negative).

    Only the first ``limit`` characters are rendered; a note says how many are left out.
    """
    rest = max(0, len(text) - limit)
    scored = word_scores(text[:limit], tokens)
    top = max((abs(s) for _, s in scored), default=0.0) or 1.0
    out = []
    for piece, s in scored:
        safe = html.escape(visible(piece)).replace("\n", "<br>")
        if s == 0.0:
            out.append(safe)
            continue
        r, g, b = _POS if s > 0 else _NEG
        alpha = 0.15 + 0.6 * abs(s) / top
        tint = f"background:rgba({r},{g},{b},{alpha:.2f})"
        out.append(f'<span title="{html.escape(what)} {s:+.3f}" style="{tint}">{safe}</span>')
    if rest:
        out.append(_elided(rest))
    return ("<style>.lossmap-review span{border-radius:3px;padding:0 1px}</style>"
            '<div class="lossmap-review" style="line-height:1.7;overflow-wrap:anywhere;unicode-bidi:isolate">'
            + "".join(out) + "</div>")


def marked_html(text: str, start: int, end: int, limit: int = SHOWN_CHARS) -> str:
    """Escaped HTML of ``text`` with ``text[start:end]`` marked as never read by the model.

    Each of the three parts longer than a third of ``limit`` keeps its beginning and
    end around a note of how many characters are left out.
    """
    part = max(1, limit // 3)

    def shown(piece: str) -> str:
        if len(piece) <= part:
            return html.escape(visible(piece))
        return (html.escape(visible(piece[:part // 2])) + _elided(len(piece) - 2 * (part // 2))
                + html.escape(visible(piece[-(part // 2):])))

    return ('<div class="lossmap-review" style="white-space:pre-wrap;line-height:1.6;border:1px solid #e5e7eb;'
            'padding:0.8em;max-height:420px;overflow-y:auto;overflow-wrap:anywhere;unicode-bidi:isolate">'
            f'{shown(text[:start])}<span style="background:#fde68a;color:#6b7280" title="never read by the model">'
            f"{shown(text[start:end])}</span>{shown(text[end:])}</div>")


SHAP_NOTE = "stronger tint = larger |SHAP value| (logit units); top 30 n-grams shown"


def legend_html(toward: str, away: str, note: str = SHAP_NOTE) -> str:
    """The tint legend: green pushes toward ``toward``, red toward ``away`` (class names, escaped), then ``note``."""
    return (
        f'<span style="background:rgba(22,163,74,.6);padding:0 6px;border-radius:3px">pushes toward '
        f"{html.escape(visible(toward))}</span> "
        f'<span style="background:rgba(220,38,38,.6);padding:0 6px;border-radius:3px">pushes toward '
        f"{html.escape(visible(away))}</span> "
        f'<span style="color:gray">{html.escape(note)}</span>'
    )


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$&:=\"'^])")
_WORD_JOINER = "\u2060"  # invisible; splits patterns a renderer acts on even after escapes are undone


def plain(text) -> str:
    """``text`` as literal text for anything Streamlit renders as Markdown (markdown, captions, metrics, widget
    labels, radio options, buttons, toasts).

    Every Markdown and HTML character is backslash-escaped and control characters made
    visible; a word joiner follows every ':' and '@' and splits 'www.', so neither
    Streamlit's ':material/...:' and ':red[...]' directives nor GitHub-style autolinks
    (https://..., www..., a@b.c), which act on the text after escapes are undone, can
    turn data into an icon, a colour or a link.
    """
    out = _MARKDOWN.sub(r"\\\1", visible(str(text)).replace("\n", " "))
    out = out.replace(":", ":" + _WORD_JOINER).replace("@", "@" + _WORD_JOINER)
    return re.sub(r"(?i)(w)(ww)", r"\1" + _WORD_JOINER + r"\2", out)


def class_colors(classes: tuple[str, ...]) -> alt.Scale:
    """One colour per class name: red/green for IMDB's negative/positive, an ordered ramp for numeric classes
    (star ratings), a categorical palette otherwise."""
    names = list(classes)
    if names == ["negative", "positive"]:
        return alt.Scale(domain=names, range=["#dc2626", "#16a34a"])
    if all(re.fullmatch(r"-?\d+", n) for n in names):
        return alt.Scale(domain=names, scheme="redyellowgreen")
    return alt.Scale(domain=names, scheme="tableau20" if len(names) > 10 else "tableau10")


def cluster_colors(ids) -> alt.Scale:
    """A distinct colour per cluster id: Tableau's 10 for up to 10 clusters, evenly spread hues beyond (Tableau's
    20 comes in light/dark pairs that read as one colour on a map)."""
    ids = sorted(int(i) for i in ids)
    if len(ids) <= 10:
        return alt.Scale(domain=ids, scheme="tableau10")
    hues = [(i * 137.508) % 360 for i in range(len(ids))]  # the golden angle keeps consecutive ids apart
    return alt.Scale(domain=ids, range=[f"hsl({h:.0f},{70 if i % 2 else 85}%,{40 if i % 3 else 52}%)"
                                        for i, h in enumerate(hues)])


def rating_text(value, name: str | None) -> str:
    """'7' for a whole rating, '3.25' otherwise, 'n/a' when missing."""
    if name is None or value is None or value != value:
        return "n/a"
    return f"{value:g}"


def sample_link(run_id: str, sample_id: str) -> str:
    """A link to one review of one run on Sample analysis, for ``st.column_config.LinkColumn``: relative to the page
    it is on (``sample_analysis?run=...&sample=...``), every value percent-encoded, so an id can neither end the
    query nor make the link leave the app."""
    return "sample_analysis?" + urllib.parse.urlencode({"run": run_id, "sample": sample_id},
                                                       quote_via=urllib.parse.quote)


def listed(names) -> str:
    """Names for Markdown, each quoted and escaped (``plain``): '“a”, “b” and “c”'."""
    shown = [plain(quoted(n)) for n in names]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"


def percent(shares: pd.Series) -> pd.Series:
    """Shares (0-1) as percentages (0-100), for a table column formatted with ``PERCENT``."""
    return shares * 100


def pct(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.1%}"
