"""Page render times of the real app in headless Chromium, on a real store.

    .venv/bin/python bench/app_render.py --db data/lossmap.duckdb

Starts `streamlit run app.py -- --db DB`, opens every page 3 times (after one warm-up
visit that fills the caches) and reports the median time from navigation until the
page's heading is shown and the app is idle (no "running" indicator). On Samples it
also times a filter change (split = test) until the table has re-rendered.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.app.test_browser import PAGES, launch_chromium, start_app  # noqa: E402

_RUNNING = '[data-testid="stStatusWidget"]'


def wait_idle(page) -> None:
    page.wait_for_timeout(50)
    page.wait_for_function(f"() => !document.querySelector('{_RUNNING}')", timeout=60_000)


def visit(page, url: str, title: str) -> float:
    start = time.perf_counter()
    page.goto(url)
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=60_000)
    wait_idle(page)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=str(ROOT / "data" / "lossmap.duckdb"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--target", type=float, default=2.0, help="seconds a warm visit should take (default: 2)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    proc, url = start_app(Path(args.db))
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            print(f"store {args.db}")
            print(f"{'page':<18} {'first visit (s)':>16} {'median of ' + str(args.repeat) + ' (s)':>16}   "
                  f"target < {args.target:g} s")
            for path, title in PAGES.items():
                first = visit(page, f"{url}/{path}", title)
                times = [visit(page, f"{url}/{path}", title) for _ in range(args.repeat)]
                median = statistics.median(times)
                print(f"{title:<18} {first:>16.2f} {median:>16.2f}   {'met' if median < args.target else 'MISSED'}")
            changes = []
            for _ in range(args.repeat):
                visit(page, f"{url}/samples", "Samples")
                box = page.get_by_label("Split").first
                start = time.perf_counter()
                box.click()
                page.get_by_role("option", name="test").click()
                page.keyboard.press("Escape")
                page.wait_for_function("() => new URL(location).searchParams.get('split') === 'test'")
                wait_idle(page)
                changes.append(time.perf_counter() - start)
            print(f"{'filter change':<18} {'':>16} {statistics.median(changes):>16.2f}   (Samples: split = test)")
            browser.close()
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
