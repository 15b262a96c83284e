"""Mislabel review: suspects in rank order, one decision each (a key per decision, relabel to any class),
undo, batch decisions on the list, and the relabel CSV."""

import streamlit as st

from pages.common import queries, review, state
from pages.common.widgets import highlight_html, legend_html, plain, rating_text, visible

ctx = state.context()
LISTED = 1000
review.say_last_recorded()
review.escape_leaves_text_boxes()
if st.session_state.pop("review_scroll_top", False):
    review.scroll_to_top()  # the next suspect from its header, wherever the last decision was made

suspects, n_flagged = queries.suspects(ctx.ref, ctx.run_id, LISTED)
n_suspects = n_flagged or len(suspects)
decided = review.current_decisions(ctx)
decided_ids = tuple(decided["sample_id"]) if len(decided) else ()
done = queries.count_among_flagged(ctx.ref, ctx.run_id, decided_ids) if n_flagged else \
    int(suspects["sample_id"].isin(decided_ids).sum())
status = suspects["sample_id"].map(decided.set_index("sample_id")["decision"]) if len(decided) else None

st.title("Mislabel review")
review.say_ranking(ctx, "Suspects are ranked, and **Why flagged** is written, from")
st.progress(done / max(n_suspects, 1), text=f"Reviewed {done:,} of {n_suspects:,} suspects")
c = st.columns([1, 1, 3])
with c[0]:
    review.download_csv(ctx, key="download_csv", disabled=decided.empty)
with c[1]:
    review.undo_button(ctx, key="review", shortcut=True)
c[2].caption("Keys decide on the suspect shown below: **F** relabel · **K** correct as is · **A** ambiguous · "
             "**S** skip · **U** undo. In the note box, Esc leaves it first.")

skipped = st.session_state.setdefault("skipped", set())
row = queries.next_suspect(ctx.ref, ctx.run_id, tuple(sorted({*decided_ids, *skipped})), bool(n_flagged))
if row is not None and not n_flagged and row["sample_id"] not in set(suspects["sample_id"]):
    row = None  # a run with no flag offers its 50 most suspect reviews only
if skipped and st.button(f"Bring back the {len(skipped):,} skipped suspect{'s' if len(skipped) != 1 else ''}",
                         key="unskip"):
    skipped.clear()
    st.rerun()
if row is None:
    st.success("Every suspect has a decision (or was skipped). Download the CSV above, or revisit any review "
               "from the list below.")
else:
    detail = queries.sample_detail(ctx.ref, ctx.run_id, row["sample_id"])
    explained = queries.shap_classes(ctx.ref, ctx.run_id, row["sample_id"])
    shown_class = int(row["pred_label"]) if int(row["pred_label"]) in explained else (explained or [1])[0]
    tokens = queries.shap_tokens(ctx.ref, ctx.run_id, row["sample_id"], shown_class)
    st.subheader(f"#{row['issue_rank']:,} · {plain(row['sample_id'])}")
    c = st.columns(5)
    c[0].metric("Given label", plain(ctx.name(row["label"])))
    c[1].metric("Suggested label", plain(ctx.name(row["suggested_label"])))
    c[2].metric(plain(ctx.rating_name or "Rating"), rating_text(row["rating"], ctx.rating_name))
    c[3].metric("Label score", f"{row['label_score']:.3f}", help="cleanlab label quality; lower = more suspect")
    c[4].metric("Loss (nats)", f"{row['loss']:.2f}")
    chosen = review.decision_panel(ctx, row, key="review", shortcuts=True)
    if chosen == "skip":
        skipped.add(row["sample_id"])
        st.session_state["last_recorded"] = f"Skipped {plain(row['sample_id'])}"
    if chosen:
        st.session_state["review_scroll_top"] = True
        st.rerun()
    st.markdown(f"**Why flagged:** {plain(row['reason'])}")
    if row.get("suggestion") == "ambiguous":
        signal = (queries.evidence(ctx.ref, ctx.run_id, row["sample_id"]) or {}).get("ambiguity")
        st.info(f"Ambiguous rather than mislabeled: {plain(signal or 'the text reads as mixed or neutral')}. "
                "Flipping its label would be a guess; consider **Ambiguous** (key A) rather than a new label.")
    strongest = tokens[tokens["kind"] == "token"].head(8)
    st.markdown(f"**Strongest n-grams** (SHAP value for {plain(ctx.name(shown_class))}: + pushes toward it, "
                "− away from it): " + ", ".join(
        f"{plain(t.token)} ({t.shap_value:+.2f})" for t in strongest.itertuples()))
    st.html(highlight_html(detail["display_text"], tokens))
    away = ctx.name(0) if len(ctx.classes) == 2 else "the other classes"
    st.html(legend_html(ctx.name(shown_class), away))

st.subheader("All suspects" if len(suspects) == n_suspects else f"The {len(suspects):,} most suspect")
if len(suspects) < n_suspects:
    st.caption(f"Of {n_suspects:,} flagged reviews; the Samples page (Flagged mislabels only) pages through all.")
listing = suspects[["issue_rank", "sample_id", "label", "suggested_label", "suggestion", "rating", "label_score",
                     "reason"]].assign(
    label=lambda d: d["label"].map(ctx.name).map(visible),
    suggested_label=lambda d: d["suggested_label"].map(ctx.name).map(visible),
    sample_id=lambda d: d["sample_id"].map(visible), reason=lambda d: d["reason"].map(visible),
    suggestion=lambda d: d["suggestion"].fillna("not recorded"),
    status=status.fillna("undecided") if status is not None else "undecided")
round_ = st.session_state.setdefault("suspects_round", 0)  # a new table (no selection) after each batch
event = st.dataframe(listing, hide_index=True, key=f"suspects_table_{round_}", on_select="rerun",
                     selection_mode="multi-row",
                     column_config={"issue_rank": "rank", "sample_id": "id", "label": "given label",
                                    "suggested_label": "suggested",
                                    "suggestion": st.column_config.TextColumn(
                                        "relabel or ambiguous", help="relabel: the evidence points to the suggested "
                                        "class; ambiguous: the text reads as mixed or neutral"),
                                    "rating": None if not ctx.rating_name else ctx.rating_name,
                                    "label_score": st.column_config.NumberColumn("score", format="%.3f"),
                                    "status": "review status"})
st.caption("Select rows to open one in Sample analysis or decide on several at once."
           + (" This run was written before Lossmap suggested relabel or ambiguous ('not recorded'); run the "
              "pipeline again for the suggestions and their evidence." if suspects["suggestion"].isna().all()
              and len(suspects) else ""))
picked = suspects.iloc[sorted(event.selection.rows)] if event.selection.rows else suspects.iloc[0:0]
if len(picked):
    first = picked["sample_id"].iloc[0]
    if st.button(f"Open {plain(first[:40])} in Sample analysis", key="open_suspect"):
        st.switch_page("pages/sample_analysis.py", query_params={"sample": first})
    if review.batch_panel(ctx, picked, key="suspects"):
        st.session_state["suspects_round"] = round_ + 1
        st.rerun()
