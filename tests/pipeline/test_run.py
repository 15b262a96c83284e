"""The whole pipeline on a seeded sample of the real archive, read back from the store."""

import json

import numpy as np
import pytest

from pipeline.config import Config
from pipeline.run import run_pipeline
from pipeline.store.files import open_readonly
from pipeline.store.schema import OPTIONAL_TABLES, RUN_TABLES
from tests.conftest import STORE_SAMPLE


def test_every_table_is_filled_for_the_run(sample_run, store_ro):
    run = sample_run.run_id
    for table in RUN_TABLES:
        n = store_ro.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", [run]).fetchone()[0]
        assert n > 0 or table in OPTIONAL_TABLES, table
    counts = dict(store_ro.execute(
        "SELECT family || '/' || protocol, count(*) FROM predictions WHERE run_id = ? GROUP BY ALL", [run]).fetchall())
    assert counts == {f"{family}/{protocol}": STORE_SAMPLE for family in ("nblr", "dense", "cnn")
                      for protocol in ("oof", "conventional")}
    classes = store_ro.execute("SELECT class, name, n FROM classes WHERE run_id = ? ORDER BY class", [run]).fetchall()
    assert [c[:2] for c in classes] == [(0, "negative"), (1, "positive")] and sum(c[2] for c in classes) == STORE_SAMPLE


def test_summary_matches_the_store(sample_run, store_ro):
    row = store_ro.execute("SELECT n_samples, test_accuracy, n_flagged FROM runs WHERE run_id = ?",
                           [sample_run.run_id]).fetchone()
    assert row == (STORE_SAMPLE, pytest.approx(sample_run.test_accuracy), sample_run.n_flagged)
    assert 0.6 < sample_run.test_accuracy <= 1.0
    flagged = store_ro.execute("SELECT count(*) FROM label_issues WHERE run_id = ? AND is_label_issue",
                               [sample_run.run_id]).fetchone()[0]
    assert flagged == sample_run.n_flagged
    assert sample_run.parity_max_abs <= 1e-4
    notes = json.loads(store_ro.execute("SELECT load_notes FROM runs WHERE run_id = ?",
                                        [sample_run.run_id]).fetchone()[0])
    assert any(n.startswith("the networks trained with PyTorch on ") for n in notes)  # the GPU, or the CPU's threads


def test_out_of_fold_predictions_come_from_the_model_that_held_the_review_out(sample_run, store_ro):
    wrong = store_ro.execute("""
        SELECT count(*) FROM predictions p JOIN samples s USING (run_id, sample_id)
        JOIN models m ON m.run_id = p.run_id AND m.model_id = p.model_id
        WHERE p.run_id = ? AND p.protocol = 'oof' AND (m.fold <> s.fold OR m.family <> p.family)
    """, [sample_run.run_id]).fetchone()[0]
    assert wrong == 0


def test_stored_shap_adds_up_to_the_stored_log_odds(sample_run, store_ro):
    gaps = store_ro.execute("""
        SELECT max(abs(t.total + b.base_value - ln(p.probs[2] / p.probs[1]))), count(*), min(t.class)
        FROM (SELECT sample_id, model_id, class, sum(shap_value) AS total FROM shap_tokens WHERE run_id = $run
              GROUP BY ALL) t
        JOIN shap_base b ON b.run_id = $run AND b.model_id = t.model_id AND b.class = t.class
        JOIN predictions p ON p.run_id = $run AND p.family = 'nblr' AND p.protocol = 'oof' AND p.sample_id = t.sample_id
    """, {"run": sample_run.run_id}).fetchone()
    assert gaps[0] <= 1e-3 and gaps[1] == STORE_SAMPLE and gaps[2] == 1  # two classes: class 1's log-odds


