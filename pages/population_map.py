"""Population map: the reviews on the 2-D UMAP of their embedding, with the clusters beside it.

The map draws at most 'Points drawn' reviews (flagged ones, most suspect first,
alternating with a seeded random sample of the others, fixed by the pipeline in
``map_points.draw_order``) and says so; box selections count and list every review in
the box.
"""

import altair as alt
import pandas as pd
import streamlit as st

from pages.common import queries, state
from pages.common.widgets import class_colors, visible
from pipeline.names import SPACE_NAMES

ctx = state.context()
metas = queries.meta_columns(ctx.ref, ctx.run_id)
metas = metas[metas["kind"].isin(["category", "number"])]
COLOR_BY = {
    "given label": ("label_name", "nominal"), "predicted label": ("pred_name", "nominal"),
    "loss": ("loss", "quantitative"), "cluster": ("cluster", "nominal"), "flag": ("flag", "nominal"),
    **({ctx.rating_name: ("rating", "ordinal")} if ctx.rating_name else {}),
    **{f"column: {m.name}": ("meta", "nominal") if m.kind == "category" else ("meta_number", "quantitative")
       for m in metas.itertuples()},
}

spaces = queries.spaces(ctx.ref, ctx.run_id) or [queries.SPACE]
space = st.sidebar.selectbox("Map of", spaces, format_func=lambda s: SPACE_NAMES.get(s, s), key="map_space",
                             help="Which model's view of the reviews: its embedding, mapped to 2-D with UMAP; "
                                  "loss and predictions on the map are that model's, out of fold")
st.title("Population map")
st.caption(f"{SPACE_NAMES.get(space, space)}. Network maps use the network trained on the train split (fold 0's "
           "when the data has no train split); the "
           "flags are the run's label issues, whichever map is shown.")
c = st.columns([2, 2, 1])
color = c[0].selectbox("Color by", list(COLOR_BY), key="map_color")
limit = c[1].select_slider("Points drawn", [2_000, 5_000, 10_000, 20_000, 50_000], value=5_000, key="map_limit")
outline = c[2].checkbox("Outline flagged", value=True, key="map_outline")
meta_name = color.removeprefix("column: ") if color.startswith("column: ") else None
drawn, total = queries.map_points(ctx.ref, ctx.run_id, space, limit, meta_name)
if total == 0:
    st.info("This run has no 2-D map. Re-run the pipeline to compute one.")
    st.stop()

if len(drawn) < total:
    n_flagged = int(drawn["is_label_issue"].sum())
    st.caption(f"Drawing {len(drawn):,} of {total:,} reviews ({len(drawn) / total:.1%}): {n_flagged:,} flagged "
               f"(the most suspect first) and a seeded random sample of {len(drawn) - n_flagged:,} others, fixed by "
               "the pipeline. Raise 'Points drawn' for more. Box selections count and list every review in the box.")
else:
    st.caption(f"Drawing all {total:,} reviews.")

# Only what the chart needs, rounded: drawing the points is most of the page's time. Points carry
# class indices; the browser looks their names up in a small table of classes. Class names are
# untrusted data, so they travel as values, never inside a Vega expression.
extra = [c for c in ("meta", "meta_number") if c in drawn]
drawn = drawn.assign(preview=drawn["preview"].str.slice(0, 70).map(visible), x=drawn["x"].round(3),
                     y=drawn["y"].round(3), loss=drawn["loss"].round(3), sample_id=drawn["sample_id"].map(visible),
                     **({"meta": drawn["meta"].fillna("(none)").map(visible)} if "meta" in drawn else {}))[
    ["sample_id", "x", "y", "loss", "rating", "cluster", "label", "pred_label", "is_label_issue", "preview", *extra]]
names = pd.DataFrame({"class": range(len(ctx.classes)), "name": list(ctx.classes)})
points = alt.Chart(drawn).transform_lookup(
    lookup="label", from_=alt.LookupData(names, "class", ["name"]), as_=["label_name"],
).transform_lookup(
    lookup="pred_label", from_=alt.LookupData(names, "class", ["name"]), as_=["pred_name"],
).transform_calculate(flag="datum.is_label_issue ? 'flagged mislabel' : 'not flagged'")

