"""Population map: the reviews on the 2-D UMAP of their embedding, with the clusters beside it.

The map draws at most 'Points drawn' reviews (flagged ones, most suspect first,
alternating with a seeded random sample of the others, fixed by the pipeline in
``map_points.draw_order``) and says so; box selections count and list every review in
the box. A click on a point, or on a row of the box's table, opens that review in
Sample analysis; a row of the cluster table opens Samples filtered to that cluster.
"""

import altair as alt
import pandas as pd
import streamlit as st

from pages.common import queries, state
from pages.common.naming import space_label
from pages.common.widgets import class_colors, cluster_colors, plain, visible
from pipeline.names import OWN_FAMILIES
from pipeline.names import space as space_of

OWN_SPACES = {space_of(f) for f in OWN_FAMILIES}  # the embeddings of a user's own models

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
own = queries.own_names(ctx.ref, ctx.run_id)  # a user's own model by the name they gave it
space = st.sidebar.selectbox("Map of", spaces, format_func=lambda s: visible(space_label(s, own)), key="map_space",
                             help="Which model's view of the reviews: its embedding, mapped to 2-D with UMAP; loss "
                                  "and predictions on the map are that model's (out of fold for Lossmap's models; as "
                                  "given for your own)")
st.title("Population map")
if space in OWN_SPACES:
    st.caption(f"{plain(space_label(space, own))}: the vectors your model gave, mapped with UMAP (cosine). Loss and "
               "predictions on this map are your model's as given: where it was not told it never saw a text, that "
               "text counts as seen in training and its loss is optimistic (Models page). The flags are the run's "
               "label issues, whichever map is shown.")
else:
    st.caption(f"{plain(space_label(space, own))}. Network maps use the network trained on the train split (fold 0's "
               "when the data has no train split); the "
               "flags are the run's label issues, whichever map is shown.")
c = st.columns([2, 2, 1, 1])
color = c[0].selectbox("Color by", list(COLOR_BY), key="map_color")
limit = c[1].select_slider("Points drawn", [2_000, 5_000, 10_000, 20_000, 50_000], value=5_000, key="map_limit")
outline = c[2].checkbox("Ring flagged", value=True, key="map_outline", help="A black ring around flagged mislabels")
sized = c[3].checkbox("Size by loss", value=True, key="map_sized")
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
ids = drawn["sample_id"]  # as stored; a click on point i opens ids[i]
drawn = drawn.assign(i=range(len(drawn)), preview=drawn["preview"].str.slice(0, 70).map(visible),
                     x=drawn["x"].round(3), y=drawn["y"].round(3), loss=drawn["loss"].round(3),
                     loss_color=drawn["loss"].clip(lower=0.001).round(3), sample_id=drawn["sample_id"].map(visible),
                     **({"meta": drawn["meta"].fillna("(none)").map(visible)} if "meta" in drawn else {}))[
    ["i", "sample_id", "x", "y", "loss", "loss_color", "rating", "cluster", "label", "pred_label", "is_label_issue",
     "preview", *extra]]
names = pd.DataFrame({"class": range(len(ctx.classes)), "name": list(ctx.classes)})
points = alt.Chart(drawn).transform_lookup(
    lookup="label", from_=alt.LookupData(names, "class", ["name"]), as_=["label_name"],
).transform_lookup(
    lookup="pred_label", from_=alt.LookupData(names, "class", ["name"]), as_=["pred_name"],
).transform_calculate(flag="datum.is_label_issue ? 'flagged mislabel' : 'not flagged'")

field, kind = COLOR_BY[color]
brush = alt.selection_interval(name="brush", encodings=["x", "y"])
pick = alt.selection_point(name="pick", fields=["i"], on="click", empty=False)
tooltip = [alt.Tooltip("preview:N", title="review"), alt.Tooltip("label_name:N", title="given label"),
           alt.Tooltip("pred_name:N", title="predicted"), alt.Tooltip("loss:Q", format=".3f", title="loss (nats)"),
           *([alt.Tooltip("rating:O", title=visible(ctx.rating_name))] if ctx.rating_name else []),
           *([alt.Tooltip(f"{extra[0]}:N", title=visible(meta_name))] if extra else []),
           alt.Tooltip("sample_id:N", title="id")]
title = visible(color)
if field == "loss":  # losses span orders of magnitude: a log scale shows the few large ones and the many small
    field, scale, title = "loss_color", alt.Scale(type="log", scheme="viridis"), "loss (nats, log scale)"
elif kind in ("quantitative", "ordinal"):  # a rating too: viridis keeps its low end visible on white
    scale = alt.Scale(scheme="viridis")
elif field in ("label_name", "pred_name"):
    scale = class_colors(ctx.classes)
elif field == "flag":
    scale = alt.Scale(domain=["flagged mislabel", "not flagged"], range=["#111827", "#93c5fd"])
