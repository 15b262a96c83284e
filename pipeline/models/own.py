"""The user's own predictors in a run (issue 13): a predictions file (``--predictions``) and an ONNX model
(``--model``).

Both run in the ``own`` stage, right after loading and before any training, so a bad
file or a model that fails on some text stops the run at once with its message and no run
is written. ``read_own(cfg, data)`` reads and checks the predictions file
(``pipeline.data.predictions``) and opens the model (``pipeline.models.user_onnx``),
checking it on the longest texts; ``score_own(own, cfg, data, model_dir)`` scores the
model on every text and returns one ``OwnScored`` per predictor: a ``Scored`` (one model
row of role ``own``, predictions of protocol ``own``) and the embedding it gave, if any.

Which texts a predictor saw in training (``seen_in_training``): a predictions file's
``out_of_sample`` column when it has one; else ``--trained-on SPLIT`` (the rows of that
split were seen, the others not); else every row counts as seen, the cautious reading:
its losses on them are optimistic, and the app says so. The user's ONNX file (and its
tokenizer) are copied into the run's models folder with their sha256, so the store keeps
working when the originals move.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import Config
from pipeline.data.dataset import Dataset, LoadError, require_split
from pipeline.data.predictions import Predictions, read_predictions
from pipeline.models.outputs import predicted_class, prediction_frame
from pipeline.models.score import Scored
from pipeline.models.user_onnx import UserModel, open_model
from pipeline.names import IMPORTED, ONNX, OWN


@dataclasses.dataclass
class OwnInputs:
    predictions: Predictions | None = None
    model: UserModel | None = None

    def __bool__(self) -> bool:
        return self.predictions is not None or self.model is not None


@dataclasses.dataclass(frozen=True)
class OwnScored:
    scored: Scored
    embedding: np.ndarray | None  # (N, D), dataset row order
    name: str
    n_unseen: int  # texts the predictor is known never to have seen
    seen_accuracy: float | None  # on the texts it may have trained on (optimistic); None when there are none


def read_own(cfg: Config, data: Dataset) -> OwnInputs:
    """Read and check every user predictor the config names; raises LoadError before any work."""
    own = OwnInputs()
    if cfg.trained_on is not None:
        require_split(data, cfg.trained_on, "--trained-on")
    if cfg.predictions is not None:
        if not isinstance(cfg.predictions, (str, Path)):
            raise LoadError("predictions= takes the path of a predictions file (CSV, Parquet, JSON Lines); save a "
                            "DataFrame first, e.g. df.to_parquet('preds.parquet').")
        own.predictions = read_predictions(
            Path(cfg.predictions), ids=data.frame["sample_id"], classes=data.classes,
            name=cfg.predictor_name if cfg.predictor_name is not None else Path(cfg.predictions).stem,
            id_column=cfg.predictions_id_column, limits=cfg.limits(), derived_ids=data.columns.get("id") is None)
        data.report.notes.extend(own.predictions.notes)
        if own.predictions.out_of_sample is not None and cfg.trained_on is not None:
            data.report.notes.append(f"--predictions {cfg.predictions}: its out_of_sample column says which texts "
                                     "the model never saw; --trained-on is used for --model only")
    if cfg.model is not None:
        texts = data.frame["text"].tolist()
        own.model = open_model(Path(cfg.model), classes=data.classes, probe=texts, tokenizer=cfg.tokenizer,
                               outputs=cfg.model_outputs, max_tokens=cfg.max_tokens, device=cfg.device,
                               model_classes=cfg.model_classes)
        if own.model.order_note:
            data.report.notes.append(own.model.order_note)
    return own


def ranking_warnings(found: list[OwnScored], source: str) -> list[str]:
    """What to say when label issues are ranked on a user predictor that may have trained on the texts it ranks."""
    out = []
    for t in found:
        if (source == t.scored.family or source == "ensemble") and t.n_unseen < len(t.scored.oof) / 2:
            share = 1 - t.n_unseen / len(t.scored.oof)
            out.append(f"label issues were ranked on {'the mean of every model, with ' if source == 'ensemble' else ''}"
                       f"your model {t.name!r}, which counts as having trained on {share:.0%} of the texts: it is "
                       "confident on its training texts, so it misses their label errors. Give an out_of_sample "
                       "column or --trained-on SPLIT, or rank on Lossmap's out-of-fold models (--issue-source nblr).")
    return out


def score_own(own: OwnInputs, cfg: Config, data: Dataset, model_dir: Path) -> list[OwnScored]:
    """One OwnScored per user predictor, the predictions file's first."""
    found = []
    if own.predictions is not None:
        p = own.predictions
        seen = _seen(data, p.out_of_sample, cfg.trained_on)
        found.append(_scored(IMPORTED, p.name, p.probs, p.embedding, seen, data, source=p.source, onnx_path=None,
                             provider=None, n_features=0))
    if own.model is not None:
        m = own.model
        probs, embedding = m.score(data.frame["text"].tolist(), progress=cfg.progress)
        copy = model_dir / "own-model.onnx"
        shutil.copyfile(m.path, copy)
        if cfg.tokenizer is not None:
            shutil.copyfile(cfg.tokenizer, model_dir / "own-tokenizer.json")
        name = cfg.model_name if cfg.model_name is not None else m.path.stem
        found.append(_scored(ONNX, name, probs, embedding, _seen(data, None, cfg.trained_on), data,
                             source=str(m.path), onnx_path=copy, provider=m.provider, n_features=m.vocab_size))
    return found


def _seen(data: Dataset, out_of_sample: np.ndarray | None, trained_on: str | None) -> np.ndarray:
    if out_of_sample is not None:
        return ~out_of_sample
    if trained_on is not None:
        return (data.frame["split"].astype(str) == trained_on).to_numpy()
    return np.ones(len(data.frame), dtype=bool)


def _scored(family: str, name: str, probs: np.ndarray, embedding, seen: np.ndarray, data: Dataset, *, source: str,
            onnx_path: Path | None, provider: str | None, n_features: int) -> OwnScored:
    labels = data.labels
    unseen = ~seen
    right = predicted_class(probs) == labels
    accuracy = float(right[unseen].mean()) if unseen.any() else None
    row = {
        "model_id": family, "family": family, "role": OWN, "fold": None, "reference": False,
        "onnx_path": None if onnx_path is None else str(onnx_path),
        "onnx_sha256": None if onnx_path is None else hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest(),
        "n_features": int(n_features), "n_train": int(seen.sum()), "accuracy": accuracy, "parity_max_abs": None,
        "provider": provider, "name": name, "source": source,
    }
    frame = prediction_frame(data.frame["sample_id"], labels, probs, family=family, protocol=OWN, model_id=family,
                             seen=seen)
    return OwnScored(Scored(family, pd.DataFrame([row]), frame, probs), embedding, name, int(unseen.sum()),
                     float(right[seen].mean()) if seen.any() else None)
