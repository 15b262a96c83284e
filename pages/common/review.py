"""Deciding on reviews: one at a time (with a key per decision), several at once, and undoing; and what ranked the
suspects (``say_ranking``).

Every decision goes through ``pipeline.store.decisions`` (an append-only history); undo
writes a row too. A note belongs to one review or one batch: its widget is keyed by
the review (or the batch), so the next one starts empty.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pipeline.store import decisions
from pages.common import naming, queries
from pages.common.state import Context
from pages.common.widgets import plain

# One key per decision on Mislabel review ('C' and 'R' are Streamlit's own, so 'correct' is K, keep).
KEYS = {"mislabeled": "F", "correct": "K", "ambiguous": "A", "skip": "S"}
UNDO_KEY = "U"
SUGGESTED = -1  # the batch relabel target meaning "each review's suggested label"


def current_decisions(ctx: Context) -> pd.DataFrame:
    """The current decisions on the run's data. When the decisions file cannot be read, the page says why and what
    to do, and goes on without decisions (the analysis itself does not need them)."""
    try:
        return decisions.current(ctx.decisions, ctx.source)
    except decisions.DecisionsError as exc:
        st.error(f"Decisions are not shown: {plain(exc)}", icon=":material/error:")
        return decisions.empty()


def _saved(write) -> bool:
    """Run a write to the decisions file; when it cannot be saved, say so (what was typed stays where it is)."""
    try:
        write()
        return True
    except decisions.DecisionsError as exc:
        st.error(f"Not saved: {plain(exc)} What you typed is still here.", icon=":material/error:")
        return False


def _review(ctx: Context, row, new_label: str | None, note: str) -> dict:
    rating = row.get("rating")
    return dict(sample_id=row["sample_id"], old_label=ctx.name(row["label"]), new_label=new_label,
                rating=None if rating is None or rating != rating else float(rating),
                score=None if row.get("label_score") is None else float(row["label_score"]),
                sample_path=row.get("path"), note=note)


def decision_panel(ctx: Context, row: dict, *, key: str, shortcuts: bool = False, skippable: bool = True,
                   current: dict | None = None) -> str | None:
    """Buttons to decide on one review, plus a note. Returns the decision recorded (or 'skip'), if any.

    With two classes, 'mislabeled' flips the label; with more, it relabels to the class
    picked beside it (the suggested one by default). With ``shortcuts`` each button has a
    key. Widgets are keyed by the review, so a click or key press made for one review
    never lands on the next (a double press decides once). ``current`` is the review's
    current decision, said above the buttons.
    """
    sid = row["sample_id"]
    given = int(row["label"])
    others = [k for k in range(len(ctx.classes)) if k != given]
    suggested = int(row.get("suggested_label", others[0]))
    if current is not None:
        to = f" as {plain(current['new_label'])}" if current["decision"] == "mislabeled" and current["new_label"] else ""
        note = current.get("note")
        said = f" (note: {plain(note)})" if isinstance(note, str) and note else ""
        st.caption(f"Current decision: **{plain(current['decision'])}{to}**{said}. Deciding again replaces it; "
                   "the history keeps both.")
    if len(ctx.classes) > 2:  # keyed by the review, so the next one starts from its own suggestion
        target = st.selectbox("Relabel as", others, index=others.index(suggested) if suggested in others else 0,
                              format_func=ctx.name, key=f"relabel_{key}_{sid}",
                              help="The class a 'mislabeled' decision gives this review; the suggested one first")
    else:
        target = others[0]
    note_key = f"note_{key}_{sid}"  # a note belongs to one review: the next one starts empty
    restore = st.session_state.get("restore_note")
    if restore and restore[0] == sid:  # the decision was undone: its note comes back
        st.session_state[note_key] = st.session_state.pop("restore_note")[1]
    st.text_input("Note (optional)", key=note_key, max_chars=500,
                  help="Press Esc to leave the box, then a key decides" if shortcuts else None)
    labels = {"mislabeled": f"Mislabeled: relabel as {plain(ctx.name(target))}",
              "correct": decisions.DECISIONS["correct"], "ambiguous": decisions.DECISIONS["ambiguous"],
              **({"skip": "Skip"} if skippable else {})}
    cols = st.columns(len(labels))
    chosen = None
    for col, (value, label) in zip(cols, labels.items()):
        if col.button(label, key=f"{value}_{key}_{sid}", width="stretch", shortcut=KEYS[value] if shortcuts else None,
                      type="primary" if value == "mislabeled" else "secondary"):
            chosen = value
    if chosen and chosen != "skip":
        review = _review(ctx, row, ctx.name(target) if chosen == "mislabeled" else None,
                         st.session_state.get(note_key, ""))
        if not _saved(lambda: decisions.record_many(ctx.decisions, [review], decision=chosen, run_id=ctx.run_id,
                                                    reviewer=ctx.reviewer, source=ctx.source)):
            return None
        st.session_state["last_recorded"] = f"{labels[chosen]} for {plain(sid)}"
    return chosen


def undo_button(ctx: Context, *, key: str, shortcut: bool = False) -> None:
    """'Undo my last decision': takes back this session's latest decision on this data (the history keeps it);
    the review's note comes back into its note box."""
    if st.button("Undo my last decision", key=f"undo_{key}", icon=":material/undo:",
                 shortcut=UNDO_KEY if shortcut else None,
                 help="Takes back the latest decision made in this browser session on this data; the review's "
                      "earlier decision, if any, is current again. The history keeps both."):
        result = []
        if not _saved(lambda: result.append(decisions.undo_last(ctx.decisions, reviewer=ctx.reviewer,
                                                                source=ctx.source))):
            return
        undone = result[0]
        if undone:
            note = undone.get("note")  # back in the review's note box on the next run (decision_panel)
            st.session_state["restore_note"] = (undone["sample_id"], note if isinstance(note, str) else "")
            st.session_state["last_recorded"] = f"Undid {plain(undone['decision'])} for {plain(undone['sample_id'])}"
        else:
            st.session_state["last_recorded"] = ("Nothing to undo: undo takes back decisions made in this browser "
                                                 "session on this data, and a reload starts a new session")
        st.rerun()


