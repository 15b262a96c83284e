"""Sample analysis: one review, why it was scored as it was, and its neighbours."""

import altair as alt
import pandas as pd
import streamlit as st

from pages.common import decisions, queries, state
from pages.common.widgets import LABELS, LEGEND_HTML, SHOWN_CHARS, decision_panel, highlight_html, visible

ctx = state.context()
st.title("Sample analysis")
default = st.query_params.get("sample") or queries.top_loss(ctx.ref, ctx.run_id, 1)["sample_id"].iloc[0]
sample_id = st.text_input("Sample id", value=default, key=f"sample_pick_{default}",
                          help="The review's path in the archive without .txt, e.g. test/neg/10003_3").strip()
if sample_id != st.query_params.get("sample"):
    st.query_params["sample"] = sample_id
row = queries.sample_detail(ctx.ref, ctx.run_id, sample_id)
if row is None:
    st.warning(f"No review `{sample_id}` in this run. Pick one on the Samples page, or check the id "
               "(split/pos|neg/<id>_<rating>).")
    st.stop()

c = st.columns(6)
c[0].metric("Given label", LABELS[row["label"]])
c[1].metric("Predicted", LABELS[row["pred_label"]])
c[2].metric("Rating", f"{row['rating']}/10")
c[3].metric("Loss (nats)", f"{row['loss']:.3f}")
c[4].metric("Words", f"{row['n_words']:,}")
c[5].metric("Issue rank", f"#{row['issue_rank']:,}")
mine = decisions.current(ctx.decisions)
mine = mine[mine["sample_id"] == sample_id]
note = f" · your team decided: **{mine.iloc[0]['decision']}**" if len(mine) else ""
flag = "Flagged as a likely mislabel" if row["is_label_issue"] else "Not flagged"
st.markdown(f"**{flag}:** {row['reason']}{note}")

left, right = st.columns([3, 2])
tokens = queries.shap_tokens(ctx.ref, ctx.run_id, sample_id)
with left:
    st.subheader("The review, tinted by SHAP value")
    st.html(LEGEND_HTML)
    st.html(highlight_html(row["display_text"], tokens))
    if len(row["display_text"]) > SHOWN_CHARS:
        st.download_button(f"Download the whole review ({len(row['display_text']):,} characters, .txt)",
                           row["display_text"].encode(), file_name=f"{sample_id.replace('/', '_')}.txt",
                           mime="text/plain", key="download_review")
with right:
    st.subheader("Predictions")
    preds = queries.predictions_for(ctx.ref, ctx.run_id, sample_id)
    preds["model"] = preds["predictor"].map({queries.OOF: "out of fold", queries.CONVENTIONAL: "conventional"})
    bars = pd.concat([preds.assign(label="positive", p=preds["p_pos"]),
                      preds.assign(label="negative", p=1 - preds["p_pos"])])
    st.altair_chart(alt.Chart(bars).mark_bar().encode(
        x=alt.X("p:Q", stack="zero", scale=alt.Scale(domain=[0, 1]), title="probability"),
        y=alt.Y("model:N", title=None), color=alt.Color("label:N", scale=alt.Scale(
            domain=["negative", "positive"], range=["#dc2626", "#16a34a"])),
        tooltip=["model", "label", alt.Tooltip("p:Q", format=".3f")]).properties(height=110), width="stretch")
    if preds["seen_in_training"].any():
        st.caption("The conventional model trained on this review (train split), so its score is optimistic.")
    st.subheader("Strongest n-grams")
    top = tokens[tokens["kind"] == "token"].head(15)
    st.altair_chart(alt.Chart(top).mark_bar().encode(
        x=alt.X("shap_value:Q", title="SHAP value (logit)"),
        y=alt.Y("token:N", sort=None, title=None, axis=alt.Axis(labelOverlap=False, labelLimit=180)),
        color=alt.condition("datum.shap_value > 0", alt.value("#16a34a"), alt.value("#dc2626")),
        tooltip=["token", alt.Tooltip("shap_value:Q", format="+.3f")]).properties(height=18 * max(len(top), 1) + 40), width="stretch")

st.subheader("Nearest neighbours in embedding space")
near = queries.neighbours(ctx.ref, ctx.run_id, sample_id)
if near.empty:
    st.info("This run has no embeddings for this review.")
else:
    agree = (near["label"] == row["label"]).mean()
    st.markdown(f"**{agree:.0%}** of the {len(near)} nearest reviews share its given label "
                f"({LABELS[row['label']]}).")
    st.dataframe(near.assign(label=near["label"].map(LABELS), pred_label=near["pred_label"].map(LABELS),
                             preview=near["preview"].map(visible)),
                 hide_index=True, column_config={
                     "similarity": st.column_config.NumberColumn("cosine similarity", format="%.3f"),
                     "loss": st.column_config.NumberColumn("loss (nats)", format="%.3f")})

st.subheader("Decision")
if decision_panel(ctx, row, key="analysis") not in (None, "skip"):
    st.rerun()
