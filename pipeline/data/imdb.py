"""Load the Large Movie Review Dataset (Maas et al., 2011) into one DataFrame.

Reads any of:
- the published ``aclImdb_v1.tar.gz`` (the ``unsup/`` part and bag-of-words files
  are skipped),
- ``aclImdb_v1_labeled.tar.gz`` (same layout, labeled reviews only),
- an extracted ``aclImdb/`` folder.

Archives are streamed member by member; nothing is extracted to disk. Public entry:
``load_reviews(path, *, sample=None, seed=0)`` returns a ``Loaded`` with a frame of
one row per review (columns in ``COLUMNS``) and a ``LoadReport`` of every review
that was repaired or left out, and why. ``locate_data(cfg)`` finds (or downloads)
the data first.

    python -m pipeline run --data ../shared/data/aclImdb_v1_labeled.tar.gz
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pipeline.config import DATA_ENV, Config
from pipeline.data.dataset import (HTML_BREAK, Dataset, LoadError, LoadReport, display_text,  # noqa: F401
                                   word_counts)
from pipeline.data.unpack import CappedStream, Limits

PUBLISHED_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
_DOWNLOAD_MAX = 256 << 20  # bytes; the published archive is about 80 MiB
PUBLISHED_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"  # of that file, as published
ARCHIVE_NAMES = ("aclImdb_v1.tar.gz", "aclImdb_v1_labeled.tar.gz")
COLUMNS = ["sample_id", "path", "split", "label", "rating", "movie_id", "text", "display_text", "n_words"]

_REVIEW = re.compile(r"^(?:.*/)?aclImdb/(train|test)/(pos|neg)/([^/]+)\.txt$")
_URLS = re.compile(r"^(?:.*/)?aclImdb/(train|test)/urls_(pos|neg)\.txt$")
_NAME = re.compile(r"^(\d+)_(\d+)$")
_MOVIE = re.compile(r"/title/(tt\d+)")
CLASSES = ("negative", "positive")  # label 0, 1


@dataclasses.dataclass
class Loaded:
    frame: pd.DataFrame  # one row per review, columns COLUMNS, sorted by sample_id
    report: LoadReport
    source: Path


def locate_data(cfg: Config) -> Path:
    """Return the path of the data: --data / $IMDB_DATA, else data/, else a download."""
    explicit = cfg.data_source()
    if explicit is not None:
        if not explicit.exists():
            raise LoadError(
                f"{explicit} does not exist. Check the path: --data takes a table (.csv, .tsv, .parquet, .jsonl), "
                f"a folder laid out [split/]label/*.txt, or the IMDB archive (aclImdb_v1.tar.gz, "
                f"aclImdb_v1_labeled.tar.gz, an extracted aclImdb/ folder; or set {DATA_ENV})."
            )
        return explicit
    for name in (*ARCHIVE_NAMES, "aclImdb"):
        candidate = Path(cfg.data_dir) / name
        if candidate.exists():
            return candidate
    return _download(PUBLISHED_URL, Path(cfg.data_dir) / ARCHIVE_NAMES[0], progress=cfg.progress)


def load_reviews(path: Path, *, sample: int | None = None, seed: int = 0, progress: bool = True,
                 limits: Limits = Limits()) -> Loaded:
    """Read every labeled review under ``path`` (archive or folder).

    ``sample``: keep this many reviews, a seeded sample stratified by label. ``limits``: what a member and the
    whole input may unpack to (``unpack.Limits``). Raises ``LoadError`` with a message a user can act on.
    """
    path = Path(path)
    if not path.exists():
        raise LoadError(f"{path} does not exist.")
    if sample is not None and sample < 2:
        raise LoadError(f"--sample must be at least 2 (got {sample}).")
    if path.is_file() and path.stat().st_size == 0:
        raise LoadError(f"{path} is an empty file. Download the archive again or point --data at another copy.")
    report = LoadReport()
    members = _iter_dir(path, limits, report) if path.is_dir() else _iter_tar(path, progress, limits, report)
    frame = _build_frame(members, report, path)
    if sample is not None and sample < len(frame):
        frame = _stratified_sample(frame, sample, seed)
    return Loaded(frame.reset_index(drop=True), report, path)


def _iter_tar(path: Path, progress: bool, limits: Limits, report: LoadReport) -> Iterator[tuple[str, bytes]]:
    size = path.stat().st_size
    try:
        with open(path, "rb") as raw, tqdm(
            total=size, unit="B", unit_scale=True, desc="load", disable=not progress, leave=False
        ) as bar:
            reader = _CountingReader(raw, bar)
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            # gzip is decoded here, not by tarfile, so a stream cut short raises EOFError
            stream = CappedStream(gzip.GzipFile(fileobj=reader) if gzipped else reader, limits, path)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                total = 0
                for member in tar:
                    total += member.size  # what it unpacks to, skipped or not (a sparse member may declare any)
                    limits.check_total(path, total)
                    stream.allow(member.size)
                    if member.isdir():
                        continue
                    if not member.isfile():  # a symbolic or hard link, a FIFO, a device
                        report.add("skipped_member", member.name)
                        continue
                    if not (_REVIEW.match(member.name) or _URLS.match(member.name)):
                        continue
                    limits.check_member(path, member.name, member.size)
                    handle = tar.extractfile(member)
                    yield member.name, handle.read() if handle else b""
            while stream.read(1 << 20):  # the rest of the stream, to check the gzip trailer
                pass
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise LoadError(
            f"{path} is corrupt or truncated ({type(exc).__name__}: {exc}). "
            "Download the archive again, or pass --data with another copy."
        ) from None


class _CountingReader:
    """File wrapper that advances a progress bar by the compressed bytes read."""

    def __init__(self, raw, bar):
        self._raw, self._bar = raw, bar

    def read(self, n=-1):
        data = self._raw.read(n)
        self._bar.update(len(data))
        return data


def _iter_dir(path: Path, limits: Limits, report: LoadReport) -> Iterator[tuple[str, bytes]]:
    root = path if path.name == "aclImdb" else path / "aclImdb"
    if not root.is_dir():
        raise LoadError(f"{path} holds no aclImdb/ folder. Point --data at the archive or the extracted aclImdb/ folder.")
    total, inside = 0, root.resolve()
    for file in sorted(root.glob("*/*/*.txt")) + sorted(root.glob("*/urls_*.txt")):
        name = "aclImdb/" + file.relative_to(root).as_posix()
        if not (_REVIEW.match(name) or _URLS.match(name)):
            continue
        if file.is_symlink() or not file.is_file() or inside not in file.resolve().parents:
            # a link (or a linked folder) could point anywhere; a FIFO would block the read
            report.add("skipped_member", name)
            continue
        size = file.stat().st_size
        limits.check_member(path, name, size, packed=False)
        total += size
        limits.check_total(path, total)
        yield name, file.read_bytes()


def _build_frame(members: Iterator[tuple[str, bytes]], report: LoadReport, source: Path) -> pd.DataFrame:
    rows, urls, seen = [], {}, set()
    for name, payload in members:
        m = _URLS.match(name)
        if m:
            lines = payload.decode("utf-8", errors="replace").splitlines()
            urls[(m.group(1), m.group(2))] = lines
            continue
        split, folder, stem = _REVIEW.match(name).groups()
        report.reviews_read += 1
        sample_id = f"{split}/{folder}/{stem}"
        if sample_id in seen:  # the same file twice, or under another prefix (x/aclImdb/... and aclImdb/...)
            report.add("duplicate_member", name)
            continue
        seen.add(sample_id)
        parsed = _NAME.match(stem)
        if not parsed:
            report.add("no_rating", sample_id)
            continue
        if not 1 <= int(parsed.group(2)) <= 10:
            report.add("rating_out_of_range", sample_id)
            continue
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = payload.decode("utf-8", errors="replace")
            report.add("not_utf8", sample_id)
        if not text.strip():
            report.add("empty", sample_id)
            continue
        label, rating = int(folder == "pos"), int(parsed.group(2))
        if not (rating >= 7 if label else 1 <= rating <= 4):
            report.add("rating_contradicts_folder", sample_id)
        rows.append((sample_id, f"aclImdb/{sample_id}.txt", split, label, rating, int(parsed.group(1)), folder, text))
    if not rows:
        raise LoadError(
            f"No reviews found in {source}. Expected aclImdb/{{train,test}}/{{pos,neg}}/<id>_<rating>.txt; "
            "is this the Large Movie Review Dataset?"
        )
    frame = pd.DataFrame(rows, columns=["sample_id", "path", "split", "label", "rating", "_id", "_folder", "text"])
    frame["movie_id"] = [_movie_id(urls, s, f, i) for s, f, i in zip(frame["split"], frame["_folder"], frame["_id"])]
    for sid in frame.loc[frame["movie_id"].isna(), "sample_id"]:
        report.add("no_movie_id", sid)
    frame["display_text"] = frame["text"].str.replace(HTML_BREAK, "\n", regex=True)
    frame["n_words"] = word_counts(frame["display_text"])
    frame["label"] = frame["label"].astype("int8")
    frame["rating"] = frame["rating"].astype("int8")
    return frame[COLUMNS].sort_values("sample_id", kind="stable").reset_index(drop=True)


def to_dataset(loaded: Loaded) -> Dataset:
    """The IMDB frame as the pipeline's Dataset: two classes, the stars as the rating, folds grouped by movie."""
    frame = loaded.frame.rename(columns={"movie_id": "group"})
    frame["label"] = frame["label"].astype("int16")
    frame["rating"] = frame["rating"].astype(float)
    columns = {"text": "text", "label": "label", "id": None, "split": "split", "group": "movie_id", "score": "rating"}
    return Dataset(frame, CLASSES, loaded.report, str(loaded.source), columns)


