"""The DuckDB store's schema: DDL constants, ``ensure_schema(con)`` and version checks.

Documented for users in docs/schema.md; keep the two in step. Every table but
``lossmap_meta`` is keyed by ``run_id``; per-review tables add ``sample_id`` (the
review's path in the archive without ``.txt``, e.g. ``test/neg/10003_3``).
Identifiers only ever come from these constants; values are always bound.
"""

from __future__ import annotations

import duckdb

SCHEMA_VERSION = 2

META = """
CREATE TABLE IF NOT EXISTS lossmap_meta (
    key   VARCHAR PRIMARY KEY,  -- 'schema_version', 'created_by'
    value VARCHAR NOT NULL
)"""

RUNS = """
CREATE TABLE IF NOT EXISTS runs (
    run_id          VARCHAR PRIMARY KEY,  -- e.g. '20261126T130501Z-4f2a'
    started_at      TIMESTAMP NOT NULL,   -- UTC
    completed_at    TIMESTAMP NOT NULL,   -- UTC; a run is in the store only once complete
    source          VARCHAR NOT NULL,     -- path of the archive or folder read
    n_samples       INTEGER NOT NULL,     -- reviews in the run
    test_accuracy   DOUBLE,               -- conventional model (train split only) on the test split, 0..1
    oof_accuracy    DOUBLE NOT NULL,      -- out-of-fold accuracy over all reviews, 0..1
    n_flagged       INTEGER NOT NULL,     -- reviews with is_label_issue
    seconds         DOUBLE NOT NULL,      -- wall time of the whole run, s
    stage_seconds   JSON NOT NULL,        -- {stage: seconds}
    load_warnings   JSON NOT NULL,        -- {kind: [sample_id, ...]} from loading
    config          JSON NOT NULL         -- the pipeline Config used
)"""

SAMPLES = """
CREATE TABLE IF NOT EXISTS samples (
    run_id       VARCHAR NOT NULL,
    sample_id    VARCHAR NOT NULL,   -- 'test/neg/10003_3'
    path         VARCHAR NOT NULL,   -- path inside the archive: 'aclImdb/test/neg/10003_3.txt'
    split        VARCHAR NOT NULL,   -- 'train' | 'test'
    label        TINYINT NOT NULL,   -- given label: 0 negative, 1 positive
    rating       TINYINT NOT NULL,   -- stars, 1..10
    movie_id     VARCHAR,            -- IMDb 'tt...' id; NULL when unknown
    fold         SMALLINT NOT NULL,  -- cross-fitting fold that held this review out
    n_words      INTEGER NOT NULL,   -- whitespace-separated words in display_text
    text         VARCHAR NOT NULL,   -- raw review text, untrusted (may hold HTML)
    display_text VARCHAR NOT NULL,   -- text with <br /> turned into newlines, still untrusted
    PRIMARY KEY (run_id, sample_id)
)"""

MODELS = """
CREATE TABLE IF NOT EXISTS models (
    run_id          VARCHAR NOT NULL,
    model_id        VARCHAR NOT NULL,  -- '<family>-fold0'..'<family>-fold4', '<family>-train'
    family          VARCHAR NOT NULL,  -- 'nblr': TF-IDF n-grams + NB ratio + logistic regression; 'dense': Chollet's network
    role            VARCHAR NOT NULL,  -- 'fold' (cross-fitting) | 'conventional' (train split only)
    fold            SMALLINT,          -- held-out fold for role 'fold'
    onnx_path       VARCHAR NOT NULL,  -- ONNX file, relative to the store's folder
    onnx_sha256     VARCHAR NOT NULL,
    n_features      INTEGER NOT NULL,  -- vocabulary size
    n_train         INTEGER NOT NULL,  -- reviews trained on
    accuracy        DOUBLE,            -- on the reviews it did not see, 0..1
    parity_max_abs  DOUBLE NOT NULL,   -- max |p_onnx - p_native| over the reviews it scored
    provider        VARCHAR NOT NULL,  -- ONNX Runtime execution provider used
    PRIMARY KEY (run_id, model_id)
)"""

PREDICTIONS = """
CREATE TABLE IF NOT EXISTS predictions (
    run_id           VARCHAR NOT NULL,
    predictor        VARCHAR NOT NULL,  -- '<family>-oof' (each review by the fold model that never saw it) | '<family>-train'
    sample_id        VARCHAR NOT NULL,
    model_id         VARCHAR NOT NULL,  -- the ONNX model that scored this review
    seen_in_training BOOLEAN NOT NULL,  -- true only for 'nblr-train' on train-split reviews
    p_pos            DOUBLE NOT NULL,   -- probability of positive, 0..1 (ONNX Runtime)
    pred_label       TINYINT NOT NULL,  -- 1 if p_pos >= 0.5
    loss             DOUBLE NOT NULL,   -- cross-entropy against the given label, nats
    margin           DOUBLE NOT NULL,   -- p(given label) - p(other label), -1..1; < 0 = model disagrees
    logit            DOUBLE NOT NULL,   -- log-odds of positive
    PRIMARY KEY (run_id, predictor, sample_id)
)"""

EMBEDDINGS = """
CREATE TABLE IF NOT EXISTS embeddings (
    run_id    VARCHAR NOT NULL,
    space     VARCHAR NOT NULL,  -- 'tfidf-svd': truncated SVD of TF-IDF
    sample_id VARCHAR NOT NULL,
    vector    FLOAT[] NOT NULL,  -- dense embedding
    x         FLOAT NOT NULL,    -- 2-D map (UMAP)
    y         FLOAT NOT NULL,
    cluster   SMALLINT NOT NULL, -- k-means cluster on vector
    PRIMARY KEY (run_id, space, sample_id)
)"""

