"""Sample filters and sort, kept in the URL (``st.query_params``) so a view can be shared.

``FILTERS`` names every fixed filter and its default; the data's own columns add one
filter each (``meta_filters``: categories pick values, numbers a range), kept in the URL
as ``m.<column>``; ``?sort=`` holds the order (``-n_words``: most words first) and
``?map=`` the map whose clusters the cluster filter means. ``from_url()`` seeds the
widgets' session state from the URL once per visit and returns notes on what it could
not use as written (a value it cannot read is ignored, a range is clamped to the
slider's bounds or ignored when none of it is inside them, values the widgets do not
offer are dropped, unknown parameters are ignored): the page shows them, so a link is
never silently turned into another filter. ``to_url()`` writes non-default values back,
and ``spec(values, decided)`` turns them into a ``queries.SampleFilter``, which the store
applies in SQL (so a million reviews never reach the page). Lists are repeated URL
parameters (``?label=a&label=b``), so a class name may hold a comma.
"""

from __future__ import annotations

import dataclasses
import math
import re

import pandas as pd
import streamlit as st

from pages.common.queries import SPACE, SampleFilter

STATUSES = ("any", "undecided", "mislabeled", "correct", "ambiguous")
# key -> default; list values are repeated URL parameters
FILTERS = {
    "split": [], "label": [], "pred": [], "outcome": "all", "rating": (1, 10), "loss": (0.0, None),
    "words": (0, None), "cluster": [], "status": "any", "flagged": False, "q": "",
}
META_PREFIX = "m."
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf(?:inity)?", re.ASCII | re.IGNORECASE)
MAX_VALUE_CHARS = 200  # a URL value longer than this is not a filter anyone typed: ignored unread


@dataclasses.dataclass(frozen=True)
class MetaFilter:
    """A filter on one of the data's own columns."""

    index: int  # position among the run's metadata columns: the widget key is f_meta_<index>
    name: str  # the column's name (untrusted; a bound value in SQL)
    kind: str  # 'category' | 'number'
    bounds: tuple[float, float] | None = None  # numbers

    @property
    def key(self) -> str:
        return f"f_meta_{self.index}"

    @property
    def url_key(self) -> str:
        return META_PREFIX + self.name


def meta_filters(columns: pd.DataFrame) -> list[MetaFilter]:
    """One filter per category or number column of the run (text columns have none)."""
    out = []
    for i, c in enumerate(columns.itertuples()):
        if c.kind == "category":
            out.append(MetaFilter(i, c.name, "category"))
        elif c.kind == "number" and c.lo == c.lo and c.hi == c.hi and c.lo < c.hi:
            lo, hi = float(c.lo), float(c.hi)
            out.append(MetaFilter(i, c.name, "number", (lo, hi)))
    return out


CHOICES = {"outcome": ("all", "correct", "incorrect"), "status": STATUSES}
SORT_KEY = "sort"  # ?sort=n_words (ascending) or ?sort=-n_words (descending)
DEFAULT_SORT = "-loss"
PAGE_KEY = "page"
PAGE_KEYS = {"run", "map", SORT_KEY, PAGE_KEY}  # URL parameters the page reads that are not filters
LINK = "samples_link"  # the session's last Samples link, restored when the page is opened with a bare URL


class BadValue(ValueError):
    """A URL value that cannot be read; the message says what was expected."""


def _number(text: str) -> float:
    """An ASCII decimal number ('7', '-0.5', '1e3', 'inf'); no NaN, digit separators or other scripts' digits."""
    if not _NUMBER.fullmatch(text.strip()):
        raise BadValue("not a number")
    return float(text)


def _split_range(text: str) -> tuple[str, str]:
    """'2-7', '2..7', '-5-40', '1e-3-2' -> its two ends; a single value is both (a linear scan, no backtracking)."""
    text = text.strip()
    if ".." in text:
        lo, hi = text.split("..", 1)
        return lo, hi
    for i in range(1, len(text)):
        if text[i] == "-" and text[i - 1] not in "eE":
            return text[:i], text[i + 1:]
    return text, text