elif field == "cluster":
    scale = cluster_colors(drawn["cluster"].dropna().unique())
else:
    scale = alt.Undefined
ring = {"stroke": alt.condition("datum.is_label_issue", alt.value("#111827"), alt.value(None)),
        "strokeWidth": alt.value(1.5)} if outline else {}
chart = points.mark_circle(opacity=0.6).encode(
    x=alt.X("x:Q", axis=None, scale=alt.Scale(zero=False, nice=False)),
    y=alt.Y("y:Q", axis=None, scale=alt.Scale(zero=False, nice=False)),
    color=alt.Color(f"{field}:{kind[0].upper()}", title=title, scale=scale),
    size=alt.Size("loss:Q", scale=alt.Scale(range=[8, 120]), title="loss (nats)") if sized else alt.value(30),
    tooltip=tooltip, **ring,
).add_params(brush, pick)

left, right = st.columns([3, 2])
with left:
    event = st.altair_chart(chart.properties(height=560, width="container"), key="map_chart", on_select="rerun",
                            selection_mode=["brush", "pick"], width="stretch")
    st.caption("Click a point to open that review; drag a box to list the reviews inside it. Black rings: flagged "
               "mislabels, usually high-loss points sitting among reviews of another label.")
    picked = (event.selection.get("pick") if event and hasattr(event, "selection") else None) or []
    if picked and "i" in picked[0] and 0 <= int(picked[0]["i"]) < len(ids):
        st.switch_page("pages/sample_analysis.py", query_params={"sample": ids.iloc[int(picked[0]["i"])]})
with right:
    st.subheader("Clusters")
    cl = queries.clusters(ctx.ref, ctx.run_id, space)
    cl = cl.assign(top_label=cl["top_label"].map(ctx.name).map(visible), top_terms=cl["top_terms"].map(visible))
    picked_cluster = st.dataframe(
        cl, hide_index=True, height=560, key=f"clusters_{space}", on_select="rerun", selection_mode="single-row",
        column_order=["cluster", "size", "top_label", "share_top", "top_terms", "accuracy", "mean_loss",
                      "share_flagged"],
        column_config={
            "cluster": st.column_config.NumberColumn("cluster", width="small"),
            "size": st.column_config.NumberColumn("reviews", width="small"),
            "accuracy": st.column_config.NumberColumn("accuracy", format="percent", width="small"),
            "mean_loss": st.column_config.NumberColumn("mean loss (nats)", format="%.2f", width="small"),
            "share_flagged": st.column_config.NumberColumn("flagged", format="percent", width="small"),
            "top_label": st.column_config.TextColumn("most common label", width="small"),
            "share_top": st.column_config.NumberColumn("its share", format="percent", width="small"),
            "top_terms": st.column_config.TextColumn("characteristic terms", width="medium"),
        })
    st.caption("Select a cluster to list its reviews on the Samples page.")
    if picked_cluster.selection.rows:
        chosen = int(cl["cluster"].iloc[picked_cluster.selection.rows[0]])
        st.switch_page("pages/samples.py", query_params={"cluster": str(chosen)} | (
            {"map": space} if space != queries.SPACE else {}))

box = (event.selection.get("brush") if event and hasattr(event, "selection") else None) or {}
if "x" in box and "y" in box:
    (x0, x1), (y0, y1) = sorted(box["x"]), sorted(box["y"])
    inside, n_inside = queries.map_box(ctx.ref, ctx.run_id, space, (x0, x1), (y0, y1), 500)
    st.subheader(f"{n_inside:,} reviews in the box")
    if n_inside > len(inside):
        st.caption(f"The {len(inside):,} with the highest loss, of {n_inside:,}.")
    table = st.dataframe(
        inside[["sample_id", "label", "pred_label", "rating", "loss", "is_label_issue", "reason", "preview"]].assign(
            label=lambda d: d["label"].map(ctx.name).map(visible), pred_label=lambda d: d["pred_label"].map(ctx.name)
            .map(visible), sample_id=lambda d: d["sample_id"].map(visible), reason=lambda d: d["reason"].map(visible),
            preview=lambda d: d["preview"].str.slice(0, 120).map(visible)),
        hide_index=True, key="box_table", on_select="rerun", selection_mode="single-row",
        column_config={"sample_id": "id", "label": "given label", "pred_label": "predicted",
                       "loss": st.column_config.NumberColumn("loss (nats)", format="%.3f"),
                       "rating": None if not ctx.rating_name else ctx.rating_name,
                       "is_label_issue": st.column_config.CheckboxColumn("flagged"),
                       "preview": st.column_config.TextColumn("text", width="large")})
    st.caption("Select a review to open it.")
    if table.selection.rows:
        st.switch_page("pages/sample_analysis.py", query_params={"sample": inside["sample_id"].iloc[
            table.selection.rows[0]]})
else:
    st.caption("No box drawn yet.")
