"""Shared fixtures: tiny hand-made archives, a seeded sample of the real data, and a
real store built by the pipeline from it (once per test session)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import duckdb
import pytest

from pipeline.config import Config

ROOT = Path(__file__).resolve().parents[1]
REAL_ARCHIVE = Path(os.environ.get("IMDB_DATA", ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"))
STORE_SAMPLE = 400  # reviews in the session store; enough for 5 grouped folds and cleanlab

POSITIVE = "A wonderful, moving film. The acting is superb and I loved every minute.<br /><br />Great!"
NEGATIVE = "A dull, boring mess. The plot is awful and I hated every minute.<br />Terrible."


def make_archive(path: Path, reviews: dict[str, bytes], urls: dict[str, list[str]] | None = None,
                 *, gz: bool = True) -> Path:
    """Write an archive in the aclImdb layout: ``reviews`` maps 'train/pos/0_9' -> bytes."""
    urls = urls if urls is not None else _default_urls(reviews)
    with tarfile.open(path, "w:gz" if gz else "w") as tar:
        for sample_id, payload in reviews.items():
            _add(tar, f"aclImdb/{sample_id}.txt", payload)
        for key, lines in urls.items():
            split, folder = key.split("/")
            _add(tar, f"aclImdb/{split}/urls_{folder}.txt", "\n".join(lines).encode() + b"\n")
    return path


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def _default_urls(reviews: dict[str, bytes]) -> dict[str, list[str]]:
    """Movie k for review id k // 2, so pairs of reviews share a movie."""
    out: dict[str, list[str]] = {}
    for sample_id in reviews:
        split, folder, stem = sample_id.split("/")
        if not stem.split("_")[0].isdigit():
            continue
        review_id = int(stem.split("_")[0])
        lines = out.setdefault(f"{split}/{folder}", [])
        while len(lines) <= review_id:
            lines.append(f"http://www.imdb.com/title/tt{1000000 + len(lines) // 2:07d}/usercomments")
    return out


def balanced_reviews(n_per_folder: int = 6) -> dict[str, bytes]:
    """Positive and negative reviews in both splits, ratings consistent with folders."""
    reviews = {}
    for split in ("train", "test"):
        for i in range(n_per_folder):
            reviews[f"{split}/pos/{i}_{7 + i % 4}"] = f"{POSITIVE} Number {i}.".encode()
            reviews[f"{split}/neg/{i}_{1 + i % 4}"] = f"{NEGATIVE} Number {i}.".encode()
    return reviews


@pytest.fixture
def tiny_archive(tmp_path: Path) -> Path:
    return make_archive(tmp_path / "aclImdb_v1_labeled.tar.gz", balanced_reviews())


@pytest.fixture
def con():
    connection = duckdb.connect(":memory:")
    yield connection
    connection.close()


def real_archive() -> Path:
    if not REAL_ARCHIVE.exists():
        pytest.skip(f"the IMDB archive is not at {REAL_ARCHIVE} (set IMDB_DATA)")
    return REAL_ARCHIVE


@pytest.fixture(scope="session")
def sample_config(tmp_path_factory) -> Config:
    folder = tmp_path_factory.mktemp("store")
    return Config(data=real_archive(), sample=STORE_SAMPLE, seed=1, db=folder / "lossmap.duckdb",
                  models_dir=folder / "models", progress=False, clusters=6, svd_dim=20)


@pytest.fixture(scope="session")
def sample_run(sample_config):
    """A real run of the whole pipeline on a seeded sample of the real archive."""
    from pipeline.run import run_pipeline

    return run_pipeline(sample_config)


@pytest.fixture
def store_ro(sample_run):
    from pipeline.store.files import open_readonly

    connection = open_readonly(sample_run.db)
    yield connection
    connection.close()


HOSTILE_ID = "train/neg/99999_1"
HOSTILE_TEXT = ("<script>window.__pwned = 1; document.title = 'pwned'</script>"
                "<img src=x onerror=\"window.__pwned = 2\"> Awful, boring film.<br /><br />"
                "=HYPERLINK(\"http://example.com\") terrible acting, worst plot ever.")

# More hostile reviews: a line too long to wrap, control characters, bidirectional
# overrides (which would reorder what a reviewer reads), and a review of 1 MB.
HOSTILE_VARIANTS = {
    "train/neg/99990_2": "Dreadful. " + "A" * 60_000 + " The end; a bad film.",
    "train/neg/99991_3": ("Bad\x00film\x01 \x07\x08\x1b[31m red \x7f terrible acting.\r\nworst <b>ever</b>. "
                          "C1\x85\x9b controls, zero\u200bwidth\u2060 and \U000E0041\U000E007F tags."),
    "train/pos/99992_9": "Great film \u202eevil txet\u202c and \u200f\u2067isolated\u2069 wonderful, loved it.",
    "test/neg/99993_1": ("This movie is dull and the plot is weak. " * 12_500
                         + "<script>window.__pwned = 3</script> The middle is no better. "
                         + "Bad acting, bad sets, a boring ending. " * 12_500),
}