def download_csv(ctx: Context, *, key: str, disabled: bool) -> None:
    """The relabel CSV, ready to download (built on each rerun: a few milliseconds for hundreds of decisions, about
    0.6 s for 50,000; building it only on the click made downloads in Chromium wait on a rerun)."""
    try:
        data = b"" if disabled else decisions.relabel_csv(ctx.decisions, ctx.source)
    except decisions.DecisionsError:  # the page already says why decisions cannot be read
        data, disabled = b"", True
    st.download_button("Download relabel CSV", data,
                       file_name="lossmap_relabel.csv", mime="text/csv", key=key, disabled=disabled,
                       help="One row per decided review of this data (every run of it): sample_id, path, old and new "
                            "label (class names), decision, note, source. A cell a spreadsheet would run as a "
                            "formula (starting with =, +, -, @) gets a leading ' in the file; the store keeps the "
                            "text as typed. Numbers are left as they are")


def say_last_recorded() -> None:
    """A toast for the decision (or undo) of the previous run, once."""
    said = st.session_state.pop("last_recorded", None)
    if said:
        st.toast(said)


def batch_panel(ctx: Context, rows: pd.DataFrame, *, key: str) -> bool:
    """One decision for every review in ``rows`` (summary rows), after a confirmation that says how many.
    Returns True when a batch was recorded (the caller reruns with a fresh selection)."""
    n = len(rows)
    ids = tuple(rows["sample_id"])
    pending_key = f"batch_pending_{key}"
    if n == 0:
        st.session_state.pop(pending_key, None)
        return False
    st.markdown(f"**{n:,} selected.** Decide on {'it' if n == 1 else f'all {n:,}'} at once:")
    if len(ctx.classes) > 2:
        options = [SUGGESTED, *range(len(ctx.classes))]
        target = st.selectbox("Relabel as", options, key=f"batch_target_{key}",
                              format_func=lambda k: "each review's suggested label" if k == SUGGESTED else ctx.name(k))
    else:
        target = SUGGESTED  # two classes: the other class is the suggestion
    cols = st.columns(3)
    flip = "Flip the label" if len(ctx.classes) == 2 else "Mislabeled: relabel"
    asked = None
    for col, (value, label) in zip(cols, {"mislabeled": flip, "correct": decisions.DECISIONS["correct"],
                                          "ambiguous": decisions.DECISIONS["ambiguous"]}.items()):
        if col.button(f"{label} ({n:,})", key=f"batch_{value}_{key}", width="stretch"):
            asked = value
    if asked:
        st.session_state[pending_key] = (asked, target, ids)
    pending = st.session_state.get(pending_key)
    if not pending or pending[2] != ids or pending[1] != target:  # the selection or target changed: ask again
        st.session_state.pop(pending_key, None)
        return False
    decision, target, _ = pending
    chosen = []
    for r in rows.to_dict("records"):
        given = int(r["label"])
        if decision != "mislabeled":
            new = None
        elif len(ctx.classes) == 2:
            new = 1 - given
        else:
            new = int(r["suggested_label"]) if target == SUGGESTED else int(target)
        if decision == "mislabeled" and new == given:
            continue
        chosen.append((r, new))
    left_out = n - len(chosen)
    what = {"mislabeled": "relabel" if len(ctx.classes) > 2 else "flip the label of",
            "correct": "mark as correct", "ambiguous": "mark as ambiguous"}[decision]
    to = "" if decision != "mislabeled" or len(ctx.classes) == 2 else (
        " to each one's suggested label" if target == SUGGESTED else f" as {plain(ctx.name(target))}")
    named = [plain(r["sample_id"]) for r, _ in chosen]
    with st.container(border=True):
        st.markdown(f"**{what.capitalize()} {len(chosen):,} review{'s' if len(chosen) != 1 else ''}{to}?**"
                    + (f" {left_out:,} already {'have' if left_out != 1 else 'has'} that label and "
                       f"{'are' if left_out != 1 else 'is'} left out." if left_out else ""))
        if named:
            st.caption(", ".join(named[:8]) + (f" and {len(named) - 8:,} more" if len(named) > 8 else ""))
        note = st.text_input("Note for these reviews (optional)", key=f"batch_note_{key}_{hash(ids)}", max_chars=500)
        yes, no = st.columns(2)
        if yes.button(f"Confirm: {what} {len(chosen):,}", key=f"batch_yes_{key}", type="primary", width="stretch",
                      disabled=not chosen):
            batch = [_review(ctx, r, None if new is None else ctx.name(new), note) for r, new in chosen]
            if not _saved(lambda: decisions.record_many(ctx.decisions, batch, decision=decision, run_id=ctx.run_id,
                                                        reviewer=ctx.reviewer, source=ctx.source)):
                return False
            recorded = len(batch)
            st.session_state.pop(pending_key, None)
            st.session_state["last_recorded"] = f"Recorded {plain(decision)} for {recorded:,} reviews"
            return True
        if no.button("Cancel", key=f"batch_no_{key}", width="stretch"):
            st.session_state.pop(pending_key, None)
            st.rerun()
    return False