CLUSTERS = """
CREATE TABLE IF NOT EXISTS clusters (
    run_id    VARCHAR NOT NULL,
    space     VARCHAR NOT NULL,
    cluster   SMALLINT NOT NULL,
    size      INTEGER NOT NULL,  -- reviews in the cluster
    top_terms VARCHAR NOT NULL,  -- n-grams most over-represented in the cluster, comma-separated
    PRIMARY KEY (run_id, space, cluster)
)"""

SHAP_BASE = """
CREATE TABLE IF NOT EXISTS shap_base (
    run_id     VARCHAR NOT NULL,
    model_id   VARCHAR NOT NULL,
    base_value DOUBLE NOT NULL,  -- expected logit over the model's training reviews
    PRIMARY KEY (run_id, model_id)
)"""

SHAP_TOKENS = """
CREATE TABLE IF NOT EXISTS shap_tokens (
    run_id        VARCHAR NOT NULL,
    sample_id     VARCHAR NOT NULL,
    model_id      VARCHAR NOT NULL,  -- the fold model that scored the review out of fold
    rank          SMALLINT NOT NULL, -- 1 = largest |shap_value|; the two summary rows come last
    kind          VARCHAR NOT NULL,  -- 'token' | 'other_present' | 'absent'
    token         VARCHAR NOT NULL,  -- the n-gram ('not good'), or a label for a summary row
    feature_value FLOAT,             -- NB-scaled TF-IDF value; NULL on summary rows
    shap_value    DOUBLE NOT NULL,   -- contribution to the logit; > 0 pushes toward positive
    PRIMARY KEY (run_id, sample_id, rank)
)"""

LABEL_ISSUES = """
CREATE TABLE IF NOT EXISTS label_issues (
    run_id          VARCHAR NOT NULL,
    sample_id       VARCHAR NOT NULL,
    method          VARCHAR NOT NULL,  -- cleanlab ranking method
    label_score     DOUBLE NOT NULL,   -- label quality, 0..1; lower = more likely mislabeled
    is_label_issue  BOOLEAN NOT NULL,  -- cleanlab confident-learning flag
    suggested_label TINYINT NOT NULL,  -- the label the model believes
    issue_rank      INTEGER NOT NULL,  -- 1 = most suspect
    reason          VARCHAR NOT NULL,  -- one readable line
    PRIMARY KEY (run_id, sample_id)
)"""

TRAINING_BATCHES = """
CREATE TABLE IF NOT EXISTS training_batches (
    run_id   VARCHAR NOT NULL,
    model_id VARCHAR NOT NULL,   -- e.g. 'dense-fold0', 'dense-train'
    step     INTEGER NOT NULL,   -- 1, 2, ... over the whole training
    epoch    SMALLINT NOT NULL,  -- 1-based
    batch    INTEGER NOT NULL,   -- 0-based within the epoch
    loss     DOUBLE NOT NULL,    -- binary cross-entropy of the batch, nats
    accuracy DOUBLE NOT NULL,    -- on the batch, 0..1
    lr       DOUBLE NOT NULL,    -- learning rate used for the step
    PRIMARY KEY (run_id, model_id, step)
)"""

TRAINING_EPOCHS = """
CREATE TABLE IF NOT EXISTS training_epochs (
    run_id         VARCHAR NOT NULL,
    model_id       VARCHAR NOT NULL,
    epoch          SMALLINT NOT NULL,
    train_loss     DOUBLE NOT NULL,  -- over the training reviews after the epoch, nats
    train_accuracy DOUBLE NOT NULL,
    val_loss       DOUBLE,           -- over the held-out fold (fold models) or the test split (conventional)
    val_accuracy   DOUBLE,
    PRIMARY KEY (run_id, model_id, epoch)
)"""

TABLES = {
    "lossmap_meta": META, "runs": RUNS, "samples": SAMPLES, "models": MODELS, "predictions": PREDICTIONS,
    "embeddings": EMBEDDINGS, "clusters": CLUSTERS, "shap_base": SHAP_BASE, "shap_tokens": SHAP_TOKENS,
    "label_issues": LABEL_ISSUES, "training_batches": TRAINING_BATCHES, "training_epochs": TRAINING_EPOCHS,
}


class StoreError(Exception):
    """The store cannot be used; the message says why and what to do."""


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table that is missing and stamp the schema version (idempotent)."""
    check_version(con, allow_empty=True)
    for ddl in TABLES.values():
        con.execute(ddl)
    con.execute(
        "INSERT OR IGNORE INTO lossmap_meta VALUES ('schema_version', ?), ('created_by', 'lossmap pipeline')",
        [str(SCHEMA_VERSION)],
    )


def check_version(con: duckdb.DuckDBPyConnection, *, allow_empty: bool = False) -> None:
    """Raise StoreError unless the store was written with SCHEMA_VERSION."""
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()").fetchall()}
    if "lossmap_meta" not in tables:
        if allow_empty and not tables:
            return
        raise StoreError(
            "this DuckDB file is not a Lossmap store (it has no lossmap_meta table). "
            "Pass another --db, or move the file away and run `python -m pipeline run` to make a new store."
        )
    row = con.execute("SELECT value FROM lossmap_meta WHERE key = 'schema_version'").fetchone()
    found = row[0] if row else "unknown"
    if found != str(SCHEMA_VERSION):
        raise StoreError(
            f"this store was written with schema version {found}; this Lossmap reads version {SCHEMA_VERSION}. "
            "Run `python -m pipeline run --db NEW_PATH` to make a new store (the old one is left untouched)."
        )
