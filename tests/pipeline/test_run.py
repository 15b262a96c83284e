"""The whole pipeline on a seeded sample of the real archive, read back from the store."""

import numpy as np
import pytest

from pipeline.schema import TABLES
from tests.conftest import STORE_SAMPLE


def test_every_table_is_filled_for_the_run(sample_run, store_ro):
    run = sample_run.run_id
    for table in TABLES:
        if table == "lossmap_meta":
            continue
        n = store_ro.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", [run]).fetchone()[0]
        assert n > 0, table
    counts = dict(store_ro.execute(
        "SELECT predictor, count(*) FROM predictions WHERE run_id = ? GROUP BY ALL", [run]).fetchall())
    assert counts == {"nblr-oof": STORE_SAMPLE, "nblr-train": STORE_SAMPLE,
                      "dense-oof": STORE_SAMPLE, "dense-train": STORE_SAMPLE}


def test_summary_matches_the_store(sample_run, store_ro):
    row = store_ro.execute("SELECT n_samples, test_accuracy, n_flagged FROM runs WHERE run_id = ?",
                           [sample_run.run_id]).fetchone()
    assert row == (STORE_SAMPLE, pytest.approx(sample_run.test_accuracy), sample_run.n_flagged)
    assert 0.6 < sample_run.test_accuracy <= 1.0
    flagged = store_ro.execute("SELECT count(*) FROM label_issues WHERE run_id = ? AND is_label_issue",
                               [sample_run.run_id]).fetchone()[0]
    assert flagged == sample_run.n_flagged
    assert sample_run.parity_max_abs <= 1e-4


def test_out_of_fold_predictions_come_from_the_model_that_held_the_review_out(sample_run, store_ro):
    wrong = store_ro.execute("""
        SELECT count(*) FROM predictions p JOIN samples s USING (run_id, sample_id)
        WHERE p.run_id = ? AND p.predictor = 'nblr-oof' AND p.model_id <> 'nblr-fold' || s.fold
    """, [sample_run.run_id]).fetchone()[0]
    assert wrong == 0


def test_stored_shap_adds_up_to_the_stored_logit(sample_run, store_ro):
    gaps = store_ro.execute("""
        SELECT max(abs(t.total + b.base_value - p.logit))
        FROM (SELECT sample_id, model_id, sum(shap_value) AS total FROM shap_tokens WHERE run_id = $run GROUP BY ALL) t
        JOIN shap_base b ON b.run_id = $run AND b.model_id = t.model_id
        JOIN predictions p ON p.run_id = $run AND p.predictor = 'nblr-oof' AND p.sample_id = t.sample_id
    """, {"run": sample_run.run_id}).fetchone()[0]
    assert gaps <= 1e-4


def test_embeddings_have_a_vector_and_a_point_per_review(sample_run, store_ro):
    dims, n, spread = store_ro.execute(
        "SELECT min(len(vector)), count(*), stddev(x) FROM embeddings WHERE run_id = ?", [sample_run.run_id]).fetchone()
    assert dims == 20 and n == STORE_SAMPLE and spread > 0


def test_label_issue_ranks_are_a_permutation(sample_run, store_ro):
    ranks = np.array([r[0] for r in store_ro.execute(
        "SELECT issue_rank FROM label_issues WHERE run_id = ? ORDER BY issue_rank", [sample_run.run_id]).fetchall()])
    assert np.array_equal(ranks, np.arange(1, STORE_SAMPLE + 1))


def test_dense_network_telemetry_is_stored(sample_run, store_ro):
    models = dict(store_ro.execute("SELECT model_id, count(*) FROM training_epochs WHERE run_id = ? GROUP BY ALL",
                                   [sample_run.run_id]).fetchall())
    assert set(models) == {f"dense-fold{k}" for k in range(5)} | {"dense-train"}
    assert set(models.values()) == {4}
    assert "dense-train" in sample_run.model_test_accuracy
