"""Compare runs: two runs of the store on the texts both hold: accuracy and its change per class, the predictions
that changed and in which direction, the label-issue ranks that moved most, and the labels the later run changed."""

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from pages.common import queries, state
from pages.common.naming import own_label, ranking_text
from pages.common.widgets import MISSING, PERCENT, pct, percent, sample_link, visible
from pipeline.names import OWN_FAMILIES, family_name

LINK = st.column_config.LinkColumn("review", display_text="open", width="small", help="opens it in Sample analysis")
# runs.config fields left out: where a run wrote, not what it did; and the ranking's options, shown as the ranking
UNCOMPARED = ("db", "models_dir", "progress", "issue_method", "issue_source")


def setting_text(value) -> str:
    """A value of runs.config as a table shows it."""
    return MISSING if value is None else str(value)


def predictors_text(families: list[str], names: dict[str, str], n_classes: int) -> str:
    """The families a run trained or was given, a user's own by the name they gave it."""
    return ", ".join(own_label(f, names) if f in OWN_FAMILIES else family_name(f, n_classes) for f in families)


ctx = state.context()
st.title("Compare runs")
runs = queries.runs(ctx.ref).set_index("run_id")  # newest first
if len(runs) < 2:
    st.info("This store holds one run, so there is nothing to compare yet. Make another into the same store, e.g. "
            "after reviewing labels: `python -m pipeline run --data DATA --db STORE --relabel "
            "STORE.decisions.duckdb` (your decisions applied as labels), or with other options; then reload this page.")
    st.stop()


def run_label(run_id: str) -> str:
    r = runs.loc[run_id]
    return (f"{r['completed_at']:%Y-%m-%d %H:%M} · {Path(r['source']).name} · {r['n_samples']:,} texts · "
            f"…{run_id[-4:]}")


ids = list(runs.index)
c = st.columns(2)
run_a = c[0].selectbox("Run A (before)", ids, index=1, format_func=run_label, key=f"compare_a_{ctx.ref.mtime_ns}")
run_b = c[1].selectbox("Run B (after)", ids, index=0, format_func=run_label, key=f"compare_b_{ctx.ref.mtime_ns}")
if run_a == run_b:
    st.info("Pick two different runs.")
    st.stop()
name_a, name_b = queries.classes(ctx.ref, run_a), queries.classes(ctx.ref, run_b)
shared = queries.shared_texts(ctx.ref, run_a, run_b)
if shared["shared"] == 0:
    st.warning(f"These runs hold different data: none of run A's {shared['texts_a']:,} texts is among run B's "
               f"{shared['texts_b']:,} (no sample_id in common), so they cannot be compared text by text.")
    st.stop()
st.caption(f"Compared on the **{shared['shared']:,}** texts both runs hold (the same sample_id; run A holds "
           f"{shared['texts_a']:,}, run B {shared['texts_b']:,}). Predictions are the linear model's out of fold; "
           "each run is scored against the labels it used.")

changed, n_changed = queries.changed_predictions(ctx.ref, run_a, run_b)
relabels, n_relabels = queries.relabeled(ctx.ref, run_b)
test_a, test_b = runs.loc[run_a, "test_accuracy"], runs.loc[run_b, "test_accuracy"]


def change(delta) -> dict:
    """A metric's delta in percentage points; one that rounds to zero grey and without an arrow."""
    if delta is None or delta != delta:
        return {}
    shown = round(delta * 100, 1)
    if shown == 0:
        return {"delta": "0.0 pp", "delta_color": "off", "delta_arrow": "off"}
    return {"delta": f"{shown:+.1f} pp"}


test_help = ("runs.test_accuracy: the conventional linear model on the texts outside the train split, over the whole "
             "run (n/a without a train split)")
c = st.columns(4)
c[0].metric("Test accuracy, A", pct(test_a), help=test_help)
c[1].metric("Test accuracy, B", pct(test_b), **change(test_b - test_a), help=test_help)
c[2].metric("Out-of-fold accuracy, A", pct(shared["oof_a"]), help="the linear model, on the shared texts")
c[3].metric("Out-of-fold accuracy, B", pct(shared["oof_b"]), **change(shared["oof_b"] - shared["oof_a"]),
            help="the linear model, on the shared texts")
c = st.columns(4)
c[0].metric("Shared texts", f"{shared['shared']:,}", help="texts (sample_id) both runs hold")
c[1].metric("Predictions changed", f"{n_changed:,}", help="shared texts whose predicted class differs")
c[2].metric("Labels run B changed", f"{n_relabels:,}", help="--relabel: samples.original_label is set")

