"""Training: how each network learned, batch by batch and layer by layer."""

import math

import altair as alt
import pandas as pd
import streamlit as st

from pages.common import charts, queries, state
from pages.common.widgets import plain

QUANTITIES = {"weight": "weights", "bias": "biases", "preact": "pre-activations", "postact": "post-activations",
              "grad": "weight gradients"}

LAYER_ORDER = {"embedding": 0, "conv": 1, "lstm": 1, "hidden": 2, "dense": 3, "output": 4}  # input to output

ctx = state.context()
references = queries.telemetry_models(ctx.ref, ctx.run_id)
models = references["model_id"].tolist()
st.title("Training")
if not models:
    st.info("This run has no network telemetry: it trained only the linear model. Runs with the dense network or "
            "the CNN (both on by default) fill this page in.")
    st.stop()

model_id = st.selectbox("Network", models, key="training_model",
                        help="Each family's reference network: the one trained on the train split (validated on the "
                             "rest), or the fold-0 model (validated on its held-out fold) when there is no train split")
family = references.set_index("model_id").loc[model_id, "family"]
role = references.set_index("model_id").loc[model_id, "role"]
held_out = "validation (held out)"
batches, epochs = queries.model_curves(ctx.ref, ctx.run_id, family)

st.subheader("Loss and accuracy per batch")
c = st.columns([2, 3])
show_folds = c[0].checkbox("Compare with the cross-fitting fold models", value=False, key="training_folds",
                           help="The fold models' spread as a band behind this network's curve")
with c[1]:
    window = charts.smoothing("training_smoothing", batches[batches["model_id"] == model_id])
long = charts.long_curves(batches, window)
n_folds = long.loc[long["model_id"] != model_id, "model_id"].nunique()
if show_folds and n_folds:
    for chart in charts.band_charts(long, charts.fold_band(long, model_id), model_id):
        st.altair_chart(chart, width="stretch")
    st.caption(f"Blue: {model_id}, trailing mean over {window} batch(es). Grey band: the lowest to highest of the "
               f"{n_folds} fold models' trailing means at each point of training (dashed: their mean). A curve "
               "outside the band learned differently from the models that scored the out-of-fold predictions.")
else:
    for chart in charts.curves_charts(long[long["model_id"] == model_id], height=170):
        st.altair_chart(chart, width="stretch")
mine_batches = batches[batches["model_id"] == model_id]
st.caption("Cross-entropy (nats) and accuracy of each training batch, with dropout on where the network "
           "has it; faint: every batch, solid: the trailing mean. Learning rate per epoch: " + ", ".join(
               f"epoch {e}: {lr:.1e}" for e, lr in mine_batches.groupby("epoch")["lr"].first().items()))

