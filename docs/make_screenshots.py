"""Regenerate the README screenshots in docs/img/.

    .venv/bin/python docs/make_screenshots.py --db data/lossmap.duckdb

- population_map.png, training.png, experiments.png: pages of DB (a full run, with a
  sweep for experiments.png); they show charts, no review text;
- mislabel_review.png: the Mislabel review page of a store built by the pipeline from a
  synthetic archive written here, so no IMDB review text ends up in the repository.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import Config  # noqa: E402
from pipeline.run import run_pipeline  # noqa: E402
from tests.app.test_browser import launch_chromium, start_app  # noqa: E402
from tests.conftest import make_archive  # noqa: E402

GOOD = ["The acting is superb and the script is sharp.", "I loved every minute of it.", "A moving, beautiful film.",
        "The soundtrack is wonderful.", "One of the best comedies of the decade.", "Brilliant direction throughout.",
        "The cast has great chemistry.", "I would happily watch it again.", "A delightful surprise."]
BAD = ["The plot is a boring mess.", "I hated the wooden acting.", "A waste of two hours.", "The dialogue is awful.",
       "The worst sequel I have seen.", "Dull, slow and predictable.", "The ending is terrible.",
       "I walked out halfway through.", "Poorly edited and badly lit."]
NEUTRAL = ["It was released in the spring.", "The film runs about ninety minutes.", "I saw it with my brother.",
           "It is set in a small town.", "The lead actor also wrote it."]


def synthetic_reviews(n: int = 400, flipped: int = 20, seed: int = 0) -> dict[str, bytes]:
    rng = random.Random(seed)
    reviews = {}
    for i in range(n):
        positive = i % 2 == 0
        text = rng.sample(GOOD if positive else BAD, 3) + rng.sample(NEUTRAL, 2)
        rng.shuffle(text)
        label = positive if i >= flipped else not positive  # the first reviews are filed under the wrong label
        rating = rng.choice([7, 8, 9, 10]) if label else rng.choice([1, 2, 3, 4])
        split = "train" if i % 4 < 2 else "test"
        reviews[f"{split}/{'pos' if label else 'neg'}/{i}_{rating}"] = " ".join(text).encode()
    return reviews


def shoot(db: Path, path: str, title: str, out: Path, height: int = 950) -> None:
    from playwright.sync_api import sync_playwright

    proc, url = start_app(db)
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1400, "height": height})  # the page scrolls inside
            page.goto(f"{url}/{path}")
            page.get_by_role("heading", name=title, exact=True).wait_for(timeout=60_000)
            page.wait_for_timeout(3000)
            page.screenshot(path=str(out))
            browser.close()
    finally:
        proc.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=str(ROOT / "data" / "lossmap.duckdb"), help="store of a full run")
    parser.add_argument("--only", default="population_map,training,experiments,mislabel_review",
                        help="comma-separated images to make (default: all)")
    args = parser.parse_args()
    only = set(args.only.split(","))
    out = ROOT / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    for path, title, height in (("population_map", "Population map", 950), ("training", "Training", 2500),
                                ("experiments", "Experiments", 1800)):
        if path in only:
            shoot(Path(args.db), path, title, out / f"{path}.png", height)
            print(f"wrote {out}/{path}.png")
    if "mislabel_review" not in only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        archive = make_archive(Path(tmp) / "synthetic.tar.gz", synthetic_reviews())
        cfg = Config(data=archive, db=Path(tmp) / "s.duckdb", models_dir=Path(tmp) / "m", min_df=1, progress=False,
                     clusters=4, svd_dim=10)
        run_pipeline(cfg)
        shoot(cfg.db, "mislabel_review", "Mislabel review", out / "mislabel_review.png")
    print(f"wrote {out}/mislabel_review.png")


if __name__ == "__main__":
    main()
