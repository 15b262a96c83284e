"""Data rules: each query must return zero rows on a store built by the pipeline."""

import pytest

RULES = {
    "probabilities within [0, 1]": "SELECT * FROM predictions WHERE p_pos < 0 OR p_pos > 1",
    "one prediction per sample per predictor": """
        SELECT run_id, predictor, sample_id FROM predictions GROUP BY ALL HAVING count(*) > 1""",
    "every sample has an out-of-fold prediction": """
        SELECT s.sample_id FROM samples s ANTI JOIN predictions p
        ON p.run_id = s.run_id AND p.sample_id = s.sample_id AND p.predictor = 'nblr-oof'""",
    "pred_label agrees with p_pos": "SELECT * FROM predictions WHERE pred_label <> (p_pos >= 0.5)::TINYINT",
    "loss is the cross-entropy of the given label": """
        SELECT * FROM predictions p JOIN samples s USING (run_id, sample_id)
        WHERE abs(p.loss + ln(greatest(CASE WHEN s.label = 1 THEN p.p_pos ELSE 1 - p.p_pos END, 1e-12))) > 1e-9""",
    "ratings within 1..10": "SELECT * FROM samples WHERE rating NOT BETWEEN 1 AND 10",
    "labels are 0 or 1": "SELECT * FROM samples WHERE label NOT IN (0, 1)",
    "onnx parity within 1e-4": "SELECT * FROM models WHERE parity_max_abs > 1e-4",
    "label scores within [0, 1]": "SELECT * FROM label_issues WHERE label_score NOT BETWEEN 0 AND 1",
    "every run is complete": "SELECT * FROM runs WHERE completed_at IS NULL OR completed_at < started_at",
    "train-split rows of the conventional model are marked seen": """
        SELECT * FROM predictions p JOIN samples s USING (run_id, sample_id)
        WHERE p.predictor LIKE '%-train' AND p.seen_in_training <> (s.split = 'train')""",
    "telemetry within range": """
        SELECT * FROM training_batches WHERE loss < 0 OR accuracy NOT BETWEEN 0 AND 1 OR lr <= 0""",
    "one out-of-fold prediction per sample per family": """
        SELECT sample_id, model_id FROM predictions WHERE predictor LIKE '%-oof' AND model_id NOT LIKE '%-fold%'""",
}


@pytest.mark.parametrize("rule", RULES)
def test_rule_returns_no_rows(rule, store_ro):
    rows = store_ro.execute(RULES[rule]).fetchall()
    assert rows == [], f"{rule}: {rows[:3]}"