st.subheader("What differs between the runs")
setting_a, setting_b = queries.run_settings(ctx.ref, run_a), queries.run_settings(ctx.ref, run_b)
names_a, names_b = queries.own_names(ctx.ref, run_a), queries.own_names(ctx.ref, run_b)
differ = [("label-issue ranking", ranking_text(setting_a["ranking"], names_a, explain=False),
           ranking_text(setting_b["ranking"], names_b, explain=False)),
          ("predictors", predictors_text(setting_a["families"], names_a, len(name_a)),
           predictors_text(setting_b["families"], names_b, len(name_b))),
          *((key, setting_text(setting_a["config"].get(key)), setting_text(setting_b["config"].get(key)))
            for key in dict.fromkeys([*setting_a["config"], *setting_b["config"]]) if key not in UNCOMPARED)]
differ = [(what, a, b) for what, a, b in differ if a != b]
if differ:
    st.dataframe(pd.DataFrame(differ, columns=["setting", "a", "b"]).map(visible), hide_index=True,
                 key="compare_settings", column_config={
                     "setting": st.column_config.TextColumn("setting", width="medium",
                                                            help="how the run ranked label issues "
                                                                 "(label_issues.method), the predictors it trained or "
                                                                 "was given, or an option of runs.config"),
                     "a": st.column_config.TextColumn("run A"), "b": st.column_config.TextColumn("run B")})
    st.caption("Settings change predictions and label-issue ranks as much as labels do: a rank that moved between "
               "runs ranked in different ways need not mean a label changed.")
else:
    st.caption("Both runs were made with the same settings, trained the same predictors and ranked label issues the "
               "same way: what changed below comes from the data and its labels (and the randomness of training).")

st.subheader("Accuracy per class")
per = queries.class_accuracy_change(ctx.ref, run_a, run_b)
per = per.assign(name=per["name"].map(visible), delta_pp=per["delta"] * 100)
if (per["delta_pp"].round(1).fillna(0) == 0).all():
    st.info("No class's accuracy changed: on the shared texts the linear model gets each class right as often in "
            "both runs (to 0.1 percentage points).")
else:
    st.altair_chart(alt.Chart(per).mark_bar().encode(
        x=alt.X("delta_pp:Q", title="change of accuracy, B - A (percentage points)",
                axis=alt.Axis(format="+.1f", tickMinStep=0.1)),
        y=alt.Y("name:N", sort=list(per["name"]), title="given class",
                axis=alt.Axis(labelLimit=180, labelOverlap=False)),
        color=alt.condition("datum.delta_pp >= 0", alt.value("#16a34a"), alt.value("#dc2626")),
        tooltip=[alt.Tooltip("name:N", title="class"), alt.Tooltip("accuracy_a:Q", format=".1%", title="A"),
                 alt.Tooltip("accuracy_b:Q", format=".1%", title="B"), alt.Tooltip("delta_pp:Q", format="+.1f",
                                                                                  title="change (pp)")],
    ).properties(height=32 * len(per) + 70), width="stretch")  # the x axis' room included
st.dataframe(per[["name", "texts_a", "accuracy_a", "texts_b", "accuracy_b", "delta_pp"]].assign(
    accuracy_a=percent(per["accuracy_a"]), accuracy_b=percent(per["accuracy_b"])), hide_index=True,
    key="compare_classes", placeholder=MISSING, column_config={
        "name": st.column_config.TextColumn("class", width="medium"),
        "texts_a": st.column_config.NumberColumn("texts, A", format="%d", width="small"),
        "accuracy_a": st.column_config.NumberColumn("accuracy, A", format=PERCENT, width="small"),
        "texts_b": st.column_config.NumberColumn("texts, B", format="%d", width="small"),
        "accuracy_b": st.column_config.NumberColumn("accuracy, B", format=PERCENT, width="small"),
        "delta_pp": st.column_config.NumberColumn("change (pp)", format="%+.1f", width="small",
                                                  help="accuracy B - accuracy A, in percentage points")})
st.caption("Per given class, as each run labels the shared texts (a relabelled text counts under its label in each "
           f"run): the share the linear model predicts right out of fold; {MISSING} where a run has no shared text "
           "of the class.")

st.subheader("Predictions that changed")
if n_changed == 0:
    st.info("The linear model predicts the same class for every shared text in both runs.")
