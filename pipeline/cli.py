"""Command line: ``python -m pipeline run`` builds a run; ``python -m pipeline runs`` lists them.

Errors a user can fix (missing data, corrupt archive, wrong store) print one
message and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from pipeline.analyses.issues import METHODS, SOURCES
from pipeline.config import DATA_ENV, DEFAULT_DB, Config
from pipeline.engine import ENGINES, ClusterUnreachable
from pipeline.models.devices import DEVICES
from pipeline.models.sequences import TRUNCATIONS

_EPILOG = f"""\
examples:
  python -m pipeline run --data ../shared/data/aclImdb_v1_labeled.tar.gz
  python -m pipeline run --data tickets.csv --text body --label queue   your own table
  python -m pipeline run --data reviews/      a folder laid out [split/]label/*.txt
  python -m pipeline run --sample 2000          quick run on 2,000 reviews
  python -m pipeline run --bilstm                also train the BiLSTM (slow on a CPU)
  python -m pipeline run --engine ray --ray-address 10.0.0.5:6379   fold models and scoring on a Ray cluster
  python -m pipeline run --data t.csv --predictions preds.parquet    your model's predictions beside Lossmap's
  python -m pipeline run --data t.csv --model bert.onnx --tokenizer tokenizer.json    your ONNX model, scored
  python -m pipeline run --data t.csv --relabel data/lossmap.decisions.duckdb   train on the reviewers' labels
  python -m pipeline upgrade                     bring a store of an earlier Lossmap up to date
  python -m pipeline runs                        list the runs in the store
  python -m pipeline sweep                       36-run grid over the dense network

data: --data, else ${DATA_ENV}, else data/aclImdb_v1.tar.gz, data/aclImdb_v1_labeled.tar.gz
or data/aclImdb/; failing all, the published IMDB archive is downloaded into data/.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Lossmap pipeline: train text classifiers with cross-fitting, find likely mislabeled texts and "
                    "store the analysis in DuckDB.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    d = Config()

    run = sub.add_parser(
        "run", help="load labeled texts, train with cross-fitting, score with ONNX Runtime, write a run to the store",
        description="Train a linear text model (and networks) with cross-fitting, score every text out of fold "
                    "through ONNX Runtime, explain with SHAP, map with SVD+UMAP, rank label issues with cleanlab, "
                    "and write everything to the DuckDB store as one new run. Any number of classes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="tables: the text and label columns are found by name (text/review/sentence/content and "
               "label/labels/target/class/sentiment) unless given; every other column is kept as metadata "
               "(filters and map colours in the app).",
    )
    parser.run_command = run  # run_options reads its options
    g = run.add_argument_group("input")
    g.add_argument("--data", type=Path, default=None,
                   help=f"a table (.csv, .tsv, .parquet, .jsonl), a folder laid out [split/]label/*.txt, or the IMDB "
                        f"archive (aclImdb_v1.tar.gz, aclImdb_v1_labeled.tar.gz, aclImdb/) (default: ${DATA_ENV}, "
                        f"then data/, then the IMDB download)")
    g.add_argument("--text", dest="text_column", metavar="COLUMN", help="tables: the column of texts")
    g.add_argument("--label", dest="label_column", metavar="COLUMN",
                   help="tables: the column of labels (strings or integers; any number of classes)")
    g.add_argument("--id", dest="id_column", metavar="COLUMN",
                   help="tables: unique, stable ids, so decisions survive new runs (default: a column named id or "
                        "sample_id, else an id derived from each text)")
    g.add_argument("--split", dest="split_column", metavar="COLUMN",
                   help="tables: train/test/validation; a conventional model is trained on 'train' and tested on "
                        "the rest (default: none, everything is cross-fitted)")
    g.add_argument("--group", dest="group_column", metavar="COLUMN",
                   help="tables: rows with the same value are kept in one fold (a user, a product, a thread)")
    g.add_argument("--score", dest="score_column", metavar="COLUMN",
                   help="tables: a numeric column such as a star rating, charted against the loss and filterable")
    g.add_argument("--sample", type=int, default=None, metavar="N",
                   help="keep N texts, a seeded class-stratified sample, for a quick run (default: all)")
    g.add_argument("--memory-limit-mib", type=float, default=None, metavar="MIB",
                   help="refuse data whose run would need more memory than this (default: what is available)")
    _unpack_options(g, d)
    g.add_argument("--seed", type=int, default=d.seed, help="seed for sampling, folds, SVD and clusters (default: %(default)s)")
    g.add_argument("--relabel", type=Path, metavar="FILE",
                   help="apply reviewers' decisions as label overrides before training: the app's decisions file "
                        "(<store>.decisions.duckdb) or its relabel CSV. The data's labels are kept in the store "
                        "(samples.original_label), and the run records which labels it changed")
    g.add_argument("--relabel-split", metavar="SPLIT",
                   help="apply the decisions only to this split's texts, e.g. train, so the test split's labels stay "
                        "the yardstick for comparing runs (default: every text)")
    g = run.add_argument_group("model")
    g.add_argument("--folds", type=int, default=d.folds, help="cross-fitting folds, grouped by movie or --group "
                   "(default: %(default)s)")
    g.add_argument("--ngram-max", type=int, default=d.ngram_max, help="longest word n-gram used as a feature (default: %(default)s)")
    g.add_argument("--min-df", type=int, default=d.min_df, help="an n-gram must occur in this many training texts (default: %(default)s)")
    g.add_argument("--max-features", type=int, default=d.max_features, help="vocabulary cap, most frequent first (default: %(default)s)")
    g.add_argument("--no-prune", dest="prune", action="store_false",
                   help="one cross-fitting round; by default a second round refits without the texts the first "
                        "round flags")
    g.add_argument("--no-dense", dest="dense", action="store_false",
                   help="skip Chollet's dense network (PyTorch); the linear model alone is about a minute faster")
    g.add_argument("--dense-epochs", type=int, default=d.dense_epochs, help="epochs of the dense network "
                   "(default: %(default)s)")
    g.add_argument("--no-cnn", dest="cnn", action="store_false", help="skip the CNN (word embeddings + convolution, "
                   "PyTorch)")
    g.add_argument("--bilstm", action="store_true", help="also train the bidirectional LSTM (opt-in: twice as slow "
                   "as the CNN, about 15 more minutes on 2 cores)")
    g.add_argument("--cnn-epochs", type=int, default=d.cnn_epochs, help="epochs of the CNN (default: %(default)s)")
    g.add_argument("--max-len", type=int, default=d.max_len,
                   help="words a sequence network reads per text (default: %(default)s)")
    g.add_argument("--truncation", default=d.truncation, choices=TRUNCATIONS,
                   help="which words of a longer text it reads: the first max-len, or the first and last "
                        "max-len/2 (default: %(default)s)")
    g.add_argument("-C", dest="C", type=float, default=d.C, help="inverse L2 strength of the two-class logistic "
                   "regression (default: %(default)s)")
    g.add_argument("--C-multiclass", dest="C_multiclass", type=float, default=d.C_multiclass,
                   help="the same for more than two classes (default: %(default)s)")
    g = run.add_argument_group("analysis")
    g.add_argument("--shap-top-k", type=int, default=d.shap_top_k, help="token attributions stored per text "
                   "(default: %(default)s)")
    g.add_argument("--svd-dim", type=int, default=d.svd_dim, help="embedding width (truncated SVD of TF-IDF) (default: %(default)s)")
    g.add_argument("--clusters", type=int, default=d.clusters, help="k-means clusters on the embedding (default: %(default)s)")
    g.add_argument("--map-fit-rows", type=int, default=d.map_fit_rows, metavar="N",
                   help="above N texts, the map's TF-IDF weights, SVD and k-means are fit on a seeded sample of N "
                        "and applied to every text (N at least 100), so the SVD's time and memory stop growing with "
                        "the data; the neighbour search and UMAP's layout still cover every text. At or below N the "
                        "map is exact. Lower it if the project stage runs out of memory; each text's stored "
                        "neighbours then change about as much as with another SVD seed (README, Large data) "
                        "(default: %(default)s)")
    g.add_argument("--issue-method", default=d.issue_method, choices=METHODS,
                   help="cleanlab label-quality score used to rank suspects (default: %(default)s)")
    g.add_argument("--issue-source", default=d.issue_source, choices=SOURCES,
                   help="probabilities the suspects are ranked on: stacked (Lossmap's models combined by a "
                        "logistic regression on their out-of-fold probabilities and on any score the text states, "
                        "itself cross-fitted; your own model is left out, as it may have seen the texts), nblr (the "
                        "linear model's, out of fold), ensemble (the mean of every model's, yours included), or your "
                        "own model's: imported (--predictions) or onnx (--model) (default: %(default)s; it found the "
                        "most people-judged real errors and held the injected-flip figures: README, Which ranking)")
    g = run.add_argument_group(
        "your own model", "Bring the classifier you already have: its predictions, or the ONNX model itself. It is "
                          "stored as a predictor of its own beside Lossmap's models (Models page), its embedding as a "
                          "map. Every file is checked before training starts.")
    g.add_argument("--predictions", type=Path, metavar="FILE",
                   help="your model's predictions (CSV, TSV, Parquet or JSON Lines): an id column (sample_id or id) "
                        "matching the data's ids, one probability column per class (named as the class or "
                        "p_<class>) or one list column 'probs', optionally an 'embedding' list column and an "
                        "'out_of_sample' true/false column")
    g.add_argument("--predictor-name", metavar="NAME", help="how the app names those predictions (default: the file's name)")
    g.add_argument("--predictions-id", dest="predictions_id_column", metavar="COLUMN",
                   help="the predictions file's id column (default: sample_id or id)")
    g.add_argument("--model", type=Path, metavar="FILE.onnx",
                   help="your ONNX classifier, scored by ONNX Runtime on every text: a graph taking strings (e.g. a "
                        "scikit-learn pipeline converted with skl2onnx) or input_ids/attention_mask (a transformer, "
                        "with --tokenizer)")
    g.add_argument("--model-name", metavar="NAME", help="how the app names that model (default: the file's name)")
    g.add_argument("--tokenizer", type=Path, metavar="tokenizer.json",
                   help="the tokenizer a transformer graph was trained with (a tokenizers / Hugging Face tokenizer.json)")
    g.add_argument("--model-outputs", default=d.model_outputs, choices=("auto", "logits", "probs"),
                   help="what the model's class output holds; auto: probabilities when every row lies in [0, 1] and "
                        "sums to 1, else logits (default: %(default)s)")
    g.add_argument("--model-classes", type=lambda v: tuple(c.strip() for c in v.split(",")), metavar="A,B,...",
                   help="the model's class names in the order of its output columns (or of its integer class "
                        "keys); needed when the model numbers its classes, otherwise columns are read in the data's "
                        "class order: names sorted, numerically when all are integers")
    g.add_argument("--max-tokens", type=int, default=d.max_tokens, metavar="N",
                   help="transformer graphs: tokens per text, longer ones truncated (default: %(default)s)")
    g.add_argument("--trained-on", metavar="SPLIT",
                   help="the split (of --split) your model was trained on: its predictions there are marked seen in "
                        "training, the others as unseen. Without it (or an out_of_sample column) every prediction "
                        "counts as seen, and its losses as optimistic")
    g = run.add_argument_group("output")
    g.add_argument("--db", type=Path, default=DEFAULT_DB, help="the DuckDB store (created if missing) (default: %(default)s)")
    g.add_argument("--models-dir", type=Path, default=d.models_dir, help="where ONNX files go, one folder per run (default: %(default)s)")
    g.add_argument("--device", default=d.device, choices=DEVICES,
                   help="where models run: auto uses a usable NVIDIA GPU for ONNX Runtime's scoring and, with a "
                        "CUDA build of PyTorch, for training the networks; cpu never does (default: %(default)s)")
    g = run.add_argument_group("scale out")
    g.add_argument("--engine", default=d.engine, choices=ENGINES,
                   help="local: every stage in this process; ray: on the cluster of --ray-address, the fold models, "
                        "the SHAP backgrounds and the n-gram counts of large data as Ray tasks, and the linear "
                        "models' scoring, the SHAP values, each network's scores and embedding of every text, the "
                        "truncation windows and the map vectors of large data through Ray Data actors (same "
                        "results; reading the data, the map's fit and the store stay here) (default: %(default)s)")
    g.add_argument("--ray-address", metavar="ADDRESS",
                   help="the Ray cluster to join: HOST:PORT as `ray start --head` set it, or auto (the cluster "
                        "started on this machine). Without it --engine ray starts Ray on this machine for the run. "
                        "Every node needs this project's requirements installed; a cluster of `ray start` needs "
                        "RAY_AUTH_MODE=token (README)")
    g.add_argument("--chunk-rows", type=int, default=d.chunk_rows, metavar="N",
                   help="texts per chunk (at least 100), with either engine: above N texts the n-grams are counted "
                        "N at a time, in two passes (about twice the tokenize time; the counting's per-count lists "
                        "held for one chunk, not the whole corpus). With --engine ray each chunk is a task "
                        "(default: %(default)s)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")

    sweep = sub.add_parser(
        "sweep", help="train a grid of dense networks and store their learning curves",
        description="Train Chollet's dense IMDB network over the grid activation {relu, tanh} x loss {bce, mse} x "
                    "hidden units {16, 32, 64} x hidden layers {1, 2, 3} (36 runs) on the train split, with about "
                    "10,000 of its reviews (whole movies) held out for validation, and store every run's curves. "
                    "The Experiments page shows them.")
    sweep.add_argument("--data", type=Path, default=None, help="the IMDB archive or folder (as for run)")
    sweep.add_argument("--epochs", type=int, default=20, help="epochs per run (default: %(default)s)")
    sweep.add_argument("--val", type=int, default=10_000, help="validation reviews held out (default: %(default)s)")
    sweep.add_argument("--quick", action="store_true", help="4 runs, 2 epochs, a few hundred reviews: a smoke test")
    sweep.add_argument("--seed", type=int, default=d.seed, help="seed for the split and the networks (default: %(default)s)")
    sweep.add_argument("--db", type=Path, default=DEFAULT_DB, help="the DuckDB store (created if missing) (default: %(default)s)")
    sweep.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _unpack_options(sweep, d)

    upgrade = sub.add_parser("upgrade", help="bring a store written by an earlier Lossmap up to date, in place",
                             description="Upgrade a store written by an earlier Lossmap to this version's schema, "
                                         "keeping its runs (the decisions file beside it needs nothing). The store is "
                                         "rewritten as a run writes it: on a copy, swapped in when complete.")
    upgrade.add_argument("--db", type=Path, default=DEFAULT_DB, help="the DuckDB store (default: %(default)s)")

    runs = sub.add_parser("runs", help="list the complete runs in a store",
                          description="List the complete runs in a store, newest first.")
    runs.add_argument("--db", type=Path, default=DEFAULT_DB, help="the DuckDB store (default: %(default)s)")
    return parser


def _unpack_options(group, d: Config) -> None:
    """The caps on what the input may unpack to (``data.unpack``), shared by run and sweep."""
    group.add_argument("--max-member-mib", type=float, default=d.max_member_mib, metavar="MIB",
                       help="refuse an archive member or folder file larger than this unpacked, a sign of a "
                            "decompression bomb (default: %(default)g)")
    group.add_argument("--max-input-mib", type=float, default=d.max_input_mib, metavar="MIB",
                       help="refuse an archive or .gz table whose files total more than this unpacked (the labeled "
                            "IMDB archive's: 65 MiB; default: %(default)g)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.data.dataset import LoadError
    from pipeline.models.run_folder import FolderError
    from pipeline.store.schema import StoreError

    try:
        if args.command == "run":
            return _run(args)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "upgrade":
            return _upgrade(args)
        return _runs(args)
    except (LoadError, StoreError, FolderError, ClusterUnreachable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: this machine ran out of memory; the store is unchanged. Try --sample N, a smaller input, or "
              "--memory-limit-mib to refuse such inputs before reading them whole.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the store is unchanged.", file=sys.stderr)
        return 130


def config_from(args: argparse.Namespace) -> Config:
    """The Config of a `run` command: every option's dest is a Config field. A value Config refuses is said with the
    option that gave it (Config's errors begin with the field's name)."""
    fields = {f.name for f in dataclasses.fields(Config)}
    try:
        return Config(**{name: value for name, value in vars(args).items() if name in fields})
    except ValueError as exc:
        field, _, rest = str(exc).partition(" ")
        flag = run_options().get(field)
        if flag is None:
            raise
        raise ValueError(f"{flag} {rest}") from None


def run_options() -> dict[str, str]:
    """The `run` command's options by the Config field they set: {'min_df': '--min-df', 'prune': '--no-prune', ...}."""
    run = build_parser().run_command
    return {action.dest: max(action.option_strings, key=len) for action in run._actions  # argparse's list of options
            if action.option_strings}


def _run(args) -> int:
    from pipeline.run import run_pipeline

    s = run_pipeline(config_from(args))
    for line in s.notes:
        print(f"note: {line}")
    for line in s.warnings:
        print(f"warning: {line}")
    test = (f"linear model {s.test_accuracy:.2%}" if s.test_accuracy is not None
            else "n/a (no conventional model: no train split holding every class)")
    print(f"\nrun {s.run_id} complete: {s.n_samples:,} texts, {len(s.classes)} classes in {s.seconds:.0f} s")
    others = "".join(f", {m} {a:.2%}" for m, a in s.model_test_accuracy.items())
    print(f"  test accuracy (trained on train, scored on the rest): {test}{others}")
    print(f"  out-of-fold accuracy of the linear model (all texts): {s.oof_accuracy:.2%}")
    for name, (acc, unseen, seen_acc) in s.own_accuracy.items():
        told = (f"{acc:.2%} on the {unseen:,} texts it never saw" if acc is not None and acc == acc
                else "not known on any text it never saw (give --trained-on SPLIT or an out_of_sample column)")
        if seen_acc is not None:
            told += f"; {seen_acc:.2%} on the texts it may have trained on (optimistic)"
        print(f"  your model {name!r}: accuracy {told}")
    print(f"  flagged as likely mislabeled: {s.n_flagged:,} ({s.n_flagged / s.n_samples:.1%}), ranked by "
          f"{s.ranked_by}; suggested: relabel {s.suggestions.get('relabel', 0):,}, ambiguous (mixed or neutral "
          f"text) {s.suggestions.get('ambiguous', 0):,}")
    print(f"  ONNX Runtime: {s.provider}, largest gap to the native models {s.parity_max_abs:.1e} in probability")
    print("  time per stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in s.stage_seconds.items()))
    print("  peak memory per stage: " + ", ".join(f"{k} {v:,.0f} MiB" for k, v in s.stage_peak_mib.items()))
    print(f"  store: {s.db}  (open it with `streamlit run app.py -- --db {s.db}`)")
    return 0


def _sweep(args) -> int:
    from pipeline.sweep import run_sweep

    if args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1 (got {args.epochs})")
    cfg = Config(data=args.data, seed=args.seed, db=args.db, progress=not args.no_progress,
                 max_member_mib=args.max_member_mib, max_input_mib=args.max_input_mib)
    s = run_sweep(cfg, epochs=args.epochs, val_size=args.val, quick=args.quick)
    print(f"\nsweep {s.sweep_id} complete: {len(s.runs)} runs in {s.seconds:.0f} s "
          f"({s.n_train:,} training and {s.n_val:,} validation reviews)")
    print("  best validation accuracy:")
    for r in s.runs.head(5).itertuples():
        print(f"    {r.best_val_accuracy:.2%} at epoch {r.best_epoch}: {r.activation}, {r.loss}, "
              f"{r.hidden_layers} x {r.hidden_units} units")
    print(f"  store: {s.db}  (the Experiments page shows every run)")
    return 0


def _upgrade(args) -> int:
    from pipeline.store.files import open_readonly, upgrade_store
    from pipeline.store.schema import SCHEMA_VERSION

    con = open_readonly(args.db, upgradable=True)  # no store there, or not one of ours: said before any lock file
    try:
        current = con.execute("SELECT value FROM store.lossmap_meta WHERE key = 'schema_version'").fetchone()[0]
    finally:
        con.close()
    was = None if current == str(SCHEMA_VERSION) else upgrade_store(args.db)  # a current store is not rewritten
    if was is None:
        print(f"{args.db} is already at schema version {SCHEMA_VERSION}; nothing to do.")
    else:
        print(f"{args.db} upgraded from schema version {was} to {SCHEMA_VERSION}; its runs are kept.")
    return 0


def _runs(args) -> int:
    from pipeline.data.dataset import printable
    from pipeline.store.files import list_runs, run_notes

    runs = list_runs(args.db)
    if runs.empty:
        print(f"{args.db} holds no runs yet. Make one with `python -m pipeline run --db {args.db}`.")
        return 0
    print(f"{len(runs)} run(s) in {args.db}, newest first:")
    for r in runs.itertuples():
        test = f"{r.test_accuracy:.2%}" if r.test_accuracy == r.test_accuracy and r.test_accuracy is not None else "n/a"
        print(printable(f"  {r.run_id}  {r.completed_at:%Y-%m-%d %H:%M} UTC  {r.n_samples:>6,} texts  "
                        f"{r.n_classes} classes  test acc {test}  flagged {r.n_flagged:,}  {r.seconds:.0f} s  "
                        f"{r.source}", limit=1000))
        for note in run_notes(r.load_notes):
            print(f"      note: {printable(note, limit=1000)}")
    return 0


