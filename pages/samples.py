"""Samples: every review, ordered by loss, filtered by what you choose (kept in the URL).

The store filters, counts and pages in SQL; the page only ever holds one page of rows.
The data's own columns (categories and numbers) become filters too.
"""

import math

import streamlit as st

from pages.common import decisions, filters, queries, state
from pages.common.widgets import plain, visible

PAGE_SIZE = 100
MAX_META_FILTERS = 12  # more of the data's columns than this: pick which to filter on

ctx = state.context()
limits = queries.filter_bounds(ctx.ref, ctx.run_id)
metas = filters.meta_filters(queries.meta_columns(ctx.ref, ctx.run_id))
decided = decisions.current(ctx.decisions, ctx.source)
max_loss = float(math.ceil(limits["loss"] * 10) / 10) or 1.0
max_words = limits["words"] or 1
rating = limits["rating"] if limits["rating"] and limits["rating"][0] < limits["rating"][1] else None
bounds = {"loss": (0.0, max_loss), "words": (0, max_words)} | ({"rating": rating} if rating else {})
filters.from_url(bounds, metas)
shown = []  # the metadata filters on the page: all of them, or those picked for a wide table
names = list(ctx.classes)
for key, offered in (("split", limits["splits"]), ("label", names), ("pred", names), ("cluster", limits["clusters"])):
    filters.keep_offered(key, offered)

st.title("Samples")
with st.expander("Filters", expanded=True):
    c = st.columns(4)
    c[0].multiselect("Split", limits["splits"], key="f_split", disabled=not limits["splits"],
                     help=None if limits["splits"] else "This data has no split column (--split)")
    c[1].multiselect("Given label", names, key="f_label", format_func=visible)
    c[2].multiselect("Predicted label", names, key="f_pred", format_func=visible)
    c[3].radio("Prediction", ["all", "correct", "incorrect"], key="f_outcome", horizontal=True)
    c = st.columns(3)
    if rating:
        step = 1 if isinstance(rating[0], int) else None
        c[0].slider(plain(ctx.rating_name or "rating"), rating[0], rating[1], key="f_rating", step=step)
    else:
        c[0].caption("No score column in this data (--score), so no rating filter.")
    c[1].slider("Loss (nats)", 0.0, max_loss, key="f_loss", step=0.05)
    c[2].slider("Length (words)", 0, max_words, key="f_words")
    c = st.columns(4)
    c[0].multiselect("Cluster", limits["clusters"], key="f_cluster")
    c[1].selectbox("Review status", filters.STATUSES, key="f_status")
    c[2].text_input("Search the text", key="f_q", placeholder="a word or phrase, as typed")
    c[3].checkbox("Flagged mislabels only", key="f_flagged")
    if metas:
        shown = metas
        if len(metas) > MAX_META_FILTERS:  # a wide table: the user picks which columns to filter on
            in_use = [m.name for m in metas if m.url_key in st.query_params]
            picked = st.multiselect(f"Filter on the data's own columns ({len(metas):,})", [m.name for m in metas],
                                    default=in_use or [m.name for m in metas[:MAX_META_FILTERS // 2]],
                                    key="f_meta_columns", format_func=visible, max_selections=MAX_META_FILTERS)
            shown = [m for m in metas if m.name in set(picked)]
        else:
            st.caption("The data's own columns")
        cols = st.columns(max(1, min(len(shown), 4)))
        for i, meta in enumerate(shown):
            col = cols[i % len(cols)]
            if meta.kind == "category":
                offered = queries.meta_values(ctx.ref, ctx.run_id, meta.name)[:500]
                filters.keep_offered(meta.key, offered)
                col.multiselect(plain(meta.name), offered, key=meta.key, format_func=visible)
            else:
                col.slider(plain(meta.name), meta.bounds[0], meta.bounds[1], key=meta.key)

metas = shown  # only the filters on the page apply
current = filters.values(metas)
filters.to_url(current, bounds, metas)
wanted = filters.spec(current, decided, ctx.classes, metas, has_rating=bool(rating))
matching = queries.sample_count(ctx.ref, ctx.run_id, wanted)

if matching == 0:
    st.warning("No review matches these filters. Widen a range or clear a filter.")
    st.stop()

pages = max(1, math.ceil(matching / PAGE_SIZE))
page = st.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, value=1, key="samples_page")
start = (page - 1) * PAGE_SIZE
view = queries.sample_page(ctx.ref, ctx.run_id, wanted, start, PAGE_SIZE)
st.caption(f"Rows {start + 1:,}-{start + len(view):,} of {matching:,} matching reviews "
           f"({ctx.run['n_samples']:,} in the run), highest loss first, {PAGE_SIZE} per page. "
           "Select a row to open it.")
status = view["sample_id"].map(decided.set_index("sample_id")["decision"]) if len(decided) else None
display = view.assign(label=view["label"].map(ctx.name).map(visible), pred_label=view["pred_label"].map(ctx.name)
                      .map(visible), sample_id=view["sample_id"].map(visible),
                      preview=view["preview"].str.slice(0, 90).map(visible),
                      status=status.fillna("") if status is not None else "")[
    ["sample_id", "split", "label", "pred_label", "rating", "p_given", "loss", "n_words", "cluster",
     "is_label_issue", "status", "preview"]]
event = st.dataframe(
    display, hide_index=True, key="samples_table", on_select="rerun", selection_mode="single-row",
    column_config={
        "label": "given label", "pred_label": "predicted",
        "rating": None if not rating else st.column_config.NumberColumn(ctx.rating_name or "rating"),
        "p_given": st.column_config.ProgressColumn("p(given label)", min_value=0, max_value=1, format="%.2f"),
        "loss": st.column_config.NumberColumn("loss (nats)", format="%.3f"),
        "n_words": st.column_config.NumberColumn("words"),
        "is_label_issue": st.column_config.CheckboxColumn("flagged"),
        "preview": st.column_config.TextColumn("text", width="large"),
    },
)
if event.selection.rows:
    chosen = view.iloc[event.selection.rows[0]]["sample_id"]
    st.switch_page("pages/sample_analysis.py", query_params={"sample": chosen})
