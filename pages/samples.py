"""Samples: every review, filtered and sorted as you choose (kept in the URL); decide on several at once.

The store filters, counts, sorts and pages in SQL; the page only ever holds one page of rows.
The data's own columns (categories and numbers) become filters too.
"""

import math

import streamlit as st

from pages.common import filters, queries, review, state
from pages.common.naming import space_label
from pages.common.widgets import plain, visible

PAGE_SIZE = 100
MAX_META_FILTERS = 12  # more of the data's columns than this: pick which to filter on
COLUMNS = {  # shown column -> its name on the page (every one sorts the whole filtered set)
    "sample_id": "id", "split": "split", "label": "given label", "pred_label": "predicted", "rating": "rating",
    "p_given": "p(given label)", "loss": "loss (nats)", "n_words": "words", "cluster": "cluster",
    "is_label_issue": "flagged", "status": "review status", "preview": "text",
}

ctx = state.context()
review.say_last_recorded()
limits = queries.filter_bounds(ctx.ref, ctx.run_id)
metas = filters.meta_filters(queries.meta_columns(ctx.ref, ctx.run_id))
decided = review.current_decisions(ctx)
max_loss = float(math.ceil(limits["loss"] * 10) / 10) or 1.0
max_words = limits["words"] or 1
rating = limits["rating"] if limits["rating"] and limits["rating"][0] < limits["rating"][1] else None
bounds = {"loss": (0.0, max_loss), "words": (0, max_words)} | ({"rating": rating} if rating else {})
spaces = tuple(queries.spaces(ctx.ref, ctx.run_id) or [queries.SPACE])
columns = {c: (ctx.rating_name or "rating") if c == "rating" else name for c, name in COLUMNS.items()
           if c != "rating" or rating}


def cluster_ids(space: str) -> list[int]:
    """The clusters of one map (the Samples table's cluster column is the text map's)."""
    if space == queries.SPACE:
        return limits["clusters"]
    return queries.clusters(ctx.ref, ctx.run_id, space)["cluster"].astype(int).tolist()


st.query_params.pop("sample", None)  # left by a link from Sample analysis; not a filter here
filters.restore_link()  # back on the page in this session with a bare URL: the last view, as it was
notes = filters.from_url(
    bounds, metas, offered={"split": limits["splits"], "label": list(ctx.classes), "pred": list(ctx.classes),
                            "cluster": lambda: cluster_ids(st.session_state["f_map"])},
    meta_offered=lambda m: queries.meta_values(ctx.ref, ctx.run_id, m.name)[:500], sortable=tuple(columns),
    spaces=spaces)
space = st.session_state["f_map"]
names = list(ctx.classes)
for key, offered in (("split", limits["splits"]), ("label", names), ("pred", names), ("cluster", cluster_ids(space))):
    filters.keep_offered(key, offered)

st.title("Samples")
notice = st.empty()  # what the link's filters could not be used as: said until the view changes
shown = []  # the metadata filters on the page: all of them, or those picked for a wide table
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
    own = queries.own_names(ctx.ref, ctx.run_id)  # a user's own embedding by the name they gave their model
    c[0].multiselect("Cluster", cluster_ids(space), key="f_cluster",
                     help=f"Clusters of the {plain(space_label(space, own))} map (Population map lists them)")
    if len(spaces) > 1:  # another map's cluster 1 is another cluster: the picked ones are cleared
        c[0].selectbox("Clusters of the map", spaces, key="f_map", format_func=lambda s: visible(space_label(s, own)),
                       on_change=lambda: st.session_state.update(f_cluster=[]))
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
filters.choice_to_url("map", "map", spaces[0])
wanted = filters.spec(current, decided, ctx.classes, metas, has_rating=bool(rating))
matching = queries.sample_count(ctx.ref, ctx.run_id, wanted)

if matching == 0:
    if notes:
        notice.warning("Some of this link's values were not used as written:\n\n"
                       + "\n".join(f"- {plain(n)}" for n in notes))
    st.warning("No review matches these filters. Widen a range or clear a filter.")
    st.stop()

c = st.columns([2, 2, 1, 3])
c[0].selectbox("Sort all matching reviews by", [f"{s}{k}" for k in columns for s in ("-", "")], key="f_sort",
               format_func=lambda v: f"{columns[v.lstrip('-')]} ({'highest' if v.startswith('-') else 'lowest'} "
                                     "first)",
               help="Sorts every matching review in the store, not only this page. Clicking a column header "
                    "reorders only the rows shown.")
