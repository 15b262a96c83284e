"""The review loop in a real headless Chromium: notes, keys, undo, batches, sorting across pages, and the
links between views (a map point, a cluster). Each test gets its own server on its own copy of the store."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.app.conftest import serving_a_copy
from tests.app.test_browser import _open

ROW = 35  # Streamlit's dataframe rows and header are 35 px high
MARKER = 20  # the row-selection checkboxes sit in the first ~40 px


@pytest.fixture
def served(app_store, tmp_path):
    with serving_a_copy(app_store, tmp_path) as (url, store):
        yield url, store


def _idle(page) -> None:
    page.wait_for_timeout(100)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)


def _heading_id(page) -> str:
    return page.locator("h3").filter(has_text=" · ").first.inner_text().split(" · ", 1)[1].strip()


def _keys_ready(page) -> None:
    """Wait until the decision buttons (which hold the keys) are on the page, once, with no text box focused."""
    buttons = page.get_by_role("button", name="Correct as is")
    buttons.first.wait_for()  # during a rerun the last review's buttons can still stand beside the new ones
    _idle(page)
    expect(buttons).to_have_count(1)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")


def _next_heading(page, old: str) -> str:
    """Wait until Mislabel review shows another suspect than ``old``; its id."""
    expect(page.locator("h3").filter(has_text=" · ").first).not_to_contain_text(f" · {old}", timeout=30_000)
    return _heading_id(page)


def _cells(page, table: int = 0) -> list[list[str]]:
    """The visible rows of a dataframe, from the grid's accessible table (what a screen reader reads)."""
    grid = page.locator('[data-testid="stDataFrame"]').nth(table)
    for _ in range(100):  # the grid redraws its accessible table after each rerun: read it once it is whole
        grid.locator('[role="gridcell"]').first.wait_for(state="attached")
        rows = grid.locator('[role="row"]')
        out = []
        for i in range(rows.count()):
            cells = rows.nth(i).locator('[role="gridcell"], [role="columnheader"]')
            out.append([cells.nth(j).text_content() for j in range(cells.count())])
        if len(out) > 1 and all(out):
            return out
        page.wait_for_timeout(100)
    raise AssertionError("the table did not settle")


def _select_rows(page, rows: list[int], table: int = 0) -> None:
    box = page.locator('[data-testid="stDataFrame"]').nth(table).bounding_box()
    for r in rows:
        page.mouse.click(box["x"] + MARKER, box["y"] + ROW * (r + 1) + ROW / 2)
        _idle(page)


def _download(page, url: str) -> list[dict]:
    _open(page, f"{url}/mislabel_review", "Mislabel review")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download relabel CSV").click()
    return list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))


def test_a_note_stays_with_its_review_and_keys_decide(served, page):
    url, _ = served
    _open(page, f"{url}/mislabel_review", "Mislabel review")
    expect(page.get_by_text("Keys decide on the suspect shown below: F relabel")).to_be_visible()
    first = _heading_id(page)
    note = page.get_by_role("textbox", name="Note (optional)")
    note.fill("praises the acting throughout")
    note.press("Enter")
    _idle(page)
    page.get_by_role("button", name="Mislabeled: relabel as").click()
    page.get_by_text("Reviewed 1 of").wait_for()
    second = _heading_id(page)
    assert second != first
    expect(page.get_by_role("textbox", name="Note (optional)")).to_have_value("")  # the note left with review one
    _keys_ready(page)  # out of the note: keys decide
    page.keyboard.press("k")
    page.get_by_text("Reviewed 2 of").wait_for()
    third = _heading_id(page)
    _keys_ready(page)  # the third review's buttons, which hold the keys, are mounted after its heading
    page.keyboard.press("s")  # skip: no decision
    assert _next_heading(page, third) not in (first, second, third)
    _idle(page)  # the skip's rerun is done before the next key
    page.keyboard.press("u")  # undo the last decision: the second review is back first in line
    page.get_by_text("Reviewed 1 of").wait_for()
    expect(page.locator("h3").filter(has_text=" · ").first).to_contain_text(f" · {second}", timeout=30_000)
    rows = _download(page, url)
    assert [(r["sample_id"], r["decision"], r["note"]) for r in rows] == \
        [(first, "mislabeled", "praises the acting throughout")]


def test_a_double_key_press_decides_once(served, page):
    """The second press lands while the page moves on: it must not decide on a suspect nobody saw."""
    url, store = served
    _open(page, f"{url}/mislabel_review", "Mislabel review")
    first = _heading_id(page)
    _keys_ready(page)
    page.keyboard.press("k")
    page.keyboard.press("k")  # back to back: no rerun can show the next suspect in between
    _next_heading(page, first)
    page.wait_for_timeout(1500)
    _idle(page)
    from pipeline.store import decisions

    assert decisions.current(decisions.decisions_path(store))["sample_id"].tolist() == [first]


def test_after_a_decision_the_next_suspect_shows_from_its_header(served, page):
    url, _ = served
    _open(page, f"{url}/mislabel_review", "Mislabel review")
    first = _heading_id(page)
    page.get_by_text("All suspects").wait_for()
    page.wait_for_timeout(500)
    page.evaluate("""() => {  // read down to the end of the review and the suspects list
        for (const el of [document.scrollingElement, document.querySelector('[data-testid="stMain"]')])
            if (el) el.scrollTop = el.scrollHeight; }""")
    page.wait_for_timeout(500)
    header = page.locator("h3").filter(has_text=" · ").first
    assert header.bounding_box()["y"] < 0  # scrolled out of sight
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press("k")  # decide by key, where the buttons are out of sight too
    page.get_by_text("Reviewed 1 of").wait_for()
    _next_heading(page, first)
    page.wait_for_timeout(500)
    assert 0 <= header.bounding_box()["y"] < 1000  # the next suspect's header, without scrolling back


