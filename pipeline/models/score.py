"""Score reviews with exported ONNX models through ONNX Runtime.

``OnnxTextModel.load(path, device=...)`` opens a model written by
``pipeline.models.export``; ``score_counts`` takes an (N, V_model) sparse count matrix in
the model's own vocabulary order, ``score_texts`` takes raw review text and
tokenizes it with the spec stored in the file. Both return (N,) ``p_pos`` and
``logit`` as float64 arrays.

``providers(device)`` asks for the CUDA provider only when a GPU driver is
present, so a CPU machine prints no errors. ``check_parity`` compares ONNX and
native probabilities and raises ``ParityError`` past the tolerance.
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

from pipeline.models.export import META_MODEL, META_TOKENIZER, META_VOCAB
from pipeline.data.imdb import display_text

DEVICES = ("auto", "cpu", "cuda")
PARITY_ATOL = 1e-4  # largest allowed |p_onnx - p_native|
_BATCH = 512


class ParityError(RuntimeError):
    """ONNX Runtime and the native model disagree beyond PARITY_ATOL."""


# Full-precision float32 on the GPU: with TF32 (ONNX Runtime's default on Ampere and later)
# the networks' probabilities moved up to 9e-4 from the CPU's on an H100, past PARITY_ATOL.
CUDA_OPTIONS = {"use_tf32": "0"}


def cuda_usable() -> bool:
    """True when ONNX Runtime has the CUDA provider and an NVIDIA driver is loaded."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def providers(device: str = "auto") -> list[str]:
    """Execution providers for ``device``: auto | cpu | cuda."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {device!r}")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if cuda_usable():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise ValueError("--device cuda was asked for, but no usable CUDA GPU was found; use --device auto or cpu")
    return ["CPUExecutionProvider"]


class _OnnxModel:
    """An ONNX Runtime session plus the vocabulary and tokenizer shipped in the file."""

    def __init__(self, session: ort.InferenceSession, path: Path):
        meta = session.get_modelmeta().custom_metadata_map
        self.session = session
        self.path = Path(path)
        self.model_id = meta[META_MODEL]
        self.vocab = np.array(json.loads(meta[META_VOCAB]), dtype=object)
        self.tokenizer = json.loads(meta[META_TOKENIZER])

    @classmethod
    def load(cls, path: Path, *, device: str = "auto"):
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        chosen = [(name, CUDA_OPTIONS) if name == "CUDAExecutionProvider" else name for name in providers(device)]
        return cls(ort.InferenceSession(str(path), options, providers=chosen), path)

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def vectorizer(self, *, binary: bool = False) -> CountVectorizer:
        """The tokenizer shipped in the file, over this model's vocabulary (binary: 0/1 counts)."""
        spec = self.tokenizer
        return CountVectorizer(
            lowercase=spec["lowercase"], token_pattern=spec["token_pattern"], ngram_range=tuple(spec["ngram_range"]),
            vocabulary=list(self.vocab), binary=binary, dtype=np.float32,
        )

    def columns_in(self, vocab: np.ndarray) -> np.ndarray:
        """(V_model,) position of each of this model's terms in another vocabulary (-1: absent)."""
        return pd.Index(vocab).get_indexer(self.vocab)


class OnnxTextModel(_OnnxModel):
    """A linear model exported by ``export.export_onnx``: bags of n-gram ids in."""

    def score_counts(self, counts: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """(p_pos, logit) for an (N, V_model) count matrix in this model's vocabulary order."""
        counts = sp.csr_matrix(counts, dtype=np.float32)
        if counts.shape[1] != len(self.vocab):
            raise ValueError(f"counts have {counts.shape[1]} columns; {self.model_id} has {len(self.vocab)} terms")
        counts.sort_indices()
        p = np.empty(counts.shape[0])
        logit = np.empty(counts.shape[0])
        order = np.argsort(np.diff(counts.indptr), kind="stable")  # similar lengths share a batch
        for start in range(0, len(order), _BATCH):
            rows = order[start : start + _BATCH]
            ids, cnt = _padded(counts[rows])
            p[rows], logit[rows] = self.session.run(["p_pos", "logit"], {"term_ids": ids, "counts": cnt})
        return p, logit

    def score_texts(self, texts) -> tuple[np.ndarray, np.ndarray]:
        """(p_pos, logit) for raw review texts, tokenized as the model was trained."""
        cleaned = [display_text(t) for t in texts]
        return self.score_counts(self.vectorizer().transform(cleaned))


class OnnxNetwork(_OnnxModel):
    """A network exported by ``export.export_network``: multi-hot or word ids in, (p_pos, embedding) out."""

    def score(self, x) -> tuple[np.ndarray, np.ndarray]:
        """(p_pos, embedding) for encoded inputs: a multi-hot matrix or an (N, L) word-id array."""
        return self.score_multi_hot(x) if sp.issparse(x) else self.score_ids(x)

    def score_ids(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p_pos (N,), embedding (N, d)) for (N, L) int64 word ids (0 padding, 1 unknown)."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.vocab) + 2):
            raise ValueError(f"word ids must lie in [0, {len(self.vocab) + 1}] for {self.model_id}")
        ps, embs = [], []
        for start in range(0, ids.shape[0], _BATCH):
            p, emb = self.session.run(["p_pos", "embedding"], {"token_ids": ids[start:start + _BATCH]})
            ps.append(p)
            embs.append(emb)
        if not ps:
            return np.empty(0), np.empty((0, 0), dtype=np.float32)
        return np.concatenate(ps).astype(np.float64), np.concatenate(embs)

    def score_multi_hot(self, x: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """(p_pos (N,), embedding (N, hidden)) for an (N, V) 0/1 matrix in this model's vocabulary order."""
        if x.shape[1] != len(self.vocab):
            raise ValueError(f"input has {x.shape[1]} columns; {self.model_id} has {len(self.vocab)} words")
        ps, embs = [], []
        for start in range(0, x.shape[0], _BATCH * 4):
            block = np.asarray(x[start:start + _BATCH * 4].todense(), dtype=np.float32)
            p, emb = self.session.run(["p_pos", "embedding"], {"x": block})
            ps.append(p)
            embs.append(emb)
        if not ps:
            return np.empty(0), np.empty((0, 0), dtype=np.float32)
        return np.concatenate(ps).astype(np.float64), np.concatenate(embs)


def _padded(block: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.diff(block.indptr)
    width = max(int(lengths.max(initial=0)), 1)
    mask = np.arange(width) < lengths[:, None]
    ids = np.zeros((block.shape[0], width), dtype=np.int64)
    cnt = np.zeros((block.shape[0], width), dtype=np.float32)
    ids[mask] = block.indices
    cnt[mask] = block.data
    return ids, cnt


def check_parity(onnx_p: np.ndarray, native_p: np.ndarray, *, model_id: str, atol: float = PARITY_ATOL) -> float:
    """Largest |onnx - native| probability; raises ParityError above ``atol``."""
    worst = float(np.max(np.abs(np.asarray(onnx_p) - np.asarray(native_p)), initial=0.0))
    if not worst <= atol:
        raise ParityError(f"{model_id}: ONNX and scikit-learn differ by {worst:.2e} in probability (limit {atol:.0e})")
    return worst