def test_embeddings_have_a_vector_and_a_point_per_review_in_every_space(sample_run, store_ro):
    rows = store_ro.execute("SELECT space, min(len(vector)), max(len(vector)), count(*), stddev(x) FROM embeddings "
                            "WHERE run_id = ? GROUP BY space ORDER BY space", [sample_run.run_id]).fetchall()
    assert [r[0] for r in rows] == ["cnn-hidden", "dense-hidden", "tfidf-svd"]
    dims = {r[0]: (r[1], r[2]) for r in rows}
    assert dims == {"cnn-hidden": (32, 32), "dense-hidden": (16, 16), "tfidf-svd": (20, 20)}
    assert all(r[3] == STORE_SAMPLE and r[4] > 0 for r in rows)
    clusters = store_ro.execute("SELECT count(DISTINCT space) FROM clusters WHERE run_id = ?",
                                [sample_run.run_id]).fetchone()[0]
    assert clusters == 3


def test_label_issue_ranks_are_a_permutation(sample_run, store_ro):
    ranks = np.array([r[0] for r in store_ro.execute(
        "SELECT issue_rank FROM label_issues WHERE run_id = ? ORDER BY issue_rank", [sample_run.run_id]).fetchall()])
    assert np.array_equal(ranks, np.arange(1, STORE_SAMPLE + 1))


def test_network_telemetry_is_stored(sample_run, store_ro):
    models = dict(store_ro.execute("SELECT model_id, count(*) FROM training_epochs WHERE run_id = ? GROUP BY ALL",
                                   [sample_run.run_id]).fetchall())
    assert set(models) == {f"{f}-fold{k}" for f in ("dense", "cnn") for k in range(5)} | {"dense-train", "cnn-train"}
    assert {m: n for m, n in models.items() if m.startswith("dense")} == dict.fromkeys(
        [m for m in models if m.startswith("dense")], 4)
    assert {n for m, n in models.items() if m.startswith("cnn")} == {2}
    assert {"dense network", "CNN"} <= set(sample_run.model_test_accuracy)
    layered = {r[0] for r in store_ro.execute("SELECT DISTINCT model_id FROM layer_stats WHERE run_id = ?",
                                              [sample_run.run_id]).fetchall()}
    assert layered == {"dense-train", "cnn-train"}  # per-layer telemetry for the conventional networks
    reference = {r[0] for r in store_ro.execute("SELECT model_id FROM models WHERE run_id = ? AND reference",
                                                [sample_run.run_id]).fetchall()}
    assert reference == layered
    off = store_ro.execute("""
        SELECT count(*) FROM layer_stats s JOIN (
            SELECT model_id, epoch, layer, quantity, sum(count) AS total FROM layer_histograms WHERE run_id = $run
            GROUP BY ALL) h USING (model_id, epoch, layer, quantity)
        WHERE s.run_id = $run AND s.n <> h.total""", {"run": sample_run.run_id}).fetchone()[0]
    assert off == 0


def test_truncation_covers_every_review_and_ranks_the_truncated(sample_run, store_ro):
    n, truncated, ranked, max_rank, bad_span = store_ro.execute("""
        SELECT count(*), sum(truncated::INT), count(harm_rank), max(harm_rank),
               sum((truncated AND NOT (unseen_start < unseen_end))::INT)
        FROM truncation WHERE run_id = ? AND family = 'cnn'""", [sample_run.run_id]).fetchone()
    assert n == STORE_SAMPLE and 0 < truncated < n
    assert ranked == max_rank == truncated and bad_span == 0
    wrong = store_ro.execute("""
        SELECT count(*) FROM truncation t JOIN samples s USING (run_id, sample_id)
        JOIN models m ON m.run_id = t.run_id AND m.model_id = t.model_id
        WHERE t.run_id = ? AND (m.fold <> s.fold OR m.family <> 'cnn')""", [sample_run.run_id]).fetchone()[0]
    assert wrong == 0  # each review analysed by the fold model that never saw it