def test_select_three_flip_them_undo_one_and_export(served, page):
    url, _ = served
    _open(page, f"{url}/samples", "Samples")
    shown = _cells(page)
    _select_rows(page, [0, 1, 2])
    page.get_by_role("button", name="Flip the label (3)").click()
    page.get_by_text("Flip the label of 3 reviews?").wait_for()
    page.get_by_role("textbox", name="Note for these reviews (optional)").fill("=all three are praise")
    page.get_by_role("textbox", name="Note for these reviews (optional)").press("Enter")
    _idle(page)
    page.get_by_role("button", name="Confirm: flip the label of 3").click()
    page.get_by_text("Recorded mislabeled for 3 reviews").wait_for()
    _idle(page)
    page.get_by_role("button", name="Undo my last decision").click()
    page.get_by_text("Undid mislabeled for").wait_for()
    rows = _download(page, url)
    assert len(rows) == 2 and {r["decision"] for r in rows} == {"mislabeled"}
    assert {r["note"] for r in rows} == {"'=all three are praise"}  # as typed, behind the formula guard
    assert all({r["old_label"], r["new_label"]} == {"negative", "positive"} for r in rows)
    header, *body = shown
    picked = {row[header.index("id")] for row in body[:3]}
    assert len({r["sample_id"] for r in rows} & picked) == 2


def test_sorting_goes_through_every_page(served, page):
    url, store = served
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    longest = con.execute("SELECT n_words FROM sample_summary ORDER BY n_words DESC LIMIT 101").fetchall()
    con.close()
    _open(page, f"{url}/samples", "Samples")
    page.get_by_role("combobox", name="Sort all matching reviews by").click()
    page.get_by_role("option", name="words (highest first)").click()
    _idle(page)
    assert "sort=-n_words" in page.url
    page.get_by_text("words highest first").wait_for()
    header, *body = _cells(page)
    assert int(body[0][header.index("words")].replace(",", "")) == longest[0][0]
    page.get_by_role("spinbutton", name=re.compile("Page")).fill("2")
    page.get_by_role("spinbutton", name=re.compile("Page")).press("Enter")
    page.get_by_text("Rows 101-").wait_for()
    for _ in range(50):  # the grid redraws just after the caption
        header, *body = _cells(page)
        if int(body[0][header.index("words")].replace(",", "")) != longest[0][0]:
            break
        page.wait_for_timeout(200)
    assert int(body[0][header.index("words")].replace(",", "")) == longest[100][0]
    page.reload()  # the sort is in the URL
    page.get_by_text("words highest first").wait_for()


def test_a_map_point_click_opens_that_review(served, page):
    url, _ = served
    _open(page, f"{url}/population_map", "Population map")
    page.get_by_text("Size by loss").click()
    _idle(page)
    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    chart.locator("canvas, svg").first.wait_for()
    page.wait_for_timeout(800)
    from io import BytesIO

    from PIL import Image

    box = chart.bounding_box()
    shot = Image.open(BytesIO(chart.screenshot())).convert("RGB")
    scale = shot.width / box["width"]
    spots = [(x, y) for y in range(10, shot.height - 10, 2) for x in range(10, int(shot.width * 0.8), 2)
             if all(_coloured(shot, x + dx, y + dy) for dx, dy in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)))]
    assert spots, "no point found on the map"
    for x, y in spots[:: max(1, len(spots) // 15)]:
        px, py = box["x"] + x / scale, box["y"] + y / scale
        page.mouse.move(px, py)
        page.wait_for_timeout(250)
        tip = page.locator("#vg-tooltip-element")
        if not tip.is_visible():
            continue
        sample_id = re.search(r"id\s*(\S+)\s*$", tip.inner_text()).group(1)
        page.mouse.click(px, py)
        page.get_by_role("heading", name="Sample analysis", exact=True).wait_for(timeout=60_000)
        expect(page.get_by_role("textbox", name="Sample id")).to_have_value(sample_id, timeout=30_000)
        return
    pytest.fail("no point on the map showed a tooltip")


def _coloured(img, x, y) -> bool:
    r, g, b = img.getpixel((x, y))
    return max(r, g, b) - min(r, g, b) > 60  # a class colour, not the white or grey background


def test_a_cluster_row_opens_samples_filtered_to_it(served, page):
    url, store = served
    _open(page, f"{url}/population_map", "Population map")
    clusters = page.locator('[data-testid="stDataFrame"]').first
    clusters.scroll_into_view_if_needed()
    box = clusters.bounding_box()
    page.mouse.click(box["x"] + MARKER, box["y"] + ROW + ROW / 2)  # the first cluster
    page.get_by_role("heading", name="Samples", exact=True).wait_for(timeout=60_000)
    _idle(page)
    assert re.search(r"[?&]cluster=\d+", page.url)
    cluster = int(re.search(r"[?&]cluster=(\d+)", page.url).group(1))
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    (size,) = con.execute("SELECT size FROM clusters WHERE space = 'tfidf-svd' AND cluster = ?", [cluster]).fetchone()
    con.close()
    page.get_by_text(f"of {size:,} matching reviews").wait_for()
