"""A model's own predictions file: read into the data's order, or refused with what is wrong before any work."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from pipeline.data.dataset import LoadError
from pipeline.data.predictions import read_predictions

CLASSES = ("billing", "bug", "praise")
IDS = pd.Series([f"t{i}" for i in range(6)])
PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.25, 0.25], [0.0, 0.0, 1.0],
                  [1 / 3, 1 / 3, 1 / 3]])


def _frame(order=None) -> pd.DataFrame:
    frame = pd.DataFrame({"sample_id": IDS, **{k: PROBS[:, i] for i, k in enumerate(CLASSES)}})
    return frame.iloc[order] if order is not None else frame


def _read(path, **kwargs):
    return read_predictions(path, ids=IDS, classes=CLASSES, name="my-bert", **kwargs)


def test_per_class_columns_in_any_row_order_come_back_in_the_datas_order(tmp_path):
    path = tmp_path / "preds.csv"
    _frame([5, 3, 1, 0, 2, 4]).to_csv(path, index=False)
    got = _read(path)
    np.testing.assert_allclose(got.probs, PROBS)
    assert got.name == "my-bert" and got.embedding is None and got.out_of_sample is None


def test_a_list_column_an_embedding_and_out_of_sample_flags_from_parquet_and_jsonl(tmp_path):
    frame = pd.DataFrame({"id": IDS, "probs": list(PROBS), "embedding": [np.arange(4) + i for i in range(6)],
                          "out_of_sample": [True, True, False, True, False, True]}).iloc[::-1]
    frame.to_parquet(tmp_path / "p.parquet")
    lines = [json.dumps({"id": r.id, "probs": list(r.probs), "embedding": [float(x) for x in r.embedding],
                         "out_of_sample": r.out_of_sample}) for r in frame.itertuples()]
    with gzip.open(tmp_path / "p.jsonl.gz", "wt") as out:
        out.write("\n".join(lines) + "\n")
    for name in ("p.parquet", "p.jsonl.gz"):
        got = _read(tmp_path / name)
        np.testing.assert_allclose(got.probs, PROBS)
        assert got.embedding.shape == (6, 4) and got.embedding[2, 0] == 2.0
        assert got.out_of_sample.tolist() == [True, True, False, True, False, True]


def _refused(tmp_path, frame: pd.DataFrame, match: str, name="bad.csv", **kwargs):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    with pytest.raises(LoadError, match=match):
        _read(path, **kwargs)


def test_ids_that_do_not_match_say_how_many_and_which(tmp_path):
    frame = _frame()
    frame.loc[1, "sample_id"] = "elsewhere"
    _refused(tmp_path, frame, r"1 of the data's 6 ids have no prediction \(t1\); 1 of its ids are not in the data "
                              r"\(elsewhere\)\. Predictions must cover every text analysed, under the data's ids\.$")
    _refused(tmp_path, frame.assign(sample_id="x" + frame["sample_id"]),
             r"6 of the data's 6 ids have no prediction.*derived from each text \(a hash\): give the data an id "
             r"column \(--id COLUMN\)", derived_ids=True)
    _refused(tmp_path, _frame([0, 1, 2, 3, 4, 5, 5]), r"1 id\(s\) appear more than once \(t5\)")
    _refused(tmp_path, _frame().rename(columns={"sample_id": "row"}),
             r"has no id column .* its columns are row, .* Name it with --predictions-id COLUMN")


def test_rows_for_texts_the_run_does_not_analyse_are_skipped_and_counted(tmp_path):
    path = tmp_path / "preds.csv"
    more = pd.concat([_frame(), pd.DataFrame({"sample_id": ["dropped1", "dropped2"], **{k: [0.5, 0.5] for k in CLASSES}})])
    more.assign(other=0.0).to_csv(path, index=False)
    got = _read(path)
    np.testing.assert_allclose(got.probs, PROBS)
    assert got.notes[0].endswith("2 row(s) for texts this run does not analyse were skipped")
    assert "numeric column(s) other are not the data's classes" in got.notes[1]


def test_percentages_and_an_extra_class_column_get_their_own_advice(tmp_path):
    frame = _frame()
    _refused(tmp_path, frame.assign(**{k: frame[k] * 100 for k in CLASSES}), r"look like percentages: divide them by 100")
    third = frame.assign(**{k: frame[k] * 0.5 for k in CLASSES}, maybe=0.5)
    _refused(tmp_path, third, r"also has numeric columns that are not the data's classes \(maybe\)")


def test_probabilities_that_are_not_probabilities_are_refused_with_examples(tmp_path):
    logits = _frame()
    logits.loc[:, list(CLASSES)] = np.log(PROBS + 0.01) * 3
    _refused(tmp_path, logits, r"6 row\(s\) are not probabilities .*ids t0, t1, t2, t3, t4, \.\.\.\)\. They look "
                               r"like logits")
    unnormalised = _frame()
    unnormalised.loc[2, "praise"] = 0.9
    _refused(tmp_path, unnormalised, r"1 row\(s\) are not probabilities \(each between 0 and 1, summing to 1 "
                                     r"within 0\.001; ids t2\)\. Give probabilities, not scores")
    missing = _frame()
    missing.loc[3, "bug"] = np.nan
    _refused(tmp_path, missing, r"1 row\(s\) hold a probability that is missing or not a number \(ids t3\)")


def test_a_wrong_number_of_classes_names_the_classes(tmp_path):
    _refused(tmp_path, _frame().drop(columns="praise"), r"no probabilities for 1 of the data's 3 classes \(praise\)")
    frame = pd.DataFrame({"sample_id": IDS, "probs": [json.dumps([0.5, 0.5])] * 6})
    _refused(tmp_path, frame, r"'probs' lists hold 2 values, but the data has 3 classes \(billing, bug, praise\)")


def test_embeddings_of_different_lengths_and_bad_flags_are_refused(tmp_path):
    frame = _frame()
    frame["embedding"] = [json.dumps([0.1] * (3 if i else 2)) for i in range(6)]
    _refused(tmp_path, frame, r"the embedding vectors have 2, 3 values")
    frame = _frame()
    frame["out_of_sample"] = ["true", "false", "maybe", "1", "0", "yes"]
    _refused(tmp_path, frame, r"'out_of_sample' must be true or false; 1 row\(s\) hold something else \(ids t2\)")


def test_a_named_id_column_is_used_and_named_in_messages(tmp_path):
    frame = _frame().rename(columns={"sample_id": "ticket"})
    frame.loc[4, "bug"] = 0.5
    path = tmp_path / "named.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(LoadError, match=r"1 row\(s\) are not probabilities .*ids t4\)"):
        _read(path, id_column="ticket")
    frame.loc[4, "bug"] = 0.0
    frame.to_csv(path, index=False)
    np.testing.assert_allclose(_read(path, id_column="ticket").probs, PROBS)
