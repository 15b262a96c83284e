"""The pipeline's vocabulary: model families, model roles, prediction protocols and map spaces.

Every stage, the store and the app use these constants; nothing parses them back out
of an id. A model id (``cnn-fold3``, ``nblr-train``) is a label for people; the store
keeps the family, the role and the fold in columns of their own.

- family: ``nblr`` (linear: TF-IDF n-grams, NB ratios, logistic regression), ``dense``
  (Chollet's multi-hot network), ``cnn`` and ``bilstm`` (sequence networks over word ids);
  the user's own: ``imported`` (a predictions file, ``--predictions``) and ``onnx`` (their
  ONNX classifier, ``--model``), each named by the user (``models.name``);
- role of a model: ``fold`` (cross-fitting: trained without one fold, scores that fold),
  ``conventional`` (trained on the train split, scores every review) or ``own`` (the
  user's model, trained elsewhere);
- protocol of a prediction: ``oof`` (by the fold model that never saw the review),
  ``conventional`` (by the conventional model; optimistic on the reviews it trained on) or
  ``own`` (the user's model as it predicted; ``seen_in_training`` says where it may have
  trained on the text);
- space of a map: ``tfidf-svd`` (the linear model's features), ``<family>-hidden`` (a
  network's penultimate layer) or ``<family>-embedding`` (vectors the user's model gave).
"""

from __future__ import annotations

LINEAR = "nblr"
NETWORKS = ("dense", "cnn", "bilstm")  # PyTorch families, in training order
SEQUENCE_NETWORKS = ("cnn", "bilstm")  # read word ids in order, so truncation applies
IMPORTED, ONNX = "imported", "onnx"  # the user's own predictors: a predictions file, an ONNX model
OWN_FAMILIES = (IMPORTED, ONNX)
FAMILIES = (LINEAR, *NETWORKS, *OWN_FAMILIES)
FAMILY_NAMES = {LINEAR: "NB-LR (linear)", "dense": "dense network", "cnn": "CNN", "bilstm": "BiLSTM",
                IMPORTED: "your predictions", ONNX: "your ONNX model"}

FOLD, CONVENTIONAL, OWN = "fold", "conventional", "own"
ROLES = (FOLD, CONVENTIONAL, OWN)

OOF = "oof"
PROTOCOLS = (OOF, CONVENTIONAL, OWN)
PROTOCOL_NAMES = {OOF: "out of fold", CONVENTIONAL: "conventional", OWN: "as given"}

TEXT_SPACE = "tfidf-svd"
SPACE_NAMES = {TEXT_SPACE: "Linear model features (TF-IDF, SVD)", "dense-hidden": "Dense network, last hidden layer",
               "cnn-hidden": "CNN, penultimate layer", "bilstm-hidden": "BiLSTM, penultimate layer",
               f"{IMPORTED}-embedding": "Your predictions' embedding",
               f"{ONNX}-embedding": "Your ONNX model's embedding"}


def model_id(family: str, fold: int | None) -> str:
    """The label of a model for people: '<family>-fold<k>', or '<family>-train' for the conventional one."""
    return f"{family}-train" if fold is None else f"{family}-fold{fold}"


def space(family: str) -> str:
    """The map space of a family's view of the reviews."""
    if family in OWN_FAMILIES:
        return f"{family}-embedding"
    return TEXT_SPACE if family == LINEAR else f"{family}-hidden"


def family_name(family: str, n_classes: int = 2) -> str:
    """How pages name a family; the linear one is NB-LR for two classes, a multinomial LR for more."""
    if family == LINEAR and n_classes > 2:
        return "linear (multinomial LR)"
    return FAMILY_NAMES.get(family, family)


def predictor_name(family: str, protocol: str, n_classes: int = 2) -> str:
    """'CNN, out of fold': how pages name a stored predictor."""
    return f"{family_name(family, n_classes)}, {PROTOCOL_NAMES.get(protocol, protocol)}"
