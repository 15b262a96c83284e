"""What every reader hands the pipeline: a ``Dataset`` of labeled texts, checked.

``from_table(raw, roles, *, source, report)`` turns a table (a pandas DataFrame with
the user's own column names, read from CSV/TSV, Parquet, JSON Lines, a text folder or
given to ``pipeline.analyze``) into a ``Dataset``:

- ``frame``: one row per text, ``FRAME_COLUMNS``: ``sample_id`` (from ``--id``, else
  derived from the text), ``path`` (where the row came from), ``split``, ``label``
  (class index into ``classes``), ``rating`` (the ``--score`` column, float, NaN when
  absent), ``group`` (``--group``: folds never split a group), ``text``,
  ``display_text`` (HTML line breaks as newlines) and ``n_words``;
- ``classes``: class names (strings) from the data, sorted (numerically when every
  label is an integer), so class ``i`` is ``classes[i]`` in every table and model;
- ``metadata``: every other column, aligned with ``frame``, with its ``MetaColumn``
  kind: ``category`` (few distinct values: filters and map colours), ``number``
  (range filters) or ``text`` (kept and shown).

Problems that leave rows out or repair them (null texts or labels, empty texts,
undecodable bytes) are counted in the ``LoadReport`` and reported as warnings; problems
that make the run meaningless (a missing column, one class, a class with fewer members
than folds, duplicate ids) raise ``LoadError`` with the fix, before any model is
trained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

import numpy as np
import pandas as pd

FRAME_COLUMNS = ["sample_id", "path", "split", "label", "rating", "group", "text", "display_text", "n_words"]
ROLES = ("text", "label", "id", "split", "group", "score")
# Column names recognised when --text / --label / --id are not given (case-insensitive).
LIKE = {
    "text": ("text", "review", "sentence", "content"),
    "label": ("label", "labels", "target", "class", "sentiment"),
    "id": ("sample_id", "id"),
}
SPLITS = {"train": "train", "training": "train", "test": "test", "testing": "test", "validation": "validation",
          "valid": "validation", "val": "validation", "dev": "validation"}
TRAIN = "train"
CATEGORY_MAX = 50  # a text or boolean column with at most this many distinct values is a category
HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)  # reviews use <br /> for line breaks
_MAX_EXAMPLES = 5


def examples(items) -> str:
    """Up to ``_MAX_EXAMPLES`` items for a message, ', ...' marking that there are more: 'a, b, c, d, e, ...'. Control
    characters in an item (an id from the data may hold ANSI escapes or NUL) are written as escapes, not sent to a
    terminal; each item is cut at 200 characters."""
    shown = [printable(str(v)) for v in list(items)[:_MAX_EXAMPLES + 1]]
    return ", ".join(shown[:_MAX_EXAMPLES]) + (", ..." if len(shown) > _MAX_EXAMPLES else "")


def printable(text: str, limit: int = 200) -> str:
    """``text`` for a terminal: control characters written as escapes, cut at ``limit`` characters."""
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


class LoadError(Exception):
    """The data cannot be used; the message says what to do."""


@dataclasses.dataclass
class LoadReport:
    """What loading repaired or left out. Every problem is counted, none is silent."""

    reviews_read: int = 0  # rows (texts) read, before anything was left out
    # kind -> list of sample ids (or paths, rows) it affected
    problems: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)  # how columns were chosen, ids derived, ...

    KINDS = {
        "not_utf8": "not valid UTF-8: undecodable bytes replaced with U+FFFD, kept",
        "empty": "empty text: left out",
        "null_text": "no text (null): left out",
        "null_label": "no label (null): left out",
        "null_id": "no id (null): left out",
        "duplicate_text": "the same text as an earlier row: kept, its derived id suffixed -2, -3, ...",
        "no_rating": "file name without <id>_<rating>: left out",
        "rating_contradicts_folder": "rating contradicts its pos/neg folder: kept with the folder's label",
        "no_movie_id": "no movie id in urls_*.txt: kept, grouped on its own in the folds",
        "ignored_file": "not a .txt file, or a link out of the folder: ignored",
        "skipped_member": "not a regular file (a link, FIFO or device in the archive or folder): skipped",
        "duplicate_member": "the same review twice in the archive (the same file, or under another folder): "
                            "the first kept",
        "rating_out_of_range": "a star rating outside 1-10 in its file name: left out",
        "non_finite_score": "an infinite --score value: kept without a score",
    }

    def add(self, kind: str, item: str) -> None:
        self.problems.setdefault(kind, []).append(item)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.problems.items()}

    def lines(self) -> list[str]:
        """Human-readable warnings, one per kind, with up to five examples."""
        out = []
        for kind, items in sorted(self.problems.items()):
            out.append(f"{len(items)} text(s) {self.KINDS[kind]} ({examples(items)})")
        return out


@dataclasses.dataclass(frozen=True)
class MetaColumn:
    name: str  # as in the source
    kind: str  # 'category' | 'number' | 'text'
    n_distinct: int
    lo: float | None = None  # numbers: range
    hi: float | None = None


@dataclasses.dataclass(frozen=True)
class Dataset:
    frame: pd.DataFrame  # FRAME_COLUMNS, one row per text, sorted by sample_id
    classes: tuple[str, ...]  # class names; label i is classes[i]
    report: LoadReport
    source: str  # the file or folder read (or '<DataFrame fingerprint>')
    columns: dict = dataclasses.field(default_factory=dict)  # role -> source column name, None when absent
    metadata: pd.DataFrame | None = None  # the other columns, aligned with frame (same row order)
    meta_columns: tuple[MetaColumn, ...] = ()

    @property
    def labels(self) -> np.ndarray:
        return self.frame["label"].to_numpy()

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def is_train(self) -> np.ndarray:
        return (self.frame["split"] == TRAIN).to_numpy()

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.n_classes)

    def has_rating(self) -> bool:
        return bool(self.frame["rating"].notna().any())

    def take(self, rows: np.ndarray) -> "Dataset":
        """The same dataset restricted to ``rows`` (positions), in that order."""
        meta = self.metadata.iloc[rows].reset_index(drop=True) if self.metadata is not None else None
        return dataclasses.replace(self, frame=self.frame.iloc[rows].reset_index(drop=True), metadata=meta)


def display_text(text: str) -> str:
    """A text with HTML line breaks turned into newlines, as models see it."""
    return HTML_BREAK.sub("\n", text)


def finish_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Add display_text and n_words to a frame that has text."""
    frame["display_text"] = frame["text"].str.replace(HTML_BREAK, "\n", regex=True)
    frame["n_words"] = word_counts(frame["display_text"])
    return frame


