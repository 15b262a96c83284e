"""The app on stores of other data: the 8-class IMDB rating task (read from Parquet) and hostile class names."""

import shutil

import pytest
from streamlit.testing.v1 import AppTest

from pipeline.store import decisions
from tests.conftest import HOSTILE_CLASSES, RATING_SAMPLE, ROOT, STARS
from tests.app.test_pages import _decide, PAGES, _parse, _suspect_id


def _app(path, monkeypatch) -> AppTest:
    monkeypatch.setenv("LOSSMAP_DB", str(path))
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


@pytest.fixture
def ratings(rating_store, tmp_path):
    copy = tmp_path / "lossmap.duckdb"
    shutil.copyfile(rating_store.db, copy)
    return copy


@pytest.fixture
def app(ratings, monkeypatch):
    return _app(ratings, monkeypatch)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_eight_classes(app, page):
    app.run()
    app.switch_page(page).run()
    assert not app.exception
    assert [t.value for t in app.title] == [PAGES[page]]


def test_overview_has_a_confusion_matrix_and_per_class_accuracy(app):
    app.run()
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Classes"] == "8" and metrics["Texts"] == f"{RATING_SAMPLE:,}"
    per_class = app.dataframe[0].value
    assert per_class["name"].tolist() == list(STARS) and per_class["reviews"].sum() == RATING_SAMPLE
    assert per_class["recall"].between(0, 1).all()
    charts = [c.proto.spec for c in app.get("vega_lite_chart")]
    confusion = next(spec for spec in charts if "given label" in spec and "predicted (out of fold" in spec)
    assert all(f'"{star}"' in confusion for star in STARS)  # every class named on the axes
    assert any("User score (stars) vs loss" in s.value for s in app.subheader)
    assert "How the data was read" in app.expander[0].label  # the text column was recognised by its name
    assert any("review" in m.value and "recognised by its name" in m.value for m in app.expander[0].markdown)


def test_the_confusion_matrix_has_every_pair_of_classes(ratings):
    from pages.common import queries as q

    ref = q.StoreRef.of(ratings)
    run = q.runs.__wrapped__(ref)["run_id"].iloc[0]
    grid = q.confusion.__wrapped__(ref, run)
    assert len(grid) == len(STARS) ** 2 and grid["reviews"].sum() == RATING_SAMPLE  # zeros kept: a square matrix
    assert set(grid["label"]) == set(grid["pred_label"]) == set(range(len(STARS)))


def test_samples_filter_by_class_name_and_by_the_data_own_columns(app):
    app.query_params["label"] = ["3", "4"]
    app.query_params["m.sentiment"] = "pos"
    app.run()
    app.switch_page("pages/samples.py").run()
    assert not app.exception
    assert any("No review matches" in w.value for w in app.warning)  # 3 and 4 stars are never 'pos'
    assert app.multiselect(key="f_meta_0").value == ["pos"]  # sentiment, from the URL
    app.multiselect(key="f_label").set_value(["8", "9"]).run()
    rows = app.dataframe[0].value
    assert len(rows) > 0 and set(rows["label"]) <= {"8", "9"}
    app.multiselect(key="f_meta_0").set_value(["neg"]).run()
    assert any("No review matches" in w.value for w in app.warning)
    app.multiselect(key="f_meta_0").set_value([]).run()
    app.multiselect(key="f_label").set_value(["10"]).run()
    rows = app.dataframe[0].value
    assert len(rows) > 0 and set(rows["label"]) == {"10"}
    assert app.query_params["label"] in ("10", ["10"]) and "m.sentiment" not in app.query_params
    app.slider(key="f_meta_1").set_range(0, 5).run()  # helpful votes 0..5
    narrowed = app.dataframe[0].value
    assert 0 < len(narrowed) < len(rows) and app.query_params["m.helpful"] == "0-5"


