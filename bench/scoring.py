"""ONNX Runtime vs native scoring throughput (scikit-learn, PyTorch eager), side by side in one run.

    .venv/bin/python bench/scoring.py

Trains the conventional model (train split), exports it, and scores the 25,000 test
reviews both ways, best of 3:
- model only: from the count matrix (ONNX graph vs TfidfTransformer + NB + LogisticRegression);
- from text: tokenizing included (ONNX `score_texts` vs the same tokenizer + native model);
- dense network: multi-hot in, probability and embedding out (ONNX vs PyTorch eager);
- CNN and BiLSTM: word ids in (max_len 256), same outputs, same batches of 512 both
  ways. These two are not trained here (their weights do not change the arithmetic,
  only the default sizes do), which keeps the bench to a few minutes.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import Config  # noqa: E402
from pipeline.data.imdb import CLASSES, display_text, load_reviews  # noqa: E402
from pipeline.models import export, linear, networks, score, train_nn  # noqa: E402
from pipeline.models.text import TOKEN_PATTERN, tokenize  # noqa: E402

DEFAULT_DATA = os.environ.get("IMDB_DATA", str(ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"))


def best_of(fn, repeat=3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    cfg = Config()
    frame = load_reviews(Path(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_DATA), progress=False).frame
    corpus = tokenize(frame["display_text"], ngram_max=cfg.ngram_max)
    train_rows = np.flatnonzero(frame["split"].to_numpy() == "train")
    test_rows = np.flatnonzero(frame["split"].to_numpy() == "test")
    model = linear.fit(corpus, frame["label"].to_numpy(), train_rows, model_id="nblr-train", **linear.fit_options(cfg))
    path = export.export_onnx(model, Path(tempfile.mkdtemp()) / "m.onnx", tokenizer_spec=corpus.tokenizer_spec(),
                              classes=CLASSES)
    onnx_model = score.OnnxTextModel.load(path)
    counts = corpus.counts[test_rows][:, onnx_model.columns_in(corpus.vocab)]
    texts = frame["text"].to_numpy()[test_rows].tolist()
    n = len(test_rows)

    def native_counts():
        x = model.tfidf.transform(counts).multiply(model.scale).tocsr()
        return model.clf.predict_proba(x)[:, 1]

    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(token_pattern=TOKEN_PATTERN, ngram_range=(1, cfg.ngram_max),
                          vocabulary=list(model.vocab), dtype=np.float32)

    def native_texts():
        cleaned = [display_text(t) for t in texts]
        x = model.tfidf.transform(vec.transform(cleaned)).multiply(model.scale).tocsr()
        return model.clf.predict_proba(x)[:, 1]

    gap = np.max(np.abs(onnx_model.score_counts(counts)[:, 1] - native_counts()))
    print(f"\n{n:,} test reviews, {len(model.vocab):,} n-grams, provider {onnx_model.provider}, "
          f"{os.cpu_count()} cores; max |p_onnx - p_native| = {gap:.1e}")
    print(f"{'':<12} {'native (reviews/s)':>20} {'ONNX Runtime (reviews/s)':>26} {'ONNX / native':>14}")
    for name, native, onnx_fn in (
        ("model only", native_counts, lambda: onnx_model.score_counts(counts)),
        ("from text", native_texts, lambda: onnx_model.score_texts(texts)),
    ):
        t_native, t_onnx = best_of(native), best_of(onnx_fn)
        print(f"{name:<12} {n / t_native:>20,.0f} {n / t_onnx:>26,.0f} {t_native / t_onnx:>13.2f}x")

    import torch

    net = train_nn.fit_dense(corpus, frame["label"].to_numpy(), train_rows, cfg, model_id="dense-train")
    dense_path = export.export_network(net, path.with_name("dense.onnx"), tokenizer_spec=corpus.tokenizer_spec(),
                                       classes=CLASSES)
    dense_onnx = score.OnnxNetwork.load(dense_path)
    x = networks.multi_hot(corpus, net.columns, test_rows)
    net.net.eval()

    @torch.no_grad()
    def eager():  # same input and batch size as OnnxNetwork.score_multi_hot
        return [net.net(torch.from_numpy(x[i:i + 2048].toarray())) for i in range(0, x.shape[0], 2048)]

    t_native, t_onnx = best_of(eager), best_of(lambda: dense_onnx.score_multi_hot(x))
    print(f"{'dense net':<12} {n / t_native:>20,.0f} {n / t_onnx:>26,.0f} {t_native / t_onnx:>13.2f}x"
          f"   (PyTorch eager, {torch.get_num_threads()} threads)")

    from pipeline.models import sequences

    seqs = sequences.tokenize_sequences(frame["display_text"])
    data = train_nn.NetworkData(corpus, seqs)
    for family in ("cnn", "bilstm"):
        how = train_nn.Recipe(0, cfg.seq_batch, cfg.seq_lr, 1.0, "adam")  # untrained: see the module doc
        seq_net = train_nn.fit_network(family, data, frame["label"].to_numpy(), train_rows, cfg,
                                       model_id=f"{family}-train", how=how)
        seq_path = export.export_network(seq_net, path.with_name(f"{family}.onnx"), tokenizer_spec={}, classes=CLASSES)
        seq_onnx = score.OnnxNetwork.load(seq_path)
        ids = seq_net.inputs.encode(data, test_rows)
        seq_net.net.eval()

        @torch.no_grad()
        def seq_eager(net=seq_net.net, ids=ids):
            return [net(torch.from_numpy(ids[i:i + 512])) for i in range(0, len(ids), 512)]

        repeat = 3 if family == "cnn" else 1
        gap = np.max(np.abs(seq_onnx.score_ids(ids[:2048])[0] - seq_net.predict_inputs(ids[:2048])[0]))
        t_native, t_onnx = best_of(seq_eager, repeat), best_of(lambda: seq_onnx.score_ids(ids), repeat)
        print(f"{family:<12} {n / t_native:>20,.0f} {n / t_onnx:>26,.0f} {t_native / t_onnx:>13.2f}x"
              f"   (max |gap| {gap:.1e}, best of {repeat})")


if __name__ == "__main__":
    main()