def word_counts(texts: pd.Series) -> np.ndarray:
    """Whitespace-separated words per text, int32 (0 for a missing one), one text's words held at a time: counting
    through ``.str.split()`` held every word of every text at once (3 GB on 200,000 reviews)."""
    return np.fromiter((len(t.split()) if isinstance(t, str) else 0 for t in texts), dtype=np.int32,
                       count=len(texts))


def from_table(raw: pd.DataFrame, roles: dict, *, source: str, report: LoadReport | None = None,
               paths: pd.Series | None = None, sample_ids: pd.Series | None = None) -> Dataset:
    """Map the columns of ``raw`` to their roles, check them, and build a Dataset (see module doc).

    ``roles`` maps 'text', 'label', 'id', 'split', 'group', 'score' to column names
    (None: detect text, label and id by name; absent otherwise). ``paths``: where each
    row came from (default 'row <n>', 1-based); ``sample_ids``: ids a reader already
    knows (a text folder's file paths).
    """
    report = report or LoadReport()
    if isinstance(raw.columns, pd.MultiIndex):
        raise LoadError(f"{source} has columns on several levels (a MultiIndex); flatten them first, for example "
                        "df.columns = ['_'.join(map(str, c)) for c in df.columns].")
    roles = {role: None if name is None else str(name) for role, name in roles.items()}
    if len(raw.columns) == 0 or len(raw) == 0:
        raise LoadError(f"{source} holds no rows. Check that it is the file you meant, with a header row.")
    if raw.columns.duplicated().any():
        dup = sorted({str(c) for c in raw.columns[raw.columns.duplicated()]})
        raise LoadError(f"{source} has more than one column named {', '.join(map(repr, dup))}; rename them.")
    raw = raw.rename(columns=str)
    chosen = _choose_columns(raw, roles, source, report, has_ids=sample_ids is not None)
    report.reviews_read = len(raw)
    paths = paths if paths is not None else pd.Series([f"row {i + 1}" for i in range(len(raw))])
    paths = paths.reset_index(drop=True)
    raw = raw.reset_index(drop=True)

    text = as_text(raw[chosen["text"]])
    label = _label_strings(raw[chosen["label"]])
    keep = np.ones(len(raw), bool)
    for kind, bad in (("null_text", text.isna()), ("null_label", label.isna())):
        for i in np.flatnonzero(bad.to_numpy() & keep):
            report.add(kind, paths[i])
        keep &= ~bad.to_numpy()
    empty = keep & ~text.fillna("").str.strip().astype(bool).to_numpy()
    for i in np.flatnonzero(empty):
        report.add("empty", paths[i])
    keep &= ~empty

    if chosen["id"] and roles.get("id") is None:  # found by its name: use it only if it can be an id
        found = as_text(raw[chosen["id"]])[keep]
        if found.isna().any() or found.duplicated().any():
            report.notes.append(f"the column {chosen['id']!r} looks like an id but holds missing or repeated values, "
                                "so it is kept as data; pass --id to use it anyway")
            report.notes[:] = [n for n in report.notes if not n.startswith("id column:")]
            chosen["id"] = None
    if sample_ids is not None:
        ids = sample_ids.reset_index(drop=True).astype(str)
    elif chosen["id"]:
        ids = as_text(raw[chosen["id"]])
        missing = keep & ids.isna().to_numpy()
        for i in np.flatnonzero(missing):
            report.add("null_id", paths[i])
        keep &= ~missing
    else:
        ids = _derived_ids(text.where(keep, ""), paths, keep, report)
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        raise LoadError(f"{source}: no row has both a text and a label ({', '.join(report.lines())}).")
    ids = ids[rows]
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        examples = ", ".join(repr(v) for v in dup.drop_duplicates().head(_MAX_EXAMPLES))
        raise LoadError(
            f"{source}: {dup.nunique():,} ids occur more than once in column {chosen['id']!r} ({examples}). "
            "Ids must be unique, because decisions are kept by id: fix the file, or leave out --id to derive "
            "ids from the text.")

    classes = _classes(label[rows])
    frame = pd.DataFrame({
        "sample_id": ids.to_numpy(dtype=object), "path": paths[rows].to_numpy(dtype=object),
        "split": _splits(raw, chosen["split"], rows), "label": pd.Categorical(
            label[rows], categories=list(classes)).codes.astype("int16"),
        "rating": _rating(raw, chosen["score"], rows, source, report, paths),
        "group": as_text(raw[chosen["group"]])[rows].to_numpy(dtype=object) if chosen["group"] else None,
        "text": text[rows].to_numpy(dtype=object),
    })
    frame = finish_frame(frame)[FRAME_COLUMNS]
    if chosen["split"] and not (frame["split"] == TRAIN).any():
        values = ", ".join(repr(v) for v in pd.unique(frame["split"].dropna())[:8])
        report.notes.append(f"the --split column {chosen['split']!r} has no 'train' rows (values: {values}), so no "
                            "conventional model is trained: every figure is out of fold")
    used = {c for c in chosen.values() if c}
    meta = raw.loc[rows, [c for c in raw.columns if c not in used]].reset_index(drop=True)
    meta_columns = tuple(_describe(meta[c]) for c in meta.columns)
    order = np.argsort(frame["sample_id"].to_numpy(dtype=str), kind="stable")
    columns = {role: chosen.get(role) for role in ROLES}
    return Dataset(frame.iloc[order].reset_index(drop=True), classes, report, source, columns,
                   meta.iloc[order].reset_index(drop=True), meta_columns)