def test_label_issues_rank_the_stacked_models_by_default(sample_run, store_ro):
    import numpy as np

    from pipeline.analyses.evidence import stated_labels
    from pipeline.analyses.issues import stack

    method = store_ro.execute("SELECT DISTINCT method, ranked_on FROM label_issues WHERE run_id = ?",
                              [sample_run.run_id]).fetchall()
    families = [r[0] for r in store_ro.execute("SELECT DISTINCT family FROM predictions WHERE run_id = ? AND "
                                               "protocol = 'oof' ORDER BY family", [sample_run.run_id]).fetchall()]
    assert len(method) == 1 and method[0][0] == "self_confidence" and sorted(method[0][1]) == families
    rows = store_ro.execute("SELECT s.label, s.fold, s.rating, s.display_text, i.label_score FROM samples s "
                            "JOIN label_issues i USING (run_id, sample_id) WHERE run_id = ? ORDER BY sample_id",
                            [sample_run.run_id]).df()
    oof = {f: np.stack(store_ro.execute("SELECT p.probs FROM predictions p WHERE run_id = ? AND family = ? AND "
                                        "protocol = 'oof' ORDER BY sample_id", [sample_run.run_id, f]).df()["probs"])
           for f in method[0][1]}
    stated = stated_labels(rows["display_text"], rows["rating"].to_numpy(float), rows["label"].to_numpy(), 2)[0]
    assert (stated >= 0).any()  # IMDB reviews that state a score: the stack weighs them too
    stacked = stack(oof, rows["label"].to_numpy(), rows["fold"].to_numpy(), stated)
    p_given = stacked[np.arange(len(rows)), rows["label"].to_numpy()]
    assert np.allclose(rows["label_score"].to_numpy(), p_given, atol=1e-9)  # self-confidence of the stack


def test_ensemble_issue_source_averages_every_family(sample_config, tmp_path):
    import dataclasses

    import duckdb

    from pipeline.run import run_pipeline

    cfg = dataclasses.replace(sample_config, sample=200, issue_source="ensemble", db=tmp_path / "e.duckdb",
                              models_dir=tmp_path / "m", cnn_epochs=1)
    run_pipeline(cfg)
    con = duckdb.connect(str(cfg.db), read_only=True)
    assert con.execute("SELECT DISTINCT method, ranked_on FROM label_issues").fetchall() == [
        ("self_confidence", ["nblr", "dense", "cnn"])]
    gap = con.execute("""
        WITH mean AS (SELECT sample_id, avg(probs[2]) AS p FROM predictions WHERE protocol = 'oof' GROUP BY ALL)
        SELECT max(abs(i.suggested_label - (m.p >= 0.5)::INT)) FROM label_issues i JOIN mean m USING (sample_id)
    """).fetchone()[0]
    assert gap == 0  # the suggested label is the averaged probability's


def test_more_clusters_and_dimensions_than_the_texts_allow_are_said_with_the_run(tiny_archive, tmp_path):
    """--clusters and --svd-dim above what 24 texts allow: the maps get what they can, and the run says so rather
    than capping them silently."""
    cfg = Config(data=tiny_archive, db=tmp_path / "lossmap.duckdb", models_dir=tmp_path / "models", progress=False,
                 dense=False, cnn=False, folds=2, min_df=1, svd_dim=500, clusters=500)
    summary = run_pipeline(cfg)
    for said in ("the maps have at most 24 clusters, not the 500 asked (--clusters)",
                 "the text map's vectors have 23 dimensions, not the 500 asked (--svd-dim)"):
        assert any(n.startswith(said) for n in summary.notes), summary.notes
    con = open_readonly(summary.db)
    try:
        made, width = con.execute("SELECT count(DISTINCT cluster), max(len(vector)) FROM embeddings "
                                  "WHERE run_id = ? AND space = 'tfidf-svd'", [summary.run_id]).fetchone()
    finally:
        con.close()
    assert 1 <= made <= 24 and width == 23