def _parse(key: str, raw: list[str], default, integer: bool = True):
    if isinstance(default, bool):
        if raw[-1] not in ("0", "1"):
            raise BadValue("expected 1 or 0")
        return raw[-1] == "1"
    if isinstance(default, list):
        return [v for item in raw for v in ([item] if "," not in item else item.split(",")) if v]
    if isinstance(default, tuple):
        try:
            lo, hi = map(_number, _split_range(raw[-1]))
        except ValueError:
            raise BadValue("expected a range such as 2-7") from None
        if lo > hi:
            raise BadValue("the range's start is above its end")
        return lo, hi
    if key in CHOICES and raw[-1] not in CHOICES[key]:
        raise BadValue(f"expected one of {', '.join(CHOICES[key])}")
    return raw[-1]


def _clamped(value: tuple, bounds: tuple) -> tuple | None:
    """A range from the URL, kept inside the slider's bounds; None when no part of it is inside."""
    lo, hi = bounds
    if value[1] < lo or value[0] > hi:
        return None
    return max(lo, value[0]), min(hi, value[1])


def _format(value) -> str | list[str]:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, tuple):
        return f"{value[0]:g}-{value[1]:g}"
    return str(value)


def _raw(key: str) -> list[str] | None:
    values = st.query_params.get_all(key)
    return values or None


def _said(key: str, raw: list[str]) -> str:
    return f"{key}={'&'.join(raw)}" if len(raw) == 1 else f"{key}=" + " & ".join(raw)


def _seed(key: str, url_key: str, default, bounds, offered, integer: bool, notes: list[str]):
    """The widget value for one filter from the URL (or its default), noting what was ignored or changed."""
    raw = _raw(url_key)
    if raw is None:
        return default
    if any(len(v) > MAX_VALUE_CHARS for v in raw):
        notes.append(f"{url_key} was ignored: its value is longer than {MAX_VALUE_CHARS} characters.")
        return default
    try:
        value = _parse(key, raw, default if not isinstance(default, tuple) else (0, 0), integer)
    except (BadValue, OverflowError) as exc:
        notes.append(f"{_said(url_key, raw)} was ignored: {exc}.")
        return default
    if isinstance(default, tuple):
        kept = _clamped(value, bounds)
        if kept is None:
            notes.append(f"{_said(url_key, raw)} was ignored: no value is in this data's range "
                         f"{_format(tuple(bounds))}.")
            return default
        if integer and key != "loss":  # whole values only: the ones inside the range asked for
            kept = (int(math.ceil(kept[0])), int(math.floor(kept[1])))
            if kept[0] > kept[1]:
                notes.append(f"{_said(url_key, raw)} was ignored: it holds no whole value.")
                return default
        if kept != value:
            notes.append(f"{_said(url_key, raw)} was read as {_format(kept)} (this data's range"
                         + (", whole values" if integer and key != "loss" else "") + ").")
        return kept
    if isinstance(default, list) and offered is not None:
        offered = offered() if callable(offered) else offered
        by_text = {str(o) for o in offered}
        unknown = [v for v in value if str(v) not in by_text]
        if unknown:
            notes.append(f"{url_key}: {', '.join(map(repr, unknown))} "
                         f"{'is' if len(unknown) == 1 else 'are'} not in this data and "
                         f"{'was' if len(unknown) == 1 else 'were'} ignored.")
        return [v for v in value if str(v) in by_text]
    return value


