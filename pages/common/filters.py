"""Sample filters, kept in the URL (``st.query_params``) so a view can be shared.

``FILTERS`` names every fixed filter and its default; the data's own columns add one
filter each (``meta_filters``: categories pick values, numbers a range), kept in the URL
as ``m.<column>``. ``from_url()`` seeds the widgets' session state from the URL once,
``to_url()`` writes non-default values back, and ``spec(values, decided)`` turns them
into a ``queries.SampleFilter``, which the store applies in SQL (so a million reviews
never reach the page). Lists are repeated URL parameters (``?label=a&label=b``), so a
class name may hold a comma; values the widgets do not offer are dropped and ranges are
clamped to the sliders.
"""

from __future__ import annotations

import dataclasses
import math
import re

import pandas as pd
import streamlit as st

from pages.common.queries import SampleFilter

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


def _parse(key: str, raw: list[str], default, integer: bool = True):
    if isinstance(default, bool):
        return raw[-1] == "1"
    if isinstance(default, list):
        return [v for item in raw for v in ([item] if "," not in item else item.split(",")) if v]
    if isinstance(default, tuple):
        m = _RANGE.match(raw[-1])
        lo, hi = (float(m.group(1)), float(m.group(2))) if m else (float(raw[-1]),) * 2
        return (int(lo), int(hi)) if integer and key != "loss" else (lo, hi)
    return raw[-1]


def _clamped(value: tuple, bounds: tuple) -> tuple:
    """A range from the URL, kept inside the slider's bounds (NaN or reversed: the bounds)."""
    lo, hi = bounds
    a, b = (max(lo, min(hi, v)) if v == v else None for v in value)  # v == v is False for NaN
    return (a, b) if a is not None and b is not None and a <= b else bounds


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


def from_url(bounds: dict, metas: list[MetaFilter] = ()) -> None:
    """Seed widget state (keys 'f_<name>', 'f_meta_<i>') from the URL once per page visit."""
    for key, default in FILTERS.items():
        skey = f"f_{key}"
        if skey in st.session_state:
            continue
        value = default if not isinstance(default, tuple) else bounds.get(key, default)
        raw = _raw(key)
        if raw is not None and (key != "rating" or bounds.get("rating")):
            try:
                value = _parse(key, raw, default, integer=not isinstance(bounds.get(key, (0, 0))[0], float))
            except (ValueError, OverflowError):
                pass  # a hand-edited URL with a bad value falls back to the default
            if isinstance(default, tuple):
                value = _clamped(value, bounds.get(key, default))
        st.session_state[skey] = value
    for meta in metas:
        if meta.key in st.session_state:
            continue
        value = [] if meta.kind == "category" else meta.bounds
        raw = _raw(meta.url_key)
        if raw is not None:
            try:
                value = _parse("meta", raw, [] if meta.kind == "category" else (0.0, 0.0), integer=False)
            except (ValueError, OverflowError):
                pass
            if meta.kind == "number":
                value = _clamped(value, meta.bounds)
        st.session_state[meta.key] = value


def values(metas: list[MetaFilter] = ()) -> dict:
    out = {key: st.session_state.get(f"f_{key}", default) for key, default in FILTERS.items()}
    out["meta"] = {m.index: st.session_state.get(m.key) for m in metas}
    return out


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
        splits=tuple(f["split"]), labels=tuple(index[v] for v in f["label"] if v in index),
        preds=tuple(index[v] for v in f["pred"] if v in index), outcome=f["outcome"],
        rating=tuple(f["rating"]) if has_rating else None,
        loss=(f["loss"][0], None if loss_hi is None or math.isinf(loss_hi) else loss_hi), words=tuple(f["words"]),
        clusters=tuple(int(c) for c in f["cluster"] if str(c).lstrip("-").isdigit()), flagged=bool(f["flagged"]),
        search=f["q"], only_ids=only, except_ids=excluded, meta_values=tuple(meta_values),
        meta_ranges=tuple(meta_ranges),
    )
