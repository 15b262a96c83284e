"""Overview: headline figures, where the model and the labels disagree by class, and the loss dashlets."""

import altair as alt
import streamlit as st

from pages.common import charts, queries, review, state
from pages.common.widgets import class_colors, pct, plain, visible
from pipeline.data.dataset import LoadReport
from pipeline.store.files import run_notes, run_problems

ctx = state.context()
decided = review.current_decisions(ctx)

st.title("Overview")
c = st.columns(6)
c[0].metric("Texts", f"{ctx.run['n_samples']:,}")
c[1].metric("Classes", f"{len(ctx.classes)}")
c[2].metric("Test accuracy", pct(ctx.run["test_accuracy"]),
            help="Trained on the train split, scored on the rest (n/a when the data has no train split)")
c[3].metric("Out-of-fold accuracy", pct(ctx.run["oof_accuracy"]), help="Every review scored by a model that never saw it")
c[4].metric("Flagged mislabels", f"{ctx.run['n_flagged']:,}", help="cleanlab confident learning")
c[5].metric("Decisions made", f"{len(decided):,}")

notes = run_notes(ctx.run.get("load_notes"))  # the store is untrusted: only what has the shape of notes
problems = run_problems(ctx.run.get("load_warnings"))
if notes or problems:
    left_out = sum(len(v) for k, v in problems.items() if k in ("empty", "null_text", "null_label", "null_id",
                                                                 "no_rating"))
    with st.expander(f"How the data was read: {len(notes)} note(s), {sum(map(len, problems.values())):,} text(s) "
                     f"repaired or left out ({left_out:,} left out)"):
        for line in notes:
            st.markdown(f"- {plain(line)}")
        for kind, items in problems.items():
            shown = ", ".join(visible(str(i)) for i in items[:5]) + (", …" if len(items) > 5 else "")
            st.markdown(f"- **{len(items):,}** {plain(LoadReport.KINDS.get(kind, kind))}: {plain(shown)}")

names = list(ctx.classes)
st.subheader("Given label vs predicted label")
left, right = st.columns([1, 1])  # the matrix is square: half the width holds it, the table gets the rest
with left:
    grid = queries.confusion(ctx.ref, ctx.run_id)  # every (given, predicted) pair, 0 where none
    totals = grid.groupby("label")["reviews"].transform("sum").clip(lower=1)
    grid = grid.assign(given=grid["label"].map(ctx.name), predicted=grid["pred_label"].map(ctx.name),
                       share=grid["reviews"] / totals)
    size = max(220, min(34 * len(names), 620))
    short = max(len(n) for n in names) <= 6
    heat = alt.Chart(grid).encode(
        x=alt.X("predicted:N", sort=names, title="predicted (out of fold, linear model)",
                axis=alt.Axis(labelAngle=0 if short or len(names) <= 4 else -40, labelLimit=140, labelFontSize=12)),
        y=alt.Y("given:N", sort=names, title="given label", axis=alt.Axis(labelLimit=140, labelFontSize=12)),
        tooltip=[alt.Tooltip("given:N", title="given"), alt.Tooltip("predicted:N"),
                 alt.Tooltip("reviews:Q", format=","), alt.Tooltip("share:Q", format=".1%", title="share of given")],
    )
    cells = heat.mark_rect().encode(color=alt.Color("share:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]),
                                                     title="share of the given label"))
    text = heat.transform_filter("datum.reviews > 0").mark_text(fontSize=11).encode(
        text=alt.Text("reviews:Q", format=","),
        color=alt.condition("datum.share > 0.5", alt.value("white"), alt.value("#111827")))
    st.altair_chart((cells + text).properties(height=size), width="stretch")
    st.caption("Each row is a given label; the diagonal is where the model agrees. Off-diagonal cells are the "
               "confusions worth reading: the Samples page filters by given and predicted label.")
with right:
    per = queries.per_class(ctx.ref, ctx.run_id)
    per = per.assign(name=per["name"].map(visible), precision=per["precision"].astype(float))
    st.dataframe(per[["name", "reviews", "recall", "precision", "mean_loss", "share_flagged"]], hide_index=True,
                 height=min(36 * (len(per) + 1) + 4, 420), column_config={
                     "name": st.column_config.TextColumn("class", width="small"),
                     "reviews": st.column_config.NumberColumn("texts", format="%d", width="small"),
                     "recall": st.column_config.ProgressColumn("accuracy", min_value=0, max_value=1,
                                                               format="percent", width="small"),
                     "precision": st.column_config.NumberColumn("precision", format="percent", width="small"),
                     "mean_loss": st.column_config.NumberColumn("loss", format="%.2f", width="small"),
                     "share_flagged": st.column_config.NumberColumn("flagged", format="percent", width="small")})
    st.caption("Per given class: accuracy (the share the model predicts right, its recall), precision (how often a "
               "prediction of the class is right; None when the model never predicts it), mean out-of-fold loss "
               "(nats) and the share flagged as likely mislabeled.")