def require_split(data: Dataset, value: str, option: str) -> None:
    """Raise LoadError unless ``value`` (given with ``option``, e.g. '--trained-on') is one of the data's splits."""
    splits = sorted(set(data.frame["split"].dropna().astype(str)))
    if value not in splits:
        raise LoadError(f"{option} {value!r} is not a split of the data (its splits: "
                        f"{examples(splits) if splits else 'none; give --split COLUMN'}).")


def check(data: Dataset, *, folds: int) -> None:
    """Raise LoadError when the data cannot be cross-fitted into ``folds`` folds."""
    counts = data.class_counts()
    if data.n_classes < 2:
        raise LoadError(
            f"{data.source}: every row has the label {data.classes[0]!r}. A classifier needs at least two classes; "
            f"check the --label column ({data.columns.get('label')!r}).")
    small = [(data.classes[k], int(n)) for k, n in enumerate(counts) if n < folds]
    if small:
        listed = ", ".join(f"{name!r} ({n})" for name, n in small[:_MAX_EXAMPLES])
        raise LoadError(
            f"{data.source}: {len(small)} class(es) have fewer members than the {folds} cross-fitting folds: "
            f"{listed}. Every fold needs each class: add examples, merge or drop those classes, or pass a smaller "
            f"--folds (at least 2).")
    if len(data.frame) < 2 * folds:
        raise LoadError(f"{data.source}: {len(data.frame)} rows are too few for {folds} folds.")
    train = data.labels[data.is_train]
    if len(train) and len(np.unique(train)) < data.n_classes:
        missing = [data.classes[k] for k in range(data.n_classes) if k not in set(train)]
        data.report.notes.append(f"the train split has no {', '.join(map(repr, missing[:5]))}, so no conventional "
                                 "model is trained: every figure is out of fold")


