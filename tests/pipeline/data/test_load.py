"""The load stage on real data re-expressed as tables and folders, and on every bad input we know of."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.config import Config
from pipeline.data.dataset import LoadError
from pipeline.data.load import load_dataset
from tests.conftest import STARS, rating_table

N = 1500


@pytest.fixture(scope="module")
def table():
    return rating_table(N, seed=21)


def _write(table: pd.DataFrame, path, fmt: str):
    if fmt == "csv":
        table.to_csv(path, index=False)
    elif fmt == "tsv":
        table.to_csv(path, index=False, sep="\t")
    elif fmt == "parquet":
        table.to_parquet(path, index=False)
    else:
        table.to_json(path, orient="records", lines=True, force_ascii=False)
    return path


def _load(path, **options):
    return load_dataset(Config(data=path, progress=False, **options))


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "jsonl"])
def test_every_format_reads_the_star_rating_as_eight_classes(table, tmp_path, fmt):
    data = _load(_write(table, tmp_path / f"ratings.{fmt}", fmt), label_column="stars", split_column="split",
                 group_column="movie", score_column="stars")
    assert data.classes == STARS  # from the data, in numeric order
    assert len(data.frame) == N and data.frame["sample_id"].is_unique
    expected = table.set_index("id")
    frame = data.frame.set_index("sample_id")
    assert (np.array(STARS)[frame["label"]] == expected.loc[frame.index, "stars"].astype(str)).all()
    assert (frame["text"] == expected.loc[frame.index, "review"]).all()  # text found by its name
    assert (frame["rating"] == expected.loc[frame.index, "stars"]).all()
    assert (frame["group"] == expected.loc[frame.index, "movie"]).all()
    assert set(frame["split"]) == {"train", "test"}
    assert {c.name: c.kind for c in data.meta_columns} == {"sentiment": "category", "helpful": "number"}
    assert data.class_counts().sum() == N and (data.class_counts() > 0).all()
    assert any("'review'" in note for note in data.report.notes)


def test_the_formats_give_the_same_dataset(table, tmp_path):
    frames = [_load(_write(table, tmp_path / f"r.{fmt}", fmt), label_column="stars").frame
              for fmt in ("csv", "parquet", "jsonl")]
    for other in frames[1:]:
        pd.testing.assert_frame_equal(frames[0], other)


def test_string_labels_and_a_derived_id(table, tmp_path):
    path = _write(table.drop(columns=["id"]).rename(columns={"sentiment": "label"}), tmp_path / "s.csv", "csv")
    data = _load(path)
    assert data.classes == ("neg", "pos") and data.columns["label"] == "label"
    assert data.frame["sample_id"].str.fullmatch(r"t[0-9a-f]{16}(-\d+)?").all()
    assert any("derived from its text" in note for note in data.report.notes)
    again = _load(path)
    assert again.frame["sample_id"].tolist() == data.frame["sample_id"].tolist()  # stable across runs


def test_a_text_folder_with_splits(tmp_path):
    root = tmp_path / "tickets"
    texts = {"train/billing": ["my invoice is wrong", "charged twice"], "train/shipping": ["parcel late", "lost box"],
             "test/billing": ["refund the fee"], "test/shipping": ["where is my order"]}
    for folder, items in texts.items():
        (root / folder).mkdir(parents=True)
        for i, text in enumerate(items):
            (root / folder / f"{i:03d}.txt").write_text(text)
    (root / "train" / "billing" / "notes.md").write_text("not a text")
    data = _load(root, folds=2)
    assert data.classes == ("billing", "shipping")
    assert set(data.frame["sample_id"]) == {"train/billing/000", "train/billing/001", "train/shipping/000",
                                            "train/shipping/001", "test/billing/000", "test/shipping/000"}
    row = data.frame.set_index("sample_id").loc["test/shipping/000"]
    assert (row["text"], row["split"], data.classes[row["label"]]) == ("where is my order", "test", "shipping")
    assert data.report.problems == {"ignored_file": ["train/billing/notes.md"]}


def test_a_flat_text_folder_and_bad_bytes(tmp_path):
    for label in ("spam", "ham"):
        (tmp_path / label).mkdir()
        for i in range(3):
            (tmp_path / label / f"{i}.txt").write_bytes(f"{label} message {i}".encode())
    (tmp_path / "spam" / "bad.txt").write_bytes(b"cheap \xff\xfe pills")
    data = _load(tmp_path, folds=2)
    assert data.classes == ("ham", "spam") and data.frame["split"].isna().all()
    assert data.report.problems["not_utf8"] == ["spam/bad"]
    assert "\ufffd" in data.frame.set_index("sample_id").loc["spam/bad", "text"]


def test_a_mixed_folder_layout_is_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.txt").write_text("x")
    (tmp_path / "b" / "c").mkdir(parents=True)
    with pytest.raises(LoadError, match="mixes the two layouts"):
        _load(tmp_path)


# --- bad input: a clear error naming the fix, before any model is trained ---

def test_empty_file(tmp_path):
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(LoadError, match="empty file"):
        _load(tmp_path / "e.csv")
    (tmp_path / "h.csv").write_text("text,label\n")
    with pytest.raises(LoadError, match="holds no rows"):
        _load(tmp_path / "h.csv")


def test_missing_column_lists_the_columns_found(table, tmp_path):
    path = _write(table, tmp_path / "r.csv", "csv")
    with pytest.raises(LoadError, match=r"no column 'rating'.*Columns found: 'id', 'review', 'stars'"):
        _load(path, label_column="rating")
    assert _load(path).columns["label"] == "sentiment"  # named like a label
    no_label = _write(table.drop(columns="sentiment"), tmp_path / "n.csv", "csv")
    with pytest.raises(LoadError, match=r"no column looks like the label.*pass --label NAME"):
        _load(no_label)  # stars is not named like a label


def test_ambiguous_text_columns_ask_for_one(tmp_path):
    pd.DataFrame({"text": ["a b"] * 10, "review_text": ["c"] * 10, "label": ["x", "y"] * 5}).to_csv(
        tmp_path / "a.csv", index=False)
    assert _load(tmp_path / "a.csv", folds=2).columns["text"] == "text"  # an exact name wins
    pd.DataFrame({"review": ["a b"] * 10, "content": ["c"] * 10, "label": ["x", "y"] * 5}).to_csv(
        tmp_path / "b.csv", index=False)
    with pytest.raises(LoadError, match="several columns could be the text.*--text"):
        _load(tmp_path / "b.csv")


def test_a_single_class_is_refused(tmp_path):
    pd.DataFrame({"text": [f"t {i}" for i in range(20)], "label": ["spam"] * 20}).to_csv(tmp_path / "s.csv",
                                                                                         index=False)
    with pytest.raises(LoadError, match="every row has the label 'spam'.*at least two classes"):
        _load(tmp_path / "s.csv")


def test_a_class_smaller_than_the_folds_is_refused(tmp_path):
    labels = ["a"] * 10 + ["b"] * 10 + ["rare"] * 3
    pd.DataFrame({"text": [f"t {i}" for i in range(23)], "label": labels}).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(LoadError, match=r"fewer members than the 5 cross-fitting folds: 'rare' \(3\).*--folds"):
        _load(tmp_path / "r.csv")
    assert _load(tmp_path / "r.csv", folds=3).n_classes == 3


def test_null_texts_and_labels_are_counted_and_left_out(tmp_path):
    rows = [{"text": f"text {i}", "label": "ab"[i % 2]} for i in range(20)]
    rows[3]["text"] = None
    rows[4]["label"] = None
    rows[5]["text"] = "   "
    pd.DataFrame(rows).to_parquet(tmp_path / "n.parquet")
    data = _load(tmp_path / "n.parquet", folds=2)
    assert len(data.frame) == 17
    assert data.report.problems == {"null_text": ["row 4"], "null_label": ["row 5"], "empty": ["row 6"]}
    assert data.report.reviews_read == 20
    assert any("no label (null)" in line for line in data.report.lines())


def test_duplicate_ids_are_refused_with_examples(tmp_path):
    pd.DataFrame({"id": ["a", "b", "a", "c"] * 3, "text": [f"t{i}" for i in range(12)],
                  "label": ["x", "y"] * 6}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(LoadError, match=r"ids occur more than once in column 'id' \('a', 'b', 'c'\).*leave out --id"):
        _load(tmp_path / "d.csv", folds=2, id_column="id")


def test_duplicate_texts_without_ids_get_distinct_ids(tmp_path):
    pd.DataFrame({"text": ["same text", "same text", "other", "more"] * 2,
                  "label": ["x", "y"] * 4}).to_csv(tmp_path / "d.csv", index=False)
    data = _load(tmp_path / "d.csv", folds=2)
    assert data.frame["sample_id"].is_unique
    assert len(data.report.problems["duplicate_text"]) == 5


def test_undecodable_bytes_are_replaced_and_counted(tmp_path):
    lines = [b"text,label"] + [f"fine text {i},{'ab'[i % 2]}".encode() for i in range(10)]
    lines[3] = b"bad \xff\xfe bytes,a"
    (tmp_path / "u.csv").write_bytes(b"\n".join(lines) + b"\n")
    data = _load(tmp_path / "u.csv", folds=2)
    assert data.report.problems == {"not_utf8": ["line 4"]}
    assert data.frame["text"].str.contains("\ufffd").sum() == 1 and len(data.frame) == 10


def test_html_and_formulas_in_ids_and_labels_are_kept_as_data(tmp_path):
    hostile = ["<script>alert(1)</script>", "=HYPERLINK(\"http://x\")"]
    pd.DataFrame({"id": [f"{hostile[i % 2]}{i}" for i in range(10)], "text": [f"t {i}" for i in range(10)],
                  "label": [hostile[i % 2] for i in range(10)]}).to_json(tmp_path / "h.jsonl", orient="records",
                                                                        lines=True)
    data = _load(tmp_path / "h.jsonl", folds=2)
    assert set(data.classes) == set(hostile) and data.frame["sample_id"].str.startswith(("<script>", "=")).all()


def test_a_file_too_large_for_memory_is_refused_with_the_rows_read(table, tmp_path):
    big = pd.concat([table] * 4, ignore_index=True).assign(id=lambda d: np.arange(len(d)))
    for fmt in ("csv", "parquet", "jsonl"):
        path = _write(big, tmp_path / f"big.{fmt}", fmt)
        with pytest.raises(LoadError, match=r"too large to analyse.*stopped after [\d,]+ rows.*--memory-limit-mib"):
            _load(path, label_column="stars", memory_limit_mib=20)


def test_column_options_do_not_apply_to_the_imdb_archive(tiny_archive):
    with pytest.raises(LoadError, match="--label apply to tables.*IMDB archive"):
        _load(tiny_archive, label_column="stars")


def test_an_unknown_kind_of_file(tmp_path):
    (tmp_path / "data.xlsx").write_bytes(b"PK")
    with pytest.raises(LoadError, match="cannot tell what this is.*\\.csv"):
        _load(tmp_path / "data.xlsx")


def test_a_non_numeric_score_column(tmp_path):
    pd.DataFrame({"text": [f"t {i}" for i in range(10)], "label": ["a", "b"] * 5,
                  "stars": ["five"] + ["3"] * 9}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(LoadError, match="--score column 'stars' must hold numbers.*'five'"):
        _load(tmp_path / "s.csv", score_column="stars", folds=2)


def test_a_frame_given_directly(table):
    data = load_dataset(Config(label_column="stars", progress=False, sample=400), frame=table)
    assert data.source.startswith("<DataFrame ") and len(data.frame) == 400 and data.n_classes == 8
    assert json.dumps(data.columns)  # stored as JSON in the run


def test_an_id_column_found_by_name_is_used_only_when_it_can_be_an_id(tmp_path):
    pd.DataFrame({"id": ["a", "a", "b", "c"] * 3, "text": [f"t{i}" for i in range(12)],
                  "label": ["x", "y"] * 6}).to_csv(tmp_path / "d.csv", index=False)
    data = _load(tmp_path / "d.csv", folds=2)  # no --id: the repeated 'id' column stays data
    assert data.frame["sample_id"].str.startswith("t").all() and data.frame["sample_id"].is_unique
    assert any("looks like an id but holds missing or repeated values" in n for n in data.report.notes)
    assert not any(n.startswith("id column:") for n in data.report.notes)
    assert [c.name for c in data.meta_columns] == ["id"]


def test_a_split_column_without_train_rows_is_noted(tmp_path):
    pd.DataFrame({"text": [f"t {i}" for i in range(12)], "label": ["x", "y"] * 6,
                  "channel": ["email", "chat", "phone"] * 4}).to_csv(tmp_path / "s.csv", index=False)
    data = _load(tmp_path / "s.csv", split_column="channel", folds=2)
    assert any("has no 'train' rows (values: 'email', 'chat', 'phone')" in n for n in data.report.notes)


def test_only_an_empty_cell_is_missing_in_a_csv(tmp_path):
    (tmp_path / "na.csv").write_text("text,label\n" + "".join(f"text {i},{('EU', 'US', 'NA')[i % 3]}\n"
                                                              for i in range(30)) + "null,EU\n,US\n")
    data = _load(tmp_path / "na.csv", folds=2)
    assert data.classes == ("EU", "NA", "US")  # North America is a class, not a missing value
    assert (data.frame["text"] == "null").sum() == 1 and data.report.problems == {"null_text": ["row 32"]}


def test_infinite_scores_are_kept_without_a_score_and_reported(tmp_path):
    pd.DataFrame({"text": [f"t {i}" for i in range(10)], "label": ["a", "b"] * 5,
                  "score": ["inf", "-inf", "1e308", "3"] + ["2"] * 6,
                  "size": [float("inf"), 1.0, 2.0, float("nan")] + [3.0] * 6}).to_csv(tmp_path / "i.csv", index=False)
    data = _load(tmp_path / "i.csv", score_column="score", folds=2)
    assert np.isfinite(data.frame["rating"].dropna()).all() and data.frame["rating"].isna().sum() == 2
    assert data.report.problems["non_finite_score"] == ["row 1", "row 2"]
    size = next(c for c in data.meta_columns if c.name == "size")
    assert size.kind == "number" and (size.lo, size.hi) == (1.0, 3.0)  # the slider's range is finite


def test_dates_in_the_data_are_categories_not_nanoseconds(tmp_path):
    pd.DataFrame({"text": [f"t {i}" for i in range(10)], "label": ["a", "b"] * 5,
                  "day": pd.date_range("2026-01-01", periods=10, tz="UTC")}).to_parquet(tmp_path / "d.parquet")
    data = _load(tmp_path / "d.parquet", folds=2)
    assert {c.name: c.kind for c in data.meta_columns} == {"day": "category"}


def test_compressed_and_utf16_tables(table, tmp_path):
    import gzip

    small = table.head(200)
    (tmp_path / "r.csv.gz").write_bytes(gzip.compress(small.to_csv(index=False).encode()))
    (tmp_path / "r.csv").write_bytes(small.to_csv(index=False).encode("utf-16"))  # with its byte-order mark
    for name in ("r.csv.gz", "r.csv"):
        data = _load(tmp_path / name, label_column="stars", folds=2)
        assert len(data.frame) == 200 and set(data.frame["text"]) == set(small["review"])


def test_links_out_of_a_text_folder_are_ignored(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root")
    root = tmp_path / "data"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            (root / label / f"{i}.txt").write_text(f"{label} text {i}")
    (root / "a" / "passwd.txt").symlink_to(secret)
    (root / "b" / "loop").symlink_to(root)
    (root / "c").symlink_to(tmp_path)
    data = _load(root, folds=2)
    assert data.classes == ("a", "b") and not data.frame["text"].str.contains("root:x").any()
    assert sorted(data.report.problems["ignored_file"]) == ["a/passwd.txt", "b/loop", "c"]


def test_a_dataframe_with_odd_columns(table):
    flat = pd.DataFrame({0: [f"t {i}" for i in range(10)], 1: ["a", "b"] * 5})
    assert load_dataset(Config(text_column="0", label_column="1", folds=2, progress=False), frame=flat).n_classes == 2
    nested = flat.copy()
    nested.columns = pd.MultiIndex.from_tuples([("x", "text"), ("x", "label")])
    with pytest.raises(LoadError, match="MultiIndex.*flatten"):
        load_dataset(Config(folds=2, progress=False), frame=nested)


def test_two_dataframes_get_different_sources_and_the_same_one_the_same():
    """Decisions are kept per source: two DataFrames with the same ids must not share one."""
    import pandas as pd

    from pipeline.data.load import frame_source

    spam = pd.DataFrame({"text": ["win money", "lunch at noon"], "label": ["spam", "ham"]})
    tickets = pd.DataFrame({"text": ["refund please", "login fails"], "label": ["billing", "account"]})
    assert frame_source(spam) != frame_source(tickets)
    assert frame_source(spam) == frame_source(spam.copy())
    assert frame_source(spam.assign(meta=[[1], [2]])).startswith("<DataFrame ")  # unhashable cells