else:
    flows = queries.prediction_flows(ctx.ref, run_a, run_b)
    flows = flows.assign(direction=[f"{visible(a)} → {visible(b)}" for a, b in zip(flows["pred_a"], flows["pred_b"])])
    outcomes = ["became right", "became wrong", "wrong in both", "right in both"]
    st.altair_chart(alt.Chart(flows).mark_bar().encode(
        x=alt.X("texts:Q", title="texts", axis=alt.Axis(format=",d", tickMinStep=1)),
        y=alt.Y("direction:N", sort=list(dict.fromkeys(flows["direction"])), title=None, axis=alt.Axis(labelLimit=260)),
        color=alt.Color("outcome:N", sort=outcomes, title="against each run's label",
                        scale=alt.Scale(domain=outcomes, range=["#16a34a", "#dc2626", "#9ca3af", "#2563eb"])),
        order=alt.Order("outcome:N"),
        tooltip=["direction", "outcome", alt.Tooltip("texts:Q", format=",")],
    ).properties(height=32 * flows["direction"].nunique() + 70), width="stretch")
    st.dataframe(changed.assign(
        open=[sample_link(run_b, s) for s in changed["sample_id"]], sample_id=changed["sample_id"].map(visible),
        **{k: changed[k].map(visible) for k in ("label_a", "label_b", "pred_a", "pred_b", "preview")})[
        ["open", "sample_id", "pred_a", "pred_b", "label_a", "label_b", "correct_a", "correct_b", "p_given_a",
         "p_given_b", "preview"]], hide_index=True, key="compare_changed", column_config={
        "open": LINK,
        "sample_id": "id", "pred_a": "predicted, A", "pred_b": "predicted, B", "label_a": "label, A",
        "label_b": "label, B", "correct_a": st.column_config.CheckboxColumn("right, A"),
        "correct_b": st.column_config.CheckboxColumn("right, B"),
        "p_given_a": st.column_config.NumberColumn("p(label), A", format="%.2f"),
        "p_given_b": st.column_config.NumberColumn("p(label), B", format="%.2f"),
        "preview": st.column_config.TextColumn("text", width="large")})
    st.caption(f"{n_changed:,} shared texts are predicted differently; "
               + (f"the {len(changed):,} shown" if len(changed) < n_changed else "all shown")
               + ", the largest change of p(label) first. Links open the text in run B.")

st.subheader("Label-issue ranks that moved most")
moves = queries.rank_moves(ctx.ref, run_a, run_b)
if moves.empty:
    st.info("Every shared text has the same label-issue rank in both runs.")
else:
    st.dataframe(moves.assign(open=[sample_link(run_b, s) for s in moves["sample_id"]],
                              sample_id=moves["sample_id"].map(visible), label_b=moves["label_b"].map(visible),
                              preview=moves["preview"].map(visible),
                              direction=["more suspect in B" if c < 0 else "less suspect in B"
                                         for c in moves["rank_change"]])[
        ["open", "sample_id", "rank_a", "rank_b", "rank_change", "direction", "flagged_a", "flagged_b", "label_b",
         "preview"]],
        hide_index=True, key="compare_ranks", column_config={
            "open": LINK,
            "sample_id": "id", "rank_a": st.column_config.NumberColumn("rank, A", format="%d"),
            "rank_b": st.column_config.NumberColumn("rank, B", format="%d"),
            "rank_change": st.column_config.NumberColumn("rank change, B - A", format="%+d",
                                                         help="places: < 0 = closer to rank 1, more suspect in run "
                                                              "B; > 0 = less suspect"),
            "direction": st.column_config.TextColumn("moved"),
            "flagged_a": st.column_config.CheckboxColumn("flagged, A"),
            "flagged_b": st.column_config.CheckboxColumn("flagged, B"), "label_b": "label, B",
            "preview": st.column_config.TextColumn("text", width="large")})
    st.caption("Rank 1 is the text each run found most likely mislabeled; the texts whose rank moved most places come "
               "first. Links open the text in run B.")

st.subheader("Labels run B changed")
if n_relabels == 0:
    st.info("Run B used the data's labels as they are (it was not run with `--relabel`).")
else:
    st.dataframe(relabels.assign(open=[sample_link(run_b, s) for s in relabels["sample_id"]],
                                 **{k: relabels[k].map(visible) for k in ("sample_id", "old_label", "new_label",
                                                                           "preview")})[
        ["open", "sample_id", "old_label", "new_label", "preview"]], hide_index=True, key="compare_relabels",
        column_config={"open": LINK,
                       "sample_id": "id", "old_label": "the data's label", "new_label": "label used by B",
                       "preview": st.column_config.TextColumn("text", width="large")})
    st.caption(f"{n_relabels:,} texts whose label run B replaced (`--relabel`)"
               + (f"; the first {len(relabels):,} by id are listed." if len(relabels) < n_relabels else ".")
               + " Their old label is kept in the store (samples.original_label).")