field, kind = COLOR_BY[color]
brush = alt.selection_interval(name="brush", encodings=["x", "y"])
tooltip = [alt.Tooltip("preview:N", title="review"), alt.Tooltip("label_name:N", title="given label"),
           alt.Tooltip("pred_name:N", title="predicted"), alt.Tooltip("loss:Q", format=".3f", title="loss (nats)"),
           *([alt.Tooltip("rating:O", title=visible(ctx.rating_name))] if ctx.rating_name else []),
           *([alt.Tooltip(f"{extra[0]}:N", title=visible(meta_name))] if extra else []), alt.Tooltip("sample_id:N")]
if kind == "quantitative":
    scale = alt.Scale(scheme="viridis")
elif field in ("label_name", "pred_name"):
    scale = class_colors(ctx.classes)
elif field == "flag":
    scale = alt.Scale(domain=["flagged mislabel", "not flagged"], range=["#111827", "#93c5fd"])
else:
    scale = alt.Undefined
base = points.mark_circle(opacity=0.6).encode(
    x=alt.X("x:Q", axis=None), y=alt.Y("y:Q", axis=None),
    color=alt.Color(f"{field}:{kind[0].upper()}", title=visible(color), scale=scale),
    size=alt.Size("loss:Q", scale=alt.Scale(range=[6, 120]), title="loss (nats)"),
    tooltip=tooltip,
).add_params(brush)
chart = base
if outline:
    chart = base + points.transform_filter("datum.is_label_issue").mark_point(
        shape="diamond", filled=False, color="black", strokeWidth=1.2, size=70).encode(
        x="x:Q", y="y:Q", tooltip=tooltip)

left, right = st.columns([3, 2])
with left:
    event = st.altair_chart(chart.properties(height=560, width="container"), key="map_chart", on_select="rerun",
                            selection_mode=["brush"], width="stretch")
    st.caption("Drag a box to list the reviews inside it. Black diamonds: flagged mislabels, usually high-loss "
               "points sitting among reviews of another label.")
with right:
    st.subheader("Clusters")
    cl = queries.clusters(ctx.ref, ctx.run_id, space)
    cl = cl.assign(top_label=cl["top_label"].map(ctx.name).map(visible), top_terms=cl["top_terms"].map(visible))
    st.dataframe(cl, hide_index=True, height=560, column_config={
        "size": st.column_config.NumberColumn("reviews"),
        "accuracy": st.column_config.NumberColumn("accuracy", format="percent"),
        "mean_loss": st.column_config.NumberColumn("mean loss (nats)", format="%.3f"),
        "share_flagged": st.column_config.NumberColumn("flagged", format="percent"),
        "top_label": "most common label", "share_top": st.column_config.NumberColumn("its share", format="percent"),
        "top_terms": "characteristic terms",
    })

box = (event.selection.get("brush") if event and hasattr(event, "selection") else None) or {}
if "x" in box and "y" in box:
    (x0, x1), (y0, y1) = sorted(box["x"]), sorted(box["y"])
    inside, n_inside = queries.map_box(ctx.ref, ctx.run_id, space, (x0, x1), (y0, y1), 500)
    st.subheader(f"{n_inside:,} reviews in the box")
    if n_inside > len(inside):
        st.caption(f"The {len(inside):,} with the highest loss, of {n_inside:,}.")
    st.dataframe(inside[["sample_id", "label", "pred_label", "rating", "loss", "is_label_issue", "reason"]].assign(
        label=lambda d: d["label"].map(ctx.name).map(visible), pred_label=lambda d: d["pred_label"].map(ctx.name)
        .map(visible), sample_id=lambda d: d["sample_id"].map(visible), reason=lambda d: d["reason"].map(visible)),
        hide_index=True, column_config={"loss": st.column_config.NumberColumn("loss (nats)", format="%.3f"),
                                        "rating": None if not ctx.rating_name else ctx.rating_name})
else:
    st.caption("No box drawn yet.")
