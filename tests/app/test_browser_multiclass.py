"""The whole app in headless Chromium on other data: the 8-class rating task, and hostile class names."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from tests.app.conftest import serving_a_copy
from tests.app.test_browser import PAGES, SHOTS, _nothing_ran, _open
from tests.conftest import HOSTILE_COLUMN, STARS


@pytest.fixture(scope="module")
def ratings_server(rating_store, tmp_path_factory):
    with serving_a_copy(rating_store.db, tmp_path_factory.mktemp("browser_multi")) as served:
        yield served


def test_every_page_of_an_eight_class_store_renders(ratings_server, page):
    url, _ = ratings_server
    SHOTS.mkdir(parents=True, exist_ok=True)
    for path, title in PAGES.items():
        _open(page, f"{url}/{path}", title)
        page.wait_for_timeout(300)
        assert page.locator('[data-testid="stException"]').count() == 0
    _open(page, url, "Overview")
    page.get_by_text("Given label vs predicted label").wait_for()
    page.locator('[data-testid="stVegaLiteChart"]').first.locator("canvas, svg").first.wait_for()
    page.screenshot(path=str(SHOTS / "overview_8_classes.png"), full_page=True)


def test_relabel_as_a_third_class_and_download_the_csv(ratings_server, page):
    url, _ = ratings_server
    _open(page, f"{url}/mislabel_review", "Mislabel review")
    sample_id = page.locator("h3").filter(has_text=" · ").first.inner_text().split(" · ")[1].strip()
    metrics = page.locator('[data-testid="stMetric"]')
    given = metrics.filter(has_text="Given label").locator('[data-testid="stMetricValue"]').inner_text().strip()
    suggested = metrics.filter(has_text="Suggested label").locator('[data-testid="stMetricValue"]').inner_text().strip()
    third = next(s for s in STARS if s not in (given, suggested))
    page.get_by_role("combobox", name="Relabel as").click()
    page.get_by_role("option", name=third, exact=True).click()
    page.get_by_role("button", name=f"Mislabeled: relabel as {third}").click()
    page.get_by_text("Reviewed 1 of").wait_for()
    with page.expect_download() as info:
        page.get_by_role("button", name="Download relabel CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    assert [(r["sample_id"], r["old_label"], r["new_label"], r["decision"]) for r in rows] == [
        (sample_id, given, third, "mislabeled")]


def test_metadata_filters_from_a_shared_link(ratings_server, page):
    url, _ = ratings_server
    _open(page, f"{url}/samples?label=10&m.sentiment=pos", "Samples")
    page.get_by_text(re.compile(r"Rows 1-\d+ of [\d,]+ matching reviews")).wait_for()
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.wait_for()
    assert page.get_by_text("No review matches").count() == 0
    _open(page, f"{url}/samples?label=10&m.sentiment=neg", "Samples")
    page.get_by_text("No review matches").wait_for()


@pytest.fixture(scope="module")
def hostile_server(hostile_class_store, tmp_path_factory):
    with serving_a_copy(hostile_class_store, tmp_path_factory.mktemp("browser_hostile")) as served:
        yield served


def test_hostile_class_names_run_nothing_on_any_page(hostile_server, page):
    """Class names, ids and a column name hold HTML, Markdown links and images, autolinks, Streamlit's :red[] and
    :material/...: directives and LaTeX: every page shows them as text, fetches nothing from any other host, and
    turns none of them into a link, an image or an icon."""
    from urllib.parse import quote, urlparse

    url, _ = hostile_server
    dialogs, outside = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: outside.append(r.url) if urlparse(r.url).hostname not in ("127.0.0.1", None)
            and not r.url.startswith(("data:", "blob:")) else None)
    visits = [*((f"{url}/{path}", title) for path, title in PAGES.items()),
              (f"{url}/sample_analysis?sample={quote('<b>2-1</b>')}", "Sample analysis"),  # the Markdown class
              (f"{url}/sample_analysis?sample={quote('![i](https://evil.example/id.png) 0-14')}", "Sample analysis"),
              (f"{url}/samples?{quote('m.' + HOSTILE_COLUMN)}={quote('web')}", "Samples")]
    for target, title in visits:
        _open(page, target, title)
        page.wait_for_timeout(500)
        _nothing_ran(page)
        assert page.locator('a[href*="evil.example"], a[href^="javascript"], a[href="#"]').count() == 0, target
        assert page.locator('img[src*="evil.example"], img[src=x]').count() == 0, target
        icons = page.locator('[data-testid="stIconMaterial"]').all_inner_texts()
        assert "home" not in icons, target  # :material/home: in the data stays text
        if "2-1" in target:  # the review labeled with the Markdown class: its name is shown as text
            page.get_by_text("**bold** [link](javascript", exact=False).first.wait_for()
    assert outside == [] and dialogs == []
