"""Score texts with exported ONNX models through ONNX Runtime; one family's scores as ``Scored``.

``OnnxTextModel.load(path, device=...)`` opens a linear model written by
``pipeline.models.export``: ``score_counts`` takes an (N, V_model) sparse count matrix
in the model's own vocabulary order, ``score_texts`` raw text, tokenized with the spec
stored in the file. ``OnnxNetwork`` opens a network: ``score`` takes its encoded input
and also returns the embedding. Every model returns (N, K) class probabilities
(float64), class order as stored in the file's metadata; with two classes, class 0's is
1 - p(class 1) in float64 (``_two_classes``), as the binary models always computed it,
so the IMDB figures do not move with the float32 subtraction in the graph.

``load_stored(db, run_id, model_id)`` opens a model a run wrote, only if its file still has
the sha256 the run recorded (``ModelFileError`` otherwise). ``check_parity`` compares ONNX and native probabilities and raises ``ParityError``
past the tolerance. ``Scored`` holds what one family's scoring produced: model rows
(``model_row``), prediction rows (``pipeline.models.outputs``) and the (N, K)
out-of-fold probabilities in the dataset's row order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

from pipeline.data.dataset import display_text
from pipeline.engine import LocalEngine, by_group, spread, stacked
from pipeline.models.devices import CUDA_OPTIONS, cuda_usable, providers  # noqa: F401  (re-exported)
from pipeline.models.export import META_CLASSES, META_MODEL, META_TOKENIZER, META_VOCAB
from pipeline.models.outputs import predicted_class
from pipeline.names import CONVENTIONAL, FOLD

_MAX_MODEL_BYTES = 2 << 30  # a stored model larger than this is not one a run wrote (ONNX's protobuf limit)
PARITY_ATOL = 1e-4  # largest allowed |p_onnx - p_native|
_BATCH = 512


class ParityError(RuntimeError):
    """ONNX Runtime and the native model disagree beyond PARITY_ATOL."""


class ModelFileError(RuntimeError):
    """A stored model's file is missing or is not the file its run wrote."""


def load_stored(db: Path, run_id: str, model_id: str, *, device: str = "auto") -> "_OnnxModel":
    """A model of a stored run (``OnnxTextModel`` or ``OnnxNetwork``), checked against the sha256 the run recorded.

    Paths in the store are relative to its folder (or absolute when the models folder was elsewhere)."""
    from pipeline.store.files import cursor, open_readonly

    con = open_readonly(Path(db))
    try:
        row = cursor(con).execute("SELECT family, onnx_path, onnx_sha256 FROM models WHERE run_id = ? AND model_id = ?",
                                  [run_id, model_id]).fetchone()
    finally:
        con.close()
    if row is None:
        raise ModelFileError(f"run {run_id} of {db} has no model {model_id!r}.")
    family, stored_path, digest = row
    path = Path(stored_path) if Path(stored_path).is_absolute() else Path(db).parent / stored_path
    kind = OnnxTextModel if family == "nblr" else OnnxNetwork
    return kind.load(path, device=device, sha256=digest)


def _session_args(device: str) -> tuple[ort.SessionOptions, list]:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    return options, [(name, CUDA_OPTIONS) if name == "CUDAExecutionProvider" else name for name in providers(device)]


class _OnnxModel:
    """An ONNX Runtime session plus the vocabulary, classes and tokenizer shipped in the file."""

    def __init__(self, session: ort.InferenceSession, path: Path):
        meta = session.get_modelmeta().custom_metadata_map
        self.session = session
        self.path = Path(path)
        self.model_id = meta[META_MODEL]
        self.vocab = np.array(json.loads(meta[META_VOCAB]), dtype=object)
        self.tokenizer = json.loads(meta[META_TOKENIZER])
        self.classes = tuple(json.loads(meta[META_CLASSES]))

    @classmethod
    def load(cls, path: Path, *, device: str = "auto", sha256: str | None = None):
        """Open ``path``; with ``sha256``, only if the file's bytes have that digest (the bytes checked are the
        bytes loaded), else ``ModelFileError``."""
        options, chosen = _session_args(device)
        if sha256 is None:
            return cls(ort.InferenceSession(str(path), options, providers=chosen), path)
        try:
            if not Path(path).is_file() or Path(path).stat().st_size > _MAX_MODEL_BYTES:
                raise OSError(f"not a regular file under {_MAX_MODEL_BYTES >> 30} GiB")
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ModelFileError(f"the model file {path} cannot be read ({exc.strerror or exc}); run the pipeline "
                                 "again to rebuild it.") from None
        found = hashlib.sha256(data).hexdigest()
        if found != sha256:
            raise ModelFileError(f"{path} is not the model file the run wrote (sha256 {found[:16]}..., the run "
                                 f"recorded {sha256[:16]}...): it was changed or replaced since. Run the pipeline "
                                 "again to rebuild it.")
        return cls(ort.InferenceSession(data, options, providers=chosen), path)

    @classmethod
    def from_bytes(cls, model: bytes, *, device: str = "auto", name: str = "(model bytes)"):
        """A session on a model's bytes (a Ray worker's copy, from the object store)."""
        return cls(ort.InferenceSession(model, *_session_args(device)), Path(name))

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

    def columns_in(self, vocab: np.ndarray | pd.Index) -> np.ndarray:
        """(V_model,) position of each of this model's terms in another vocabulary (-1: absent)."""
        return (vocab if isinstance(vocab, pd.Index) else pd.Index(vocab)).get_indexer(self.vocab)


