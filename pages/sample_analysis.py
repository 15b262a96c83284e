"""Sample analysis: one review, why it was scored as it was, every model's view of it, and its neighbours."""

import math

import altair as alt
import pandas as pd
import streamlit as st

from pages.common import queries, review, state
from pages.common.naming import space_label
from pages.common.widgets import (SHOWN_CHARS, class_colors, highlight_html, legend_html, listed, plain,
                                  rating_text, spans_html, visible)
from pipeline.names import FAMILY_NAMES, NETWORKS, OWN_FAMILIES

BAR_HEIGHT = 32  # pixels per predictor in the Predictions chart: room for its label

ctx = state.context()
review.say_last_recorded()
st.title("Sample analysis")
default = st.query_params.get("sample") or queries.top_loss(ctx.ref, ctx.run_id, 1)["sample_id"].iloc[0]
typed = st.text_input("Sample id", value=default, key=f"sample_pick_{default}",
                      help="The review's id: for IMDB its path in the archive without .txt, e.g. "
                           "test/neg/10003_3; for your own data its --id (or derived) id")
row = queries.sample_detail(ctx.ref, ctx.run_id, typed)  # ids are data: ' 5' and '5' are different reviews
if row is None and typed.strip() != typed:
    row = queries.sample_detail(ctx.ref, ctx.run_id, typed.strip())  # spaces typed around an id by accident
sample_id = row["sample_id"] if row is not None else typed
if sample_id != st.query_params.get("sample"):
    st.query_params["sample"] = sample_id
if row is None:
    st.warning(f"No review {plain(repr(sample_id))} in this run. Pick one on the Samples page, or check the id.")
    st.stop()

c = st.columns(6)
c[0].metric("Given label", plain(ctx.name(row["label"])))
c[1].metric("Predicted", plain(ctx.name(row["pred_label"])))
c[2].metric(plain(ctx.rating_name or "Rating"), rating_text(row["rating"], ctx.rating_name))
c[3].metric("Loss (nats)", f"{row['loss']:.3f}")
c[4].metric("Words", f"{row['n_words']:,}")
c[5].metric("Issue rank", f"#{row['issue_rank']:,}")
mine = review.current_decisions(ctx)
mine = mine[mine["sample_id"] == sample_id]
note = ""
if len(mine):
    last = mine.iloc[0]
    to = f" as {plain(last['new_label'])}" if last["decision"] == "mislabeled" and last["new_label"] else ""
    note = f" · your team decided: **{plain(last['decision'])}{to}**"
flag = "Flagged as a likely mislabel" if row["is_label_issue"] else "Not flagged"
st.markdown(f"**{flag}:** {plain(row['reason'])}{note}")
review.say_ranking(ctx, "The issue rank and the line above come from")
found = queries.evidence(ctx.ref, ctx.run_id, sample_id) or {}
if found.get("suggestion") is not None:
    told = {"relabel": f"**relabel** as {plain(ctx.name(row['suggested_label']))}",
            "ambiguous": f"**ambiguous** rather than mislabeled ({plain(found['ambiguity'] or '')})",
            "keep": "**keep** the label"}[found["suggestion"]]
    facts = [f"Suggestion: {told}."]
    if found["n_models"]:
        facts.append(f"{found['models_disagree']} of {found['n_models']} models that never saw it disagree with "
                     "the label.")
    if found["neighbours_disagree"] is not None:
        facts.append(f"{found['neighbours_disagree']:.0%} of its nearest reviews (TF-IDF) are labeled otherwise.")
    if found["stated_text"]:
        owner = (f", a score of {plain(ctx.name(found['stated_label']))}" if found["stated_label"] is not None
                 and found["stated_label"] >= 0 else "")
        facts.append(f"The text states {plain(repr(found['stated_text']))}{owner}.")
    if found["sentence_mix"] is not None:
        facts.append(f"Its sentences, read one by one by the linear model: {found['sentence_mix']:.0%} of their "
                     "evidence against the majority (a third or more reads as mixed).")
    if found["is_outlier"]:
        facts.append("It is unlike the other texts (an outlier by cleanlab's Datalab).")
    st.markdown("**Evidence:** " + " ".join(facts))
    if found["duplicate_of"]:
        st.page_link("pages/sample_analysis.py", query_params={"sample": found["duplicate_of"]},
                     label=f"A near-duplicate labeled otherwise: {plain(found['duplicate_of'][:60])}")
