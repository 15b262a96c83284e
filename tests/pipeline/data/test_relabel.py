"""--relabel: reviewers' decisions (the decisions file or the relabel CSV) become the labels of a new run."""

import numpy as np
import pandas as pd
import pytest

from pipeline.config import Config
from pipeline.data.dataset import LoadError
from pipeline.data.load import load_dataset
from pipeline.data.relabel import relabel
from pipeline.run import run_pipeline
from pipeline.store import decisions
from pipeline.store.files import cursor, open_readonly

CLASSES = ("neg", "pos")


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    rng = np.random.default_rng(3)
    good, bad = ["great", "wonderful", "loved", "superb"], ["awful", "boring", "hated", "dull"]
    rows = []
    for i in range(120):
        label = i % 2
        words = rng.choice(good if label else bad, 6).tolist() + rng.choice(good + bad, 2).tolist()
        rows.append({"id": f"r{i:03d}", "text": " ".join(words), "label": CLASSES[label],
                     "split": "train" if i < 80 else "test"})
    path = tmp_path_factory.mktemp("relabel") / "reviews.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def decided(data_path, tmp_path):
    """A decisions file as the app writes it: 3 train relabels, one test relabel, a 'correct', an 'ambiguous', a
    relabel made on a label the data no longer has, one on an id the data lacks, and one on other data."""
    path = tmp_path / "lossmap.decisions.duckdb"
    source = str(data_path)
    flip = {"r001": "neg", "r002": "pos", "r003": "neg", "r090": "pos"}
    decisions.record_many(path, [{"sample_id": i, "old_label": "neg" if new == "pos" else "pos", "new_label": new}
                                 for i, new in flip.items()], decision="mislabeled", source=source)
    decisions.record(path, sample_id="r004", decision="correct", old_label="neg", source=source)
    decisions.record(path, sample_id="r005", decision="ambiguous", old_label="pos", source=source)
    decisions.record(path, sample_id="r006", decision="mislabeled", old_label="pos", new_label="neg", source=source)
    decisions.record(path, sample_id="zzz", decision="mislabeled", old_label="pos", new_label="neg", source=source)
    decisions.record(path, sample_id="r007", decision="mislabeled", old_label="pos", new_label="neg",
                     source="another.csv")
    return path


def _config(data_path, folder, **options):
    return Config(data=data_path, split_column="split", db=folder / "lossmap.duckdb", models_dir=folder / "models",
                  progress=False, dense=False, cnn=False, folds=2, clusters=2, svd_dim=4, min_df=1, **options)


def test_decisions_on_train_reviews_become_labels_and_the_originals_are_kept(data_path, decided, tmp_path):
    summary = run_pipeline(_config(data_path, tmp_path, relabel=decided, relabel_split="train"))
    con = open_readonly(summary.db)
    try:
        c = cursor(con)
        changed = c.execute("SELECT sample_id, label, original_label FROM samples WHERE run_id = ? AND "
                            "original_label IS NOT NULL ORDER BY sample_id", [summary.run_id]).fetchall()
        notes = c.execute("SELECT load_notes FROM runs WHERE run_id = ?", [summary.run_id]).fetchone()[0]
        test_labels = c.execute("SELECT label FROM samples WHERE run_id = ? AND sample_id = 'r090'",
                                [summary.run_id]).fetchone()[0]
    finally:
        con.close()
    assert changed == [("r001", 0, 1), ("r002", 1, 0), ("r003", 0, 1)]
    assert test_labels == 0  # r090 is labeled neg in the data: the decision on it was outside the train split
    for line in ("3 label(s) changed in the train split", "1 decided correct", "1 decided ambiguous",
                 "1 decision(s) made on other data (another.csv)", "1 decision(s) on texts this data does not hold (zzz)",
                 "1 decision(s) made on a label the data no longer has", "1 decision(s) outside the train split"):
        assert line in notes, line


def test_the_relabel_csv_the_app_downloads_gives_the_same_labels(data_path, decided, tmp_path):
    csv_path = tmp_path / "relabel.csv"
    csv_path.write_bytes(decisions.relabel_csv(decided))
    cfg = _config(data_path, tmp_path)
    data = load_dataset(cfg)
    from_file = relabel(data, decided).frame
    from_csv = relabel(data, csv_path).frame
    assert (from_file["label"] == from_csv["label"]).all()
    assert from_file["original_label"].notna().sum() == 4  # r090 too, with no split given


