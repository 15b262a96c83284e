"""Page render times of the real app in headless Chromium, on a real store.

    .venv/bin/python bench/app_render.py --db data/lossmap.duckdb

Starts `streamlit run app.py -- --db DB` and times, from navigation until the page's
heading is shown and the app is idle (no "running" indicator):

- the first page a freshly started server serves (Overview, nothing cached yet);
- every page's first visit (its queries not cached yet) and the median of 3 more;
- on Samples, a filter change (split = test) and a sort change (words, highest first,
  over every matching review), each from choosing the option until the table has
  re-rendered (opening the drop-down list before it is printed apart).

Targets (issue 11): every page under 2 s, a filter or sort change under 0.5 s.
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
            fresh = visit(page, url, "Overview")
            print(f"{'fresh server':<18} {fresh:>16.2f} {'':>16}   first page of a freshly started server: "
                  f"{'met' if fresh < args.target else 'MISSED'}")
            print(f"{'page':<18} {'first visit (s)':>16} {'median of ' + str(args.repeat) + ' (s)':>16}   "
                  f"target < {args.target:g} s")
            for path, title in PAGES.items():
                first = visit(page, f"{url}/{path}", title)
                times = [visit(page, f"{url}/{path}", title) for _ in range(args.repeat)]
                median = statistics.median(times)
                verdict = "met" if max(first, median) < args.target else "MISSED"
                print(f"{title:<18} {first:>16.2f} {median:>16.2f}   {verdict}")

            # A change is timed from the click that makes it (the option chosen) until the page is idle with the
            # table redrawn; opening the drop-down list before it is the browser's, timed apart.
            changes = (("filter change", "Split", "test", "split", "test", "Samples: split = test"),
                       ("sort change", "Sort all matching reviews by", "words (highest first)", "sort", "-n_words",
                        "Samples: words, highest first, over all reviews"))
            for name, box, option, param, value, what in changes:
                took, opening = [], []
                for _ in range(args.repeat):
                    visit(page, f"{url}/samples", "Samples")
                    start = time.perf_counter()
                    page.get_by_role("combobox", name=box).click()
                    choice = page.get_by_role("option", name=option)
                    choice.wait_for()
                    opening.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    choice.click()
                    page.wait_for_function(f"() => new URL(location).searchParams.get('{param}') === '{value}'",
                                           polling=10)
                    wait_idle(page)
                    took.append(time.perf_counter() - start)
                median = statistics.median(took)
                print(f"{name:<18} {'':>16} {median:>16.2f}   ({what}; opening the list before it "
                      f"{statistics.median(opening):.2f} s) {'met' if median < 0.5 else 'MISSED'} (target < 0.5 s)")
                page.keyboard.press("Escape")
            browser.close()
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
