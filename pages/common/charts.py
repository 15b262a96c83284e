"""Charts more than one page draws: training curves per batch, smoothed, on a shared progress axis; grids of
shares (accuracy per predictor and class, agreement between predictors) labelled with their numbers.

Networks train for different numbers of batches, so their curves share an axis of
training progress (the share of a model's batches done). Smoothing is a trailing mean
over a window of batches (TensorBoard's habit); the raw curve stays behind it, faint.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

SMOOTHING = (1, 2, 5, 10, 25, 50, 100)  # batches in the trailing mean; 1 = none
METRICS = {"loss": "loss (nats)", "accuracy": "accuracy"}
MODEL_COLORS = "tableau10"  # distinct hues: Streamlit's own palette starts with two blues


def smoothing(key: str, batches: pd.DataFrame) -> int:
    """A slider for the smoothing window, in batches; by default about 1/40 of the longest model's batches, so a
    short run is not smoothed out of shape."""
    longest = int(batches.groupby("model_id")["step"].nunique().max()) if len(batches) else 1
    default = max(w for w in SMOOTHING if w <= max(1, longest // 40))
    return st.select_slider("Smoothing (trailing mean over batches)", SMOOTHING, value=default, key=key,
                            help="1 shows every batch as it was; raw values stay visible, faint, behind the mean")


def long_curves(batches: pd.DataFrame, window: int, by: str = "model_id") -> pd.DataFrame:
    """Per-batch loss and accuracy in long form with ``progress`` (0-1 of each model's batches) and ``smoothed``."""
    if batches.empty:
        return pd.DataFrame(columns=[by, "step", "epoch", "progress", "metric", "value", "smoothed"])
    b = batches.sort_values([by, "step"])
    first = b.groupby(by)["step"].transform("min")
    span = (b.groupby(by)["step"].transform("max") - first).clip(lower=1)
    b = b.assign(progress=(b["step"] - first) / span)
    long = b.melt(id_vars=[by, "step", "epoch", "progress"], value_vars=list(METRICS), var_name="metric")
    long["smoothed"] = long.groupby([by, "metric"])["value"].transform(
        lambda s: s.rolling(window, min_periods=1).mean())
    return long


def curves_charts(long: pd.DataFrame, *, color: str = "model_id", title: str = "model", height: int = 150) -> list:
    """Raw curves (faint) under their trailing means: one chart per metric, each with its own y axis (separate
    charts rather than a facet, so each stretches to the page's width)."""
    out = []
    for metric, name in METRICS.items():
        base = alt.Chart(long[long["metric"] == metric]).encode(
            x=alt.X("progress:Q", title="share of the model's training batches" if metric == "accuracy" else None,
                    axis=alt.Axis(format="%")))
        hue = alt.Scale(scheme=MODEL_COLORS)
        raw = base.mark_line(opacity=0.2, strokeWidth=1).encode(
            y=alt.Y("value:Q", title=name), color=alt.Color(f"{color}:N", scale=hue, legend=None))
        mean = base.mark_line(strokeWidth=2).encode(
            y=alt.Y("smoothed:Q", title=name),
            color=alt.Color(f"{color}:N", title=title, scale=hue,
                            legend=alt.Legend(orient="bottom", labelLimit=320) if metric == "accuracy" else None),
            tooltip=[alt.Tooltip(f"{color}:N", title=title), "epoch", "step",
                     alt.Tooltip("value:Q", format=".3f", title="this batch"),
                     alt.Tooltip("smoothed:Q", format=".3f", title="trailing mean")])
        out.append((raw + mean).properties(height=height))
    return out


def fold_band(long: pd.DataFrame, reference: str, bins: int = 100) -> pd.DataFrame:
    """The fold models' spread per progress bin (min, mean, max of their smoothed curves), for a band behind the
    reference model's curve."""
    folds = long[long["model_id"] != reference]
    if folds.empty:
        return pd.DataFrame(columns=["metric", "progress", "lo", "mid", "hi"])
    binned = folds.assign(progress=(folds["progress"] * bins).round() / bins)
    per_model = binned.groupby(["metric", "progress", "model_id"])["smoothed"].mean().reset_index()
    return per_model.groupby(["metric", "progress"])["smoothed"].agg(lo="min", mid="mean", hi="max").reset_index()


def band_charts(long: pd.DataFrame, band: pd.DataFrame, reference: str, height: int = 150) -> list:
    """The reference model's smoothed curve over the band of its fold models: one chart per metric."""
    ref = long[long["model_id"] == reference]
    out = []
    for metric, name in METRICS.items():
        x = alt.X("progress:Q", title="share of the model's training batches" if metric == "accuracy" else None,
                  axis=alt.Axis(format="%"))
        area = alt.Chart(band[band["metric"] == metric]).mark_area(opacity=0.25, color="#64748b").encode(
            x=x, y=alt.Y("lo:Q", title=name, scale=alt.Scale(zero=False)), y2="hi:Q",
            tooltip=[alt.Tooltip("progress:Q", format=".0%"), alt.Tooltip("lo:Q", format=".3f", title="lowest fold"),
                     alt.Tooltip("hi:Q", format=".3f", title="highest fold")])
        mid = alt.Chart(band[band["metric"] == metric]).mark_line(color="#64748b", strokeDash=[4, 3]).encode(
            x=x, y="mid:Q")
        line = alt.Chart(ref[ref["metric"] == metric]).mark_line(color="#2563eb", strokeWidth=2).encode(
            x=x, y=alt.Y("smoothed:Q", title=name),
            tooltip=["epoch", "step", alt.Tooltip("smoothed:Q", format=".3f", title="trailing mean")])
        out.append((area + mid + line).properties(height=height))
    return out


def share_heatmap(frame: pd.DataFrame, *, x: str, y: str, value: str, x_sort: list, y_sort: list, x_title: str | None,
                  legend: str, tooltip: tuple = ()) -> alt.LayerChart:
    """A grid of shares (``value``, 0-1) between two nominal columns, each cell coloured by its share and labelled
    with it as a percentage (white on dark cells)."""
    slanted = len(x_sort) > 3 and max((len(str(v)) for v in x_sort), default=0) > 8  # long labels side by side
    base = alt.Chart(frame).encode(
        x=alt.X(f"{x}:N", sort=x_sort, title=x_title,
                axis=alt.Axis(labelAngle=-40 if slanted else 0, labelLimit=180, labelOverlap=False)),
        y=alt.Y(f"{y}:N", sort=y_sort, title=None, axis=alt.Axis(labelLimit=260, labelOverlap=False)),
        tooltip=[alt.Tooltip(f"{x}:N"), alt.Tooltip(f"{y}:N"), alt.Tooltip(f"{value}:Q", format=".1%", title=legend),
                 *tooltip])
    cells = base.mark_rect().encode(color=alt.Color(f"{value}:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]),
                                                    title=legend, legend=alt.Legend(format="%")))
    text = base.mark_text(fontSize=11).encode(text=alt.Text(f"{value}:Q", format=".0%"),
                                              color=alt.condition(f"datum.{value} > 0.6", alt.value("white"),
                                                                  alt.value("#111827")))
    return (cells + text).properties(height=30 * len(y_sort) + (160 if slanted else 60))  # the axes' room included
