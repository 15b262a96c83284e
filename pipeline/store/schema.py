"""The DuckDB store's schema: DDL constants, ``ensure_schema(con)`` and version checks.

Documented for users in docs/schema.md; keep the two in step. Every table in
``RUN_TABLES`` is keyed by ``run_id`` (the sweep tables by ``sweep_id``); per-review
tables add ``sample_id`` (a text's stable id: the review's path in the IMDB archive
without ``.txt``, e.g. ``test/neg/10003_3``; a table's ``--id`` column; a text
folder's file path; or a hash of the text). Labels are class indices into the run's
``classes``. Families, roles and protocols are the values of ``pipeline.names``.
Identifiers only ever come from these constants; values are always bound.
"""

from __future__ import annotations

import duckdb

from pipeline.store import guard

SCHEMA_VERSION = 7
UPGRADABLE = (5, 6)  # older versions ``upgrade`` brings up to date in place (``UPGRADES``)

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
    source          VARCHAR NOT NULL,     -- path of the table, folder or archive read ('<DataFrame 1a2b...>' from analyze(), a content fingerprint)
    n_samples       INTEGER NOT NULL,     -- texts (reviews) in the run
    n_classes       SMALLINT NOT NULL,    -- classes in the run (rows of `classes`)
    columns         JSON NOT NULL,        -- {role: source column or null}: text, label, id, split, group, score
    test_accuracy   DOUBLE,               -- conventional model (train split only) on the other rows, 0..1
    oof_accuracy    DOUBLE NOT NULL,      -- out-of-fold accuracy over all reviews, 0..1
    n_flagged       INTEGER NOT NULL,     -- reviews with is_label_issue
    seconds         DOUBLE NOT NULL,      -- wall time of the whole run, s
    stage_seconds   JSON NOT NULL,        -- {stage: seconds}
    stage_peak_mib  JSON NOT NULL,        -- {stage: peak resident memory of the pipeline process during it, MiB},
                                          -- every stage before 'store' (which is running when this row is written)
    load_warnings   JSON NOT NULL,        -- {kind: [sample_id, path or row, ...]} from loading
    load_notes      JSON NOT NULL,        -- [line, ...]: how columns were chosen, ids derived
    config          JSON NOT NULL         -- the pipeline Config used
)"""

SAMPLES = """
CREATE TABLE IF NOT EXISTS samples (
    run_id       VARCHAR NOT NULL,
    sample_id    VARCHAR NOT NULL,   -- 'test/neg/10003_3'; untrusted when it comes from the data
    path         VARCHAR NOT NULL,   -- where the text came from: 'aclImdb/test/neg/10003_3.txt', 'row 17', a file
    split        VARCHAR,            -- 'train' | 'test' | 'validation' | the data's own value; NULL without splits
    label        SMALLINT NOT NULL,  -- given label: class index into `classes` (IMDB: 0 negative, 1 positive)
    rating       DOUBLE,             -- the --score column (IMDB: stars 1..10); NULL when there is none
    group_id     VARCHAR,            -- the --group column (IMDB: the movie's 'tt...' id); NULL when unknown
    fold         SMALLINT NOT NULL,  -- cross-fitting fold that held this review out
    n_words      INTEGER NOT NULL,   -- whitespace-separated words in display_text
    text         VARCHAR NOT NULL,   -- raw review text, untrusted (may hold HTML)
    display_text VARCHAR NOT NULL,   -- text with <br /> turned into newlines, still untrusted
    original_label SMALLINT,         -- the data's label when --relabel replaced it (label holds the new one); NULL
                                     -- when the label is the data's own
    PRIMARY KEY (run_id, sample_id)
)"""

CLASSES = """
CREATE TABLE IF NOT EXISTS classes (
    run_id  VARCHAR NOT NULL,
    class   SMALLINT NOT NULL,  -- the index every label column uses, 0..n_classes-1
    name    VARCHAR NOT NULL,   -- the label as it is in the data, untrusted
    n       INTEGER NOT NULL,   -- texts with this given label
    PRIMARY KEY (run_id, class)
)"""

META_COLUMNS = """
CREATE TABLE IF NOT EXISTS meta_columns (
    run_id     VARCHAR NOT NULL,
    name       VARCHAR NOT NULL,   -- the column's name in the data, untrusted
    position   SMALLINT NOT NULL,  -- its order in the data
    kind       VARCHAR NOT NULL,   -- 'category' (filters, map colours) | 'number' (range filters) | 'text'
    n_distinct INTEGER NOT NULL,
    lo         DOUBLE,             -- numbers: smallest and largest value
    hi         DOUBLE,
    PRIMARY KEY (run_id, name)
)"""

SAMPLE_META = """
CREATE TABLE IF NOT EXISTS sample_meta (
    run_id    VARCHAR NOT NULL,
    name      VARCHAR NOT NULL,   -- meta_columns.name
    sample_id VARCHAR NOT NULL,
    value     VARCHAR,            -- the value as text (categories, text); NULL when missing
    number    DOUBLE,             -- the value as a number ('number' columns)
    PRIMARY KEY (run_id, name, sample_id)
)"""

MODELS = """
CREATE TABLE IF NOT EXISTS models (
    run_id          VARCHAR NOT NULL,
    model_id        VARCHAR NOT NULL,  -- '<family>-fold0'..'<family>-fold4', '<family>-train'; 'imported', 'onnx'
    family          VARCHAR NOT NULL,  -- 'nblr': TF-IDF n-grams + logistic regression (NB ratio for two classes);
                                       -- 'dense': Chollet's network; 'cnn', 'bilstm': sequence networks over word ids;
                                       -- 'imported': the user's predictions file; 'onnx': the user's ONNX model
    role            VARCHAR NOT NULL,  -- 'fold' (cross-fitting) | 'conventional' (train split only) | 'own' (the
                                       -- user's model, trained elsewhere)
    fold            SMALLINT,          -- held-out fold for role 'fold'
    reference       BOOLEAN NOT NULL,  -- networks: the model whose embedding maps the reviews and whose layers are
                                       -- recorded (the conventional one; fold 0 when there is no train split)
    onnx_path       VARCHAR,           -- ONNX file, relative to the store's folder; NULL for a predictions file
    onnx_sha256     VARCHAR,
    n_features      INTEGER NOT NULL,  -- vocabulary size (0 when not known)
    n_train         INTEGER NOT NULL,  -- texts trained on (the user's model: texts marked seen in training)
    accuracy        DOUBLE,            -- on the texts it did not see, 0..1; NULL when none is known to be unseen
    parity_max_abs  DOUBLE,            -- max |p_onnx - p_native| over the reviews it scored; NULL: no native model
    provider        VARCHAR,           -- ONNX Runtime execution provider used; NULL for a predictions file
    name            VARCHAR,           -- how pages name the predictor ('--predictor-name'); NULL: by its family
    source          VARCHAR,           -- the user's file read ('--predictions', '--model'); NULL for Lossmap's own
    PRIMARY KEY (run_id, model_id)
)"""

PREDICTIONS = """
CREATE TABLE IF NOT EXISTS predictions (
    run_id           VARCHAR NOT NULL,
    family           VARCHAR NOT NULL,  -- models.family
    protocol         VARCHAR NOT NULL,  -- 'oof' (by the fold model that never saw the text) | 'conventional' |
                                        -- 'own' (the user's model, as it predicted; see seen_in_training)
    sample_id        VARCHAR NOT NULL,
    model_id         VARCHAR NOT NULL,  -- the ONNX model that scored this text
    seen_in_training BOOLEAN NOT NULL,  -- conventional predictions of train-split texts; for 'own', true unless
                                        -- the user said the model never saw the text (out_of_sample, --trained-on)
    probs            DOUBLE[] NOT NULL, -- probability of each class, by class index (ONNX Runtime); sums to 1
    p_given          DOUBLE NOT NULL,   -- probability of the given label, 0..1
    pred_label       SMALLINT NOT NULL, -- the most probable class (two classes: class 1 when its p >= 0.5)
    p_pred           DOUBLE NOT NULL,   -- its probability
    loss             DOUBLE NOT NULL,   -- cross-entropy against the given label, -ln p_given, nats
    margin           DOUBLE NOT NULL,   -- p_given - the largest other probability, -1..1; < 0 = model disagrees
    PRIMARY KEY (run_id, family, protocol, sample_id)
)"""

EMBEDDINGS = """
CREATE TABLE IF NOT EXISTS embeddings (
    run_id    VARCHAR NOT NULL,
    space     VARCHAR NOT NULL,  -- 'tfidf-svd': truncated SVD of TF-IDF; '<family>-hidden': penultimate layer
                                 -- of that family's reference network; '<family>-embedding': the user's vectors
    family    VARCHAR NOT NULL,  -- whose view: 'nblr' for tfidf-svd, the network's or user model's family otherwise
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
    -- filled at store time from the members, with the space's own out-of-fold predictions (see DERIVED):
    accuracy       DOUBLE,      -- share predicted right, 0..1
    mean_loss      DOUBLE,      -- nats
    share_flagged  DOUBLE,      -- share with is_label_issue, 0..1
    top_label      SMALLINT,    -- the most common given label in the cluster
    share_top      DOUBLE,      -- its share, 0..1
    PRIMARY KEY (run_id, space, cluster)
)"""

SHAP_BASE = """
CREATE TABLE IF NOT EXISTS shap_base (
    run_id     VARCHAR NOT NULL,
    model_id   VARCHAR NOT NULL,
    class      SMALLINT NOT NULL,  -- the class explained (see shap_tokens)
    base_value DOUBLE NOT NULL,    -- expected logit over the model's training texts
    PRIMARY KEY (run_id, model_id, class)
)"""

SHAP_TOKENS = """
CREATE TABLE IF NOT EXISTS shap_tokens (
    run_id        VARCHAR NOT NULL,
    sample_id     VARCHAR NOT NULL,
    model_id      VARCHAR NOT NULL,  -- the fold model that scored the review out of fold
    class         SMALLINT NOT NULL, -- the class explained: two classes, 1 (the log-odds of class 1; class 0's values
                                     -- are these with the sign turned); more, the given and the predicted class
    rank          SMALLINT NOT NULL, -- 1 = largest |shap_value|; the two summary rows come last
    kind          VARCHAR NOT NULL,  -- 'token' | 'other_present' | 'absent'
    token         VARCHAR NOT NULL,  -- the n-gram ('not good'), or a label for a summary row
    feature_value FLOAT,             -- the model's scaled TF-IDF value; NULL on summary rows
    shap_value    DOUBLE NOT NULL,   -- contribution to the class's logit; > 0 pushes toward the class
    PRIMARY KEY (run_id, sample_id, class, rank)
)"""

LABEL_ISSUES = """
CREATE TABLE IF NOT EXISTS label_issues (
    run_id          VARCHAR NOT NULL,
    sample_id       VARCHAR NOT NULL,
    method          VARCHAR NOT NULL,  -- cleanlab ranking method (analyses.issues.METHODS)
    label_score     DOUBLE NOT NULL,   -- label quality, 0..1; lower = more likely mislabeled
    is_label_issue  BOOLEAN NOT NULL,  -- cleanlab confident-learning flag
    suggested_label SMALLINT NOT NULL, -- the class the model believes
    issue_rank      INTEGER NOT NULL,  -- 1 = most suspect
    reason          VARCHAR NOT NULL,  -- one readable line
    ranked_on       VARCHAR[],         -- the families whose probabilities were ranked (several: their stack or mean,
                                       -- runs.config.issue_source), e.g.
                                       -- ['nblr'], ['nblr', 'dense', 'cnn', 'imported']
    -- the evidence beside the rank (analyses.evidence); NULL in runs written before schema version 7
    n_models            SMALLINT,      -- predictors that never saw the text (fold models; a user's where unseen)
    models_disagree     SMALLINT,      -- of them, those predicting another class than the given one
    neighbours_disagree DOUBLE,        -- share of its stored TF-IDF neighbours labeled otherwise, 0..1; NULL: none
    stated_label        SMALLINT,      -- the class of a score its text states ('4/10'); -1: none that one class owns
    stated_text         VARCHAR,       -- the words stating scores, untrusted; NULL: the text states none
    duplicate_of        VARCHAR,       -- sample_id of a near-duplicate labeled otherwise (cleanlab Datalab); NULL: none
    is_outlier          BOOLEAN,       -- Datalab's outlier flag (far from every other text)
    outlier_score       DOUBLE,        -- Datalab's outlier score, 0..1, lower = more outlying; NULL: no neighbours
    sentence_mix        DOUBLE,        -- doubted labels: share of the sentences' evidence against their majority,
                                       -- 0..1 - 1/K (the linear fold model scores each sentence); NULL: not doubted,
                                       -- or under two sentences
    suggestion          VARCHAR,       -- 'relabel' | 'ambiguous' | 'keep' (analyses.evidence.SUGGESTIONS)
    ambiguity           VARCHAR,       -- the signal that makes a doubted label ambiguous rather than wrong; NULL: none
    PRIMARY KEY (run_id, sample_id)
)"""

TRAINING_BATCHES = """
CREATE TABLE IF NOT EXISTS training_batches (
    run_id   VARCHAR NOT NULL,
    model_id VARCHAR NOT NULL,   -- e.g. 'dense-fold0', 'dense-train'
    step     INTEGER NOT NULL,   -- 1, 2, ... over the whole training
    epoch    SMALLINT NOT NULL,  -- 1-based
    batch    INTEGER NOT NULL,   -- 0-based within the epoch
    loss     DOUBLE NOT NULL,    -- cross-entropy of the batch, nats
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

LAYER_STATS = """
CREATE TABLE IF NOT EXISTS layer_stats (
    run_id        VARCHAR NOT NULL,
    model_id      VARCHAR NOT NULL,   -- a reference network (models.reference), e.g. 'cnn-train'
    epoch         SMALLINT NOT NULL,  -- 0 = before training
    layer         VARCHAR NOT NULL,   -- e.g. 'hidden1', 'conv', 'dense', 'output'
    quantity      VARCHAR NOT NULL,   -- 'weight' | 'bias' | 'grad' (of the weights) | 'preact' | 'postact'
    n             BIGINT NOT NULL,    -- values summarised
    mean          DOUBLE,
    std           DOUBLE,
    max_abs       DOUBLE,             -- max |value|
    norm          DOUBLE,             -- L2 norm; for 'grad' the gradient norm
    dead_fraction DOUBLE,             -- 'postact' of ReLU layers: share of units never active on the probe, 0..1
    PRIMARY KEY (run_id, model_id, epoch, layer, quantity)
)"""

LAYER_HISTOGRAMS = """
CREATE TABLE IF NOT EXISTS layer_histograms (
    run_id   VARCHAR NOT NULL,
    model_id VARCHAR NOT NULL,
    epoch    SMALLINT NOT NULL,
    layer    VARCHAR NOT NULL,
    quantity VARCHAR NOT NULL,
    bin      SMALLINT NOT NULL,  -- 0..29, equal width between the values' min and max
    lo       DOUBLE NOT NULL,    -- bin edges
    hi       DOUBLE NOT NULL,
    count    BIGINT NOT NULL,    -- values in the bin; a histogram's counts add up to layer_stats.n
    PRIMARY KEY (run_id, model_id, epoch, layer, quantity, bin)
)"""

INFORMATION_PLANE = """
CREATE TABLE IF NOT EXISTS information_plane (
    run_id   VARCHAR NOT NULL,
    model_id VARCHAR NOT NULL,
    epoch    SMALLINT NOT NULL,
    layer    VARCHAR NOT NULL,
    i_xt     DOUBLE NOT NULL,    -- I(X;T), bits, 0..log2(n_probe)
    i_ty     DOUBLE NOT NULL,    -- I(T;Y), bits, 0..log2(n_classes)
    bins     SMALLINT NOT NULL,  -- equal-width bins per layer (Shwartz-Ziv & Tishby 2017)
    n_probe  INTEGER NOT NULL,   -- probe reviews (training reviews, fixed per model)
    PRIMARY KEY (run_id, model_id, epoch, layer)
)"""

TRUNCATION = """
CREATE TABLE IF NOT EXISTS truncation (
    run_id             VARCHAR NOT NULL,
    family             VARCHAR NOT NULL,  -- 'cnn' | 'bilstm'
    sample_id          VARCHAR NOT NULL,
    model_id           VARCHAR NOT NULL,  -- the fold model that scored the review out of fold
    n_words            INTEGER NOT NULL,  -- words (tokens) in the review
    truncated          BOOLEAN NOT NULL,  -- n_words > max_len
    p_model            DOUBLE NOT NULL,   -- P(given label) as the model reads it (its own truncation)
    p_head             DOUBLE NOT NULL,   -- first max_len words
    p_head_tail        DOUBLE NOT NULL,   -- first and last max_len / 2 words
    p_windows          DOUBLE NOT NULL,   -- whole review: mean log-probabilities of sliding windows, renormalised
    pred_model         SMALLINT NOT NULL, -- the predicted class, read each of those ways
    pred_head          SMALLINT NOT NULL,
    pred_head_tail     SMALLINT NOT NULL,
    pred_windows       SMALLINT NOT NULL,
    n_windows          INTEGER NOT NULL,
    loss_model         DOUBLE NOT NULL,   -- cross-entropy against the given label, nats
    loss_windows       DOUBLE NOT NULL,
    harm               DOUBLE NOT NULL,   -- loss_model - loss_windows, nats; > 0: the unseen part would help
    prediction_changes BOOLEAN NOT NULL,  -- the whole text changes the predicted class
    harm_rank          INTEGER,           -- 1 = most harmed truncated review; NULL when not truncated
    unseen_start       INTEGER,           -- characters of display_text the model never read: [start, end)
    unseen_end         INTEGER,
    PRIMARY KEY (run_id, family, sample_id)
)"""

SWEEPS = """
CREATE TABLE IF NOT EXISTS sweeps (
    sweep_id   VARCHAR PRIMARY KEY,  -- e.g. 'sweep-20261126T150000Z-1a2b'
    started_at TIMESTAMP NOT NULL,   -- UTC
    seconds    DOUBLE NOT NULL,      -- wall time of the whole sweep, s
    quick      BOOLEAN NOT NULL,     -- the small --quick grid
    n_train    INTEGER NOT NULL,     -- training reviews per run
    n_val      INTEGER NOT NULL,     -- held-out training reviews for validation
    source     VARCHAR NOT NULL,     -- archive read
    config     JSON NOT NULL
)"""

SWEEP_RUNS = """
CREATE TABLE IF NOT EXISTS sweep_runs (
    sweep_id            VARCHAR NOT NULL,
    run_no              SMALLINT NOT NULL,  -- 1..36
    activation          VARCHAR NOT NULL,   -- 'relu' | 'tanh'
    loss                VARCHAR NOT NULL,   -- 'bce' (binary cross-entropy) | 'mse' (on the probability)
    hidden_units        SMALLINT NOT NULL,
    hidden_layers       SMALLINT NOT NULL,
    epochs              SMALLINT NOT NULL,
    best_epoch          SMALLINT NOT NULL,  -- epoch with the highest validation accuracy
    best_val_accuracy   DOUBLE NOT NULL,    -- 0..1
    final_val_accuracy  DOUBLE NOT NULL,
    final_val_loss      DOUBLE NOT NULL,    -- cross-entropy, nats, whatever the training loss
    seconds             DOUBLE NOT NULL,
    PRIMARY KEY (sweep_id, run_no)
)"""

SWEEP_CURVES = """
CREATE TABLE IF NOT EXISTS sweep_curves (
    sweep_id       VARCHAR NOT NULL,
    run_no         SMALLINT NOT NULL,
    epoch          SMALLINT NOT NULL,
    train_loss     DOUBLE NOT NULL,  -- cross-entropy on up to 5,000 training reviews, nats
    train_accuracy DOUBLE NOT NULL,
    val_loss       DOUBLE NOT NULL,
    val_accuracy   DOUBLE NOT NULL,
    PRIMARY KEY (sweep_id, run_no, epoch)
)"""

NEIGHBOURS = """
CREATE TABLE IF NOT EXISTS neighbours (
    run_id       VARCHAR NOT NULL,
    space        VARCHAR NOT NULL,   -- the embedding compared ('tfidf-svd')
    sample_id    VARCHAR NOT NULL,
    rank         SMALLINT NOT NULL,  -- 1 = nearest
    neighbour_id VARCHAR NOT NULL,   -- another review of the run
    similarity   FLOAT NOT NULL,     -- cosine similarity of the embeddings, -1..1
    PRIMARY KEY (run_id, space, sample_id, rank)
)"""

# --- Derived tables: written at store time from the tables above (``derive``), so that
# the app reads one narrow, pre-joined row per review instead of joining millions. ---

SAMPLE_SUMMARY = """
CREATE TABLE IF NOT EXISTS sample_summary (
    run_id          VARCHAR NOT NULL,
    sample_id       VARCHAR NOT NULL,
    path            VARCHAR NOT NULL,  -- where the text came from
    split           VARCHAR,
    label           SMALLINT NOT NULL,
    rating          DOUBLE,
    n_words         INTEGER NOT NULL,
    p_given         DOUBLE NOT NULL,   -- the linear model's out-of-fold prediction (family 'nblr', protocol 'oof')
    pred_label      SMALLINT NOT NULL,
    p_pred          DOUBLE NOT NULL,
    loss            DOUBLE NOT NULL,   -- nats
    margin          DOUBLE NOT NULL,
    correct         BOOLEAN NOT NULL,  -- pred_label = label
    label_score     DOUBLE NOT NULL,   -- label_issues, as there
    is_label_issue  BOOLEAN NOT NULL,
    suggested_label SMALLINT NOT NULL,
    issue_rank      INTEGER NOT NULL,
    reason          VARCHAR NOT NULL,
    cluster         SMALLINT,          -- on the 'tfidf-svd' map; NULL when the run has none
    x               FLOAT,
    y               FLOAT,
    preview         VARCHAR NOT NULL,  -- the first 160 characters of display_text, untrusted
    search_text     VARCHAR NOT NULL,  -- lower(display_text), for the literal text search
    suggestion      VARCHAR,           -- label_issues.suggestion; NULL in runs written before schema version 7
    PRIMARY KEY (run_id, sample_id)
)"""

MAP_POINTS = """
CREATE TABLE IF NOT EXISTS map_points (
    run_id         VARCHAR NOT NULL,
    space          VARCHAR NOT NULL,
    sample_id      VARCHAR NOT NULL,
    draw_order     INTEGER NOT NULL,  -- 1.. : flagged reviews (most suspect first) alternate with the others
                                      -- (seeded random order) until one kind runs out; a map of n points
                                      -- draws draw_order <= n
    x              FLOAT NOT NULL,
    y              FLOAT NOT NULL,
    cluster        SMALLINT NOT NULL,
    label          SMALLINT NOT NULL,
    rating         DOUBLE,
    pred_label     SMALLINT NOT NULL, -- the space's own family's out-of-fold prediction (a user's model: its own)
    loss           DOUBLE NOT NULL,
    is_label_issue BOOLEAN NOT NULL,
    preview        VARCHAR NOT NULL,  -- the first 100 characters of display_text, untrusted
    PRIMARY KEY (run_id, space, sample_id)
)"""

TABLES = {
    "lossmap_meta": META, "runs": RUNS, "classes": CLASSES, "samples": SAMPLES, "meta_columns": META_COLUMNS,
    "sample_meta": SAMPLE_META, "models": MODELS, "predictions": PREDICTIONS, "embeddings": EMBEDDINGS,
    "clusters": CLUSTERS, "shap_base": SHAP_BASE, "shap_tokens": SHAP_TOKENS, "label_issues": LABEL_ISSUES,
    "training_batches": TRAINING_BATCHES, "training_epochs": TRAINING_EPOCHS, "layer_stats": LAYER_STATS,
    "layer_histograms": LAYER_HISTOGRAMS, "information_plane": INFORMATION_PLANE, "truncation": TRUNCATION,
    "neighbours": NEIGHBOURS, "sample_summary": SAMPLE_SUMMARY, "map_points": MAP_POINTS,
    "sweeps": SWEEPS, "sweep_runs": SWEEP_RUNS, "sweep_curves": SWEEP_CURVES,
}

# Statements that fill the derived tables for one run ($run), in order; run by ``derive``.
DERIVED = (
    """INSERT INTO sample_summary
       SELECT s.run_id, s.sample_id, s.path, s.split, s.label, s.rating, s.n_words, p.p_given, p.pred_label, p.p_pred,
              p.loss, p.margin, p.pred_label = s.label, i.label_score, i.is_label_issue, i.suggested_label,
              i.issue_rank, i.reason, e.cluster, e.x, e.y, left(s.display_text, 160), lower(s.display_text),
              i.suggestion
       FROM samples s
       JOIN predictions p ON p.run_id = s.run_id AND p.sample_id = s.sample_id AND p.family = 'nblr'
                         AND p.protocol = 'oof'
       JOIN label_issues i ON i.run_id = s.run_id AND i.sample_id = s.sample_id
       LEFT JOIN embeddings e ON e.run_id = s.run_id AND e.sample_id = s.sample_id AND e.space = 'tfidf-svd'
       WHERE s.run_id = $run ORDER BY s.sample_id""",
    """INSERT INTO map_points
       SELECT run_id, space, sample_id, row_number() OVER (PARTITION BY space ORDER BY turn, is_label_issue DESC),
              x, y, cluster, label, rating, pred_label, loss, is_label_issue, preview
       FROM (SELECT e.run_id, e.space, e.sample_id, e.x, e.y, e.cluster, s.label, s.rating, p.pred_label, p.loss,
                    i.is_label_issue, left(s.display_text, 100) AS preview,
                    row_number() OVER (PARTITION BY e.space, i.is_label_issue ORDER BY
                        CASE WHEN i.is_label_issue THEN i.issue_rank END, hash(e.sample_id), e.sample_id) AS turn
       FROM embeddings e
       JOIN samples s ON s.run_id = e.run_id AND s.sample_id = e.sample_id
       JOIN predictions p ON p.run_id = e.run_id AND p.sample_id = e.sample_id AND p.family = e.family
                         AND p.protocol IN ('oof', 'own')
       JOIN label_issues i ON i.run_id = e.run_id AND i.sample_id = e.sample_id
       WHERE e.run_id = $run) ORDER BY space, 4""",
    """UPDATE clusters SET accuracy = m.accuracy, mean_loss = m.mean_loss, share_flagged = m.share_flagged,
              top_label = m.top_label, share_top = m.share_top
       FROM (WITH per_label AS (SELECT space, cluster, label, count(*) AS n FROM map_points WHERE run_id = $run
                                GROUP BY ALL),
                  top AS (SELECT space, cluster, first(label ORDER BY n DESC, label) AS top_label,
                                 max(n) / sum(n) AS share_top FROM per_label GROUP BY ALL)
             SELECT space, cluster, avg((pred_label = label)::INT) AS accuracy, avg(loss) AS mean_loss,
                    avg(is_label_issue::INT) AS share_flagged, any_value(top.top_label) AS top_label,
                    any_value(top.share_top) AS share_top
             FROM map_points JOIN top USING (space, cluster) WHERE run_id = $run GROUP BY space, cluster) m
       WHERE clusters.run_id = $run AND clusters.space = m.space AND clusters.cluster = m.cluster""",
)


SWEEP_TABLES = ("sweeps", "sweep_runs", "sweep_curves")  # written by `python -m pipeline sweep`, not by runs
OPTIONAL_TABLES = ("meta_columns", "sample_meta")  # empty when the data has no other columns (IMDB)
RUN_TABLES = tuple(t for t in TABLES if t != "lossmap_meta" and t not in SWEEP_TABLES)  # keyed by run_id
DERIVED_TABLES = ("sample_summary", "map_points")  # filled by ``derive``, never from a stage's frames


# In-place upgrades, version v -> v + 1, applied in turn up to SCHEMA_VERSION: new columns go last, as in the DDL above.
UPGRADES = {
    5: (
        "ALTER TABLE models ALTER COLUMN onnx_path DROP NOT NULL",
        "ALTER TABLE models ALTER COLUMN onnx_sha256 DROP NOT NULL",
        "ALTER TABLE models ALTER COLUMN parity_max_abs DROP NOT NULL",
        "ALTER TABLE models ALTER COLUMN provider DROP NOT NULL",
        "ALTER TABLE models ADD COLUMN name VARCHAR",
        "ALTER TABLE models ADD COLUMN source VARCHAR",
        "ALTER TABLE samples ADD COLUMN original_label SMALLINT",
        # version 5 wrote '<method> on <source>' ('self_confidence on ensemble of nblr, dense, cnn'): split once here
        "ALTER TABLE label_issues ADD COLUMN ranked_on VARCHAR[]",
        """UPDATE label_issues SET
               ranked_on = CASE WHEN contains(method, ' on ensemble of ')
                                THEN string_split(split_part(method, ' on ensemble of ', 2), ', ')
                                WHEN contains(method, ' on ') THEN [split_part(method, ' on ', 2)] END,
               method = CASE WHEN contains(method, ' on ') THEN split_part(method, ' on ', 1) ELSE method END""",
    ),
    6: tuple(f"ALTER TABLE label_issues ADD COLUMN {column}" for column in (
        "n_models SMALLINT", "models_disagree SMALLINT", "neighbours_disagree DOUBLE", "stated_label SMALLINT",
        "stated_text VARCHAR", "duplicate_of VARCHAR", "is_outlier BOOLEAN", "outlier_score DOUBLE", "sentence_mix DOUBLE",
        "suggestion VARCHAR", "ambiguity VARCHAR")) + ("ALTER TABLE sample_summary ADD COLUMN suggestion VARCHAR",),
}


def upgrade(con: duckdb.DuckDBPyConnection) -> int | None:
    """Bring a store of an ``UPGRADABLE`` version up to SCHEMA_VERSION in place (inside the caller's write); returns
    the version it had, or None when it was already current or empty. Call after ``check_version(..., upgradable=True)``."""
    has_meta = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
                           "AND table_name = 'lossmap_meta'").fetchone()[0]
    row = con.execute("SELECT value FROM lossmap_meta WHERE key = 'schema_version'").fetchone() if has_meta else None
    if row is None or row[0] == str(SCHEMA_VERSION):
        return None
    found = int(row[0])
    for version in range(found, SCHEMA_VERSION):  # each step brings version v to v + 1
        for sql in UPGRADES[version]:
            con.execute(sql)
    con.execute("UPDATE lossmap_meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])
    return found


def derive(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Fill the derived tables of one run from its stored tables (inside the run's write)."""
    for sql in DERIVED:
        con.execute(sql, {"run": run_id})


class StoreError(Exception):
    """The store cannot be used; the message says why and what to do."""


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Check the store, then create every table that is missing and stamp the schema version (idempotent)."""
    check_version(con, allow_empty=True)
    create_tables(con)


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """``ensure_schema`` without its check, for a store already checked (``files.publish`` checks it with the
    built-ins first, then switches to the store's schema to create tables)."""
    for ddl in TABLES.values():
        con.execute(ddl)
    con.execute(
        "INSERT OR IGNORE INTO lossmap_meta VALUES ('schema_version', ?), ('created_by', 'lossmap pipeline')",
        [str(SCHEMA_VERSION)],
    )


def check_version(con: duckdb.DuckDBPyConnection, *, allow_empty: bool = False, upgradable: bool = False) -> None:
    """Raise StoreError unless the store was written with SCHEMA_VERSION (or, with ``upgradable``, a version
    ``upgrade`` brings up to date) and holds nothing but tables."""
    objects = guard.foreign_objects(con)
    if objects:
        raise StoreError(
            f"this file holds {guard.describe(objects)}, which a Lossmap store never has: it was made or changed "
            "outside Lossmap, and what it defines would run in every query. Lossmap does not open it; ask whoever "
            "shared it for a store written by `python -m pipeline run`, or make your own."
        )
    added = guard.foreign_expressions(con, tuple(TABLES.values()))
    if added:
        raise StoreError(
            f"this file's tables carry SQL that a Lossmap store never has ({guard.describe(added)}): it was made or "
            "changed outside Lossmap, and that SQL would run when the tables are read or written. Lossmap does not "
            "open it; ask whoever shared it for a store written by `python -m pipeline run`, or make your own."
        )
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM system.main.duckdb_tables() WHERE database_name NOT IN ('system', 'temp')").fetchall()}
    if "lossmap_meta" not in tables:
        if allow_empty and not tables:
            return
        raise StoreError(
            "this DuckDB file is not a Lossmap store (it has no lossmap_meta table). "
            "Pass another --db, or move the file away and run `python -m pipeline run` to make a new store."
        )
    row = con.execute("SELECT value FROM lossmap_meta WHERE key = 'schema_version'").fetchone()
    found = row[0] if row else "unknown"
    if found.isdigit() and int(found) > SCHEMA_VERSION:
        raise StoreError(
            f"this store was written by a newer Lossmap (schema version {found}; this one reads version "
            f"{SCHEMA_VERSION}). Update Lossmap (git pull, then pip install -r requirements.txt) to read it."
        )
    if found.isdigit() and int(found) in UPGRADABLE:
        if upgradable:
            return
        raise StoreError(
            f"this store was written by an earlier Lossmap (schema version {found}; this one reads version "
            f"{SCHEMA_VERSION}). Upgrade it in place, keeping its runs and decisions: `python -m pipeline upgrade "
            "--db PATH` (the next `python -m pipeline run --db PATH` upgrades it too)."
        )
    if found != str(SCHEMA_VERSION):
        raise StoreError(
            f"this store was written with schema version {found}; this Lossmap reads version {SCHEMA_VERSION}. "
            "Run `python -m pipeline run --db NEW_PATH` to make a new store (the old one is left untouched)."
        )