def test_relabel_a_suspect_as_a_third_class_then_export(app, ratings):
    app.run()
    app.switch_page("pages/mislabel_review.py").run()
    first = _suspect_id(app)
    given = {m.label: m.value for m in app.metric}["Given label"]
    suggested = {m.label: m.value for m in app.metric}["Suggested label"]
    relabel = next(s for s in app.selectbox if s.label == "Relabel as")  # class indices shown by name
    assert relabel.options[relabel.index] == suggested and given not in relabel.options
    assert len(relabel.options) == 7
    third_index = next(i for i, c in enumerate(relabel.options) if c not in (given, suggested))
    third = relabel.options[third_index]
    relabel.select(STARS.index(third)).run()  # by value: the class index
    app.text_input(key=f"note_review_{first}").input("reads like " + third).run()
    _decide(app, "mislabeled").click().run()
    assert not app.exception
    stored = decisions.current(decisions.decisions_path(ratings)).set_index("sample_id")
    assert (stored.loc[first, "old_label"], stored.loc[first, "new_label"]) == (given, third)
    csv = decisions.relabel_csv(decisions.decisions_path(ratings)).decode()
    assert f"{first},test" not in csv and f",{given},{third}," in csv and "reads like" in csv
    assert _suspect_id(app) != first  # the next suspect is up
    following = next(s for s in app.selectbox if s.label == "Relabel as")
    assert following.options[following.index] == {m.label: m.value for m in app.metric}["Suggested label"]  # its own


def test_sample_analysis_names_every_predictor_and_explains_two_classes(app):
    app.run()
    app.switch_page("pages/mislabel_review.py").run()
    suspect = _suspect_id(app)
    app.query_params["sample"] = suspect
    app.switch_page("pages/sample_analysis.py").run()
    assert not app.exception
    spec = next(c.proto.spec for c in app.get("vega_lite_chart") if "probability of each class" in c.proto.spec)
    for name in ("linear (multinomial LR), out of fold", "linear (multinomial LR), conventional",
                 "dense network, out of fold",
                 "dense network, conventional", "CNN, out of fold", "CNN, conventional"):
        assert name in spec
    explain = app.radio(key=f"shap_class_{suspect}")
    given = {m.label: m.value for m in app.metric}["Given label"]
    assert len(explain.options) == 2 and f"given label {given}" in explain.options  # given and predicted class
    explain.set_value(STARS.index(given)).run()  # by value: the class index
    assert not app.exception
    assert any(f"score for {given}" in c.value for c in app.caption)


def test_population_map_colours_by_a_column_of_the_data(app):
    app.run()
    app.switch_page("pages/population_map.py").run()
    app.selectbox(key="map_color").select("column: sentiment").run()
    assert not app.exception
    spec = next(c.proto.spec for c in app.get("vega_lite_chart") if "column: sentiment" in c.proto.spec)
    assert '"color": {"field": "meta", "title": "column: sentiment", "type": "nominal"' in spec


@pytest.fixture
def hostile(hostile_class_store, tmp_path, monkeypatch):
    copy = tmp_path / "lossmap.duckdb"
    shutil.copyfile(hostile_class_store, copy)
    return copy, _app(copy, monkeypatch)


@pytest.mark.parametrize("page", PAGES)
def test_hostile_class_names_render_on_every_page(hostile, page):
    _, app = hostile
    app.run()
    app.switch_page(page).run()
    assert not app.exception


def test_hostile_class_names_are_text_in_markdown_and_html(hostile):
    store, app = hostile
    app.run()
    app.switch_page("pages/mislabel_review.py").run()
    assert not app.exception
    reason = next(m.value for m in app.markdown if m.value.startswith("**Why flagged:**"))
    import re

    assert not re.search(r"(?<!\\)<img|(?<!\\)\]\(javascript", reason)  # escaped: \<img, \]\(javascript
    rendered = " ".join(h.proto.body for h in app.get("html"))
    tags, text = _parse(rendered)
    assert "img" not in tags and HOSTILE_CLASSES[2] in text or HOSTILE_CLASSES[0] in text
    _decide(app, "mislabeled").click().run()
    (row,) = list(__import__("csv").DictReader(
        decisions.relabel_csv(decisions.decisions_path(store)).decode().splitlines()))
    assert row["old_label"] in HOSTILE_CLASSES or row["old_label"].startswith("'=")
    assert not row["new_label"].startswith("=") and not row["sample_id"].startswith("=")
