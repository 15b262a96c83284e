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