def test_a_new_label_that_is_no_class_is_refused(data_path, decided, tmp_path):
    rows = pd.read_csv(pd.io.common.BytesIO(decisions.relabel_csv(decided)))
    rows.loc[rows["sample_id"] == "r001", "new_label"] = "=HYPERLINK(\"x\")"
    bad = tmp_path / "bad.csv"
    rows.to_csv(bad, index=False)
    with pytest.raises(LoadError, match=r"new labels =HYPERLINK\(\"x\"\) are not classes of the data \(neg, pos\)"):
        relabel(load_dataset(_config(data_path, tmp_path)), bad)


def test_decisions_on_other_data_only_are_refused_with_the_source(data_path, tmp_path):
    path = tmp_path / "d.duckdb"
    decisions.record(path, sample_id="r001", decision="mislabeled", old_label="pos", new_label="neg", source="x.csv")
    with pytest.raises(LoadError, match=r"its 1 decisions were made on other data \(x.csv\)"):
        relabel(load_dataset(_config(data_path, tmp_path)), path)


def test_a_file_that_is_no_decisions_is_refused(data_path, tmp_path):
    other = tmp_path / "notes.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(LoadError, match=r"has no sample_id, decision, old_label, new_label column"):
        relabel(load_dataset(_config(data_path, tmp_path)), other)


def test_decisions_made_on_another_spelling_of_the_same_file_apply(data_path, tmp_path, monkeypatch):
    path = tmp_path / "d.duckdb"
    monkeypatch.chdir(data_path.parent)
    decisions.record(path, sample_id="r001", decision="mislabeled", old_label="pos", new_label="neg",
                     source="./" + data_path.name)
    changed = relabel(load_dataset(_config(data_path, tmp_path)), path).frame
    assert changed.loc[changed["sample_id"] == "r001", "label"].tolist() == [0]


def test_a_store_passed_as_decisions_is_refused_and_left_as_it_was(data_path, tmp_path):
    summary = run_pipeline(_config(data_path, tmp_path / "a"))
    before = summary.db.read_bytes()
    with pytest.raises(LoadError, match=r"is not a decisions file of this Lossmap .* pass <store>.decisions.duckdb"):
        relabel(load_dataset(_config(data_path, tmp_path)), summary.db)
    assert summary.db.read_bytes() == before
    open_readonly(summary.db).close()  # still a store the app opens
    with pytest.raises(ValueError, match=r"is the store this run writes"):
        _config(data_path, tmp_path / "a", relabel=summary.db)


def test_the_latest_row_of_a_text_wins_and_only_real_changes_count(data_path, tmp_path):
    rows = pd.DataFrame({"sample_id": ["r001", "r001", "r002", "r003"],
                         "decision": ["mislabeled", "correct", "mislabeled", "mislabeled"],
                         "old_label": ["pos", "pos", "neg", "pos"], "new_label": ["neg", "pos", "pos", "pos"],
                         "decided_at": ["2026-11-27T10:00:00Z", "2026-11-27T11:00:00Z", "2026-11-27T10:00:00Z",
                                        "2026-11-27T10:00:00Z"]})
    path = tmp_path / "relabel.csv"
    rows.iloc[[1, 0, 2, 3]].to_csv(path, index=False)  # the later 'correct' first in the file
    frame = relabel(load_dataset(_config(data_path, tmp_path)), path).frame
    assert frame.loc[frame["original_label"].notna(), "sample_id"].tolist() == ["r002"]  # r003: pos to pos


def test_a_split_the_data_lacks_and_a_relabel_that_empties_a_class_are_refused(data_path, decided, tmp_path):
    data = load_dataset(_config(data_path, tmp_path))
    with pytest.raises(LoadError, match=r"--relabel-split 'tarin' is not a split of the data \(its splits: test, train\)"):
        relabel(data, decided, split="tarin")
    path = tmp_path / "all.duckdb"
    negatives = data.frame[data.frame["label"] == 0]["sample_id"].tolist()
    decisions.record_many(path, [{"sample_id": i, "old_label": "neg", "new_label": "pos"} for i in negatives],
                          decision="mislabeled", source=str(data_path))
    with pytest.raises(LoadError, match=r"after --relabel .* \(60 label\(s\) changed\): .*fewer members than the 2 "
                                        r"cross-fitting folds: 'neg' \(0\)"):
        relabel(data, path, folds=2)