def stratified_sample(data: Dataset, n: int, seed: int) -> Dataset:
    """A seeded sample of about ``n`` rows with the classes in their proportions (every class kept)."""
    if n >= len(data.frame):
        return data
    rng = np.random.default_rng(seed)
    share = n / len(data.frame)
    keep = []
    for _, group in data.frame.groupby("label", sort=True):
        take = max(1, round(len(group) * share))
        keep.append(rng.choice(group.index.to_numpy(), size=min(take, len(group)), replace=False))
    return data.take(np.sort(np.concatenate(keep))[: max(n, 2)])


def _choose_columns(raw: pd.DataFrame, roles: dict, source: str, report: LoadReport, *, has_ids: bool) -> dict:
    found = list(raw.columns)
    listed = ", ".join(repr(c) for c in found[:40]) + (", ..." if len(found) > 40 else "")
    chosen = {}
    for role in ROLES:
        name = roles.get(role)
        if name is not None:
            if name not in raw.columns:
                raise LoadError(f"{source} has no column {name!r} (given with --{role}). Columns found: {listed}.")
            chosen[role] = name
        elif role in ("text", "label") or (role == "id" and not has_ids):
            chosen[role] = _detect(found, role, source, listed, required=role != "id")
            if chosen[role] is not None:
                report.notes.append(f"{role} column: {chosen[role]!r} (recognised by its name; --{role} to choose)")
        else:
            chosen[role] = None
    taken = [c for role, c in chosen.items() if c and role != "score"]  # the score may be the label (star ratings)
    if len(set(taken)) < len(taken):
        raise LoadError(f"{source}: one column was given more than one role ({chosen}); give each its own column.")
    return chosen


def _detect(found: list[str], role: str, source: str, listed: str, *, required: bool) -> str | None:
    words = LIKE[role]
    exact = [c for c in found if c.lower() in words]
    loose = [c for c in found if set(re.split(r"[^a-z0-9]+", c.lower())) & set(words)]
    for candidates in (exact, loose):
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            if not required:
                return None
            raise LoadError(f"{source}: several columns could be the {role} ({', '.join(map(repr, candidates))}); "
                            f"pick one with --{role}. Columns found: {listed}.")
    if required:
        raise LoadError(f"{source}: no column looks like the {role} (named like {', '.join(words)}); pass "
                        f"--{role} NAME. Columns found: {listed}.")
    return None


