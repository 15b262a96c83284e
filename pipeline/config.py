"""The pipeline's one configuration object.

`Config` is frozen: every stage reads it, none changes it. The CLI (`python -m
pipeline run ...`) builds it from its options; tests build it directly.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

DEFAULT_DB = Path("data") / "lossmap.duckdb"
DATA_ENV = "IMDB_DATA"


@dataclasses.dataclass(frozen=True)
class Config:
    # --- input ---
    data: Path | None = None  # archive or extracted aclImdb/ folder; None: $IMDB_DATA, then data/, then download
    data_dir: Path = Path("data")  # where archives are searched for and downloaded to
    sample: int | None = None  # reviews to keep (seeded, label-stratified); None keeps all 50,000
    seed: int = 0  # seed for sampling, folds, SVD and UMAP
    flip_fraction: float = 0.0  # share of labels flipped at random before training (benchmarks only)

    # --- model: TF-IDF (word n-grams) + NB log-count ratio + logistic regression ---
    ngram_max: int = 2  # longest word n-gram used as a feature
    min_df: int = 3  # a feature must occur in this many training reviews
    max_features: int = 400_000  # cap on the vocabulary, most frequent first
    nb_alpha: float = 1.0  # smoothing of the NB log-count ratio
    C: float = 30.0  # inverse L2 strength of the logistic regression
    folds: int = 5  # cross-fitting folds, grouped by movie_id
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
    cnn_filters: int = 128  # convolution filters
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
    shap_top_k: int = 30  # token attributions stored per sample, by |value|
    svd_dim: int = 100  # width of the dense embedding (truncated SVD of TF-IDF)
    umap_neighbors: int = 15  # UMAP n_neighbors for the 2-D map
    clusters: int = 12  # k-means clusters on the embedding
    neighbours: int = 10  # most similar reviews stored per review (cosine, TF-IDF embedding)
    issue_method: str = "self_confidence"  # cleanlab ranking: self_confidence | normalized_margin | confidence_weighted_entropy
    issue_source: str = "nblr"  # out-of-fold probabilities ranked: nblr | ensemble (mean of every model's); nblr
    # ranked 5% flips better (AP 0.771 vs 0.754, bench/label_noise.py), so it is the default

    # --- runtime ---
    device: str = "auto"  # ONNX Runtime provider: auto (CUDA when usable) | cpu | cuda
    db: Path = DEFAULT_DB  # the DuckDB store
    models_dir: Path = Path("data") / "models"  # where ONNX files are written, one folder per run
    progress: bool = True  # show progress bars

    def data_source(self) -> Path | None:
        """The explicit data path: --data, else $IMDB_DATA, else None."""
        if self.data is not None:
            return Path(self.data)
        env = os.environ.get(DATA_ENV)
        return Path(env) if env else None