meta = queries.sample_meta(ctx.ref, ctx.run_id, sample_id)
if len(meta):
    st.dataframe(meta.assign(column=meta["column"].map(visible), value=meta["value"].map(visible)).set_index(
        "column").T, hide_index=True)

left, right = st.columns([3, 2])
explained = queries.shap_classes(ctx.ref, ctx.run_id, sample_id)
with left:
    st.subheader("The review, tinted by SHAP value")
    if len(explained) > 1:
        shown = st.radio("Explain", explained, key=f"shap_class_{sample_id}", horizontal=True,
                         format_func=lambda k: ("given label " if k == row["label"] else "predicted ")
                         + plain(ctx.name(k)),
                         index=explained.index(int(row["pred_label"])) if int(row["pred_label"]) in explained else 0)
    else:
        shown = explained[0] if explained else 1
    tokens = queries.shap_tokens(ctx.ref, ctx.run_id, sample_id, shown)
    away = ctx.name(0) if len(ctx.classes) == 2 else "the other classes"
    st.caption(f"SHAP values of the linear model's score for {plain(ctx.name(shown))}, from the fold model that "
               "never saw this review.")
    st.html(legend_html(ctx.name(shown), away))
    st.html(highlight_html(row["display_text"], tokens))
    if len(row["display_text"]) > SHOWN_CHARS:
        st.download_button(f"Download the whole review ({len(row['display_text']):,} characters, .txt)",
                           row["display_text"].encode(), file_name="review.txt", mime="text/plain",
                           key="download_review")
with right:
    st.subheader("Predictions")
    preds = queries.predictions_for(ctx.ref, ctx.run_id, sample_id)
    preds["model"] = queries.predictor_labels(preds, len(ctx.classes))  # a user's own model by its given name
    bars = pd.DataFrame([{"model": m, "class": ctx.name(k), "order": k, "p": float(p)}
                         for m, probs in zip(preds["model"], preds["probs"]) for k, p in enumerate(probs)])
    order = list(preds["model"])
    st.altair_chart(alt.Chart(bars).mark_bar().encode(
        x=alt.X("p:Q", stack="zero", scale=alt.Scale(domain=[0, 1]), title="probability of each class"),
        y=alt.Y("model:N", sort=order, title=None,  # every predictor named: Streamlit's theme drops overlapping labels
                axis=alt.Axis(labelLimit=180, labelOverlap=False, labelFlush=False)),
        color=alt.Color("class:N", scale=class_colors(ctx.classes), sort=list(ctx.classes), title="class",
                        legend=alt.Legend(orient="bottom", columns=4, labelLimit=160)),
        order=alt.Order("order:Q"),
        tooltip=["model", "class", alt.Tooltip("p:Q", format=".3f")]).properties(
        height=BAR_HEIGHT * max(len(order), 1) + 60 + 20 * math.ceil(len(ctx.classes) / 4)), width="stretch")
    seen = preds[preds["seen_in_training"]]
    if len(seen):
        own = " (a model of your own may have, unless you said it did not)" if seen["family"].isin(
            OWN_FAMILIES).any() else ""
        st.caption(f"Optimistic here, having trained on this review{own}: {listed(seen['model'])}. Out-of-fold "
                   "scores come from models that never saw it.")
    st.subheader("Strongest n-grams")
    top = tokens[tokens["kind"] == "token"].head(15)
    st.altair_chart(alt.Chart(top).mark_bar().encode(
        x=alt.X("shap_value:Q", title=f"SHAP value (logit of {visible(ctx.name(shown))})"),
        y=alt.Y("token:N", sort=None, title=None, axis=alt.Axis(labelOverlap=False, labelLimit=180)),
        color=alt.condition("datum.shap_value > 0", alt.value("#16a34a"), alt.value("#dc2626")),
        tooltip=["token", alt.Tooltip("shap_value:Q", format="+.3f")]).properties(height=18 * max(len(top), 1) + 40),
        width="stretch")