def escape_leaves_text_boxes() -> None:
    """Esc moves the focus out of a text box, so the next key press decides (a fixed script, no data in it)."""
    st.html("<script>for (const d of new Set([document, window.parent.document])) { if (!d.lossmapEscape) { "
            "d.lossmapEscape = true; d.addEventListener('keydown', (e) => { const a = d.activeElement; "
            "if (e.key === 'Escape' && a && (a.tagName === 'INPUT' || a.tagName === 'TEXTAREA')) a.blur(); }, "
            "true); } }</script>", unsafe_allow_javascript=True)


def scroll_to_top() -> None:
    """Bring the page back to its top (the next suspect's header) after a decision made further down."""
    st.html("<script>for (const el of [window.parent.document.querySelector('[data-testid=\"stMain\"]'), "
            "document.querySelector('[data-testid=\"stMain\"]')]) { if (el) el.scrollTo(0, 0); } "
            "window.scrollTo(0, 0);</script>", unsafe_allow_javascript=True)


def say_ranking(ctx: Context, lead: str) -> None:
    """A caption saying what ranked the run's suspects (``lead`` opens it, e.g. 'Suspects are ranked by'), and a
    warning when the ranking used a user's own predictor that counts every text as seen in its training: its
    confidence there is optimistic, so the texts it learned by heart, mislabeled or not, rank as trustworthy."""
    method = queries.issue_ranking(ctx.ref, ctx.run_id)
    own = queries.own_predictors(ctx.ref, ctx.run_id).set_index("family")
    names = queries.own_names(ctx.ref, ctx.run_id)
    ranked = naming.ranking(method)
    used = [f for f in (ranked.families if ranked else ()) if f in own.index]
    some = [f for f in used if 0 < own.loc[f, "seen"] < own.loc[f, "texts"]]
    every = [f for f in used if own.loc[f, "texts"] and own.loc[f, "seen"] == own.loc[f, "texts"]]
    st.caption(f"{lead} {plain(naming.ranking_text(method, names))}."
               + "".join(f" {plain(naming.own_label(f, names))} trained on {int(own.loc[f, 'seen']):,} of its "
                         f"{int(own.loc[f, 'texts']):,} texts, where its confidence is optimistic." for f in some))
    for f in every:
        st.warning(f"The ranking used {plain(naming.own_label(f, names))}, and every text counts as seen in its "
                   "training (the run was not told which texts it never saw: `--trained-on SPLIT`, or an "
                   "`out_of_sample` column in the predictions file). Its confidence on the texts it trained on is "
                   "optimistic, so a mislabeled text it learned as labeled ranks as trustworthy: run again with "
                   "`--issue-source nblr` to rank by the linear model's out-of-fold probabilities.")