def sample_archive(path: Path, *, n: int, seed: int) -> Path:
    """An archive in the aclImdb layout: a seeded sample of the real reviews plus the hostile reviews."""
    from pipeline.data.imdb import load_reviews

    frame = load_reviews(real_archive(), sample=n, seed=seed, progress=False).frame
    reviews = {row.sample_id: row.text.encode() for row in frame.itertuples()}
    reviews[HOSTILE_ID] = HOSTILE_TEXT.encode()
    reviews |= {sample_id: text.encode() for sample_id, text in HOSTILE_VARIANTS.items()}
    urls: dict[str, list[str]] = {}
    for sample_id, movie in [*((r.sample_id, r.movie_id) for r in frame.itertuples()),
                             *((h, "tt9999999") for h in [HOSTILE_ID, *HOSTILE_VARIANTS])]:
        split, folder, stem = sample_id.split("/")
        lines = urls.setdefault(f"{split}/{folder}", [""] * 100_000)
        lines[int(stem.split("_")[0])] = f"http://www.imdb.com/title/{movie}/usercomments"
    return make_archive(path, reviews, urls)


@pytest.fixture(scope="session")
def app_store(tmp_path_factory) -> Path:
    """A store built by the real pipeline from a small archive that holds the hostile reviews, plus a quick sweep."""
    from pipeline.run import run_pipeline
    from pipeline.sweep import run_sweep

    folder = tmp_path_factory.mktemp("app_store")
    archive = sample_archive(folder / "aclImdb_v1_labeled.tar.gz", n=300, seed=7)
    cfg = Config(data=archive, db=folder / "lossmap.duckdb", models_dir=folder / "models", progress=False,
                 clusters=5, svd_dim=16)
    run_pipeline(cfg)
    run_sweep(Config(data=real_archive(), db=cfg.db, progress=False), quick=True)
    return cfg.db


STARS = ("1", "2", "3", "4", "7", "8", "9", "10")  # IMDB's ratings: the classes of the 8-class task
RATING_SAMPLE = 1000  # rows in the multi-class session store


def rating_table(n: int, seed: int):
    """A seeded sample of the real reviews as a table: the star rating is an 8-class label (`stars`), with a
    split, a group (`movie`), a category (`sentiment`) and a number (`helpful`) as the other columns."""
    import numpy as np

    from pipeline.data.imdb import load_reviews

    frame = load_reviews(real_archive(), sample=n, seed=seed, progress=False).frame
    rng = np.random.default_rng(seed)
    return frame.assign(
        id=frame["sample_id"], review=frame["text"], stars=frame["rating"].astype(int), movie=frame["movie_id"],
        sentiment=frame["label"].map({0: "neg", 1: "pos"}), helpful=rng.integers(0, 50, len(frame)),
    )[["id", "review", "stars", "split", "movie", "sentiment", "helpful"]]


@pytest.fixture(scope="session")
def rating_store(tmp_path_factory):
    """A real run on the 8-class rating task, read from a Parquet file (the RunSummary)."""
    from pipeline.run import run_pipeline

    folder = tmp_path_factory.mktemp("rating_store")
    path = folder / "ratings.parquet"
    rating_table(RATING_SAMPLE, seed=11).to_parquet(path)
    cfg = Config(data=path, label_column="stars", split_column="split", group_column="movie", score_column="stars",
                 db=folder / "lossmap.duckdb", models_dir=folder / "models", progress=False, clusters=6, svd_dim=20)
    return run_pipeline(cfg)


HOSTILE_CLASSES = ("<img src=x onerror=\"window.__pwned = 4\"> ![b](https://evil.example/class.png)",
                   "=HYPERLINK(\"http://example.com\",\"x\") https://evil.example/auto www.evil.example a@evil.example",
                   "**bold** [link](javascript:window.__pwned=5) [out](https://evil.example/phish) `code` :red[red] "
                   ":material/home: $x^2$")
HOSTILE_COLUMN = "![c](https://evil.example/column.png) :material/home: channel"  # a metadata column's name


@pytest.fixture(scope="session")
def hostile_class_store(tmp_path_factory):
    """A run through ``pipeline.analyze`` on a DataFrame whose labels and ids are hostile: HTML, a spreadsheet
    formula, Markdown with a javascript: link. Linear model only (a few seconds)."""
    import pandas as pd

    from pipeline import analyze

    folder = tmp_path_factory.mktemp("hostile_classes")
    words = ("awful dreadful boring", "fine okay average", "superb wonderful moving")
    ids = ("<b>{k}-{i}</b>", "=cmd|' /C calc'!A{i}{k}", "![i](https://evil.example/id.png) {k}-{i}")
    rows = [{"id": ids[0 if i % 7 else (1 if i % 2 else 2)].format(k=k, i=i), "body": f"{words[k]} film, take {i}",
             "topic": HOSTILE_CLASSES[k], HOSTILE_COLUMN: ("web", "<i>app</i> [x](https://evil.example/v)")[i % 2]}
            for i in range(60) for k in range(3)]
    rows[3]["topic"] = HOSTILE_CLASSES[2]  # "awful dreadful boring film, take 1" labeled with the third class
    assert rows[3]["body"].startswith("awful")
    summary = analyze(pd.DataFrame(rows), text="body", label="topic", db=folder / "lossmap.duckdb",
                      models_dir=folder / "models", dense=False, cnn=False, progress=False, clusters=3, svd_dim=8)
    return summary.db
