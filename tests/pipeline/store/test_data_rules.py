"""Data rules: each query must return zero rows on a store built by the pipeline."""

import pytest

RULES = {
    "probabilities within [0, 1] and summing to 1": """
        SELECT * FROM predictions WHERE list_min(probs) < 0 OR list_max(probs) > 1
                                     OR abs(list_sum(probs) - 1) > 1e-5""",
    "one probability per class": """
        SELECT * FROM predictions p JOIN runs r USING (run_id) WHERE len(p.probs) <> r.n_classes""",
    "one prediction per sample per family and protocol": """
        SELECT run_id, family, protocol, sample_id FROM predictions GROUP BY ALL HAVING count(*) > 1""",
    "every sample has an out-of-fold prediction": """
        SELECT s.sample_id FROM samples s ANTI JOIN predictions p
        ON p.run_id = s.run_id AND p.sample_id = s.sample_id AND p.family = 'nblr' AND p.protocol = 'oof'""",
    "p_given, p_pred and pred_label agree with probs": """
        SELECT * FROM predictions p JOIN samples s USING (run_id, sample_id)
        WHERE abs(p.p_given - p.probs[s.label + 1]) > 1e-9 OR abs(p.p_pred - p.probs[p.pred_label + 1]) > 1e-9
           OR (len(p.probs) = 2 AND p.pred_label <> (p.probs[2] >= 0.5)::INT)
           OR (len(p.probs) > 2 AND p.p_pred < list_max(p.probs) - 1e-9)""",
    "loss is the cross-entropy of the given label": """
        SELECT * FROM predictions WHERE abs(loss + ln(greatest(p_given, 1e-12))) > 1e-9""",
    "margin is p_given less the largest other probability": """
        SELECT * FROM predictions p JOIN samples s USING (run_id, sample_id)
        WHERE abs(p.margin - (p.p_given - list_max(list_filter(p.probs, lambda v, i: i <> s.label + 1)))) > 1e-9""",
    "labels are classes of the run": """
        SELECT * FROM samples s ANTI JOIN classes c ON c.run_id = s.run_id AND c.class = s.label""",
    "class counts add up": """
        SELECT c.run_id FROM classes c JOIN runs r USING (run_id) GROUP BY c.run_id, r.n_samples
        HAVING sum(c.n) <> r.n_samples""",
    "suggested labels are classes of the run": """
        SELECT * FROM label_issues i ANTI JOIN classes c ON c.run_id = i.run_id AND c.class = i.suggested_label""",
    "onnx parity within 1e-4": "SELECT * FROM models WHERE parity_max_abs > 1e-4",
    "label scores within [0, 1]": "SELECT * FROM label_issues WHERE label_score NOT BETWEEN 0 AND 1",
    "every suspect has its evidence, within range": """
        SELECT * FROM label_issues i JOIN runs r USING (run_id)
        WHERE i.run_id IN (SELECT run_id FROM label_issues WHERE suggestion IS NOT NULL)  -- not runs before version 7
          AND (i.suggestion IS NULL OR i.suggestion NOT IN ('relabel', 'ambiguous', 'keep')
               OR i.n_models < 1 OR i.models_disagree NOT BETWEEN 0 AND i.n_models
               OR i.neighbours_disagree NOT BETWEEN 0 AND 1 OR i.outlier_score NOT BETWEEN 0 AND 1
               OR i.sentence_mix NOT BETWEEN 0 AND 1 - 1 / r.n_classes
               OR i.stated_label NOT BETWEEN -1 AND r.n_classes - 1 OR i.is_outlier IS NULL)""",
    "a label is kept exactly when neither the models nor the text doubt it, or its text's own score backs it": """
        SELECT * FROM label_issues i JOIN samples s USING (run_id, sample_id)
        WHERE (i.suggestion = 'keep') <> ((i.suggested_label = s.label AND i.stated_label IN (-1, s.label))
                                          OR i.stated_label = s.label)""",
    "an ambiguous suspect names its signal, a kept label none": """
        SELECT * FROM label_issues WHERE (suggestion = 'ambiguous' AND ambiguity IS NULL)
                                      OR (suggestion = 'keep' AND ambiguity IS NOT NULL)""",
    "a near-duplicate named is a text of the run labeled otherwise": """
        SELECT * FROM label_issues i JOIN samples s USING (run_id, sample_id)
        WHERE i.duplicate_of IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM samples d
            WHERE d.run_id = i.run_id AND d.sample_id = i.duplicate_of AND d.label <> s.label)""",
    "the summary carries each suspect's suggestion": """
        SELECT * FROM sample_summary m JOIN label_issues i USING (run_id, sample_id)
        WHERE m.suggestion IS DISTINCT FROM i.suggestion""",
    "every run is complete": "SELECT * FROM runs WHERE completed_at IS NULL OR completed_at < started_at",
    "train-split rows of the conventional model are marked seen": """
        SELECT * FROM predictions p JOIN samples s USING (run_id, sample_id)
        WHERE p.protocol = 'conventional' AND p.seen_in_training <> coalesce(s.split = 'train', false)""",
    "telemetry within range": """
        SELECT * FROM training_batches WHERE loss < 0 OR accuracy NOT BETWEEN 0 AND 1 OR lr <= 0""",
    "out-of-fold predictions come from fold models": """
        SELECT * FROM predictions p JOIN models m USING (run_id, model_id)
        WHERE (p.protocol = 'oof') <> (m.role = 'fold') OR p.family <> m.family""",
    "one reference network per family": """
        SELECT run_id, family FROM models WHERE family <> 'nblr' GROUP BY ALL HAVING sum(reference::INT) <> 1""",
    "explained classes are the given and the predicted one (or class 1 of two)": """
        SELECT * FROM shap_tokens t JOIN sample_summary s USING (run_id, sample_id) JOIN runs r USING (run_id)
        WHERE (r.n_classes = 2 AND t.class <> 1) OR (r.n_classes > 2 AND t.class NOT IN (s.label, s.pred_label))""",
}


@pytest.fixture(params=["binary", "multiclass"])
def any_store(request, sample_run, rating_store):
    from pipeline.store.files import open_readonly

    connection = open_readonly(sample_run.db if request.param == "binary" else rating_store.db)
    yield connection
    connection.close()


@pytest.mark.parametrize("rule", RULES)
def test_rule_returns_no_rows(rule, any_store):
    rows = any_store.execute(RULES[rule]).fetchall()
    assert rows == [], f"{rule}: {rows[:3]}"
