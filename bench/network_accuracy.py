"""Test accuracy and training time of one network trained as the pipeline trains its
conventional model (train split only, scored on the test split).

    .venv/bin/python bench/network_accuracy.py --family bilstm
    .venv/bin/python bench/network_accuracy.py --family cnn --truncation head

For the opt-in BiLSTM this is the cheap way to its figure: a full run with --bilstm
trains it six times. Prints the accuracy per epoch (validation = test split), the
training time, and the accuracy reading the head, head+tail and (for sequence
networks) the whole review in windows.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.models import sequences  # noqa: E402
from pipeline.models import train_nn  # noqa: E402
from pipeline.models.text import tokenize  # noqa: E402
from pipeline.config import Config  # noqa: E402
from pipeline.data.imdb import load_reviews  # noqa: E402

DEFAULT_DATA = os.environ.get("IMDB_DATA", str(ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--family", default="bilstm", choices=train_nn.FAMILIES)
    parser.add_argument("--truncation", default=Config.truncation, choices=sequences.TRUNCATIONS)
    parser.add_argument("--epochs", type=int, default=None, help="default: the pipeline's for the family")
    args = parser.parse_args()

    cfg = Config(truncation=args.truncation, progress=False)
    if args.epochs:
        cfg = dataclasses.replace(cfg, dense_epochs=args.epochs, cnn_epochs=args.epochs, bilstm_epochs=args.epochs)
    frame = load_reviews(Path(args.data), progress=False).frame
    labels = frame["label"].to_numpy()
    train_rows = np.flatnonzero(frame["split"].to_numpy() == "train")
    test_rows = np.flatnonzero(frame["split"].to_numpy() == "test")
    corpus = tokenize(frame["display_text"], ngram_max=1)
    seqs = sequences.tokenize_sequences(frame["display_text"]) if args.family != "dense" else None
    data = train_nn.NetworkData(corpus, seqs)
    start = time.perf_counter()
    net = train_nn.fit_network(args.family, data, labels, train_rows, cfg, model_id=f"{args.family}-train",
                               val_rows=test_rows)
    seconds = time.perf_counter() - start
    print(f"\n{args.family}: trained on {len(train_rows):,} reviews in {seconds:.0f} s ({os.cpu_count()} cores)")
    for e in net.epochs.itertuples():
        print(f"  epoch {e.epoch}: train accuracy {e.train_accuracy:.2%}, test accuracy {e.val_accuracy:.2%}")
    if args.family != "dense":
        for how in sequences.TRUNCATIONS:
            p, _ = net.predict_inputs(net.inputs.encode(data, test_rows, truncation=how))
            print(f"  test accuracy reading {how:<9}: {((p[:, 1] >= 0.5) == labels[test_rows]).mean():.2%}"
                  + ("   (as trained)" if how == cfg.truncation else ""))


if __name__ == "__main__":
    main()