st.subheader("Train vs validation per epoch")
mine = epochs[epochs["model_id"] == model_id]
per_epoch = pd.concat([
    mine.assign(split="train", loss=mine["train_loss"], accuracy=mine["train_accuracy"]),
    mine.assign(split=held_out, loss=mine["val_loss"], accuracy=mine["val_accuracy"]),
])[["epoch", "split", "loss", "accuracy"]].melt(id_vars=["epoch", "split"], var_name="metric")
gap = mine.assign(gap=mine["train_accuracy"] - mine["val_accuracy"])
colors = alt.Scale(domain=["train", held_out], range=["#2563eb", "#f97316"])
c = st.columns(3)
for col, metric, fmt in ((c[0], "accuracy", ".1~%"), (c[1], "loss", "~r")):
    col.altair_chart(alt.Chart(per_epoch[per_epoch["metric"] == metric]).mark_line(point=True).encode(
        x=alt.X("epoch:O", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("value:Q", title=metric if metric == "accuracy" else "loss (nats)",
                scale=alt.Scale(zero=False), axis=alt.Axis(format=fmt)),
        color=alt.Color("split:N", scale=colors, legend=alt.Legend(orient="bottom", title=None)),
        tooltip=["epoch", "split", alt.Tooltip("value:Q", format=".4f")],
    ).properties(height=240), width="stretch")
c[2].altair_chart(alt.Chart(gap).mark_bar(color="#f97316").encode(
    x=alt.X("epoch:O", axis=alt.Axis(labelAngle=0)),
    y=alt.Y("gap:Q", title="train - validation accuracy", axis=alt.Axis(format=".1~%")),
    tooltip=["epoch", alt.Tooltip("gap:Q", format=".2%")],
).properties(height=240), width="stretch")
st.caption("Train figures are on up to 5,000 training reviews after each epoch (dropout off); validation is "
           + ("everything outside the train split" if role == "conventional" else "the held-out fold")
           + ". A gap that grows epoch after epoch is overfitting.")

stats = queries.layer_stats(ctx.ref, ctx.run_id, model_id)
st.subheader("Per-layer histograms over epochs")
c = st.columns(2)
layers = sorted(dict.fromkeys(stats["layer"]), key=lambda name: (LAYER_ORDER.get(name.rstrip("0123456789"), 5), name))
layer = c[0].selectbox("Layer", layers, key="training_layer")
available = [q for q in QUANTITIES if q in set(stats.loc[stats["layer"] == layer, "quantity"])]
quantity = c[1].selectbox("Values", available, format_func=QUANTITIES.get, key="training_quantity")
hist = queries.layer_histograms(ctx.ref, ctx.run_id, model_id, layer, quantity)
hist = hist.assign(share=hist["count"] / hist.groupby("epoch")["count"].transform("sum"))
st.altair_chart(alt.Chart(hist[hist["count"] > 0]).mark_rect().encode(
    x=alt.X("lo:Q", title=f"{QUANTITIES[quantity]} of {layer}"), x2="hi:Q",
    y=alt.Y("epoch:O", title="epoch (0: untrained)"),
    color=alt.Color("share:Q", scale=alt.Scale(type="log", scheme="viridis"), title="share of values (log)",
                    legend=alt.Legend(format=".2~%")),
    tooltip=["epoch", alt.Tooltip("lo:Q", format=".4g"), alt.Tooltip("hi:Q", format=".4g"), "count",
             alt.Tooltip("share:Q", format=".2%")],
).properties(height=max(160, 40 * hist["epoch"].nunique())), width="stretch")
st.caption("One histogram per epoch (a row of the heatmap): 30 equal-width bins over that epoch's range, colored by "
           "the share of values in each, on a fixed probe of training reviews. A row that widens is a layer whose values "
           "spread out as it learns. Activations of layers applied at every word count every real word.")

st.subheader("Dead units and gradient norms")
c1, c2 = st.columns(2)
dead = stats[stats["dead_fraction"].notna()]
if dead.empty:
    c1.info("No ReLU layers in this network.")
else:
    c1.altair_chart(alt.Chart(dead).mark_line(point=True).encode(
        x=alt.X("epoch:O", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("dead_fraction:Q", title="dead ReLU units", axis=alt.Axis(format="%"),
                             scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("layer:N", scale=alt.Scale(scheme="tableau10")),
        tooltip=["layer", "epoch", alt.Tooltip("dead_fraction:Q", format=".1%")],
    ).properties(height=240), width="stretch")
DEAD_SHARE = 0.30  # a layer with more of its ReLU units dead than this after training is pointed out
if not dead.empty:
    last = dead[dead["epoch"] == dead["epoch"].max()].groupby("layer")["dead_fraction"].max()
    for name, share in last[last > DEAD_SHARE].items():
        c1.warning(f"{share:.0%} of the units of layer {plain(name)} are dead after the last epoch "
                   f"({int(dead['epoch'].max())}): they output zero for every probe review and no longer learn. "
                   "A lower learning rate, another activation (the Experiments page compares them) or a smaller "
                   "layer would waste less of it.")
grads = stats[(stats["quantity"] == "grad") & (stats["epoch"] > 0)]
c2.altair_chart(alt.Chart(grads).mark_line(point=True).encode(
    x=alt.X("epoch:O", axis=alt.Axis(labelAngle=0)),
    y=alt.Y("norm:Q", title="gradient L2 norm (log scale)", scale=alt.Scale(type="log")),
    color=alt.Color("layer:N", scale=alt.Scale(scheme="tableau10")), tooltip=["layer", "epoch", alt.Tooltip("norm:Q", format=".3g")],
).properties(height=240), width="stretch")
st.caption("Left: share of a layer's ReLU units that output zero for every probe review; a share near 100% means "
           "the layer has died. Right: L2 norm of the loss gradient of each layer's weights on the probe; norms "
           "falling by orders of magnitude toward the input layers mean vanishing gradients, rising ones exploding.")
with st.expander("Summary figures per layer and epoch"):
    st.dataframe(stats, hide_index=True, column_config={
        "dead_fraction": st.column_config.NumberColumn("dead units", format="percent"),
        "max_abs": st.column_config.NumberColumn("max |value|", format="%.4g"),
        "norm": st.column_config.NumberColumn("L2 norm", format="%.4g"),
        "mean": st.column_config.NumberColumn(format="%.4g"), "std": st.column_config.NumberColumn(format="%.4g"),
    })

st.subheader("Information plane")
plane = queries.information_plane(ctx.ref, ctx.run_id, model_id)
plane_base = alt.Chart(plane).encode(
    x=alt.X("i_xt:Q", title="I(X;T), bits", scale=alt.Scale(zero=False, nice=True, padding=12)),
    y=alt.Y("i_ty:Q", title="I(T;Y), bits", scale=alt.Scale(zero=False, nice=True, padding=12)))
paths = plane_base.mark_line(opacity=0.6, clip=True).encode(
    color=alt.Color("layer:N", title="layer (line)", scale=alt.Scale(scheme="tableau10"),
                    legend=alt.Legend(labelLimit=240)), order="epoch:O")
dots = plane_base.mark_point(size=80, filled=True, clip=True).encode(
    color=alt.Color("epoch:O", scale=alt.Scale(scheme="viridis"), title="epoch (point)"),
    shape=alt.Shape("layer:N", title="layer (shape)", legend=alt.Legend(labelLimit=240)),
    tooltip=["layer", "epoch", alt.Tooltip("i_xt:Q", format=".3f"), alt.Tooltip("i_ty:Q", format=".3f")])
st.altair_chart((paths + dots).resolve_scale(color="independent").properties(height=380), width="stretch")
if not plane.empty:
    st.caption(f"One point per layer per epoch (its shape the layer, its colour the epoch), and a line per layer "
               f"joining its epochs in order. Estimated by binning each layer's "
               f"output into {int(plane['bins'].iloc[0])} equal-width bins (from 0, or its lowest value if negative) on {int(plane['n_probe'].iloc[0]):,} "
               "fixed training reviews (Shwartz-Ziv & Tishby 2017). With that many reviews I(X;T) cannot exceed "
               f"log2({int(plane['n_probe'].iloc[0]):,}) bits, and wide layers sit near that ceiling: every review "
               f"lands in its own bin pattern. I(T;Y) cannot exceed log2 of the {len(ctx.classes)} classes "
               f"({math.log2(len(ctx.classes)):.2g} bits).")