networks = preds[(preds["protocol"] == "oof") & preds["family"].isin(NETWORKS)]
if len(networks):
    st.subheader("What the networks read")
    st.caption("Each word's effect on a network's log-odds of the class, found by scoring the review again without "
               "that word through the fold model that never saw it (its ONNX file, nothing retrained). Green pushes "
               "toward the class, red away; words past the network's cut, and words outside its vocabulary, are "
               "not read.")
    c = st.columns([2, 2, 1])
    family = c[0].radio("Network", list(networks["family"]), horizontal=True, key=f"occlusion_family_{sample_id}",
                        format_func=lambda f: FAMILY_NAMES.get(f, f))
    target = c[1].selectbox("Class", list(range(len(ctx.classes))), index=int(row["pred_label"]),
                            format_func=lambda k: plain(ctx.name(k)), key=f"occlusion_class_{sample_id}")
    asked = st.session_state.setdefault("occlusion_asked", set())
    if c[2].button("Compute", key=f"occlusion_go_{sample_id}", help="One pass through the network per word read, "
                   "about a second"):
        asked.add(sample_id)
    if sample_id in asked:
        model_id = networks.loc[networks["family"] == family, "model_id"].iloc[0]
        try:
            words, p_target = queries.occlusion(ctx.ref, ctx.run_id, model_id, row["display_text"], target)
        except (OSError, RuntimeError, ValueError, KeyError) as exc:  # the model file changed, removed, unreadable
            st.warning(f"The {FAMILY_NAMES.get(family, family)}'s model file cannot be used: {plain(str(exc))}")
        else:
            read = words[words["read"] & words["value"].notna()]
            typed = read.groupby("token", as_index=False)["value"].mean()
            st.markdown(f"The {FAMILY_NAMES.get(family, family)} ({plain(model_id)}) gives "
                        f"{plain(ctx.name(target))} **{p_target:.1%}**; it read {len(read):,} of "
                        f"{len(words):,} words.")
            st.html(legend_html(ctx.name(target), "other classes" if len(ctx.classes) > 2 else ctx.name(1 - target),
                                "stronger tint = more log-odds lost without the word; every word read is tinted"))
            st.html(spans_html(row["display_text"], read, what="occlusion"))
            top = typed.reindex(typed["value"].abs().sort_values(ascending=False).index).head(12)
            st.altair_chart(alt.Chart(top).mark_bar().encode(
                x=alt.X("value:Q", title=f"log-odds of {visible(ctx.name(target))} lost without the word"),
                y=alt.Y("token:N", sort=None, title=None, axis=alt.Axis(labelOverlap=False, labelLimit=180)),
                color=alt.condition("datum.value > 0", alt.value("#16a34a"), alt.value("#dc2626")),
                tooltip=["token", alt.Tooltip("value:Q", format="+.3f")]).properties(
                height=18 * max(len(top), 1) + 40), width="stretch")

st.subheader("Nearest neighbours in embedding space")
spaces = queries.neighbour_spaces(ctx.ref, ctx.run_id)
own_names = queries.own_names(ctx.ref, ctx.run_id)
space = (st.radio("Neighbours by", spaces, horizontal=True, key="neighbour_space",
                  format_func=lambda s: plain(space_label(s, own_names))) if len(spaces) > 1 else queries.SPACE)
near = queries.neighbours(ctx.ref, ctx.run_id, sample_id, space)
if near.empty:
    st.info("This run has no embeddings for this review.")
else:
    agree = (near["label"] == row["label"]).mean()
    st.markdown(f"**{agree:.0%}** of the {len(near)} nearest reviews share its given label "
                f"({plain(ctx.name(row['label']))}).")
    event = st.dataframe(
        near.assign(label=near["label"].map(ctx.name).map(visible),
                    pred_label=near["pred_label"].map(ctx.name).map(visible),
                    sample_id=near["sample_id"].map(visible), preview=near["preview"].map(visible)),
        hide_index=True, key=f"neighbours_{sample_id}", on_select="rerun", selection_mode="single-row",
        column_config={"sample_id": "id", "label": "given label", "pred_label": "predicted",
                       "rating": None if not ctx.rating_name else ctx.rating_name,
                       "similarity": st.column_config.NumberColumn("cosine similarity", format="%.3f"),
                       "loss": st.column_config.NumberColumn("loss (nats)", format="%.3f"),
                       "preview": st.column_config.TextColumn("text", width="large")})
    st.caption("Select a neighbour to open it.")
    if event.selection.rows:
        st.switch_page("pages/sample_analysis.py", query_params={"sample": near["sample_id"].iloc[
            event.selection.rows[0]]})

st.subheader("Decision")
c = st.columns([4, 1])
with c[0]:
    decided_now = review.decision_panel(ctx, row, key="analysis", skippable=False,
                                        current=mine.iloc[0].to_dict() if len(mine) else None)
with c[1]:
    review.undo_button(ctx, key="analysis")
if decided_now not in (None, "skip"):
    st.rerun()
