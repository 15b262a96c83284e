"""How pages name what a run holds, in words a person reads: its map spaces (a user's own embedding by the name
they gave their model) and the ranking behind its label issues (``label_issues.method`` and ``ranked_on``).

Every function returns text as the data has it (a user's name untouched): pages pass it through ``plain`` for
Markdown or ``visible`` for charts, tables and select boxes.
"""

from __future__ import annotations

import dataclasses

from pipeline.names import FAMILIES, FAMILY_NAMES, OWN_FAMILIES, SPACE_NAMES, space

# The noun for each of Lossmap's families, inside a sentence ("the out-of-fold probabilities of the CNN").
_OURS = {"nblr": "the linear model", "dense": "the dense network", "cnn": "the CNN", "bilstm": "the BiLSTM"}
# cleanlab's ranking methods (the pipeline's --issue-method), in words
_METHODS = {"self_confidence": "self_confidence score (the probability given to the text's own label)",
            "normalized_margin": "normalized_margin score",
            "confidence_weighted_entropy": "confidence_weighted_entropy score",
            "confident_learning": "confident learning (the texts it flags first, then by self-confidence)"}


def quoted(name: str) -> str:
    """A name the user gave, set off in quotation marks."""
    return f"\u201c{name}\u201d"


def own_label(family: str, names: dict[str, str]) -> str:
    """A user's own predictor by the name they gave it: '“my BERT” (your predictions)'."""
    given = names.get(family)
    return f"{quoted(given)} ({FAMILY_NAMES[family]})" if given else FAMILY_NAMES.get(family, family)


def space_label(name: str, names: dict[str, str]) -> str:
    """How pages name a map space; a user's own embedding by the name they gave the model (``names``: family ->
    models.name), else ``SPACE_NAMES``."""
    for family in OWN_FAMILIES:
        if name == space(family) and names.get(family):
            return f"Embedding of {own_label(family, names)}"
    return SPACE_NAMES.get(name, name)


@dataclasses.dataclass(frozen=True)
class Ranking:
    """How a run ranked its label issues: cleanlab's method and whose probabilities (several: their mean, or their
    stack)."""

    method: str
    families: tuple[str, ...]
    stacked: bool = False  # several families combined by the run's stack (issue_source 'stacked'), not their mean


def ranking(stored: tuple | None) -> Ranking | None:
    """The ranking a run stored (``queries.issue_ranking``: label_issues.method and ranked_on), or None where it is
    not one this Lossmap knows (no label issues; families it does not know)."""
    if not stored or not stored[0] or not stored[1]:
        return None
    method, families = str(stored[0]), tuple(stored[1])
    stacked = len(stored) > 2 and stored[2] == "stacked" and len(families) > 1
    return Ranking(method, families, stacked) if all(f in FAMILIES for f in families) else None


def ranking_text(stored: tuple | None, names: dict[str, str], *, explain: bool = True) -> str:
    """'cleanlab's self_confidence score (...) on the out-of-fold probabilities of the linear model': what ranked the
    suspects, a user's own predictor by the name they gave it (``names``: family -> models.name); without
    ``explain``, the method by its name alone (for a table)."""
    r = ranking(stored)
    if r is None:
        return (f"{stored[0]} on {', '.join(map(str, stored[1] or ()))} (as the run recorded it)" if stored
                and stored[0] else "not recorded by this run")
    nouns = [own_label(f, names) if f in OWN_FAMILIES else _OURS.get(f, f) for f in r.families]
    listed = nouns[0] if len(nouns) == 1 else f"{', '.join(nouns[:-1])} and {nouns[-1]}"
    own = [f for f in r.families if f in OWN_FAMILIES]
    if r.stacked:
        source = (f"a logistic-regression stack of the out-of-fold probabilities of {listed} (and of any score "
                  "the text states), fitted on the other folds' labels")
    elif len(nouns) > 1:
        kind = " (out of fold for Lossmap's models; as given for yours)" if own else ""
        source = (f"the mean of the probabilities of {listed}{kind}" if own
                  else f"the mean of the out-of-fold probabilities of {listed}")
    elif own:
        source = f"the probabilities of {listed}, as given"
    else:
        source = f"the out-of-fold probabilities of {listed}"
    return f"cleanlab's {_METHODS.get(r.method, r.method) if explain else r.method} on {source}"