def _seed_choice(key: str, url_key: str, default: str, offered: list[str], notes: list[str]) -> bool:
    """A single choice (the map whose clusters filter, the sort) from the URL, if it is one of ``offered``.
    Returns False when the URL asked for something else (noted)."""
    skey = f"f_{key}"
    raw = _raw(url_key)
    value, ok = default, True
    if raw is not None:
        if raw[-1] in offered:
            value = raw[-1]
        else:
            shown = raw[-1] if len(raw[-1]) <= 60 else raw[-1][:60] + "…"
            notes.append(f"{url_key}={shown} was ignored: expected one of {', '.join(offered)}.")
            ok = False
    st.session_state[skey] = value
    return ok


def from_url(bounds: dict, metas: list[MetaFilter] = (), offered: dict | None = None,
             meta_offered=lambda meta: None, sortable: tuple[str, ...] = (), spaces: tuple[str, ...] = ()) -> list[str]:
    """Seed widget state (keys 'f_<name>', 'f_meta_<i>') from the URL once per page visit.

    ``offered`` maps list filters to the values their widgets offer and ``meta_offered(meta)``
    gives a category column's values. A value that cannot be read is ignored, a range is
    clamped to the slider's bounds (ignored when none of it is inside them), values not
    offered are dropped; each is noted. Returns those notes (kept in the session's
    ``url_notes`` for the rest of the visit), empty when the URL was read as written.
    """
    offered = offered or {}
    if all(f"f_{key}" in st.session_state for key in FILTERS) and all(m.key in st.session_state for m in metas):
        return st.session_state.get("url_notes", [])
    notes: list[str] = []
    for key in ("f_sort", "f_map"):  # a new visit: the link says which, not an earlier visit's leftovers
        st.session_state.pop(key, None)
    if sortable:
        _seed_choice("sort", SORT_KEY, DEFAULT_SORT, [f"{sign}{c}" for c in sortable for sign in ("-", "")], notes)
    if spaces and not _seed_choice("map", "map", spaces[0], list(spaces), notes) and _raw("cluster"):
        notes.append(f"{_said('cluster', _raw('cluster'))} was ignored: it numbers the clusters of a map this run "
                     "does not have.")
        st.session_state["f_cluster"] = []
    for key, default in FILTERS.items():
        skey = f"f_{key}"
        if skey in st.session_state:
            continue
        if key == "rating" and not bounds.get("rating"):
            if _raw(key):
                notes.append(f"{_said(key, _raw(key))} was ignored: this data has no score column.")
            st.session_state[skey] = default
            continue
        base = default if not isinstance(default, tuple) else bounds.get(key, default)
        integer = not isinstance(bounds.get(key, (0, 0))[0], float)
        st.session_state[skey] = _seed(key, key, base, base, offered.get(key), integer, notes)
    for meta in metas:
        if meta.key in st.session_state:
            continue
        base = [] if meta.kind == "category" else meta.bounds
        choices = meta_offered(meta) if meta.kind == "category" and _raw(meta.url_key) else None
        st.session_state[meta.key] = _seed("meta", meta.url_key, base, meta.bounds, choices, False, notes)
    known = {*FILTERS, *PAGE_KEYS, *(m.url_key for m in metas)}
    unknown = [k for k in st.query_params if k not in known]
    if unknown:
        notes.append(f"{', '.join(unknown)}: not a filter of this page, ignored.")
    st.session_state["url_notes"] = notes
    return notes


def values(metas: list[MetaFilter] = ()) -> dict:
    out = {key: st.session_state.get(f"f_{key}", default) for key, default in FILTERS.items()}
    out["meta"] = {m.index: st.session_state.get(m.key) for m in metas}
    out["map"] = st.session_state.get("f_map")
    return out


def page_from_url(pages: int, notes: list[str]) -> int:
    """The page number a link asks for, if it is one of the ``pages``; else 1, noted."""
    raw = _raw(PAGE_KEY)
    if raw is None:
        return 1
    if raw[-1].isdigit() and 1 <= int(raw[-1]) <= pages:
        return int(raw[-1])
    notes.append(f"{_said(PAGE_KEY, raw)} was ignored: there are {pages:,} pages.")
    return 1


