"""Apply reviewers' decisions as label overrides before training (issue 13, ``--relabel FILE``).

``relabel(data, path, *, split=None)`` reads the app's decisions file
(``<store>.decisions.duckdb``, read-only, locked down like a store) or its relabel CSV,
takes each review's current decision, and returns the dataset with ``label`` replaced
where a reviewer decided "mislabeled: relabel" to another class, and ``original_label``
(the data's label; NA elsewhere) kept beside it. Only rows of ``split`` are changed when
one is given (for IMDB: relabel the decided train reviews, keep the test labels as the
yardstick).

Every decision is accounted for in the dataset's report notes: applied; "correct" or
"ambiguous" (labels left as they are); made on other data (``source``), on a review the
data does not hold, on a label the data no longer has, or outside ``split`` (skipped). A
new label that is not one of the data's classes, a file with no decision that applies, or
a file that is neither kind is a ``LoadError`` before any training.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data import tables
from pipeline.data.dataset import Dataset, LoadError, LoadReport, check, examples, require_split
from pipeline.data.unpack import Limits
from pipeline.store import decisions

_COLUMNS = ("sample_id", "decision", "old_label", "new_label")


def relabel(data: Dataset, path: Path, *, split: str | None = None, folds: int | None = None,
            limits: Limits = Limits()) -> Dataset:
    """The dataset with the decisions in ``path`` applied; see the module doc. With ``folds``, the relabeled data is
    checked again (every class still has enough texts to cross-fit)."""
    if split is not None:
        require_split(data, split, "--relabel-split")
    found = _read(Path(path), data.source, limits)
    frame = data.frame.copy()
    classes = {name: i for i, name in enumerate(data.classes)}
    notes = []
    ours = (found["source"].isna() | found["source"].map(lambda v: decisions.same_data(str(v), data.source))
            if "source" in found else pd.Series(True, index=found.index))
    others = found[~ours]
    if len(others) and len(others) == len(found):
        raise LoadError(f"--relabel {path}: its {len(found):,} decisions were made on other data "
                        f"({examples(others['source'].unique())}), not on {data.source}. Pass the same --data as the "
                        "run whose suspects were reviewed.")
    found = _latest(found[ours])
    unknown_labels = sorted(set(found.loc[found["decision"] == "mislabeled", "new_label"].astype(str)) - set(classes))
    if unknown_labels:
        raise LoadError(f"--relabel {path}: new labels {examples(unknown_labels)} are not classes of the data "
                        f"({examples(data.classes)}).")
    row_of = pd.Series(np.arange(len(frame)), index=frame["sample_id"].astype(str))
    present = found["sample_id"].astype(str).isin(row_of.index)
    missing = found[~present]
    found = found[present]
    if not len(found):
        raise LoadError(f"--relabel {path}: none of its decisions is about a text of this data (ids "
                        f"{examples(missing['sample_id'])}). Pass the same --data (and --sample) as the reviewed run.")
    rows = row_of[found["sample_id"].astype(str)].to_numpy()
    given = np.array(data.classes, dtype=object)[frame["label"].to_numpy()[rows]]
    moved = found["old_label"].astype(str).to_numpy() != given
    splits = frame["split"].astype(str).to_numpy()[rows]
    in_split = np.ones(len(found), dtype=bool) if split is None else splits == split
    same = found["new_label"].astype(str).to_numpy() == given  # "relabeled" to the label it has: nothing to change
    apply = (found["decision"].to_numpy() == "mislabeled") & ~moved & in_split & ~same
    targets = rows[apply]
    new = np.array([classes[str(v)] for v in found["new_label"].to_numpy()[apply]], dtype=frame["label"].dtype)
    original = pd.array([pd.NA] * len(frame), dtype="Int16")
    original[targets] = frame["label"].to_numpy()[targets]
    frame.loc[frame.index[targets], "label"] = new
    frame["original_label"] = original
    notes.append(f"--relabel {path}: {len(targets):,} label(s) changed" + (f" in the {split} split" if split else ""))
    kept = found["decision"].to_numpy()
    for kind, words in (("correct", "decided correct"), ("ambiguous", "decided ambiguous")):
        if (kept == kind).any():
            notes.append(f"--relabel: {(kept == kind).sum():,} {words}, labels left as they are")
    elsewhere = examples(others["source"].unique()) if len(others) else ""
    for count, words in ((len(others), f"made on other data ({elsewhere})"),
                         (len(missing), f"on texts this data does not hold ({examples(missing['sample_id'])})"),
                         (int(((kept == 'mislabeled') & moved).sum()), "made on a label the data no longer has"),
                         (int(((kept == 'mislabeled') & ~moved & ~in_split).sum()), f"outside the {split} split")):
        if count:
            notes.append(f"--relabel: {count:,} decision(s) {words} were not applied")
    report = LoadReport(data.report.reviews_read, dict(data.report.problems), [*data.report.notes, *notes])
    relabeled = dataclasses.replace(data, frame=frame, report=report)
    if folds is not None:
        try:
            check(relabeled, folds=folds)
        except LoadError as exc:
            raise LoadError(f"after --relabel {path} ({len(targets):,} label(s) changed): {exc}") from None
    return relabeled


def _latest(found: pd.DataFrame) -> pd.DataFrame:
    """Each text's latest decision (a CSV may hold several rows for one text): by decided_at, else the last row."""
    if "decided_at" in found:
        when = pd.to_datetime(found["decided_at"], errors="coerce", utc=True)
        found = found.assign(_when=when).sort_values("_when", kind="stable", na_position="first").drop(columns="_when")
    return found.drop_duplicates("sample_id", keep="last")


def _read(path: Path, source: str, limits: Limits) -> pd.DataFrame:
    """The decisions: sample_id, decision, old_label, new_label, source (when known); from the decisions file, each
    text's current one on this data or on other data; from a CSV, every row. Never writes."""
    if not path.exists():
        raise LoadError(f"--relabel {path}: no such file. Pass the decisions file beside the store "
                        "(<store>.decisions.duckdb) or the relabel CSV the app downloads.")
    if not path.is_file():
        raise LoadError(f"--relabel {path} is not a regular file; pass the decisions file or the relabel CSV.")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head[8:12] == b"DUCK":
        try:  # this data's current decisions, and the others' (reported, not applied)
            here = decisions.current(path, source, upgrade=False)
            elsewhere = decisions.current(path, upgrade=False)
        except decisions.DecisionsError as exc:
            raise LoadError(f"--relabel {path}: {exc}") from None
        elsewhere = elsewhere[~elsewhere["sample_id"].isin(set(here["sample_id"]))
                              & elsewhere["source"].notna()]
        found = pd.concat([here, elsewhere], ignore_index=True) if len(elsewhere) else here
    else:
        found = tables.read_table(path, report=LoadReport(), limits=limits)
        absent = [c for c in _COLUMNS if c not in found.columns]
        if absent:
            raise LoadError(f"--relabel {path} has no {examples(absent)} column(s): it is not the relabel CSV the app "
                            f"downloads (its columns are {examples(found.columns)}).")
        found = found.map(decisions.restore) if len(found) else found
    found = found.astype({c: object for c in found.columns})
    bad = sorted(set(found["decision"].astype(str)) - set(decisions.DECISIONS))
    if bad:
        raise LoadError(f"--relabel {path}: decisions must be {examples(decisions.DECISIONS)}; found {examples(bad)}.")
    if not len(found):
        raise LoadError(f"--relabel {path} holds no decisions yet.")
    return found
