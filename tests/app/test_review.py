"""Deciding on reviews (pages/common/review.py) through the real pages: batches, undo, keys."""

import csv
import io

from pipeline.store import decisions
from tests.app.test_pages import _decide, _suspect_id, _table


def _select(at, key: str, rows: list[int]) -> None:
    at.session_state[key] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    at.run()


def _csv_rows(path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(decisions.relabel_csv(path).decode())))


def test_a_batch_flip_asks_first_then_records_every_selected_review(app, store):
    path = decisions.decisions_path(store)
    app.run()
    app.switch_page("pages/samples.py").run()
    shown = _table(app)
    _select(app, "samples_table_0", [0, 1, 2])
    app.button(key="batch_mislabeled_samples").click().run()
    assert not path.exists() or decisions.current(path).empty  # nothing until confirmed
    asked = " ".join(m.value for m in app.markdown)
    assert "Flip the label of 3 reviews?" in asked
    app.text_input(key=[k for k in app.session_state if str(k).startswith("batch_note_samples_")][0]) \
        .input("all three praise the film").run()
    app.button(key="batch_yes_samples").click().run()
    assert not app.exception
    now = decisions.current(path).set_index("sample_id")
    assert sorted(now.index) == sorted(shown["sample_id"].iloc[:3])
    flipped = {"negative": "positive", "positive": "negative"}
    assert all(now.loc[s, "new_label"] == flipped[now.loc[s, "old_label"]] for s in now.index)
    assert set(now["note"]) == {"all three praise the film"}
    assert not any(str(k).startswith("batch_pending") for k in app.session_state)  # the confirmation is gone
    status = _table(app).set_index("sample_id")["status"]
    assert (status.loc[list(now.index)] == "mislabeled").all() and (status.drop(list(now.index)) == "undecided").all()


def test_a_cancelled_batch_records_nothing(app, store):
    app.run()
    app.switch_page("pages/samples.py").run()
    _select(app, "samples_table_0", [0, 1])
    app.button(key="batch_correct_samples").click().run()
    app.button(key="batch_no_samples").click().run()
    assert not decisions.decisions_path(store).exists() or decisions.current(decisions.decisions_path(store)).empty
    assert "Mark as correct 2 reviews?" not in " ".join(m.value for m in app.markdown)


def test_undo_takes_back_the_last_decision_and_the_suspect_comes_back(app, store):
    path = decisions.decisions_path(store)
    app.run()
    app.switch_page("pages/mislabel_review.py").run()
    first = _suspect_id(app)
    _decide(app, "mislabeled").click().run()
    assert _suspect_id(app) != first
    app.button(key="undo_review").click().run()
    assert not app.exception
    assert _suspect_id(app) == first and decisions.current(path).empty
    assert app.get("progress")[0].proto.text.startswith("Reviewed 0 of")
    log = decisions.history(path)
    assert len(log) == 1 and log["undone_at"].notna().all()  # the history keeps the decision, marked undone
    app.button(key="undo_review").click().run()  # nothing left: said, not an error
    assert not app.exception and "Nothing to undo" in " ".join(t.value for t in app.toast)


def test_undo_after_a_batch_takes_back_one_review(app, store):
    path = decisions.decisions_path(store)
    app.run()
    app.switch_page("pages/samples.py").run()
    _select(app, "samples_table_0", [3, 4, 5])
    app.button(key="batch_mislabeled_samples").click().run()
    app.button(key="batch_yes_samples").click().run()
    app.button(key="undo_samples").click().run()
    assert len(decisions.current(path)) == 2
    rows = _csv_rows(path)
    assert len(rows) == 2 and {r["decision"] for r in rows} == {"mislabeled"}


def test_batch_on_the_suspects_list_and_an_opened_review(app, store):
    app.run()
    app.switch_page("pages/mislabel_review.py").run()
    _select(app, "suspects_table_0", [1, 2])
    app.button(key="batch_ambiguous_suspects").click().run()
    app.button(key="batch_yes_suspects").click().run()
    assert not app.exception
    assert set(decisions.current(decisions.decisions_path(store))["decision"]) == {"ambiguous"}
    _select(app, "suspects_table_1", [0])
    app.button(key="open_suspect").click().run()
    assert app.title[0].value == "Sample analysis"


def test_the_decision_keys_are_on_the_buttons_and_in_the_legend(app):
    app.run()
    app.switch_page("pages/mislabel_review.py").run()
    shortcuts = {b.key.split("_review")[0]: b.proto.shortcut.upper() for b in app.button
                 if b.key and "_review" in b.key and b.proto.shortcut}
    assert shortcuts == {"undo": "U", "mislabeled": "F", "correct": "K", "ambiguous": "A", "skip": "S"}
    legend = " ".join(c.value for c in app.caption)
    assert all(f"**{k}**" in legend for k in "FKASU")


def test_a_selection_never_moves_onto_other_reviews(app):
    """Rows picked on page 1 are not picked on page 2 (nor after a sort or filter change)."""
    app.run()
    app.switch_page("pages/samples.py").run()
    _select(app, "samples_table_0", [0, 1])
    assert app.button(key="batch_correct_samples").label.endswith("(2)")
    app.number_input(key="samples_page").set_value(2).run()
    assert not [b for b in app.button if b.key == "batch_correct_samples"]  # nothing selected on page 2
    assert "samples_table_1" in app.session_state
    _select(app, "samples_table_1", [0])
    app.selectbox(key="f_sort").set_value("-n_words").run()
    assert not [b for b in app.button if b.key == "batch_correct_samples"]


def test_undo_puts_the_note_back_and_skipped_suspects_can_come_back(app):
    app.run()
    app.switch_page("pages/mislabel_review.py").run()
    first = _suspect_id(app)
    app.text_input(key=f"note_review_{first}").input("reads as praise").run()
    _decide(app, "correct").click().run()
    app.button(key="undo_review").click().run()
    assert _suspect_id(app) == first and app.text_input(key=f"note_review_{first}").value == "reads as praise"
    _decide(app, "skip").click().run()
    assert _suspect_id(app) != first
    app.button(key="unskip").click().run()
    assert _suspect_id(app) == first


def test_sample_analysis_shows_the_current_decision_and_has_no_skip(app, store):
    app.run()
    app.switch_page("pages/sample_analysis.py").run()
    assert not [b for b in app.button if b.key and b.key.startswith("skip_analysis_")]
    _decide(app, "ambiguous", "analysis").click().run()
    assert any("Current decision: **ambiguous**" in c.value for c in app.caption)
