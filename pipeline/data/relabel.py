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
from pipeline.data.dataset import Dataset, LoadError, LoadReport, examples
from pipeline.store import decisions

_COLUMNS = ("sample_id", "decision", "old_label", "new_label")


def relabel(data: Dataset, path: Path, *, split: str | None = None) -> Dataset:
    """The dataset with the decisions in ``path`` applied; see the module doc."""
    found = _read(Path(path))
    frame = data.frame.copy()
    classes = {name: i for i, name in enumerate(data.classes)}
    notes = []
    ours = (found["source"].isna() | found["source"].map(lambda v: decisions.same_data(str(v), data.source))
            if "source" in found else True)
    others = found[~ours] if "source" in found else found.iloc[:0]
    if len(others) and len(others) == len(found):
        raise LoadError(f"--relabel {path}: its {len(found):,} decisions were made on other data "
                        f"({examples(others['source'].unique())}), not on {data.source}. Pass the same --data as the "
                        "run whose suspects were reviewed.")
    found = found[ours] if "source" in found else found
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
    in_split = np.ones(len(found), dtype=bool) if split is None else (frame["split"].astype(str).to_numpy()[rows] == split)
    apply = (found["decision"].to_numpy() == "mislabeled") & ~moved & in_split
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
    for count, words in ((len(others), f"made on other data ({examples(others['source'].unique()) if len(others) else ''})"),
                         (len(missing), f"on texts this data does not hold ({examples(missing['sample_id'])})"),
                         (int(((kept == 'mislabeled') & moved).sum()), "made on a label the data no longer has"),
                         (int(((kept == 'mislabeled') & ~moved & ~in_split).sum()), f"outside the {split} split")):
        if count:
            notes.append(f"--relabel: {count:,} decision(s) {words} were not applied")
    report = LoadReport(data.report.reviews_read, dict(data.report.problems), [*data.report.notes, *notes])
    return dataclasses.replace(data, frame=frame, report=report)


def _read(path: Path) -> pd.DataFrame:
    """Each review's current decision: sample_id, decision, old_label, new_label, source (when known)."""
    if not path.is_file():
        raise LoadError(f"--relabel {path}: no such file. Pass the decisions file beside the store "
                        "(<store>.decisions.duckdb) or the relabel CSV the app downloads.")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head[8:12] == b"DUCK":
        try:
            found = decisions.current(path)
        except decisions.DecisionsError as exc:
            raise LoadError(f"--relabel {path}: {exc}") from None
    else:
        found = tables.read_table(path, report=LoadReport())
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