def page_to_url(page: int) -> None:
    if page > 1:
        st.query_params[PAGE_KEY] = str(page)
    else:
        st.query_params.pop(PAGE_KEY, None)


def remember_link() -> None:
    """Keep the page's URL parameters for this session (``restore_link``)."""
    st.session_state[LINK] = {k: st.query_params.get_all(k) for k in st.query_params if k != "run"}


def restore_link() -> None:
    """Opened again in this session with no parameters (the sidebar link): put the last view's back in the URL,
    so the filters, sort and page are as the reviewer left them."""
    saved = st.session_state.get(LINK)
    if saved and not any(k != "run" for k in st.query_params) and "f_split" not in st.session_state:
        for key, values in saved.items():
            st.query_params[key] = values


def choice_to_url(key: str, url_key: str, default: str) -> None:
    """Keep a single choice ('f_sort', 'f_map') in the URL when it is not the default."""
    value = st.session_state.get(f"f_{key}", default)
    if value == default:
        st.query_params.pop(url_key, None)
    else:
        st.query_params[url_key] = value


def to_url(current: dict, bounds: dict, metas: list[MetaFilter] = ()) -> None:
    for key, default in FILTERS.items():
        value = current[key]
        base = bounds.get(key, default) if isinstance(default, tuple) else default
        if value == base or value in ("", []) or value is None:
            st.query_params.pop(key, None)
        else:
            st.query_params[key] = _format(value)
    for meta in metas:
        value = current["meta"].get(meta.index)
        if value in ([], None) or value == meta.bounds:
            st.query_params.pop(meta.url_key, None)
        else:
            st.query_params[meta.url_key] = _format(list(value) if meta.kind == "category" else tuple(value))


def keep_offered(key: str, offered: list) -> None:
    """Turn the values in a multiselect's state into its options (the URL holds text: '1' is cluster 1) and drop
    those the options do not hold (a hand-edited URL)."""
    skey = f"f_{key}" if not key.startswith("f_") else key
    by_text = {str(o): o for o in offered}
    st.session_state[skey] = [by_text[str(v)] for v in st.session_state.get(skey, []) if str(v) in by_text]


def spec(f: dict, decided: pd.DataFrame, classes: tuple[str, ...], metas: list[MetaFilter] = (),
         has_rating: bool = True) -> SampleFilter:
    """The filter the store runs for these widget values; ``decided`` is ``decisions.current``."""
    index = {name: k for k, name in enumerate(classes)}
    only, excluded = None, ()
    if f["status"] == "undecided":
        excluded = tuple(decided["sample_id"]) if len(decided) else ()
    elif f["status"] != "any":
        only = tuple(decided.loc[decided["decision"] == f["status"], "sample_id"]) if len(decided) else ()
    meta_values, meta_ranges = [], []
    for meta in metas:
        value = f["meta"].get(meta.index)
        if meta.kind == "category" and value:
            meta_values.append((meta.name, tuple(str(v) for v in value)))
        elif meta.kind == "number" and value and tuple(value) != meta.bounds:
            meta_ranges.append((meta.name, float(value[0]), float(value[1])))
    loss_hi = f["loss"][1]
    return SampleFilter(
        cluster_space=f.get("map") or SPACE,
        splits=tuple(f["split"]), labels=tuple(index[v] for v in f["label"] if v in index),
        preds=tuple(index[v] for v in f["pred"] if v in index), outcome=f["outcome"],
        rating=tuple(f["rating"]) if has_rating else None,
        loss=(f["loss"][0], None if loss_hi is None or math.isinf(loss_hi) else loss_hi), words=tuple(f["words"]),
        clusters=tuple(int(c) for c in f["cluster"] if str(c).lstrip("-").isdigit()), flagged=bool(f["flagged"]),
        search=f["q"], only_ids=only, except_ids=excluded, meta_values=tuple(meta_values),
        meta_ranges=tuple(meta_ranges),
    )
