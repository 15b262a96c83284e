"""The pipeline's one configuration object.

`Config` is frozen and checks itself when built: every stage reads it, none changes
it. The allowed values of each option are constants of the module that implements it
(``TRUNCATIONS`` in ``models.sequences``, ``METHODS`` and ``SOURCES`` in
``analyses.issues``, ``DEVICES`` in ``models.devices``, ``ENGINES`` in ``engine``); the CLI (`python -m pipeline
run ...`) takes its choices from the same constants and builds `Config` from its
fields; tests build it directly. Those modules are imported when a Config is checked,
not when this one is: the app imports ``DEFAULT_DB`` from here, and every module a
Streamlit server has loaded costs it time on each page visit (scikit-learn's thousands
made each page about 0.6 s slower).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

from pipeline.names import NETWORKS

DEFAULT_DB = Path("data") / "lossmap.duckdb"
DATA_ENV = "IMDB_DATA"


@dataclasses.dataclass(frozen=True)
class Config:
    # --- input ---
    data: Path | None = None  # a table, a text folder, or the IMDB archive; None: $IMDB_DATA, then data/, then download
    text_column: str | None = None  # tables: column of the texts; None: the one named like text/review/sentence/content
    label_column: str | None = None  # tables: column of the labels; None: the one named like label/target/class/...
    id_column: str | None = None  # tables: stable ids; None: a column named id/sample_id, else derived from the text
    split_column: str | None = None  # tables: train/test/validation; a conventional model is trained on 'train'
    group_column: str | None = None  # tables: rows sharing a value never sit on both sides of a fold
    score_column: str | None = None  # tables: a numeric column such as a star rating (charts and filters)
    memory_limit_mib: float | None = None  # refuse data whose run would need more memory; None: what is available
    max_member_mib: float = 16.0  # refuse an archive member or folder file larger than this, MiB (bombs)
    max_input_mib: float = 2048.0  # refuse an archive or .gz table that unpacks to more than this, MiB
    data_dir: Path = Path("data")  # where the IMDB archive is searched for and downloaded to
    sample: int | None = None  # rows to keep (seeded, class-stratified); None keeps all
    seed: int = 0  # seed for sampling, folds, SVD and UMAP
    flip_fraction: float = 0.0  # share of labels changed at random before training (benchmarks only)
    relabel: Path | None = None  # decisions (the app's decisions file or its relabel CSV) applied as label overrides
    relabel_split: str | None = None  # apply them only to this split's rows (IMDB: train, keeping test as it is)

    # --- the user's own model (issue 13): its predictions, or the model itself ---
    predictions: Path | None = None  # a predictions file: ids, per-class probabilities, optional embedding
    predictor_name: str | None = None  # how pages name it; None: the file's name
    predictions_id_column: str | None = None  # its id column; None: sample_id or id
    model: Path | None = None  # an ONNX classifier scored on every text (string input or input_ids/attention_mask)
    model_name: str | None = None  # how pages name it; None: the file's name
    tokenizer: Path | None = None  # tokenizer.json for a transformer graph (the tokenizers library reads it)
    model_outputs: str = "auto"  # what the model's class output holds: auto | logits | probs
    model_classes: tuple[str, ...] | None = None  # the model's class names in its output's order; None: by name, or
    # the data's order (sorted names, numerically when all are integers)
    max_tokens: int = 512  # transformer graphs: tokens per text (longer texts are truncated)
    trained_on: str | None = None  # the split the user's model trained on (those rows are marked seen in training)

    # --- model: TF-IDF (word n-grams) + NB log-count ratio + logistic regression ---
    ngram_max: int = 2  # longest word n-gram used as a feature
    min_df: int = 3  # a feature must occur in this many training reviews
    max_features: int = 400_000  # cap on the vocabulary, most frequent first
    nb_alpha: float = 1.0  # smoothing of the NB log-count ratio
    C: float = 30.0  # inverse L2 strength of the logistic regression (two classes)
    C_multiclass: float = 10.0  # the same for more than two classes (multinomial, no NB ratio; bench/rating_task.py)
    folds: int = 5  # cross-fitting folds, grouped (by movie for IMDB, by --group for tables)
    prune: bool = True  # refit the fold models without the reviews a first round flags (confident learning)

    # --- model: Chollet's dense network (PyTorch) ---
    dense: bool = True  # also train the dense network (cross-fitted and conventional)
    dense_vocab: int = 10_000  # multi-hot input: this many most frequent words
    dense_hidden: int = 16  # units per hidden layer
    dense_layers: int = 2  # hidden layers
    dense_epochs: int = 4  # passes over the training reviews
    dense_batch: int = 512  # reviews per batch
    dense_lr: float = 1e-3  # RMSprop learning rate

    # --- models: sequence networks over word ids (PyTorch) ---
    cnn: bool = True  # train the CNN (embeddings, 1-D convolution, max+mean pooling)
    bilstm: bool = False  # train the bidirectional LSTM too (opt-in: about twice as slow as the CNN to train here)
    max_len: int = 256  # words a sequence network reads per review
    truncation: str = "head_tail"  # which words it keeps from longer reviews: head | head_tail (first + last half)
    seq_vocab: int = 20_000  # words in the sequence networks' vocabulary (the rest share one id)
    seq_embed: int = 64  # word embedding width
    cnn_filters: int = 64  # convolution filters (128 trained 1.6x slower, no more accurate: README)
    cnn_kernel: int = 5  # words per filter
    lstm_units: int = 64  # LSTM units per direction
    seq_hidden: int = 32  # width of the dense layer before the output (the stored embedding)
    cnn_epochs: int = 2
    bilstm_epochs: int = 2
    seq_batch: int = 64  # reviews per batch
    seq_lr: float = 2e-3  # Adam learning rate in the first epoch
    seq_lr_decay: float = 0.3  # learning rate multiplied by this after each epoch
    window_stride: int = 128  # truncation analysis: words between the starts of sliding windows
    probe_size: int = 1000  # training reviews on which layer telemetry and the information plane are taken

    # --- analysis ---
    shap_top_k: int = 30  # token attributions stored per sample and explained class, by |value|
    svd_dim: int = 100  # width of the dense embedding (truncated SVD of TF-IDF)
    umap_neighbors: int = 15  # UMAP n_neighbors for the 2-D map
    umap_epochs: int = 100  # UMAP optimisation epochs (its own default on large data: 200, for the same map)
    clusters: int = 12  # k-means clusters on the embedding
    chunk_rows: int = 100_000  # texts per chunk where the n-grams are counted in chunks (a task each on Ray)
    map_fit_rows: int = 100_000  # above this many reviews the maps are fit on a seeded sample of it and the rest
    # placed by transform (analyses.project); at or below it they are exact
    neighbours: int = 10  # most similar reviews stored per review (cosine, TF-IDF embedding)
    issue_method: str = "self_confidence"  # cleanlab ranking, one of analyses.issues.METHODS
    issue_source: str = "stacked"  # probabilities ranked, one of analyses.issues.SOURCES (imported/onnx: your
    # model's). stacked ranked the people-judged real errors best (bench/real_errors.py) and held the injected-flip
    # figures (bench/label_noise.py); README "Which ranking" has both tables. With the linear model alone it is nblr

    # --- runtime ---
    device: str = "auto"  # ONNX Runtime provider and PyTorch device, one of models.devices.DEVICES (auto: CUDA when
    # usable: ONNX Runtime's CUDA provider for scoring, and a CUDA build of PyTorch for training the networks)
    engine: str = "local"  # where fold models, scoring and SHAP run, one of engine.ENGINES: this process, or Ray
    ray_address: str | None = None  # --engine ray: the cluster (HOST:PORT or auto); None starts Ray here
    db: Path = DEFAULT_DB  # the DuckDB store
    models_dir: Path = Path("data") / "models"  # where ONNX files are written, one folder per run
    progress: bool = True  # show progress bars

    def __post_init__(self):
        from pipeline.analyses.issues import METHODS, SOURCES
        from pipeline.engine import ENGINES
        from pipeline.models.devices import DEVICES
        from pipeline.models.sequences import TRUNCATIONS
        from pipeline.models.user_onnx import OUTPUTS
        from pipeline.names import IMPORTED, ONNX

        _choice("truncation", self.truncation, TRUNCATIONS)
        _choice("issue_method", self.issue_method, METHODS)
        _choice("issue_source", self.issue_source, SOURCES)
        _choice("device", self.device, DEVICES)
        _choice("engine", self.engine, ENGINES)
        if self.ray_address is not None and self.engine != "ray":
            raise ValueError("--ray-address names a Ray cluster: it goes with --engine ray")
        _choice("model_outputs", self.model_outputs, OUTPUTS)
        if self.issue_source == IMPORTED and self.predictions is None:
            raise ValueError("--issue-source imported ranks on your predictions: give them with --predictions FILE")
        if self.issue_source == ONNX and self.model is None:
            raise ValueError("--issue-source onnx ranks on your ONNX model: give it with --model FILE.onnx")
        if self.relabel is not None and Path(self.relabel).resolve() == Path(self.db).resolve():
            raise ValueError(f"--relabel {self.relabel} is the store this run writes; pass the decisions file beside "
                             "it (<store>.decisions.duckdb) or the relabel CSV")
        if self.relabel_split is not None and self.relabel is None:
            raise ValueError("--relabel-split goes with --relabel FILE")
        if self.trained_on is not None and self.predictions is None and self.model is None:
            raise ValueError("--trained-on says which split your own model trained on: it goes with --predictions or "
                             "--model")
        if self.model_classes is not None and self.model is None:
            raise ValueError("--model-classes goes with --model FILE.onnx")
        if self.tokenizer is not None and self.model is None:
            raise ValueError("--tokenizer goes with --model FILE.onnx (a transformer graph)")
        for name, least in (("folds", 2), ("ngram_max", 1), ("min_df", 1), ("max_features", 1), ("dense_vocab", 1),
                            ("dense_hidden", 1), ("dense_layers", 1), ("dense_epochs", 1), ("dense_batch", 1),
                            ("max_len", 2), ("seq_vocab", 1), ("seq_embed", 1), ("cnn_filters", 1), ("cnn_kernel", 1),
                            ("lstm_units", 1), ("seq_hidden", 1), ("cnn_epochs", 1), ("bilstm_epochs", 1),
                            ("seq_batch", 1), ("window_stride", 1), ("probe_size", 2), ("shap_top_k", 1),
                            ("svd_dim", 2), ("umap_neighbors", 2), ("umap_epochs", 1), ("clusters", 1),
                            ("neighbours", 1), ("max_tokens", 2), ("map_fit_rows", 100),
                            ("chunk_rows", 100)):
            if getattr(self, name) < least:
                raise ValueError(f"{name} must be at least {least}; got {getattr(self, name)}")
        if self.sample is not None and self.sample < 2:
            raise ValueError(f"sample must be at least 2; got {self.sample}")
        if not 0 <= self.seed < 2**32:  # what numpy's and scikit-learn's generators take
            raise ValueError(f"seed must lie in [0, 2**32 - 1]; got {self.seed}")
        if not 0.0 <= self.flip_fraction <= 0.5:
            raise ValueError(f"flip_fraction must lie in [0, 0.5]; got {self.flip_fraction}")
        for name in ("C", "C_multiclass", "nb_alpha", "dense_lr", "seq_lr"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be a positive number; got {getattr(self, name)}")
        for name in ("max_member_mib", "max_input_mib"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name):g}")
        if self.max_tokens > 1_000_000:
            raise ValueError(f"max_tokens must be at most 1,000,000; got {self.max_tokens:,}")
        if self.memory_limit_mib is not None and not self.memory_limit_mib > 0:
            raise ValueError(f"memory_limit_mib must be positive; got {self.memory_limit_mib}")

    def data_source(self) -> Path | None:
        """The explicit data path: --data, else $IMDB_DATA, else None."""
        if self.data is not None:
            return Path(self.data)
        env = os.environ.get(DATA_ENV)
        return Path(env) if env else None

    def limits(self):
        """What the input may unpack to (``data.unpack.Limits``)."""
        from pipeline.data.unpack import Limits

        return Limits(member_mib=self.max_member_mib, input_mib=self.max_input_mib)

    def families(self) -> list[str]:
        """The network families this run trains, in training order (the linear model always runs)."""
        return [f for f in NETWORKS if getattr(self, f)]


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
