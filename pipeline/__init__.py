"""Lossmap's offline pipeline: labeled texts in, a DuckDB store of per-text analysis out.

Folders by role: ``data`` (readers: tables, text folders, the IMDB archive), ``models``
(model families, ONNX export and scoring), ``analyses`` (SHAP, label issues, maps,
truncation, telemetry), ``store`` (schema and atomic writes); ``run`` wires the stages,
``cli`` drives them (``python -m pipeline``), ``analyze`` is the entry for notebooks.
"""

from __future__ import annotations

__version__ = "0.2.0"


def analyze(df, *, text: str | None = None, label: str | None = None, db="data/lossmap.duckdb", id: str | None = None,
            split: str | None = None, group: str | None = None, score: str | None = None, **options):
    """Analyse a pandas DataFrame of labeled texts and write one run to the store ``db``.

    ``text``, ``label``, ``id``, ``split``, ``group``, ``score`` name columns of ``df``,
    as the CLI's ``--text``, ``--label``, ... do (text and label are found by name when
    not given); every other column is kept as metadata. ``options`` are any other
    ``pipeline.config.Config`` fields (``sample=2000``, ``cnn=False``, ``progress=False``,
    ``models_dir=...``). Returns the run's ``RunSummary``; open the store with
    ``streamlit run app.py -- --db DB``. Run it with the repository folder on ``sys.path``
    (start the notebook there). Error messages name the CLI options: ``--label`` is ``label=``.

        from pipeline import analyze
        summary = analyze(df, text="body", label="queue", db="data/tickets.duckdb")
    """
    import dataclasses
    from pathlib import Path

    from pipeline.config import Config
    from pipeline.run import run_pipeline

    known = {f.name for f in dataclasses.fields(Config)} - {"text_column", "label_column", "id_column", "split_column",
                                                            "group_column", "score_column", "db"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"analyze() does not take {', '.join(unknown)}; it takes text, label, id, split, group, "
                         f"score, db and the pipeline.config.Config fields: {', '.join(sorted(known))}")
    cfg = Config(text_column=text, label_column=label, id_column=id, split_column=split, group_column=group,
                 score_column=score, db=Path(db), **options)
    return run_pipeline(cfg, frame=df)
