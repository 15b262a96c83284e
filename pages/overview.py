"""Overview: headline figures and the loss dashlets."""

import altair as alt
import streamlit as st

from pages.common import decisions, queries, state
from pages.common.widgets import LABELS, pct

ctx = state.context()
decided = decisions.current(ctx.decisions)

st.title("Overview")
c = st.columns(5)
c[0].metric("Reviews", f"{ctx.run['n_samples']:,}")
c[1].metric("Test accuracy", pct(ctx.run["test_accuracy"]), help="Trained on the train split, scored on the test split")
c[2].metric("Out-of-fold accuracy", pct(ctx.run["oof_accuracy"]), help="Every review scored by a model that never saw it")
c[3].metric("Flagged mislabels", f"{ctx.run['n_flagged']:,}", help="cleanlab confident learning")
c[4].metric("Decisions made", f"{len(decided):,}")

left, right = st.columns(2)
with left:
    st.subheader("Highest loss first")
    top = queries.top_loss(ctx.ref, ctx.run_id, 200)[
        ["sample_id", "split", "label", "rating", "p_pos", "loss", "is_label_issue"]]
    st.dataframe(top.assign(label=top["label"].map(LABELS)), hide_index=True, height=320,
                 column_config={"p_pos": st.column_config.ProgressColumn("p(positive)", min_value=0, max_value=1,
                                                                         format="%.2f"),
                                "loss": st.column_config.NumberColumn("loss (nats)", format="%.3f"),
                                "is_label_issue": st.column_config.CheckboxColumn("flagged")})
    st.caption("The 200 reviews with the highest out-of-fold loss; the Samples page has them all.")
with right:
    st.subheader("User score (rating) vs loss")
    by_rating = queries.loss_by_rating(ctx.ref, ctx.run_id)
    base = alt.Chart(by_rating).encode(x=alt.X("rating:O", title="rating (stars, 1-10)"))
    band = base.mark_rule(strokeWidth=2, opacity=0.5).encode(y=alt.Y("q25:Q", title="loss (nats)"), y2="q75:Q")
    mean = base.mark_line(point=True).encode(
        y="mean_loss:Q", tooltip=["rating", "reviews", alt.Tooltip("mean_loss", format=".3f", title="mean loss"),
                                  alt.Tooltip("std_loss", format=".3f", title="std")])
    st.altair_chart(band + mean, width="stretch")
    st.caption("Mean out-of-fold loss per rating, with the interquartile range. Reviews in the middle of the scale "
               "(4 and 7 stars) are the hardest.")

st.subheader("Loss distribution by split")
hist = alt.Chart(queries.loss_histogram(ctx.ref, ctx.run_id, 60)).mark_bar(opacity=0.7).encode(
    x=alt.X("lo:Q", bin="binned", title="loss (nats)"), x2="hi:Q",
    y=alt.Y("reviews:Q", stack=None, scale=alt.Scale(type="symlog"), title="reviews (symlog)"),
    color=alt.Color("split:N"),
    tooltip=["split", alt.Tooltip("lo:Q", format=".2f", title="from (nats)"),
             alt.Tooltip("hi:Q", format=".2f", title="to (nats)"), alt.Tooltip("reviews:Q", format=",")],
)
st.altair_chart(hist, width="stretch")

st.subheader("Training telemetry")
batches = queries.training_batches(ctx.ref, ctx.run_id)
if batches.empty:
    st.info("This run has no training telemetry: it trained only the linear model, which is fitted in one solver "
            "call with no batches or epochs. Runs with the dense network (the default) fill this in.")
else:
    long = batches.melt(id_vars=["model_id", "step", "epoch"], value_vars=["loss", "accuracy"], var_name="metric")
    st.altair_chart(alt.Chart(long).mark_line(opacity=0.8).encode(
        x=alt.X("step:Q", title="batch (step)"), y=alt.Y("value:Q", title=None),
        color=alt.Color("model_id:N", title="model"), row=alt.Row("metric:N", title=None),
        tooltip=["model_id", "epoch", "step", alt.Tooltip("value:Q", format=".3f")],
    ).properties(height=160).resolve_scale(y="independent"), width="stretch")
    epochs = queries.training_epochs(ctx.ref, ctx.run_id)
    st.caption("Loss (binary cross-entropy, nats) and accuracy per training batch of the models trained on the "
               "train split. Per epoch, train vs test: " + "; ".join(
                   f"{r.model_id} epoch {r.epoch}: train {r.train_accuracy:.1%}, test {r.val_accuracy:.1%}"
                   for r in epochs.itertuples()))
