"""The whole app in a real headless Chromium, driven by Playwright, against a store
built by the pipeline. Screenshots of every page go to build/screenshots/."""

from __future__ import annotations

import csv
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import HOSTILE_ID, HOSTILE_VARIANTS, ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
SHOTS = ROOT / "build" / "screenshots"
PAGES = {"": "Overview", "samples": "Samples", "population_map": "Population map",
         "mislabel_review": "Mislabel review", "sample_analysis": "Sample analysis", "models": "Models",
         "compare_runs": "Compare runs", "training": "Training", "truncation": "Truncation",
         "experiments": "Experiments"}
NEW_PAGE_CHARTS = {"training": 9, "truncation": 3, "experiments": 2}  # Altair charts each page draws


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(store: Path) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py -- --db STORE` on a free local port; returns (process, base URL)."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", "--", "--db", str(store)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("streamlit did not start within 60 s")


def launch_chromium(playwright):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs the Debian chromium package")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium chromium-driver)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def server(app_store, tmp_path_factory):
    from tests.app.conftest import serving_a_copy

    with serving_a_copy(app_store, tmp_path_factory.mktemp("browser")) as served:
        yield served


def _open(page, url: str, title: str):
    page.goto(url)
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=90_000)
    page.wait_for_load_state("networkidle")
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_shared_link_to_a_fresh_server_opens_its_page(app_store, tmp_path, browser):
    import shutil

    store = tmp_path / "lossmap.duckdb"
    shutil.copyfile(app_store, store)
    proc, url = start_app(store)  # nobody has opened this server's front page yet
    try:
        page = browser.new_page()
        _open(page, f"{url}/sample_analysis?sample={HOSTILE_ID}", "Sample analysis")
        from playwright.sync_api import expect

        expect(page.get_by_role("textbox", name="Sample id")).to_have_value(HOSTILE_ID, timeout=30_000)
        page.get_by_text("window.__pwned = 1;", exact=False).first.wait_for()
        page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_every_page_opens_and_is_captured(server, page):
    url, _ = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    for path, title in PAGES.items():
        _open(page, f"{url}/{path}", title)
        page.wait_for_timeout(800)  # let charts finish drawing
        page.screenshot(path=str(SHOTS / f"{path or 'overview'}.png"), full_page=True)
        assert (SHOTS / f"{path or 'overview'}.png").stat().st_size > 10_000


@pytest.mark.parametrize("path", NEW_PAGE_CHARTS)
def test_training_truncation_and_experiments_pages_draw_their_charts(server, page, path):
    url, _ = server
    _open(page, f"{url}/{path}", PAGES[path])
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    charts.nth(NEW_PAGE_CHARTS[path] - 1).wait_for(timeout=30_000)
    assert charts.count() == NEW_PAGE_CHARTS[path]
    for i in range(charts.count()):  # each chart drew marks, not an empty frame
        charts.nth(i).scroll_into_view_if_needed()
        charts.nth(i).locator("canvas, svg").first.wait_for(timeout=30_000)
    if path == "truncation":
        marked = page.locator('span[title="never read by the model"]')
        assert marked.count() == 1 and len(marked.inner_text()) > 0


def test_flag_a_sample_and_download_the_csv(server, page):
    url, _ = server
    _open(page, f"{url}/mislabel_review", "Mislabel review")
    heading = page.locator("h3").filter(has_text=" · ").first.inner_text()
    sample_id = heading.split(" · ")[1].strip()
    page.get_by_role("button", name="Mislabeled: relabel as").click()
    page.get_by_text("Reviewed 1 of").wait_for()
    with page.expect_download() as info:
        page.get_by_role("button", name="Download relabel CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    assert len(rows) == 1
    row = rows[0]
    assert row["sample_id"] == sample_id and row["decision"] == "mislabeled"
    assert {row["old_label"], row["new_label"]} == {"negative", "positive"}
    assert row["path"] == f"aclImdb/{sample_id}.txt"


def test_hostile_review_shows_as_text_and_runs_nothing(server, page):
    url, _ = server
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _open(page, f"{url}/sample_analysis?sample={HOSTILE_ID}", "Sample analysis")
    page.get_by_text("window.__pwned = 1;", exact=False).first.wait_for()
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.__pwned === undefined")
    for frame in page.frames:
        assert frame.evaluate("() => window.__pwned === undefined")
    assert page.title() != "pwned" and dialogs == []
    text = page.locator(".lossmap-review").first.inner_text()
    assert "<script>" in text and "<img src=x" in text
    page.screenshot(path=str(SHOTS / "hostile_review.png"), full_page=True)


def _nothing_ran(page) -> None:
    for frame in page.frames:
        assert frame.evaluate("() => window.__pwned === undefined")
    assert page.title() != "pwned"
    assert page.locator('[data-testid="stException"]').count() == 0


def test_every_page_renders_the_hostile_store_and_runs_no_script(server, page):
    """The store holds <script>, <img onerror>, control characters, bidi overrides, a 60,000-character
    line and a 1 MB review; every page renders, nothing runs, nothing overflows the window sideways."""
    url, _ = server
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for path, title in PAGES.items():
        _open(page, f"{url}/{path}", title)
        page.wait_for_timeout(300)
        _nothing_ran(page)
    assert dialogs == []


@pytest.mark.parametrize("sample_id", HOSTILE_VARIANTS)
def test_hostile_variant_is_shown_as_text_in_the_browser(server, page, sample_id):
    url, _ = server
    _open(page, f"{url}/sample_analysis?sample={sample_id}", "Sample analysis")
    review = page.locator(".lossmap-review").first
    review.wait_for(timeout=30_000)
    page.wait_for_timeout(300)
    _nothing_ran(page)
    text = review.inner_text()
    original = HOSTILE_VARIANTS[sample_id]
    if len(original) > 100_000:
        assert "characters not shown" in text and len(text) < 20_000
        page.get_by_role("button", name="Download the whole review").first.wait_for()
    elif "\x00" in original:
        assert "\u2400" in text and "<b>ever</b>" in text
    elif "\u202e" in original:
        assert "\u27e6U+202E\u27e7evil txet" in text
    # nothing is wider than the window: the 60,000-character word wraps
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert review.evaluate("e => e.scrollWidth <= e.clientWidth + 1")


def test_models_and_compare_runs_draw_their_charts_and_links_to_sample_analysis(app_store, tmp_path, page):
    """A store with a model of the user's own (named with HTML and Markdown) and a later run that changed
    predictions and labels: both pages draw every chart, their tables link each text to Sample analysis in the
    right run, a link opens it, and nothing runs."""
    import shutil
    from urllib.parse import parse_qs, urlsplit

    from playwright.sync_api import expect

    from tests.app.conftest import serving_a_copy
    from tests.app.test_compare_runs import LATER, make_later_run
    from tests.app.test_models_page import add_own_predictor

    store = tmp_path / "two_runs.duckdb"
    shutil.copyfile(app_store, store)
    add_own_predictor(store)
    picked = make_later_run(store)
    (tmp_path / "served").mkdir()
    with serving_a_copy(store, tmp_path / "served") as (url, _):
        links = {}
        for path, title, n_charts, n_tables in (("models", "Models", 3, 3), ("compare_runs", "Compare runs", 2, 4)):
            _open(page, f"{url}/{path}", title)
            charts = page.locator('[data-testid="stVegaLiteChart"]')
            charts.nth(n_charts - 1).wait_for(timeout=30_000)
            assert charts.count() == n_charts
            for i in range(n_charts):  # each chart drew marks, not an empty frame
                charts.nth(i).scroll_into_view_if_needed()
                charts.nth(i).locator("canvas, svg").first.wait_for(timeout=30_000)
            tables = page.locator('[data-testid="stDataFrame"]')
            tables.nth(n_tables - 1).wait_for(timeout=30_000)
            links[path] = []
            for i in range(n_tables):  # the grid draws on a canvas; its accessible cells hold the links' targets
                tables.nth(i).scroll_into_view_if_needed()
                tables.nth(i).locator('[role="gridcell"]').first.wait_for(state="attached", timeout=30_000)
                links[path] += [t for t in tables.nth(i).locator('[role="gridcell"]').all_text_contents()
                                if t.startswith("sample_analysis?")]
            assert links[path]
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"{path}_two_runs.png"), full_page=True)
            _nothing_ran(page)
        changed = [parse_qs(urlsplit(link).query) for link in links["compare_runs"]]
        assert {"run": [LATER], "sample": [picked["flipped"][0]]} in changed
        _open(page, f"{url}/{links['compare_runs'][0]}", "Sample analysis")  # as the link resolves on the page
        expect(page.get_by_role("textbox", name="Sample id")).to_have_value(changed[0]["sample"][0], timeout=30_000)
        page.get_by_text(f"Run {LATER}").wait_for()
        _nothing_ran(page)


def test_a_run_published_while_the_app_is_open_is_offered_without_restart(server, page):
    """Last in this module: it adds a run to the shared store."""
    from tests.app.conftest import publish_copy_of_run

    url, store = server
    _open(page, f"{url}/samples", "Samples")
    old_run = page.get_by_text("Run ").last.inner_text()
    publish_copy_of_run(store, "second-run")  # a second complete run, swapped in atomically
    page.get_by_role("link", name="Overview").click()  # any interaction reruns the app
    page.get_by_text("Run second-run").wait_for()
    assert "second-run" not in old_run
    page.get_by_role("heading", name="Overview", exact=True).wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
