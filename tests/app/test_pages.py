"""Every page, started from app.py through AppTest."""

import re
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from pages.common.widgets import SHOWN_CHARS
from pipeline.store import decisions
from pipeline.store.schema import SCHEMA_VERSION
from tests.app.conftest import store_frame
from tests.conftest import HOSTILE_ID, HOSTILE_VARIANTS, ROOT

N_REVIEWS = 300 + 1 + len(HOSTILE_VARIANTS)  # the app_store fixture's sample plus its hostile reviews

PAGES = {
    "pages/overview.py": "Overview",
    "pages/samples.py": "Samples",
    "pages/population_map.py": "Population map",
    "pages/mislabel_review.py": "Mislabel review",
    "pages/sample_analysis.py": "Sample analysis",
    "pages/models.py": "Models",
    "pages/compare_runs.py": "Compare runs",
    "pages/training.py": "Training",
    "pages/truncation.py": "Truncation",
    "pages/experiments.py": "Experiments",
}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(app, page):
    app.run()
    app.switch_page(page).run()
    assert not app.exception
    assert [t.value for t in app.title] == [PAGES[page]]


def test_overview_headline_figures(app):
    app.run()
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Texts"] == f"{N_REVIEWS:,}"
    assert metrics["Decisions made"] == "0"
    assert metrics["Test accuracy"].endswith("%")
    assert not app.info  # the dense network's telemetry is charted
    assert any("dense-train epoch 4" in c.value for c in app.caption)


def test_overview_without_telemetry_says_so(app, store):
    from pipeline.store import files as pipeline_store

    def linear_only(con):  # what a run with --no-dense leaves: no telemetry rows
        con.execute("DELETE FROM training_batches")
        con.execute("DELETE FROM training_epochs")

    pipeline_store.publish(store, linear_only)
    app.run()
    assert not app.exception
    assert any("no training telemetry" in i.value for i in app.info)


