"""Models: every stored predictor of the run side by side: accuracy (on the texts it never saw, per class), how
often each pair agrees, the texts they disagree on most, and how well each one's confidence is calibrated."""

import altair as alt
import pandas as pd
import streamlit as st

from pages.common import charts, queries, state
from pages.common.widgets import MISSING, PERCENT, listed, percent, sample_link, visible

ctx = state.context()
st.title("Models")
models = queries.predictors(ctx.ref, ctx.run_id)
models["predictor"] = queries.predictor_labels(models, len(ctx.classes))
order = list(models["predictor"])
label = dict(zip(zip(models["family"], models["protocol"]), order))


def named(frame: pd.DataFrame, side: str = "") -> list[str]:
    """The predictor label of each row of a query keyed by family and protocol (``_a``/``_b`` for pairs)."""
    return [label[k] for k in zip(frame[f"family{side}"], frame[f"protocol{side}"])]


st.subheader("Accuracy")
shares = ["accuracy", "accuracy_unseen", "accuracy_seen"]
table = models[["predictor", "texts", "accuracy", "unseen", "accuracy_unseen", "seen", "accuracy_seen"]]
st.dataframe(table.assign(**{c: percent(table[c]) for c in shares}), hide_index=True, key="models_accuracy",
             placeholder=MISSING, column_config={
                 "predictor": st.column_config.TextColumn("predictor", width="medium"),
                 "texts": st.column_config.NumberColumn("texts", format="%d", help="texts it scored"),
                 "accuracy": st.column_config.NumberColumn("accuracy", format=PERCENT, help="on every text scored"),
                 "unseen": st.column_config.NumberColumn("unseen texts", format="%d",
                                                         help="texts it never trained on"),
                 "accuracy_unseen": st.column_config.ProgressColumn("accuracy, unseen", min_value=0, max_value=100,
                                                                    format=PERCENT, width="small"),
                 "seen": st.column_config.NumberColumn("seen texts", format="%d", help="texts it trained on"),
                 "accuracy_seen": st.column_config.NumberColumn("accuracy, seen (optimistic)", format=PERCENT,
                                                                help=f"{MISSING} where it scored no text it "
                                                                     "trained on")})
some = models.loc[(models["seen"] > 0) & (models["unseen"] > 0), "predictor"]
every = models.loc[models["unseen"] == 0, "predictor"]
trained = []
if len(some):
    trained.append(f"Trained on some of the texts they scored: {listed(some)}.")
if len(every):
    trained.append(f"Trained on every text they scored (as far as the run knows): {listed(every)}.")
st.caption("Accuracy against the labels this run used, on the texts each predictor scored. A predictor is only "
           "honestly judged on texts it never trained on, as out-of-fold predictions always are. "
           + (" ".join(trained) + " Their accuracy on the texts they trained on is optimistic, so compare "
              "predictors on the texts they never trained on." if trained else
              "This run has no prediction of a text its model trained on."))
if len(every):
    st.warning(f"Not known on any text it never saw: {listed(every)}. Every text counts as seen in training unless "
               "the run was told otherwise (`--trained-on SPLIT`, or an `out_of_sample` column in the predictions "
               "file).")

rows = st.radio("Texts for the charts below", ["unseen", "all"], horizontal=True, key="models_rows",
                format_func={"unseen": "only texts each predictor never trained on",
                             "all": "all texts (optimistic where it trained on them)"}.get)
unseen = rows == "unseen"
per = queries.predictor_class_accuracy(ctx.ref, ctx.run_id, unseen)
per = per.assign(predictor=named(per), name=per["class"].map(ctx.name).map(visible))
missing = [p for p in order if p not in set(per["predictor"])]
st.altair_chart(charts.share_heatmap(per, x="name", y="predictor", value="accuracy",
                                     x_sort=[visible(c) for c in ctx.classes],
                                     y_sort=[p for p in order if p not in missing], x_title="given class",
                                     legend="accuracy", tooltip=(alt.Tooltip("texts:Q", format=","),)),
                width="stretch")
st.caption("Accuracy per given class (recall: the share of the class's texts each predictor gets right)"
           + (f"; left out, having no text it never trained on: {listed(missing)}." if missing
              else "."))

st.subheader("Agreement")
pairs = queries.agreement(ctx.ref, ctx.run_id)
pairs = pairs.assign(a=named(pairs, "_a"), b=named(pairs, "_b"))
st.altair_chart(charts.share_heatmap(pairs, x="b", y="a", value="agreement", x_sort=order, y_sort=order, x_title=None,
                                     legend="same class predicted", tooltip=(alt.Tooltip("texts:Q", format=","),)),
                width="stretch")
st.caption("The share of the texts both predictors scored on which they predict the same class. Low agreement "
           "between two accurate predictors means they err on different texts.")