filters.choice_to_url("sort", filters.SORT_KEY, filters.DEFAULT_SORT)
sort = st.session_state["f_sort"]
order = queries.SampleOrder(sort.lstrip("-"), sort.startswith("-"),
                            tuple(zip(decided["sample_id"], decided["decision"])) if sort.endswith("status") else ())
pages = max(1, math.ceil(matching / PAGE_SIZE))
view = (wanted, sort)
if "samples_view" not in st.session_state or "samples_page" not in st.session_state:  # a visit starts: URL's page
    st.session_state["samples_view"] = view
    st.session_state["samples_page"] = filters.page_from_url(pages, notes)
    st.session_state["samples_notes"] = (view, notes)
elif st.session_state["samples_view"] != view:  # another filter or order starts again at page 1
    st.session_state["samples_view"] = view
    st.session_state["samples_page"] = 1
shown_notes = st.session_state.get("samples_notes", (None, []))
if shown_notes[0] == view and shown_notes[1]:
    notice.warning("Some of this link's values were not used as written:\n\n"
                   + "\n".join(f"- {plain(n)}" for n in shown_notes[1]))
page = c[1].number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, key="samples_page")
filters.page_to_url(page)
filters.remember_link()
start = (page - 1) * PAGE_SIZE
rows = queries.sample_page(ctx.ref, ctx.run_id, wanted, start, PAGE_SIZE, order)
c[3].caption(f"Rows {start + 1:,}-{start + len(rows):,} of {matching:,} matching reviews "
             f"({ctx.run['n_samples']:,} in the run), {columns[sort.lstrip('-')]} "
             f"{'highest' if sort.startswith('-') else 'lowest'} first, {PAGE_SIZE} per page. Select rows to open "
             "one or decide on several at once.")
status = rows["sample_id"].map(decided.set_index("sample_id")["decision"]) if len(decided) else None
display = rows.assign(label=rows["label"].map(ctx.name).map(visible), pred_label=rows["pred_label"].map(ctx.name)
                      .map(visible), sample_id=rows["sample_id"].map(visible),
                      preview=rows["preview"].str.slice(0, 120).map(visible),
                      status=status.fillna("undecided") if status is not None else "undecided")[list(columns)]
# A new table (no selection) after each batch and whenever the rows shown change (page, filter, sort, a review's
# new status): a selection never moves onto reviews nobody picked.
round_ = st.session_state.setdefault("samples_round", 0)
shown_ids = tuple(rows["sample_id"])  # in order: a re-sorted page (by status, after an undo) is another table too
if st.session_state.setdefault("samples_table_for", shown_ids) != shown_ids:
    st.session_state["samples_table_for"] = shown_ids
    round_ = st.session_state["samples_round"] = round_ + 1
event = st.dataframe(
    display, hide_index=True, key=f"samples_table_{round_}", on_select="rerun", selection_mode="multi-row",
    column_config={
        "sample_id": st.column_config.TextColumn(columns["sample_id"]),
        "split": columns["split"], "label": columns["label"], "pred_label": columns["pred_label"],
        "rating": None if not rating else st.column_config.NumberColumn(columns["rating"]),
        "p_given": st.column_config.ProgressColumn(columns["p_given"], min_value=0, max_value=1, format="%.2f"),
        "loss": st.column_config.NumberColumn(columns["loss"], format="%.3f"),
        "n_words": st.column_config.NumberColumn(columns["n_words"]),
        "cluster": st.column_config.NumberColumn(columns["cluster"]),
        "is_label_issue": st.column_config.CheckboxColumn(columns["is_label_issue"]),
        "status": columns["status"],
        "preview": st.column_config.TextColumn(columns["preview"], width="large"),
    },
)
picked = rows.iloc[sorted(event.selection.rows)] if event.selection.rows else rows.iloc[0:0]
c = st.columns([1, 1, 2])
if len(picked):
    first = picked["sample_id"].iloc[0]
    if c[0].button(f"Open {plain(first[:40])} in Sample analysis", key="open_selected", type="primary"):
        st.switch_page("pages/sample_analysis.py", query_params={"sample": first})
with c[1]:
    review.undo_button(ctx, key="samples")
with c[2]:
    review.download_csv(ctx, key="download_csv_samples", disabled=decided.empty)
if len(picked) and review.batch_panel(ctx, picked, key="samples"):
    st.session_state["samples_round"] = round_ + 1
    st.rerun()
