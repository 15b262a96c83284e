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
_RANGE = re.compile(r"^\s*(-?[^-]+?)\s*(?:-|\.\.)\s*(-?[^-]+?)\s*$")


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
PAGE_KEYS = {"run", "map", SORT_KEY}  # URL parameters the page reads that are not filters


class BadValue(ValueError):
    """A URL value that cannot be read; the message says what was expected."""


def _number(text: str) -> float:
    value = float(text)
    if value != value:
        raise BadValue("not a number")
    return value


def _parse(key: str, raw: list[str], default, integer: bool = True):
    if isinstance(default, bool):
        if raw[-1] not in ("0", "1"):
            raise BadValue("expected 1 or 0")
        return raw[-1] == "1"
    if isinstance(default, list):
        return [v for item in raw for v in ([item] if "," not in item else item.split(",")) if v]
    if isinstance(default, tuple):
        m = _RANGE.match(raw[-1])
        try:
            lo, hi = (_number(m.group(1)), _number(m.group(2))) if m else (_number(raw[-1]),) * 2
        except ValueError:
            raise BadValue("expected a range such as 2-7") from None
        if lo > hi:
            raise BadValue("the range's start is above its end")
        return (int(math.floor(lo)), int(math.ceil(hi))) if integer and key != "loss" and \
            all(map(math.isfinite, (lo, hi))) else (lo, hi)
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
        if integer and key != "loss":
            kept = (int(math.ceil(kept[0])), int(math.floor(kept[1])))
        if kept != value:
            notes.append(f"{_said(url_key, raw)} was narrowed to {_format(kept)}, this data's range.")
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


def _seed_choice(key: str, url_key: str, default: str, offered: list[str], notes: list[str]) -> None:
    """A single choice (the map whose clusters filter, the sort) from the URL, if it is one of ``offered``."""
    skey = f"f_{key}"
    if skey in st.session_state:
        return
    raw = _raw(url_key)
    value = default
    if raw is not None:
        if raw[-1] in offered:
            value = raw[-1]
        else:
            notes.append(f"{_said(url_key, raw)} was ignored: expected one of {', '.join(offered)}.")
    st.session_state[skey] = value


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
    if all(f"f_{key}" in st.session_state for key in (*FILTERS, "sort", "map")) and \
            all(m.key in st.session_state for m in metas):
        return st.session_state.get("url_notes", [])
    notes: list[str] = []
    if sortable:
        _seed_choice("sort", SORT_KEY, DEFAULT_SORT, [f"{sign}{c}" for c in sortable for sign in ("-", "")], notes)
    if spaces:
        _seed_choice("map", "map", spaces[0], list(spaces), notes)
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
