"""Sample filters, kept in the URL (``st.query_params``) so a view can be shared.

``FILTERS`` names every filter and its default; ``from_url()`` seeds the widgets'
session state from the URL once, ``to_url()`` writes non-default values back, and
``apply(table, values, decided, search_ids)`` filters the cached sample table.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

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


def apply(table: pd.DataFrame, f: dict, decided: pd.DataFrame, search_ids: set[str] | None) -> pd.DataFrame:
    """Rows of ``table`` that pass every filter, in the table's order."""
    keep = pd.Series(True, index=table.index)
    names = {"negative": 0, "positive": 1}
    if f["split"]:
        keep &= table["split"].isin(f["split"])
    if f["label"]:
        keep &= table["label"].isin([names[v] for v in f["label"] if v in names])
    if f["pred"]:
        keep &= table["pred_label"].isin([names[v] for v in f["pred"] if v in names])
    if f["outcome"] in ("correct", "incorrect"):
        keep &= table["correct"] == (f["outcome"] == "correct")
    keep &= table["rating"].between(*f["rating"])
    keep &= table["loss"].between(f["loss"][0], f["loss"][1] if f["loss"][1] is not None else float("inf"))
    keep &= table["n_words"].between(f["words"][0], f["words"][1] if f["words"][1] is not None else 10**9)
    if f["cluster"]:
        keep &= table["cluster"].astype(str).isin([str(c) for c in f["cluster"]])
    if f["flagged"]:
        keep &= table["is_label_issue"]
    if f["status"] != "any":
        status = table["sample_id"].map(decided.set_index("sample_id")["decision"]) if len(decided) else None
        if f["status"] == "undecided":
            keep &= status.isna() if status is not None else True
        else:
            keep &= (status == f["status"]) if status is not None else False
    if search_ids is not None:
        keep &= table["sample_id"].isin(search_ids)
    return table[keep]
