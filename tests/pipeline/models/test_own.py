"""A user's own predictions in a run: stored as a predictor of their own, ranked on, mapped; bad files refused early."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from pipeline.config import Config
from pipeline.data.dataset import LoadError
from pipeline.run import run_pipeline
from pipeline.store.files import cursor, open_readonly
from tests.conftest import real_archive

N = 400


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    from pipeline.data.imdb import load_reviews

    frame = load_reviews(real_archive(), sample=N, seed=5, progress=False).frame
    path = tmp_path_factory.mktemp("own") / "reviews.parquet"
    frame.assign(id=frame["sample_id"], review=frame["text"],
                 sentiment=frame["label"].map({0: "neg", 1: "pos"}))[["id", "review", "sentiment", "split"]] \
        .to_parquet(path)
    return path


def _config(table, folder, **options) -> Config:
    return Config(data=table, split_column="split", db=folder / "lossmap.duckdb", models_dir=folder / "models",
                  progress=False, dense=False, cnn=False, clusters=4, svd_dim=12, **options)


@pytest.fixture(scope="module")
def base(table, tmp_path_factory):
    """A run of Lossmap's own linear model, and its out-of-fold probabilities as a user's predictions file."""
    folder = tmp_path_factory.mktemp("base")
    summary = run_pipeline(_config(table, folder))
    con = open_readonly(summary.db)
    oof = cursor(con).execute(
        "SELECT sample_id, probs, row_number() OVER (ORDER BY sample_id) AS n FROM predictions "
        "WHERE run_id = ? AND family = 'nblr' AND protocol = 'oof' ORDER BY sample_id", [summary.run_id]).df()
    ranks = dict(cursor(con).execute("SELECT sample_id, issue_rank FROM label_issues WHERE run_id = ?",
                                     [summary.run_id]).fetchall())
    con.close()
    rng = np.random.default_rng(0)
    predictions = pd.DataFrame({
        "sample_id": oof["sample_id"], "neg": [p[0] for p in oof["probs"]], "pos": [p[1] for p in oof["probs"]],
        "embedding": [json.dumps(v) for v in rng.normal(size=(len(oof), 8)).round(4).tolist()],
        "out_of_sample": ["true"] * len(oof),
    }).sample(frac=1.0, random_state=1)  # any row order
    path = folder / "my_predictions.csv"
    predictions.to_csv(path, index=False)
    return summary, ranks, path


def test_a_run_of_its_own_out_of_fold_probabilities_ranks_the_same(base, table, tmp_path):
    summary, ranks, path = base
    again = run_pipeline(_config(table, tmp_path, predictions=path, predictor_name="my BERT",
                                 issue_source="imported"))
    con = open_readonly(again.db)
    try:
        c = cursor(con)
        got = dict(c.execute("SELECT sample_id, issue_rank FROM label_issues WHERE run_id = ?",
                             [again.run_id]).fetchall())
        assert got == ranks
        ranking = c.execute("SELECT DISTINCT method, ranked_on FROM label_issues WHERE run_id = ?",
                            [again.run_id]).fetchall()
        assert ranking == [("self_confidence", ["imported"])]
        model = c.execute("SELECT model_id, role, name, source, onnx_path, parity_max_abs, n_train, accuracy "
                          "FROM models WHERE run_id = ? AND family = 'imported'", [again.run_id]).fetchone()
        assert model[:6] == ("imported", "own", "my BERT", str(path), None, None)
        assert model[6] == 0 and model[7] == pytest.approx(summary.oof_accuracy)  # every row out of sample
        rows = c.execute("SELECT count(*), bool_or(seen_in_training), any_value(protocol) FROM predictions "
                         "WHERE run_id = ? AND family = 'imported'", [again.run_id]).fetchone()
        assert rows == (N, False, "own")
        space = c.execute("SELECT count(*), count(DISTINCT cluster) FROM embeddings WHERE run_id = ? "
                          "AND space = 'imported-embedding'", [again.run_id]).fetchone()
        assert space[0] == N and space[1] >= 2
        assert c.execute("SELECT count(*) FROM map_points WHERE run_id = ? AND space = 'imported-embedding'",
                         [again.run_id]).fetchone()[0] == N
        assert c.execute("SELECT count(DISTINCT sample_id) FROM neighbours WHERE run_id = ? "
                         "AND space = 'imported-embedding'", [again.run_id]).fetchone()[0] == N
    finally:
        con.close()
    assert again.own_accuracy["my BERT"][1:] == (N, None)
    assert not again.warnings


def test_without_out_of_sample_flags_every_prediction_counts_as_seen_unless_a_split_says(base, table, tmp_path):
    _, _, path = base
    frame = pd.read_csv(path).drop(columns=["out_of_sample", "embedding"])
    plain = tmp_path / "plain.csv"
    frame.to_csv(plain, index=False)
    cfg = _config(table, tmp_path / "a", predictions=plain, issue_source="ensemble")
    summary = run_pipeline(cfg)
    con = open_readonly(summary.db)
    seen = cursor(con).execute("SELECT bool_and(seen_in_training) FROM predictions WHERE run_id = ? AND "
                               "family = 'imported'", [summary.run_id]).fetchone()[0]
    con.close()
    assert seen and summary.own_accuracy["plain"][:2] == (None, 0)
    assert any("counts as having trained on 100% of the texts" in w for w in summary.warnings)
    summary = run_pipeline(dataclasses.replace(cfg, db=tmp_path / "b.duckdb", trained_on="train"))
    con = open_readonly(summary.db)
    by_split = dict(cursor(con).execute(
        "SELECT s.split, bool_and(p.seen_in_training) = bool_or(p.seen_in_training) AND bool_or(p.seen_in_training) "
        "FROM predictions p JOIN samples s USING (run_id, sample_id) WHERE p.run_id = ? AND p.family = 'imported' "
        "GROUP BY ALL", [summary.run_id]).fetchall())
    con.close()
    assert by_split == {"train": True, "test": False}


@pytest.mark.parametrize("change, message", [
    (lambda f: f.iloc[:-3], r"3 of the data's 400 ids have no prediction"),
    (lambda f: f.assign(neg=f["neg"] * 3 - 1, pos=f["pos"] * 3 - 1), r"are not probabilities.*logits"),
    (lambda f: f.assign(pos=np.where(np.arange(len(f)) == 5, np.nan, f["pos"])), r"1 row\(s\) hold a probability that"),
    (lambda f: f.drop(columns="pos"), r"no probabilities for 1 of the data's 2 classes \(pos\)"),
])
def test_a_bad_predictions_file_fails_before_training_and_writes_no_run(base, table, tmp_path, change, message,
                                                                        monkeypatch):
    from pipeline.models import linear

    _, _, path = base
    bad = tmp_path / "bad.csv"
    change(pd.read_csv(path)).to_csv(bad, index=False)
    monkeypatch.setattr(linear, "train_models", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(LoadError, match=message):
        run_pipeline(_config(table, tmp_path, predictions=bad))
    assert not (tmp_path / "lossmap.duckdb").exists()


def test_a_split_the_data_does_not_have_is_named(base, table, tmp_path):
    with pytest.raises(LoadError, match=r"--trained-on 'training' is not a split of the data \(its splits: test, train\)"):
        run_pipeline(_config(table, tmp_path, predictions=base[2], trained_on="training"))


def test_options_for_a_predictor_the_run_lacks_are_refused_when_the_config_is_built(table, tmp_path):
    with pytest.raises(ValueError, match="--issue-source imported ranks on your predictions"):
        _config(table, tmp_path, issue_source="imported")
    with pytest.raises(ValueError, match="--trained-on says which split your own model trained on: it goes with"):
        _config(table, tmp_path, trained_on="train")


def test_reasons_name_the_predictor_the_ranking_used(base, table, tmp_path):
    summary = run_pipeline(_config(table, tmp_path, predictions=base[2], predictor_name="my BERT",
                                   issue_source="imported"))
    con = open_readonly(summary.db)
    reasons = cursor(con).execute("SELECT reason FROM label_issues WHERE run_id = ?", [summary.run_id]).df()["reason"]
    con.close()
    assert reasons.str.startswith("your model 'my BERT' ").all()