class OnnxTextModel(_OnnxModel):
    """A linear model exported by ``export.export_onnx``: bags of n-gram ids in, class probabilities out."""

    def score_counts(self, counts: sp.csr_matrix) -> np.ndarray:
        """(N, K) probabilities for an (N, V_model) count matrix in this model's vocabulary order."""
        counts = sp.csr_matrix(counts, dtype=np.float32)
        if counts.shape[1] != len(self.vocab):
            raise ValueError(f"counts have {counts.shape[1]} columns; {self.model_id} has {len(self.vocab)} terms")
        counts.sort_indices()
        probs = np.empty((counts.shape[0], len(self.classes)))
        order = np.argsort(np.diff(counts.indptr), kind="stable")  # similar lengths share a batch
        for start in range(0, len(order), _BATCH):
            rows = order[start : start + _BATCH]
            ids, cnt = _padded(counts[rows])
            probs[rows] = self.session.run(["probs"], {"term_ids": ids, "counts": cnt})[0]
        return _two_classes(probs)

    def score_texts(self, texts) -> np.ndarray:
        """(N, K) probabilities for raw texts, tokenized as the model was trained."""
        cleaned = [display_text(t) for t in texts]
        return self.score_counts(self.vectorizer().transform(cleaned))


class OnnxNetwork(_OnnxModel):
    """A network exported by ``export.export_network``: multi-hot or word ids in, (probs, embedding) out."""

    def score(self, x) -> tuple[np.ndarray, np.ndarray]:
        """(probs (N, K), embedding (N, d)) for encoded inputs: a multi-hot matrix or an (N, L) word-id array."""
        return self.score_multi_hot(x) if sp.issparse(x) else self.score_ids(x)

    def score_ids(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probs (N, K), embedding (N, d)) for (N, L) int64 word ids (0 padding, 1 unknown)."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.vocab) + 2):
            raise ValueError(f"word ids must lie in [0, {len(self.vocab) + 1}] for {self.model_id}")
        return self._run("token_ids", (ids[s:s + _BATCH] for s in range(0, ids.shape[0], _BATCH)))

    def score_multi_hot(self, x: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """(probs (N, K), embedding (N, hidden)) for an (N, V) 0/1 matrix in this model's vocabulary order."""
        if x.shape[1] != len(self.vocab):
            raise ValueError(f"input has {x.shape[1]} columns; {self.model_id} has {len(self.vocab)} words")
        step = _BATCH * 4
        return self._run("x", (np.asarray(x[s:s + step].todense(), dtype=np.float32)
                               for s in range(0, x.shape[0], step)))

    def _run(self, name: str, blocks) -> tuple[np.ndarray, np.ndarray]:
        ps, embs = [], []
        for block in blocks:
            p, emb = self.session.run(["probs", "embedding"], {name: block})
            ps.append(p)
            embs.append(emb)
        if not ps:
            return np.empty((0, len(self.classes))), np.empty((0, 0), dtype=np.float32)
        return _two_classes(np.concatenate(ps).astype(np.float64)), np.concatenate(embs)


def model_jobs(rows_per_model, n_rows: int) -> pd.DataFrame:
    """The jobs of a scoring pass (``engine.map_batches``): one per (``model``, ``row``), model by model; each row
    one of the ``n_rows`` the pass reads."""
    for rows in rows_per_model:
        rows = np.asarray(rows)
        if rows.size and (rows.dtype.kind not in "iu" or rows.min() < 0 or rows.max() >= n_rows):
            raise ValueError(f"rows to score must be whole numbers in [0, {n_rows:,}); got {rows.dtype} from "
                             f"{rows.min()} to {rows.max()}")
    return pd.concat([pd.DataFrame({"model": j, "row": np.asarray(rows, dtype=np.int64)})
                      for j, rows in enumerate(rows_per_model)] or [pd.DataFrame({"model": [], "row": []})],
                     ignore_index=True)


def per_model(found: pd.DataFrame, sizes: list[int]) -> list[pd.DataFrame]:
    """A scoring pass's output cut back into each model's rows, checked to be one output row per job."""
    if not np.array_equal(found["job"].to_numpy(), np.arange(sum(sizes))):
        raise RuntimeError(f"ONNX scoring returned {len(found):,} rows for {sum(sizes):,} reviews")
    starts = np.cumsum([0, *sizes])
    return [found.iloc[a:b] for a, b in zip(starts[:-1], starts[1:])]


_NETWORK_BATCH = 1024  # reviews per batch of the engine (a Ray Data batch)


def network_outputs(models: list[tuple[bytes, object, np.ndarray]], data, *, device: str, engine=None,
                    progress: bool = False) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """For each (ONNX bytes, the network's input encoder, rows) of ``models``: (the (len(rows), K) probabilities,
    the (len(rows), d) float32 embedding, the ONNX Runtime provider); (0, 0) arrays and no provider for a model
    given no rows. The encoder (``train_nn.MultiHotInput`` or ``SequenceInput``) turns rows of ``data``
    (``train_nn.NetworkData``) into the network's input. The rows go through ``engine.map_batches``
    (``pipeline.engine``; this process when None): on Ray, a pool of actors that each hold a session per model and
    read ``data`` from the object store."""
    found = (engine or LocalEngine()).map_batches(
        _NetworkScorer, ([(onnx, inputs) for onnx, inputs, _ in models], data, device),
        model_jobs([rows for _, _, rows in models], data.n_rows), desc="networks: score and embed (ONNX Runtime)",
        batch_rows=_NETWORK_BATCH, progress=progress)
    return [(stacked(mine, "p"), stacked(mine, f"e{j}_", np.float32),  # embeddings' widths differ: one set per model
             str(mine["provider"].iloc[0]) if len(mine) else "")
            for j, mine in enumerate(per_model(found, [len(rows) for _, _, rows in models]))]


class _NetworkScorer:
    """A batch worker (``engine.map_batches``): a session per network; each job's review encoded as its network reads
    it, and scored: probabilities and embedding."""

    def __init__(self, shared):
        models, self.data, device = shared
        self.models = [(OnnxNetwork.from_bytes(onnx, device=device), inputs) for onnx, inputs in models]

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return by_group(batch, "model", self._score)

    def _score(self, j: int, rows: np.ndarray) -> pd.DataFrame:
        session, inputs = self.models[j]
        probs, embedding = session.score(inputs.encode(self.data, rows))
        return pd.DataFrame({"provider": session.provider, **spread("p", probs), **spread(f"e{j}_", embedding)})


def _two_classes(probs: np.ndarray) -> np.ndarray:
    """(N, K) as given; for K = 2, class 0's probability recomputed as 1 - p(class 1) in float64."""
    if probs.shape[1] == 2:
        probs[:, 0] = 1.0 - probs[:, 1]
    return probs


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
        raise ParityError(f"{model_id}: ONNX and the native model differ by {worst:.2e} in probability "
                          f"(limit {atol:.0e})")
    return worst


def accuracy(probs: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> float | None:
    """Share of ``rows`` (a mask) whose predicted class is the label; None when there are none."""
    if not np.any(rows):
        return None
    return float((predicted_class(probs[rows]) == np.asarray(labels)[rows]).mean())


def model_row(model_id: str, family: str, fold: int | None, path: Path, n_features: int, n_train: int,
              accuracy_: float | None, parity: float, provider: str, *, reference: bool) -> dict:
    """One row of the store's ``models`` table."""
    return {
        "model_id": model_id, "family": family, "role": CONVENTIONAL if fold is None else FOLD, "fold": fold,
        "reference": reference, "onnx_path": str(path), "onnx_sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
        "n_features": n_features, "n_train": n_train, "accuracy": accuracy_, "parity_max_abs": parity,
        "provider": provider,
    }


@dataclasses.dataclass(frozen=True)
class Scored:
    """One family's models and predictions, as the store takes them."""

    family: str
    models: pd.DataFrame  # model_row()s
    predictions: pd.DataFrame  # outputs.PREDICTION_COLUMNS
    oof: np.ndarray  # (N, K) out-of-fold probabilities, dataset row order

    @classmethod
    def of(cls, family: str, model_rows: list[dict], predictions: list[pd.DataFrame], oof: np.ndarray) -> "Scored":
        return cls(family, pd.DataFrame(model_rows), pd.concat(predictions, ignore_index=True), oof)

    @property
    def provider(self) -> str:
        return str(self.models["provider"].iloc[-1])

    @property
    def parity_max_abs(self) -> float:
        return float(self.models["parity_max_abs"].max())

    def test_accuracy(self) -> float | None:
        """The conventional model's accuracy on the rows outside the train split (None without one)."""
        row = self.models[self.models["role"] == "conventional"]
        return None if row.empty or pd.isna(row["accuracy"].iloc[0]) else float(row["accuracy"].iloc[0])

    def oof_accuracy(self, labels: np.ndarray) -> float:
        return float((predicted_class(self.oof) == np.asarray(labels)).mean())