def as_text(values: pd.Series) -> pd.Series:
    """Strings, with missing values as None (numbers written without a trailing .0 when integral)."""
    def one(v):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return None
        if isinstance(v, bytes):
            return v.decode("utf-8", errors="replace")
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        return str(v)
    return pd.Series([one(v) for v in values], dtype=object)


def _label_strings(values: pd.Series) -> pd.Series:
    labels = as_text(values)
    return labels.where(labels.isna() | labels.str.strip().astype(bool), None).map(
        lambda v: v.strip() if isinstance(v, str) else v)


def _classes(labels: pd.Series) -> tuple[str, ...]:
    names = labels.unique().tolist()
    numeric = all(re.fullmatch(r"-?\d+", n) for n in names)
    return tuple(sorted(names, key=(lambda n: (int(n), n)) if numeric else None))


def _splits(raw: pd.DataFrame, column: str | None, rows: np.ndarray) -> np.ndarray:
    if not column:
        return np.full(len(rows), None, dtype=object)
    values = as_text(raw[column])[rows]
    return np.array([SPLITS.get(v.strip().lower(), v.strip()) if v else None for v in values], dtype=object)


def _rating(raw: pd.DataFrame, column: str | None, rows: np.ndarray, source: str, report: LoadReport,
            paths: pd.Series) -> np.ndarray:
    if not column:
        return np.full(len(rows), np.nan)
    values = raw[column].iloc[rows]
    numbers = pd.to_numeric(values, errors="coerce")
    bad = values[numbers.isna() & values.notna() & (values.astype(str).str.strip() != "")]
    if len(bad):
        raise LoadError(f"{source}: the --score column {column!r} must hold numbers; {len(bad):,} rows do not "
                        f"({', '.join(repr(str(v)) for v in bad.head(_MAX_EXAMPLES))}).")
    numbers = numbers.to_numpy(dtype=float)
    for i in np.flatnonzero(np.isinf(numbers)):
        report.add("non_finite_score", paths[rows[i]])
    return np.where(np.isinf(numbers), np.nan, numbers)


def _derived_ids(text: pd.Series, paths: pd.Series, keep: np.ndarray, report: LoadReport) -> pd.Series:
    """'t' + 16 hex digits of the text's BLAKE2b hash; a repeated text gets -2, -3, ... in file order."""
    seen: dict[str, int] = {}
    out = []
    for i, t in enumerate(text):
        base = "t" + hashlib.blake2b(t.encode("utf-8", errors="replace"), digest_size=8).hexdigest()
        n = seen.get(base, 0) + 1 if keep[i] else 0
        if keep[i]:
            seen[base] = n
            if n > 1:
                report.add("duplicate_text", paths[i])
        out.append(base if n <= 1 else f"{base}-{n}")
    report.notes.append("no id column: each row's id is derived from its text (a hash), so decisions follow the "
                        "text across runs; pass --id COLUMN to use your own ids")
    return pd.Series(out, dtype=object)


def _describe(values: pd.Series) -> MetaColumn:
    name = str(values.name)
    present = values.dropna()
    if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(values):
        distinct = present.nunique()  # dates are shown as text, not as nanoseconds
        return MetaColumn(name, "category" if distinct <= CATEGORY_MAX else "text", int(distinct))
    if pd.api.types.is_bool_dtype(values) or (len(present) and all(isinstance(v, (bool, np.bool_)) for v in present)):
        return MetaColumn(name, "category", int(present.nunique()))
    numbers = pd.to_numeric(present, errors="coerce") if len(present) else present
    if len(present) and numbers.notna().all() and not pd.api.types.is_bool_dtype(numbers):
        finite = numbers[np.isfinite(numbers.astype(float))]
        if len(finite) and finite.nunique() > 1 and finite.abs().max() < 2**53:  # a range a slider can hold
            return MetaColumn(name, "number", int(numbers.nunique()), float(finite.min()), float(finite.max()))
    distinct = as_text(present).nunique()
    return MetaColumn(name, "category" if distinct <= CATEGORY_MAX else "text", int(distinct))
