"""Truncation: what the sequence networks miss by reading only max_len words."""

import altair as alt
import streamlit as st

from pages.common import queries, state
from pages.common.widgets import marked_html, plain, rating_text, visible
from pipeline.store.files import stored_json

ctx = state.context()
st.title("Truncation")
families = queries.truncation_families(ctx.ref, ctx.run_id)
if not families:
    st.info("This run has no sequence network, so nothing was truncated. The CNN (on by default) fills this page in.")
    st.stop()
family = st.selectbox("Network", families, key="trunc_family")
config = ctx.run.get("config")
cfg = stored_json(config, dict)
max_len = cfg.get("max_len") if type(cfg.get("max_len")) is int else "?"  # the store is untrusted: a number or "?"
how = plain(str(cfg.get("truncation", "?"))[:40])

buckets = queries.accuracy_by_length(ctx.ref, ctx.run_id, family)
total = int(buckets["reviews"].sum())
cut = float((buckets["reviews"] * buckets["share_truncated"]).sum())
c = st.columns(4)
c[0].metric("Reads", f"{max_len} words", help=f"truncation: {how}")
c[1].metric("Reviews truncated", f"{cut:,.0f} ({cut / max(total, 1):.1%})")
for col, (name, label) in zip(c[2:], (("head", "head only"), ("head_tail", "head + tail"))):
    acc = float((buckets[name] * buckets["reviews"]).sum() / max(total, 1))
    col.metric(f"Accuracy, {label}", f"{acc:.2%}", help="out of fold, every review")

left, right = st.columns(2)
with left:
    st.subheader("Accuracy by review length")
    reads = {"head": "the first words (head)", "head_tail": "head + tail", "whole_review": "the whole review"}
    long = buckets.melt(id_vars=["bucket", "min_words", "reviews"], value_vars=list(reads), var_name="reads",
                        value_name="accuracy").assign(reads=lambda d: d["reads"].map(reads))
    order = list(reads.values())
    st.altair_chart(alt.Chart(long).mark_line(point=alt.OverlayMarkDef(size=70)).encode(
        x=alt.X("bucket:N", sort=list(buckets["bucket"]), title="review length (words)", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("accuracy:Q", scale=alt.Scale(zero=False), axis=alt.Axis(format="%")),
        color=alt.Color("reads:N", sort=order, title="the model reads",
                        scale=alt.Scale(domain=order, range=["#dc2626", "#2563eb", "#16a34a"])),
        strokeDash=alt.StrokeDash("reads:N", sort=order, legend=None,
                                  scale=alt.Scale(domain=order, range=[[1, 0], [6, 3], [2, 2]])),
        tooltip=["bucket", "reads", "reviews", alt.Tooltip("accuracy:Q", format=".2%")],
    ).properties(height=300), width="stretch")
    st.altair_chart(alt.Chart(buckets).mark_bar(color="#94a3b8").encode(
        x=alt.X("bucket:N", sort=list(buckets["bucket"]), title=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("reviews:Q", title="reviews", axis=alt.Axis(format=",")),
        tooltip=["bucket", alt.Tooltip("reviews:Q", format=","),
                 alt.Tooltip("share_truncated:Q", format=".1%", title="truncated")],
    ).properties(height=110), width="stretch")
    st.caption(f"Above: out-of-fold accuracy of the {family} fold models reading the first {max_len} words (head), the first "
               f"and last {max_len // 2 if isinstance(max_len, int) else '?'} (head_tail), or the whole review in "
               "sliding windows (mean log-odds). Below: reviews per length bucket, so a bucket's accuracy can be weighed. "
               "Reviews up to the limit read the same either way.")
with right:
    st.subheader("Length vs loss")
    grid = queries.length_vs_loss(ctx.ref, ctx.run_id, family)
    heat = alt.Chart(grid).mark_rect().encode(
        x=alt.X("words_lo:Q", scale=alt.Scale(type="log"), title="review length (words, log scale)"), x2="words_hi:Q",
        y=alt.Y("loss_lo:Q", title="loss (nats, capped at 5)"), y2="loss_hi:Q",
        color=alt.Color("reviews:Q", scale=alt.Scale(type="log", scheme="blues"), title="reviews"),
        tooltip=[alt.Tooltip("words_lo:Q", format=".0f", title="from words"),
                 alt.Tooltip("words_hi:Q", format=".0f", title="to words"),
                 alt.Tooltip("loss_lo:Q", title="loss from"), "reviews"],
    )
    limit = alt.Chart({"values": [{"max_len": max_len if isinstance(max_len, int) else 0}]}).mark_rule(
        color="#dc2626", strokeDash=[4, 3]).encode(x="max_len:Q")
    st.altair_chart((heat + limit).properties(height=300), width="stretch")
    if isinstance(max_len, int):
        st.caption(f"Every review by its length and the loss of the model's own prediction; reviews right of "
                   f"the dashed line ({max_len} words) were truncated.")

st.subheader("Most harmed by truncation")
flips_first = st.radio("Order", ["harm", "prediction flips first"], horizontal=True, key="trunc_order",
                       help="'prediction flips first': the reviews whose predicted label changes when the whole "
                            "review is read, most harmed first, then the others") == "prediction flips first"
harmed = queries.harmed(ctx.ref, ctx.run_id, family, flips_first=flips_first)
shown = harmed.assign(label=harmed["label"].map(ctx.name).map(visible), preview=harmed["preview"].map(visible),
                      sample_id=harmed["sample_id"].map(visible),
                      pred_model=harmed["pred_model"].map(ctx.name).map(visible),
                      pred_windows=harmed["pred_windows"].map(ctx.name).map(visible))
st.dataframe(shown, hide_index=True, height=300, column_config={
    "harm_rank": "rank", "n_words": "words", "label": "given label",
    "rating": None if not ctx.rating_name else ctx.rating_name,
    "p_model": st.column_config.NumberColumn("p(given) as read", format="%.3f"),
    "p_windows": st.column_config.NumberColumn("p(given) whole review", format="%.3f"),
    "pred_model": "predicted as read", "pred_windows": "predicted, whole review",
    "harm": st.column_config.NumberColumn("harm (nats)", format="%.3f"),
    "prediction_changes": st.column_config.CheckboxColumn("flips"),
})
st.caption("Harm = the model's loss on what it read minus its loss on the whole review: how much the unseen part "
           "would have helped. p(given) is the probability of the given label. 'flips': reading everything changes "
           "the predicted label.")
if not harmed.empty:
    sample_id = st.selectbox("Read a review", harmed["sample_id"], key="trunc_sample",
                             format_func=lambda s: f"#{int(harmed.set_index('sample_id').loc[s, 'harm_rank'])} "
                                                   f"{visible(s)}")
    d = queries.truncation_detail(ctx.ref, ctx.run_id, family, sample_id)
    text, start, end = d["display_text"], int(d["unseen_start"]), int(d["unseen_end"])
    rating = (f", {plain(ctx.rating_name)} {rating_text(d['rating'], ctx.rating_name)}" if ctx.rating_name else "")
    st.markdown(
        f"Labeled **{plain(ctx.name(d['label']))}**{rating}, {int(d['n_words'])} words. "
        f"Read as truncated: predicted {plain(ctx.name(d['pred_model']))}, p(given) = {d['p_model']:.3f}; whole "
        f"review: predicted {plain(ctx.name(d['pred_windows']))}, p(given) = {d['p_windows']:.3f} "
        f"({int(d['n_windows'])} windows); harm {d['harm']:.3f} nats.")
    st.html(marked_html(text, start, end))
    st.caption("Highlighted in yellow: the part the model never read.")
