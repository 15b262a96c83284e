"""The pipeline's vocabulary: model families, model roles, prediction protocols and map spaces.

Every stage, the store and the app use these constants; nothing parses them back out
of an id. A model id (``cnn-fold3``, ``nblr-train``) is a label for people; the store
keeps the family, the role and the fold in columns of their own.

- family: ``nblr`` (linear: TF-IDF n-grams, NB ratios, logistic regression), ``dense``
  (Chollet's multi-hot network), ``cnn`` and ``bilstm`` (sequence networks over word ids);
- role of a model: ``fold`` (cross-fitting: trained without one fold, scores that fold)
  or ``conventional`` (trained on the train split, scores every review);
- protocol of a prediction: ``oof`` (by the fold model that never saw the review) or
  ``conventional`` (by the conventional model; optimistic on the reviews it trained on);
- space of a map: ``tfidf-svd`` (the linear model's features) or ``<family>-hidden``
  (a network's penultimate layer).
"""

from __future__ import annotations

LINEAR = "nblr"
NETWORKS = ("dense", "cnn", "bilstm")  # PyTorch families, in training order
SEQUENCE_NETWORKS = ("cnn", "bilstm")  # read word ids in order, so truncation applies
FAMILIES = (LINEAR, *NETWORKS)
FAMILY_NAMES = {LINEAR: "NB-LR (linear)", "dense": "dense network", "cnn": "CNN", "bilstm": "BiLSTM"}

FOLD, CONVENTIONAL = "fold", "conventional"
ROLES = (FOLD, CONVENTIONAL)

OOF = "oof"
PROTOCOLS = (OOF, CONVENTIONAL)
PROTOCOL_NAMES = {OOF: "out of fold", CONVENTIONAL: "conventional"}

TEXT_SPACE = "tfidf-svd"
SPACE_NAMES = {TEXT_SPACE: "Linear model features (TF-IDF, SVD)", "dense-hidden": "Dense network, last hidden layer",
               "cnn-hidden": "CNN, penultimate layer", "bilstm-hidden": "BiLSTM, penultimate layer"}


def model_id(family: str, fold: int | None) -> str:
    """The label of a model for people: '<family>-fold<k>', or '<family>-train' for the conventional one."""
    return f"{family}-train" if fold is None else f"{family}-fold{fold}"


def space(family: str) -> str:
    """The map space of a family's view of the reviews."""
    return TEXT_SPACE if family == LINEAR else f"{family}-hidden"


def family_name(family: str, n_classes: int = 2) -> str:
    """How pages name a family; the linear one is NB-LR for two classes, a multinomial LR for more."""
    if family == LINEAR and n_classes > 2:
        return "linear (multinomial LR)"
    return FAMILY_NAMES.get(family, family)


def predictor_name(family: str, protocol: str, n_classes: int = 2) -> str:
    """'CNN, out of fold': how pages name a stored predictor."""
    return f"{family_name(family, n_classes)}, {PROTOCOL_NAMES.get(protocol, protocol)}"
