"""Mislabel review: suspects in rank order, one decision each, and the relabel CSV."""

import streamlit as st

from pages.common import decisions, queries, state
from pages.common.widgets import LABELS, LEGEND_HTML, decision_panel, highlight_html

ctx = state.context()
table = queries.sample_table(ctx.ref, ctx.run_id)
suspects = table[table["is_label_issue"]].sort_values("issue_rank")
if suspects.empty:
    suspects = table.sort_values("issue_rank").head(50)
decided = decisions.current(ctx.decisions)
status = suspects["sample_id"].map(decided.set_index("sample_id")["decision"]) if len(decided) else None
done = int(status.notna().sum()) if status is not None else 0

st.title("Mislabel review")
st.progress(done / len(suspects), text=f"Reviewed {done:,} of {len(suspects):,} suspects")
st.download_button("Download relabel CSV", decisions.relabel_csv(ctx.decisions), file_name="lossmap_relabel.csv",
                   mime="text/csv", key="download_csv", disabled=decided.empty,
                   help="One row per decided review (every run): sample_id, path, old and new label, decision, note")

skipped = st.session_state.setdefault("skipped", set())
pending = suspects[(status.isna() if status is not None else True) & ~suspects["sample_id"].isin(skipped)]
if pending.empty:
    st.success("Every suspect has a decision (or was skipped). Download the CSV above, or revisit any review "
               "from the list below.")
else:
    row = pending.iloc[0].to_dict()
    detail = queries.sample_detail(ctx.ref, ctx.run_id, row["sample_id"])
    tokens = queries.shap_tokens(ctx.ref, ctx.run_id, row["sample_id"])
    st.subheader(f"#{row['issue_rank']:,} · {row['sample_id']}")
    c = st.columns(5)
    c[0].metric("Given label", LABELS[row["label"]])
    c[1].metric("Suggested label", LABELS[row["suggested_label"]])
    c[2].metric("Rating", f"{row['rating']}/10")
    c[3].metric("Label score", f"{row['label_score']:.3f}", help="cleanlab label quality; lower = more suspect")
    c[4].metric("Loss (nats)", f"{row['loss']:.2f}")
    st.markdown(f"**Why flagged:** {row['reason']}")
    strongest = tokens[tokens["kind"] == "token"].head(8)
    st.markdown("**Tokens that drove the prediction:** " + ", ".join(
        f"`{t.token}` ({t.shap_value:+.2f})" for t in strongest.itertuples()))
    st.html(highlight_html(detail["display_text"], tokens))
    st.html(LEGEND_HTML)
    chosen = decision_panel(ctx, row, key="review")
    if chosen == "skip":
        skipped.add(row["sample_id"])
    if chosen:
        st.rerun()

st.subheader("All suspects")
listing = suspects[["issue_rank", "sample_id", "label", "suggested_label", "rating", "label_score", "reason"]].assign(
    label=lambda d: d["label"].map(LABELS), suggested_label=lambda d: d["suggested_label"].map(LABELS),
    status=status if status is not None else None)
event = st.dataframe(listing, hide_index=True, key="suspects_table", on_select="rerun", selection_mode="single-row",
                     column_config={"issue_rank": "rank", "label": "given label", "suggested_label": "suggested",
                                    "label_score": st.column_config.NumberColumn("score", format="%.3f")})
if event.selection.rows:
    st.switch_page("pages/sample_analysis.py",
                   query_params={"sample": listing.iloc[event.selection.rows[0]]["sample_id"]})