st.subheader("Where they disagree most")
spread, total = queries.disagreements(ctx.ref, ctx.run_id, 200)
if total == 0:
    st.info(f"All {len(order)} predictors predict the same class for every text of this run.")
else:
    first = spread.drop_duplicates("sample_id").set_index("sample_id")  # in the query's order: most disagreement first
    wide = spread.assign(predictor=named(spread), predicted=spread["pred_label"].map(ctx.name).map(visible)).pivot(
        index="sample_id", columns="predictor", values="predicted")
    shown = [p for p in order if p in wide]
    keys = {p: f"p{i}" for i, p in enumerate(shown)}  # the predictors' labels are data: columns get fixed names
    table = pd.DataFrame({
        "open": [sample_link(ctx.run_id, s) for s in first.index], "sample_id": first.index.map(visible),
        "given": first["label"].map(ctx.name).map(visible).to_numpy(),
        **{keys[p]: wide.loc[first.index, p].to_numpy() for p in shown},
        "classes_predicted": first["classes_predicted"].to_numpy(), "spread": first["spread"].to_numpy(),
        "preview": first["preview"].map(visible).to_numpy()})
    st.dataframe(table, hide_index=True, key="models_disagreements", column_config={
        "open": st.column_config.LinkColumn("review", display_text="open", width="small",
                                            help="opens it in Sample analysis"),
        "sample_id": st.column_config.TextColumn("id"), "given": st.column_config.TextColumn("given label"),
        **{keys[p]: st.column_config.TextColumn(p) for p in shown},
        "classes_predicted": st.column_config.NumberColumn("classes predicted", format="%d"),
        "spread": st.column_config.NumberColumn("spread of p(given)", format="%.2f",
                                                help="highest minus lowest probability of the given label, 0-1"),
        "preview": st.column_config.TextColumn("text", width="large")})
    st.caption(f"{total:,} of {ctx.run['n_samples']:,} texts ({total / ctx.run['n_samples']:.1%}) get more than one "
               f"class from the {len(order)} predictors; the {len(first):,} shown get the most classes, then the "
               "widest spread of the probability given to their label. Open one in Sample analysis to see each predictor's "
               "probabilities and the n-grams behind the linear model's.")

st.subheader("Calibration")
bins = queries.calibration(ctx.ref, ctx.run_id, unseen)
bins = bins.assign(predictor=named(bins), range=[f"{lo:.0%}-{hi:.0%}" for lo, hi in zip(bins["lo"], bins["hi"])])
drawn = [p for p in order if p in set(bins["predictor"])]
left, right = st.columns([3, 2])
with left:
    axis = {"scale": alt.Scale(domain=[0, 1]), "axis": alt.Axis(format="%")}
    diagonal = alt.Chart(pd.DataFrame({"confidence": [0, 1], "accuracy": [0, 1]})).mark_line(
        color="#9ca3af", strokeDash=[4, 4]).encode(x=alt.X("confidence:Q", **axis), y=alt.Y("accuracy:Q", **axis))
    curves = alt.Chart(bins).mark_line(point=True).encode(
        x=alt.X("confidence:Q", title="mean confidence in the predicted class", **axis),
        y=alt.Y("accuracy:Q", title="accuracy", **axis),
        color=alt.Color("predictor:N", sort=drawn, scale=alt.Scale(scheme=charts.MODEL_COLORS), title="predictor",
                        legend=alt.Legend(orient="bottom", columns=2, labelLimit=320)),
        tooltip=["predictor", alt.Tooltip("range:N", title="confidence bin"), alt.Tooltip("texts:Q", format=","),
                 alt.Tooltip("confidence:Q", format=".1%"), alt.Tooltip("accuracy:Q", format=".1%")])
    st.altair_chart((diagonal + curves).properties(height=380), width="stretch")
with right:
    ece = bins.groupby("predictor", sort=False).agg(ece=("ece", "first"), texts=("texts", "sum")).reindex(drawn)
    st.dataframe(ece.reset_index().assign(ece=lambda d: percent(d["ece"])), hide_index=True, key="models_ece",
                 column_config={
        "predictor": st.column_config.TextColumn("predictor", width="medium"),
        "ece": st.column_config.NumberColumn("ECE", format=PERCENT,
                                             help="expected calibration error: |accuracy - confidence| averaged over "
                                                  "the bins, weighted by their texts"),
        "texts": st.column_config.NumberColumn("texts", format="%d")})
st.caption(f"Texts binned by the probability each predictor gave its predicted class ({queries.CALIBRATION_BINS} "
           "equal-width bins); a well calibrated predictor lies on the dashed diagonal, one below it is overconfident. "
           "ECE is in percentage points of probability: 0% is perfect."
           f" With {len(ctx.classes)} classes confidence starts at {1 / len(ctx.classes):.0%}.")
