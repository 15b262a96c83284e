"""Sample filters, kept in the URL (``st.query_params``) so a view can be shared.

``FILTERS`` names every filter and its default; ``from_url()`` seeds the widgets'
session state from the URL once, ``to_url()`` writes non-default values back, and
``spec(values, decided)`` turns them into a ``queries.SampleFilter``, which the store
applies in SQL (so a million reviews never reach the page).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages.common.queries import SampleFilter

STATUSES = ("any", "undecided", "mislabeled", "correct", "ambiguous")
# key -> default; list values are kept as comma-separated strings in the URL
FILTERS = {
    "split": [], "label": [], "pred": [], "outcome": "all", "rating": (1, 10), "loss": (0.0, None),
    "words": (0, None), "cluster": [], "status": "any", "flagged": False, "q": "",
}


def _parse(key: str, raw: str, default):
    if isinstance(default, bool):
        return raw == "1"
    if isinstance(default, list):
        return [v for v in raw.split(",") if v]
    if isinstance(default, tuple):
        lo, hi = raw.split("-", 1) if "-" in raw.lstrip("-") else (raw, raw)
        cast = float if key == "loss" else int
        return cast(lo), cast(hi)
    return raw


def _clamped(value: tuple, bounds: tuple) -> tuple:
    """A range from the URL, kept inside the slider's bounds (NaN or reversed: the bounds)."""
    lo, hi = bounds
    a, b = (max(lo, min(hi, v)) if v == v else None for v in value)  # v == v is False for NaN
    return (a, b) if a is not None and b is not None and a <= b else bounds


def _format(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, tuple):
        return f"{value[0]:g}-{value[1]:g}"
    return str(value)


def from_url(bounds: dict) -> None:
    """Seed widget state (keys 'f_<name>') from the URL once per page visit."""
    for key, default in FILTERS.items():
        skey = f"f_{key}"
        if skey in st.session_state:
            continue
        value = default if not isinstance(default, tuple) else bounds.get(key, default)
        raw = st.query_params.get(key)
        if raw is not None:
            try:
                value = _parse(key, raw, default)
            except ValueError:
                pass  # a hand-edited URL with a bad value falls back to the default
            if isinstance(default, tuple):
                value = _clamped(value, bounds.get(key, default))
        st.session_state[skey] = value


def values() -> dict:
    return {key: st.session_state.get(f"f_{key}", default) for key, default in FILTERS.items()}


def to_url(current: dict, bounds: dict) -> None:
    for key, default in FILTERS.items():
        value = current[key]
        base = bounds.get(key, default) if isinstance(default, tuple) else default
        if value == base or value in ("", []):
            st.query_params.pop(key, None)
        else:
            st.query_params[key] = _format(value)


def spec(f: dict, decided: pd.DataFrame) -> SampleFilter:
    """The filter the store runs for these widget values; ``decided`` is ``decisions.current``."""
    names = {"negative": 0, "positive": 1}
    only, excluded = None, ()
    if f["status"] == "undecided":
        excluded = tuple(decided["sample_id"]) if len(decided) else ()
    elif f["status"] != "any":
        only = tuple(decided.loc[decided["decision"] == f["status"], "sample_id"]) if len(decided) else ()
    return SampleFilter(
        splits=tuple(f["split"]), labels=tuple(names[v] for v in f["label"] if v in names),
        preds=tuple(names[v] for v in f["pred"] if v in names), outcome=f["outcome"],
        rating=tuple(f["rating"]), loss=tuple(f["loss"]), words=tuple(f["words"]),
        clusters=tuple(int(c) for c in f["cluster"] if str(c).lstrip("-").isdigit()), flagged=bool(f["flagged"]),
        search=f["q"], only_ids=only, except_ids=excluded,
    )