def test_missing_store_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setenv("LOSSMAP_DB", str(tmp_path / "none.duckdb"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert "python -m pipeline run --db" in at.info[0].value


def test_store_of_another_program_is_explained(tmp_path, monkeypatch):
    import duckdb

    path = tmp_path / "other.duckdb"
    duckdb.connect(str(path)).execute("CREATE TABLE t (i INT)").close()
    monkeypatch.setenv("LOSSMAP_DB", str(path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception and "not a Lossmap store" in at.info[0].value


def test_store_of_an_older_schema_version_says_what_to_do(store, monkeypatch):
    import duckdb

    con = duckdb.connect(str(store))
    con.execute("UPDATE lossmap_meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    monkeypatch.setenv("LOSSMAP_DB", str(store))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    message = at.info[0].value.replace("\\", "").replace("\u2060", "")  # as read: shown as plain text, escaped
    assert "schema version 2" in message and f"reads version {SCHEMA_VERSION}" in message
    assert "`python -m pipeline run --db NEW_PATH`" in message


def _suspect_id(at) -> str:
    """The id in Mislabel review's header, as the data holds it (the header escapes it for Markdown)."""
    shown = at.subheader[0].value.split(" · ", 1)[1]
    return re.sub(r"\\(.)", r"\1", shown).replace("\u2060", "")


def _decide(at, value: str, panel: str = "review"):
    """The decision button ``value`` of the review on show (buttons are keyed by the review)."""
    return next(b for b in at.button if b.key and b.key.startswith(f"{value}_{panel}_"))


def _table(at):
    return at.dataframe[0].value


def test_samples_filters_change_the_rows_and_the_url(app):
    app.run()
    app.switch_page("pages/samples.py").run()
    everything = _table(app)
    assert len(everything) == 100  # first page of N_REVIEWS
    app.multiselect(key="f_split").set_value(["test"]).run()
    tests_only = _table(app)
    assert set(tests_only["split"]) == {"test"}
    assert app.query_params["split"] == "test"
    app.radio(key="f_outcome").set_value("incorrect").run()
    wrong = _table(app)
    assert (wrong["label"] != wrong["pred_label"]).all() and len(wrong) < len(tests_only)
    assert list(wrong["loss"]) == sorted(wrong["loss"], reverse=True)


def test_filters_come_back_from_a_shared_url(app):
    app.query_params["rating"] = "1-2"
    app.query_params["label"] = "negative"
    app.run()
    app.switch_page("pages/samples.py").run()
    rows = _table(app)
    assert len(rows) > 0 and set(rows["rating"]) <= {1, 2} and set(rows["label"]) == {"negative"}


@pytest.mark.parametrize("needle", ["'; DROP TABLE samples; --", "x' OR '1'='1", "%", "_", "<script>"])
def test_search_is_literal_and_binds_its_value(app, needle, store):
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    texts = con.execute("SELECT sample_id, display_text FROM samples").fetchall()
    con.close()
    expected = {sid for sid, text in texts if needle.lower() in text.lower()}
    app.run()
    app.switch_page("pages/samples.py").run()
    app.text_input(key="f_q").input(needle).run()
    assert not app.exception
    if expected:
        shown = set(_table(app)["sample_id"])
        assert shown == expected or (len(shown) == 100 and shown <= expected)
    else:
        assert any("No review matches" in w.value for w in app.warning)
    if needle == "<script>":
        assert HOSTILE_ID in expected
    from pipeline.store.files import list_runs

    assert len(list_runs(store)) == 1  # nothing was dropped


@pytest.mark.parametrize("params, column, allowed", [
    ({"split": "test' OR '1'='1", "label": "negative"}, "label", {"negative"}),
    ({"split": "train,test); DROP TABLE samples; --"}, "split", {"train"}),
    ({"label": "positive' --", "pred": "negative;DELETE FROM runs"}, None, None),
    ({"cluster": "1 OR 1=1,0", "status": "mislabeled' OR '1'='1"}, None, None),
    ({"rating": "1-10; DROP TABLE runs", "loss": "0-1e999", "words": "0-abc", "flagged": "1'"}, None, None),
])
def test_filters_from_a_hostile_url_are_ignored_or_bound(app, store, params, column, allowed):
    """Hand-edited URLs with SQL in every filter: values the widgets do not offer are dropped, the rest
    reach SQL bound; the page renders, the rows obey the valid filters, and nothing is executed."""
    import duckdb

    for key, value in params.items():
        app.query_params[key] = value
    app.run()
    app.switch_page("pages/samples.py").run()
    assert not app.exception
    rows = _table(app)
    assert len(rows) > 0
    if column:
        assert set(rows[column]) <= allowed
    con = duckdb.connect(str(store), read_only=True)
    counts = con.execute("SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM samples)").fetchall()[0]
    con.close()
    assert counts == (1, N_REVIEWS)


def test_decision_buttons_store_decisions_and_progress(app, store):
    app.run()
    app.switch_page("pages/mislabel_review.py").run()
    first = _suspect_id(app)
    app.text_input(key=f"note_review_{first}").input("=cmd|' /C calc'!A0").run()
    _decide(app, "mislabeled").click().run()
    assert not app.exception
    stored = decisions.current(decisions.decisions_path(store))
    assert stored["sample_id"].tolist() == [first]
    assert stored["decision"].tolist() == ["mislabeled"]
    flipped = {"negative": "positive", "positive": "negative"}
    assert stored["new_label"].tolist() == [flipped[stored["old_label"].iloc[0]]]
    assert app.get("progress")[0].proto.text.startswith("Reviewed 1 of")
    assert _suspect_id(app) != first  # the next suspect is up
    second = _suspect_id(app)
    assert app.text_input(key=f"note_review_{second}").value == ""  # the note stayed with the first review
    _decide(app, "correct").click().run()
    _decide(app, "skip").click().run()
    stored = decisions.current(decisions.decisions_path(store)).set_index("sample_id")
    assert len(stored) == 2 and stored.loc[first, "note"] == "=cmd|' /C calc'!A0"
    assert stored.loc[second, "note"] is None or stored.loc[second, "note"] != stored.loc[second, "note"]  # no note


def test_decisions_survive_an_app_restart(app, store, monkeypatch):
    app.run()
    app.switch_page("pages/mislabel_review.py").run()
    _decide(app, "ambiguous").click().run()
    restarted = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    metrics = {m.label: m.value for m in restarted.metric}
    assert metrics["Decisions made"] == "1"


def test_sample_analysis_escapes_hostile_text(app):
    app.query_params["sample"] = HOSTILE_ID
    app.run()
    app.switch_page("pages/sample_analysis.py").run()
    assert not app.exception
    rendered = " ".join(h.proto.body for h in app.get("html"))
    tags, text = _parse(rendered)
    assert tags <= {"div", "span", "br", "style"}  # no script, no img
    assert "<script>window.__pwned = 1;" in text  # shown as text
    assert '<img src=x onerror="window.__pwned = 2">' in text


def _parse(markup: str) -> tuple[set[str], str]:
    from html.parser import HTMLParser

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.tags, self.text = set(), []

        def handle_starttag(self, tag, attrs):
            self.tags.add(tag)
            self.in_style = tag == "style"

        def handle_endtag(self, tag):
            self.in_style = False

        def handle_data(self, data):
            if not getattr(self, "in_style", False):
                self.text.append(data)

    parser = Collect()
    parser.feed(markup)
    return parser.tags, "".join(parser.text)


def test_sample_analysis_lists_neighbours_in_a_users_own_embedding_too(app, store):
    from pipeline.store import files as pipeline_store

    def own_space(con):  # what a run with --predictions and an embedding stores: neighbours in its own space
        con.execute("INSERT INTO neighbours SELECT run_id, 'imported-embedding', sample_id, 11 - rank, neighbour_id, "
                    "similarity FROM neighbours WHERE space = 'tfidf-svd'")

    pipeline_store.publish(store, own_space)
    sample = store_frame(store, "SELECT sample_id FROM neighbours WHERE space = 'tfidf-svd' GROUP BY ALL "
                                "HAVING count(*) = 10 ORDER BY sample_id LIMIT 1")["sample_id"][0]
    expected = store_frame(store, "SELECT neighbour_id FROM neighbours WHERE sample_id = ? AND "
                                  "space = 'imported-embedding' ORDER BY rank", [sample])["neighbour_id"].tolist()
    app.query_params["sample"] = sample
    app.run()
    app.switch_page("pages/sample_analysis.py").run()
    choice = app.radio(key="neighbour_space")
    assert [re.sub(r"\\(.)", r"\1", o) for o in choice.options] == [  # radio options are Markdown: escaped
        "Linear model features (TF-IDF, SVD)", "Your predictions' embedding"]
    choice.set_value("imported-embedding").run()
    assert not app.exception
    shown = next(d.value for d in app.dataframe if "similarity" in d.value.columns)
    assert shown["sample_id"].tolist() == expected


def test_sample_analysis_unknown_id(app):
    app.query_params["sample"] = "test/pos/nope_9"
    app.run()
    app.switch_page("pages/sample_analysis.py").run()
    assert not app.exception
    assert "No review" in app.warning[0].value and "nope" in app.warning[0].value


def test_population_map_lists_clusters(app):
    app.run()
    app.switch_page("pages/population_map.py").run()
    clusters = app.dataframe[0].value
    assert len(clusters) == 5 and clusters["size"].sum() == N_REVIEWS
    assert clusters["top_terms"].str.len().min() > 0



def test_population_map_switches_to_a_network_map(app):
    app.run()
    app.switch_page("pages/population_map.py").run()
    pick = app.sidebar.selectbox(key="map_space")
    assert pick.options == ["Linear model features (TF-IDF, SVD)", "CNN, penultimate layer",
                            "Dense network, last hidden layer"]
    pick.select("cnn-hidden").run()
    assert not app.exception
    assert any("CNN, penultimate layer" in c.value for c in app.caption)
    assert len(app.dataframe[0].value) >= 1  # the CNN map's clusters


def test_training_page_charts_every_layer_of_each_network(app):
    app.run()
    app.switch_page("pages/training.py").run()
    assert app.selectbox(key="training_model").options == ["dense-train", "cnn-train"]
    app.selectbox(key="training_model").select("cnn-train").run()
    layers = app.selectbox(key="training_layer")
    assert layers.options == ["embedding", "conv", "dense", "output"]
    layers.select("conv").run()
    assert app.selectbox(key="training_quantity").options == [
        "weights", "biases", "pre-activations", "post-activations", "weight gradients"]
    app.selectbox(key="training_quantity").select("grad").run()
    assert not app.exception
    assert any("Shwartz-Ziv" in c.value for c in app.caption)
    assert len(app.get("vega_lite_chart")) == 9  # batch loss, batch accuracy, accuracy, loss, gap, histograms, dead,
    # grads, plane


def test_truncation_page_ranks_harmed_reviews_and_marks_the_unseen_part(app):
    app.run()
    app.switch_page("pages/truncation.py").run()
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Reads"] == "256 words" and metrics["Accuracy, head only"].endswith("%")
    harmed = app.dataframe[0].value
    assert len(harmed) > 0 and list(harmed["harm_rank"]) == sorted(harmed["harm_rank"])
    marked = [h.proto.body for h in app.get("html") if "never read by the model" in h.proto.body]
    assert len(marked) == 1
    tags, _ = _parse(marked[0])
    assert tags <= {"div", "span"}


@pytest.mark.parametrize("sample_id", HOSTILE_VARIANTS)
def test_hostile_variants_render_as_visible_text(app, sample_id):
    """Long lines, control characters, bidirectional overrides and a 1 MB review: shown as text, in part if huge."""
    app.query_params["sample"] = sample_id
    app.run()
    app.switch_page("pages/sample_analysis.py").run()
    assert not app.exception
    review = [h.proto.body for h in app.get("html") if "lossmap-review" in h.proto.body]
    assert len(review) == 1
    tags, text = _parse(review[0])
    assert tags <= {"div", "span", "br", "style"}
    original = HOSTILE_VARIANTS[sample_id].replace("\r\n", "\n")
    if len(original) > SHOWN_CHARS:  # the first SHOWN_CHARS characters, a note of the rest, and a download
        assert len(review[0]) < 20 * SHOWN_CHARS and "characters not shown" in text
        assert text.startswith(original[:1000])
        assert any(b.label.startswith("Download the whole review") for b in app.get("download_button"))
    if "\x00" in original:
        assert "\u2400" in text and "\u241b" in text and "\x00" not in text and "\x1b" not in text  # NUL, ESC
        assert "<b>ever</b>" in text
        for hidden in ("\x85", "\x9b", "\u200b", "\u2060", "\U000E0041", "\U000E007F"):  # C1, zero-width, tags
            assert hidden not in text and f"\u27e6U+{ord(hidden):04X}\u27e7" in text
    if "\u202e" in original:
        assert "\u27e6U+202E\u27e7" in text and "\u202e" not in text and "\u2067" not in text
        assert "evil txet" in text
    if "A" * 10_000 in original:
        assert "A" * 10_000 in text and "overflow-wrap:anywhere" in review[0]


def test_truncation_page_shows_a_1mb_review_in_part(app):
    huge = next(k for k, v in HOSTILE_VARIANTS.items() if len(v) > 500_000)
    app.run()
    app.switch_page("pages/truncation.py").run()
    app.selectbox(key="trunc_sample").select(huge).run()
    assert not app.exception
    marked = [h.proto.body for h in app.get("html") if "never read by the model" in h.proto.body]
    assert len(marked) == 1 and len(marked[0]) < 100_000
    tags, text = _parse(marked[0])
    assert tags <= {"div", "span"} and text.count("characters not shown") >= 1
    assert "<script" not in marked[0]


def test_experiments_page_lists_the_sweep(app):
    app.run()
    app.switch_page("pages/experiments.py").run()
    assert not app.exception
    runs = app.dataframe[0].value
    assert len(runs) == 4 and list(runs["best_val_accuracy"]) == sorted(runs["best_val_accuracy"], reverse=True)
    assert {m.label: m.value for m in app.metric}["Runs"] == "4"
    app.multiselect(key="sweep_overlay").set_value([]).run()
    assert not app.exception


def test_experiments_page_without_a_sweep_says_how_to_run_one(app, store):
    from pipeline.store import files as pipeline_store

    pipeline_store.publish(store, lambda con: [con.execute(f"DELETE FROM {t}") for t in
                                               ("sweep_curves", "sweep_runs", "sweeps")])
    app.run()
    app.switch_page("pages/experiments.py").run()
    assert not app.exception
    assert "python -m pipeline sweep" in app.info[0].value


def test_a_cluster_from_a_shared_url_filters(app):
    app.query_params["cluster"] = ["1", "2"]
    app.run()
    app.switch_page("pages/samples.py").run()
    assert not app.exception
    rows = _table(app)
    assert len(rows) > 0 and set(rows["cluster"]) <= {1, 2} and app.multiselect(key="f_cluster").value == [1, 2]


def test_decisions_on_another_dataset_in_the_same_store_do_not_show(app, store):
    """Two runs of different data in one store (ids can collide): a decision on one is not the other's."""
    from tests.app.conftest import publish_copy_of_run

    publish_copy_of_run(store, "other-data", source="tickets.csv", days=-1)
    app.run()
    app.switch_page("pages/mislabel_review.py").run()
    _decide(app, "ambiguous").click().run()  # on the latest run, the archive's
    app.switch_page("pages/overview.py").run()
    assert {m.label: m.value for m in app.metric}["Decisions made"] == "1"
    other = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)  # a fresh session opening the other run
    other.query_params["run"] = "other-data"
    other.run()
    assert not other.exception
    assert {m.label: m.value for m in other.metric}["Decisions made"] == "0"
    other.switch_page("pages/mislabel_review.py").run()
    assert other.get("progress")[0].proto.text.startswith("Reviewed 0 of")


def _store_rows(store, sql: str, params=()):
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def test_malformed_url_filters_are_ignored_and_the_page_says_which(app):
    """The link of issue 11: it used to become rating=10-10 without a word."""
    for key, value in {"loss": "abc", "rating": "99-200", "split": "foo", "outcome": "zzz"}.items():
        app.query_params[key] = value
    app.run()
    app.switch_page("pages/samples.py").run()
    assert not app.exception
    (warning,) = [w.value for w in app.warning]
    for said in ("loss=abc was ignored", "rating=99-200 was ignored", "'foo'", "outcome=zzz was ignored"):
        assert said in re.sub(r"\\(.)", r"\1", warning).replace("\u2060", ""), said
    assert app.slider(key="f_rating").value == (1, 10) and app.multiselect(key="f_split").value == []
    assert app.radio(key="f_outcome").value == "all"
    assert "rating" not in app.query_params and "loss" not in app.query_params
    assert f"of {N_REVIEWS:,} matching reviews" in app.caption[-1].value.replace("\\", "") or \
        any(f"of {N_REVIEWS:,} matching" in c.value for c in app.caption)


def test_url_ranges_partly_outside_the_data_are_narrowed_and_said(app):
    app.query_params["rating"] = "8-200"
    app.query_params["words"] = "-5-40"
    app.query_params["nonsense"] = "1"
    app.run()
    app.switch_page("pages/samples.py").run()
    warning = re.sub(r"\\(.)", r"\1", app.warning[0].value).replace("\u2060", "")
    assert "rating=8-200 was read as 8-10" in warning and "words=-5-40 was read as 0-40" in warning
    assert "nonsense: not a filter of this page" in warning
    rows = _table(app)
    assert set(rows["rating"]) <= {8, 9, 10} and rows["n_words"].max() <= 40
    assert app.query_params["rating"] == "8-10"


def test_a_clean_link_gives_no_warning(app):
    app.query_params["rating"] = "1-4"
    app.run()
    app.switch_page("pages/samples.py").run()
    assert not app.warning


def test_sorting_covers_every_matching_review_and_stays_in_the_url(app, store):
    app.run()
    app.switch_page("pages/samples.py").run()
    app.selectbox(key="f_sort").set_value("-n_words").run()
    assert not app.exception and app.query_params["sort"] == "-n_words"
    first_page = _table(app)
    (longest,) = _store_rows(store, "SELECT max(n_words) FROM sample_summary")[0]
    assert first_page["n_words"].iloc[0] == longest
    assert list(first_page["n_words"]) == sorted(first_page["n_words"], reverse=True)
    app.number_input(key="samples_page").set_value(2).run()
    second_page = _table(app)
    assert second_page["n_words"].iloc[0] <= first_page["n_words"].iloc[-1]
    assert "words highest first" in " ".join(c.value for c in app.caption)
    app.selectbox(key="f_sort").set_value("preview").run()  # ascending text, from the first page again
    assert app.number_input(key="samples_page").value == 1
    (first,) = _store_rows(store, "SELECT sample_id FROM sample_summary ORDER BY lower(ltrim(preview, E' \\t\\n\\r')), "
                                  "loss DESC, sample_id LIMIT 1")[0]  # leading blank lines do not count
    assert _table(app)["sample_id"].iloc[0] == first


def test_a_sort_from_a_shared_url_is_used_and_a_bad_one_said(app, store):
    app.query_params["sort"] = "rating"
    app.run()
    app.switch_page("pages/samples.py").run()
    assert _table(app)["rating"].iloc[0] == _store_rows(store, "SELECT min(rating) FROM sample_summary")[0][0]
    hostile = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    hostile.query_params["sort"] = "loss; DROP TABLE runs"
    hostile.run()
    hostile.switch_page("pages/samples.py").run()
    assert not hostile.exception and hostile.selectbox(key="f_sort").value == "-loss"
    assert "sort=loss; DROP TABLE runs was ignored" in re.sub(r"\\(.)", r"\1", hostile.warning[0].value) \
        .replace("\u2060", "")
    assert _store_rows(store, "SELECT count(*) FROM runs")[0][0] == 1


def test_sorting_by_review_status_orders_the_whole_set(app, store):
    ids = [r[0] for r in _store_rows(store, "SELECT sample_id FROM sample_summary ORDER BY loss LIMIT 3")]
    path = decisions.decisions_path(store)
    for sample_id, decision in zip(ids, ("ambiguous", "correct", "mislabeled")):
        decisions.record(path, sample_id=sample_id, decision=decision, old_label="negative",
                         new_label="positive" if decision == "mislabeled" else None)
    app.run()
    app.switch_page("pages/samples.py").run()
    app.selectbox(key="f_sort").set_value("status").run()
    rows = _table(app)
    status_column = "review status" if "review status" in rows else "status"
    assert list(rows[status_column].iloc[:4]) == ["ambiguous", "correct", "mislabeled", "undecided"]
    assert rows["sample_id"].iloc[0] == ids[0]


def test_the_highest_loss_row_on_overview_opens_that_review(app, store):
    app.run()
    (top,) = _store_rows(store, "SELECT sample_id FROM sample_summary ORDER BY loss DESC, sample_id LIMIT 1")[0]
    app.session_state["top_loss_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    app.run()
    assert not app.exception
    assert app.query_params["sample"] == top and app.title[0].value == "Sample analysis"


def test_a_neighbour_row_opens_that_review(app, store):
    (first,) = _store_rows(store, "SELECT sample_id FROM neighbours ORDER BY sample_id LIMIT 1")[0]
    app.query_params["sample"] = first
    app.run()
    app.switch_page("pages/sample_analysis.py").run()
    app.query_params["sample"] = first
    app.run()
    near = _store_rows(store, "SELECT neighbour_id FROM neighbours WHERE sample_id = ? AND space = 'tfidf-svd' "
                              "ORDER BY rank LIMIT 1", [first])[0][0]
    app.session_state[f"neighbours_{first}"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    app.run()
    assert not app.exception and app.query_params["sample"] == near
    assert app.text_input[0].value == near


def test_a_cluster_row_on_the_map_opens_samples_filtered_to_it(app, store):
    app.run()
    app.switch_page("pages/population_map.py").run()
    app.session_state["clusters_tfidf-svd"] = {"selection": {"rows": [2], "columns": [], "cells": []}}
    app.run()
    assert not app.exception and app.title[0].value == "Samples"
    (cluster,) = _store_rows(store, "SELECT cluster FROM clusters WHERE space = 'tfidf-svd' ORDER BY cluster "
                                    "LIMIT 1 OFFSET 2")[0]
    rows = _table(app)
    assert set(rows["cluster"]) == {cluster} and app.query_params["cluster"] == str(cluster)
    (size,) = _store_rows(store, "SELECT size FROM clusters WHERE space = 'tfidf-svd' AND cluster = ?", [cluster])[0]
    assert any(f"of {size:,} matching reviews" in c.value for c in app.caption)


def test_a_network_map_cluster_filters_samples_by_that_map(app, store):
    (space, cluster, size) = _store_rows(store, "SELECT space, cluster, size FROM clusters WHERE space <> "
                                                "'tfidf-svd' ORDER BY space, cluster LIMIT 1")[0]
    app.query_params["cluster"] = str(cluster)
    app.query_params["map"] = space
    app.run()
    app.switch_page("pages/samples.py").run()
    assert not app.exception and not app.warning
    assert any(f"of {size:,} matching reviews" in c.value for c in app.caption)


def test_dead_units_above_30_percent_are_pointed_out(app, store):
    from pipeline.store import files

    def kill_units(con):
        con.execute("UPDATE layer_stats SET dead_fraction = 0.45 WHERE dead_fraction IS NOT NULL")

    files.publish(store, kill_units)
    app.run()
    app.switch_page("pages/training.py").run()
    assert not app.exception
    said = " ".join(w.value for w in app.warning)
    assert "45% of the units of layer" in said and "dead after the last epoch" in said


def test_truncation_harmed_list_can_put_prediction_flips_first(app):
    app.run()
    app.switch_page("pages/truncation.py").run()
    app.radio(key="trunc_order").set_value("prediction flips first").run()
    harmed = app.dataframe[0].value
    flips = list(harmed["prediction_changes"])
    assert flips == sorted(flips, reverse=True) and not app.exception


def test_coming_back_to_samples_keeps_the_filters_sort_and_page(app):
    app.run()
    app.switch_page("pages/samples.py").run()
    app.multiselect(key="f_label").set_value(["positive"]).run()
    app.selectbox(key="f_sort").set_value("-n_words").run()
    app.number_input(key="samples_page").set_value(2).run()
    app.switch_page("pages/overview.py").run()
    app.switch_page("pages/samples.py").run()  # the sidebar link: no parameters
    assert app.multiselect(key="f_label").value == ["positive"] and app.selectbox(key="f_sort").value == "-n_words"
    assert app.number_input(key="samples_page").value == 2 and not app.warning


def test_another_map_clears_the_picked_clusters(app, store):
    (space,) = _store_rows(store, "SELECT DISTINCT space FROM clusters WHERE space <> 'tfidf-svd' LIMIT 1")[0]
    app.query_params["cluster"] = "1"
    app.run()
    app.switch_page("pages/samples.py").run()
    app.selectbox(key="f_map").set_value(space).run()
    assert app.multiselect(key="f_cluster").value == [] and "cluster" not in app.query_params


def test_a_fractional_star_range_reads_the_whole_stars_inside_it(app):
    app.query_params["rating"] = "4.5-6.5"
    app.run()
    app.switch_page("pages/samples.py").run()
    assert app.slider(key="f_rating").value == (5, 6)
    assert "rating=4.5-6.5 was read as 5-6" in re.sub(r"\\(.)", r"\1", app.warning[0].value).replace("\u2060", "")


def test_a_link_to_a_run_that_is_gone_says_so(app):
    app.query_params["run"] = "20990101-gone"
    app.run()
    assert not app.exception
    assert any("is not in this store" in w.value for w in app.sidebar.warning) or \
        any("is not in this store" in w.value for w in app.warning)


@pytest.mark.parametrize("params, said", [
    ({"cluster": "1", "map": "no-such-map"}, ["map=no-such-map was ignored", "cluster=1 was ignored"]),
    ({"words": "1" + "+" * 5000 + "x"}, ["words was ignored: its value is longer than 200 characters"]),
    ({"rating": "1_0-1_0"}, ["rating=1_0-1_0 was ignored: expected a range"]),
    ({"loss": "nan-1"}, ["loss=nan-1 was ignored: expected a range"]),
    ({"page": "9999"}, ["page=9999 was ignored"]),
])
def test_more_link_values_that_cannot_be_used_are_said(app, params, said):
    for key, value in params.items():
        app.query_params[key] = value
    app.run()
    app.switch_page("pages/samples.py").run()
    assert not app.exception
    warning = re.sub(r"\\(.)", r"\1", app.warning[0].value).replace("\u2060", "")
    assert all(s in warning for s in said), warning
    assert app.multiselect(key="f_cluster").value == [] and app.number_input(key="samples_page").value == 1
    assert any(f"of {N_REVIEWS:,} matching reviews" in c.value for c in app.caption)


def test_a_page_from_a_shared_link_is_opened(app):
    app.query_params["page"] = "3"
    app.run()
    app.switch_page("pages/samples.py").run()
    assert app.number_input(key="samples_page").value == 3 and not app.warning
    assert any("Rows 201-" in c.value for c in app.caption)


def test_an_unknown_sample_id_from_the_url_is_repeated_as_plain_text(app):
    """Issue 12, point 3: a backtick in ?sample= used to break out of the code span and render a link and image."""
    app.query_params["sample"] = "`x` [click](https://evil.example) ![i](https://evil.example/i.png) `"
    app.run()
    app.switch_page("pages/sample_analysis.py").run()
    assert not app.exception
    (warning,) = [w.value for w in app.warning]
    assert "\\`" in warning and "`x`" not in warning  # every backtick escaped: no code span to break out of
    assert "](" not in warning and "\\[click\\]" in warning and "\\!\\[i\\]" in warning


def test_a_damaged_decisions_file_leaves_the_pages_working_and_keeps_what_was_typed(app, store):
    """Issue 12, point 2: one clear message, the analysis still shown, a decision that cannot be saved said."""
    path = decisions.decisions_path(store)
    path.write_bytes(b"not a database" * 100)
    app.run()
    assert not app.exception and any("damaged" in e.value for e in app.error)
    assert {m.label: m.value for m in app.metric}["Decisions made"] == "0"
    app.switch_page("pages/samples.py").run()
    assert not app.exception and len(_table(app)) == 100 and any("damaged" in e.value for e in app.error)
    app.switch_page("pages/mislabel_review.py").run()
    first = _suspect_id(app)
    app.text_input(key=f"note_review_{first}").input("praise, clearly").run()
    _decide(app, "mislabeled").click().run()
    assert not app.exception and any(e.value.startswith("Not saved") for e in app.error)
    assert _suspect_id(app) == first and app.text_input(key=f"note_review_{first}").value == "praise, clearly"
    assert path.read_bytes() == b"not a database" * 100


def _longest_review_with_a_cnn(store):
    return store_frame(store, "SELECT s.sample_id, s.n_words, p.model_id, p.probs, s.display_text FROM samples s "
                              "JOIN predictions p USING (run_id, sample_id) WHERE p.family = 'cnn' AND "
                              "p.protocol = 'oof' ORDER BY s.n_words DESC, s.sample_id LIMIT 1").iloc[0]


def test_sample_analysis_shows_what_a_network_read_by_occlusion(app, store, app_store):
    shutil.copytree(app_store.parent / "models", store.parent / "models")  # the run's ONNX files, beside the copy
    row = _longest_review_with_a_cnn(store)
    app.query_params["sample"] = row["sample_id"]
    app.run()
    app.switch_page("pages/sample_analysis.py").run()
    assert not app.exception and not any("What the networks read" in m.value for m in app.markdown)
    app.radio(key=f"occlusion_family_{row['sample_id']}").set_value("cnn").run()
    app.selectbox(key=f"occlusion_class_{row['sample_id']}").set_value(1).run()
    app.button(key=f"occlusion_go_{row['sample_id']}").click().run()
    assert not app.exception and not app.warning
    said = next(m.value for m in app.markdown if m.value.startswith("The CNN"))
    assert f"**{row['probs'][1]:.1%}**" in said  # the whole review through the ONNX file: the stored score
    from pipeline.models.text import TOKEN_PATTERN

    words = len(re.findall(TOKEN_PATTERN, row["display_text"]))
    assert f"it read {min(words, 256):,} of {words:,} words" in said  # a longer review is cut to --max-len 256
    assert any('title="occlusion ' in h.proto.body for h in app.get("html"))


def test_occlusion_without_the_model_files_says_how_to_get_them_back(app, store):
    row = _longest_review_with_a_cnn(store)  # the copied store has no models folder beside it
    app.query_params["sample"] = row["sample_id"]
    app.run()
    app.switch_page("pages/sample_analysis.py").run()
    app.button(key=f"occlusion_go_{row['sample_id']}").click().run()
    assert not app.exception
    assert "cannot be used" in app.warning[0].value and "run the pipeline again" in app.warning[0].value.lower()
