"""Lossmap's offline pipeline: IMDB reviews in, a DuckDB store of per-review analysis out.

Stages, one module each: load, train, export, score, explain, project, issues, store
(schema in ``schema``), wired together in ``run`` and driven by ``cli``.
"""

__version__ = "0.1.0"