def _movie_id(urls: dict, split: str, folder: str, review_id: int) -> str | None:
    lines = urls.get((split, folder), [])
    if review_id < len(lines):
        m = _MOVIE.search(lines[review_id])
        if m:
            return m.group(1)
    return None


def _stratified_sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    share = n / len(frame)
    keep = []
    for _, group in frame.groupby("label", sort=True):
        take = max(1, round(len(group) * share))
        keep.append(rng.choice(group.index.to_numpy(), size=min(take, len(group)), replace=False))
    idx = np.sort(np.concatenate(keep))[: max(n, 2)]
    return frame.loc[idx]


def _download(url: str, dest: Path, *, progress: bool) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(dest.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as resp, open(partial, "wb") as out, tqdm(
            total=int(resp.headers.get("Content-Length") or 0) or None,
            unit="B", unit_scale=True, desc=f"download {dest.name}", disable=not progress,
        ) as bar:
            digest = hashlib.sha256()
            while chunk := resp.read(1 << 20):
                if out.tell() + len(chunk) > _DOWNLOAD_MAX:
                    raise OSError(f"the server sent more than {_DOWNLOAD_MAX >> 20} MiB; the published archive is about 80 MiB")
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise LoadError(
            f"No local copy of the IMDB data was found and downloading {url} failed ({exc}).\n"
            f"Put aclImdb_v1.tar.gz (or aclImdb_v1_labeled.tar.gz, or the extracted aclImdb/ folder) "
            f"in {dest.parent}/, or pass --data PATH, or set {DATA_ENV}=PATH."
        ) from None
    if digest.hexdigest() != PUBLISHED_SHA256:
        partial.unlink(missing_ok=True)
        raise LoadError(f"The download of {url} is not the published file (sha256 {digest.hexdigest()[:16]}..., "
                        f"expected {PUBLISHED_SHA256[:16]}...): it was damaged or altered on the way, and is deleted. "
                        "Run the command again, or download it yourself and pass --data PATH.")
    _check_archive(partial)
    shutil.move(partial, dest)
    return dest


def _check_archive(path: Path) -> None:
    """A downloaded archive must be a whole gzip'd tar holding labeled reviews."""
    try:
        with tarfile.open(path, "r|gz") as tar:
            found = sum(1 for m in tar if _REVIEW.match(m.name))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        path.unlink(missing_ok=True)
        raise LoadError(f"The downloaded archive is damaged ({exc}); run the command again.") from None
    if found < 50_000:
        path.unlink(missing_ok=True)
        raise LoadError(f"The downloaded archive holds {found} labeled reviews, not 50,000; run the command again.")