left, right = st.columns(2)
with left:
    st.subheader("Highest loss first")
    top = queries.top_loss(ctx.ref, ctx.run_id, 200)
    ids = top["sample_id"]  # as stored: the shown ids make control characters visible
    top = top.assign(label=top["label"].map(ctx.name), pred_label=top["pred_label"].map(ctx.name),
                     sample_id=top["sample_id"].map(visible))[
        ["sample_id", "split", "label", "pred_label", "rating", "p_given", "loss", "is_label_issue"]]
    event = st.dataframe(
        top, hide_index=True, height=320, key="top_loss_table", on_select="rerun", selection_mode="single-row",
        column_config={"sample_id": st.column_config.TextColumn("id", width="medium"),
                       "split": st.column_config.TextColumn("split", width="small"),
                       "label": st.column_config.TextColumn("given", width="small"),
                       "pred_label": st.column_config.TextColumn("predicted", width="small"),
                       "rating": None if not ctx.rating_name else st.column_config.NumberColumn(
                           ctx.rating_name, width="small"),
                       "p_given": st.column_config.ProgressColumn("p(given)", min_value=0, max_value=1,
                                                                  format="%.2f", width="small"),
                       "loss": st.column_config.NumberColumn("loss (nats)", format="%.2f", width="small"),
                       "is_label_issue": st.column_config.CheckboxColumn("flagged", width="small")})
    st.caption("The 200 reviews with the highest out-of-fold loss (select one to open it); the Samples page has "
               "them all.")
    if event.selection.rows:
        st.switch_page("pages/sample_analysis.py",
                       query_params={"sample": ids.iloc[event.selection.rows[0]]})
with right:
    by_rating = queries.loss_by_rating(ctx.ref, ctx.run_id)
    if ctx.rating_name and len(by_rating):
        name = visible(ctx.rating_name)  # chart titles are text; Markdown gets plain()
        st.subheader(f"User score ({plain(ctx.rating_name)}) vs loss")
        base = alt.Chart(by_rating).encode(x=alt.X("rating:O", title=name, axis=alt.Axis(labelAngle=0)))
        band = base.mark_rule(strokeWidth=2, opacity=0.5).encode(y=alt.Y("q25:Q", title="loss (nats)"), y2="q75:Q")
        mean = base.mark_line(point=True).encode(
            y="mean_loss:Q", tooltip=[alt.Tooltip("rating", title=name), "reviews",
                                      alt.Tooltip("mean_loss", format=".3f", title="mean loss"),
                                      alt.Tooltip("std_loss", format=".3f", title="std")])
        st.altair_chart(band + mean, width="stretch")
        st.caption(f"Mean out-of-fold loss per value of {plain(ctx.rating_name)}, with the interquartile range. Where the score "
                   "and the label disagree the loss climbs" + (": for IMDB, the middle of the scale (4 and 7 stars) "
                                                               "is hardest." if ctx.rating_name == "rating" else "."))
    else:
        st.subheader("Loss by given label")
        st.altair_chart(alt.Chart(per.assign(name=per["name"])).mark_bar().encode(
            x=alt.X("mean_loss:Q", title="mean loss (nats)"), y=alt.Y("name:N", sort=names, title=None),
            color=alt.Color("name:N", scale=class_colors(ctx.classes), legend=None),
            tooltip=["name", "reviews", alt.Tooltip("mean_loss:Q", format=".3f")]), width="stretch")
        st.caption("This data has no score column (--score), so loss is shown per given label.")

st.subheader("Loss distribution by split")
hist = queries.loss_histogram(ctx.ref, ctx.run_id, 60)
hist = hist.assign(split=hist["split"].fillna("(no split)"))
top_count = int(hist["reviews"].max()) if len(hist) else 1
ticks = [t for t in (0, 1, 3, 10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000)
         if t <= top_count * 3]
splits = sorted(hist["split"].unique())
hue = alt.Scale(domain=splits, scheme="tableau10")
for split in splits:  # one chart per split: on a log count axis, overlapping or stacked bars would mislead
    st.altair_chart(alt.Chart(hist[hist["split"] == split]).mark_bar().encode(
        x=alt.X("lo:Q", bin="binned", title="loss (nats)" if split == splits[-1] else None,
                scale=alt.Scale(domain=[0, float(hist["hi"].max())])), x2="hi:Q",
        y=alt.Y("reviews:Q", scale=alt.Scale(type="symlog"), title=f"{visible(split)} (log)",
                axis=alt.Axis(values=ticks, format=",")),
        color=alt.Color("split:N", scale=hue, legend=None),
        tooltip=["split", alt.Tooltip("lo:Q", format=".2f", title="from (nats)"),
                 alt.Tooltip("hi:Q", format=".2f", title="to (nats)"), alt.Tooltip("reviews:Q", format=",")],
    ).properties(height=110), width="stretch")
st.caption("Reviews per 1/60 of the loss range, one row per split, on a log count axis: the long tail of high-loss "
           "reviews stays visible next to the thousands the model gets right.")

st.subheader("Training telemetry")
batches = queries.training_batches(ctx.ref, ctx.run_id)
if batches.empty:
    st.info("This run has no training telemetry: it trained only the linear model, which is fitted in one solver "
            "call with no batches or epochs. Runs with the dense network (the default) fill this in.")
else:
    window = charts.smoothing("overview_smoothing", batches)
    for chart in charts.curves_charts(charts.long_curves(batches, window)):
        st.altair_chart(chart, width="stretch")
    epochs = queries.training_epochs(ctx.ref, ctx.run_id)
    st.caption("Loss (cross-entropy, nats) and accuracy per training batch of each network's reference model "
               "(trained on the train split, or fold 0 without one), against the share of its batches done so "
               "networks of different lengths line up; faint: every batch, solid: the trailing mean. Per epoch, train vs held out: " + "; ".join(
                   f"{r.model_id} epoch {r.epoch}: train {r.train_accuracy:.1%}, held out {r.val_accuracy:.1%}"
                   for r in epochs.itertuples() if r.val_accuracy == r.val_accuracy))
