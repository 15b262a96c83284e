"""Your own classifier (issue 13): importing a predictions file, and scoring a transformer-shaped ONNX model
with ONNX Runtime against the same graph in PyTorch eager, per stage.

    .venv/bin/python bench/own_model.py                  # 50,000 reviews: about 10 minutes on 2 idle cores
    .venv/bin/python bench/own_model.py --n 2000         # the quick run (under a minute)
    .venv/bin/python bench/own_model.py --skip-torch     # ONNX Runtime only (about 4 minutes)

Stages, on the first ``--n`` reviews of the IMDB archive (a seeded sample, both labels alike):

1. make predictions file: seeded random but valid probabilities for the two classes (one
   column per class), a 64-d ``embedding`` list column and ``out_of_sample`` flags, rows
   shuffled, written as Parquet and as CSV (the embedding as JSON text) into a temporary
   folder that is removed at the end;
2. import predictions: ``pipeline.data.predictions.read_predictions`` on each file, as
   ``--predictions`` reads it (all checks, rows put back in the data's order);
3. transformer-shaped model: a WordPiece ``tokenizer.json`` trained on the reviews, a
   randomly initialised BERT (``--layers``, ``--hidden``, ``hidden / 64`` heads, a
   ``4 * hidden`` feed-forward, ``--vocab`` tokens) exported with ``torch.onnx`` as a
   fine-tuned classifier's export looks: (logits, pooled output). Random weights cost the
   same arithmetic as trained ones;
4. score with ONNX Runtime: ``pipeline.models.user_onnx.open_model`` (with its probe of the
   two longest texts), then ``UserModel.score`` on every text, tokenizing included, as
   ``--model`` runs it; tokenizing alone (same batches) is timed separately;
5. score with PyTorch eager: the same module that was exported, the same tokenizer,
   truncation (``--max-tokens``), length-sorted batches of ``_BATCH_TOKENS`` texts, under
   ``torch.no_grad()``, with the largest difference from ONNX Runtime's probabilities.

Both runtimes get ``--cores`` CPUs (default 2): on a larger machine the process is pinned to
that many and ONNX Runtime's session is rebuilt with as many intra-op threads, since it
sizes its pool from the machine, not the process's affinity. Peak RSS is the kernel's
VmHWM, reset at each stage's start (Linux); "rise" is that peak less the RSS the stage
started with. "CPU" is the process's CPU seconds over all its threads: near wall x cores, the stage had
the cores to itself; far below, other work on the machine slowed it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.data.imdb import CLASSES, load_reviews  # noqa: E402
from pipeline.data.predictions import read_predictions  # noqa: E402
from pipeline.models.user_onnx import _BATCH_TOKENS, open_model  # noqa: E402
from pipeline.run import reset_peak, rss_mib  # noqa: E402

DEFAULT_DATA = os.environ.get("IMDB_DATA", str(ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"))
EMBEDDING_DIM = 64
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class Stages:
    """Seconds, throughput and peak memory per stage, printed as each ends and again as a table."""

    def __init__(self):
        self.rows: list[tuple[str, float, float, str, float, float]] = []

    def run(self, name: str, fn, *, count: int | None = None, unit: str = "texts"):
        start_mib = rss_mib("VmRSS")
        reset_peak()
        start, cpu = time.perf_counter(), time.process_time()
        result = fn()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        peak = rss_mib("VmHWM")
        rate = f"{count / seconds:,.0f} {unit}/s" if count else ""
        self.rows.append((name, seconds, cpu, rate, peak, peak - start_mib))
        print(f"  {name:<34} {seconds:8.2f} s  {rate:>16}  CPU {cpu:7.2f} s  peak {peak:6,.0f} MiB "
              f"(+{peak - start_mib:,.0f})", flush=True)
        return result

    def seconds(self, name: str) -> float:
        return next(s for n, s, *_ in self.rows if n == name)

    def table(self) -> None:
        print(f"\n  {'stage':<34} {'wall (s)':>8} {'throughput':>16} {'CPU (s)':>8} {'peak RSS (MiB)':>15} "
              f"{'rise (MiB)':>11}")
        for name, seconds, cpu, rate, peak, rise in self.rows:
            print(f"  {name:<34} {seconds:8.2f} {rate:>16} {cpu:8.2f} {peak:15,.0f} {rise:11,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="the IMDB archive")
    parser.add_argument("--n", type=int, default=50_000, help="reviews (default 50,000: all of them)")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per text, [CLS] and [SEP] included")
    parser.add_argument("--layers", type=int, default=4, help="transformer layers")
    parser.add_argument("--hidden", type=int, default=256, help="hidden size (heads: hidden / 64; "
                        "feed-forward: 4 x hidden)")
    parser.add_argument("--vocab", type=int, default=8000, help="WordPiece vocabulary the tokenizer is trained to")
    parser.add_argument("--cores", type=int, default=2, help="CPUs both runtimes may use")
    parser.add_argument("--seed", type=int, default=0, help="seeds the sample, the predictions and the weights")
    parser.add_argument("--skip-torch", action="store_true", help="leave out PyTorch eager (and the parity check)")
    args = parser.parse_args()
    if args.hidden % 64 and args.hidden > 64:
        parser.error(f"--hidden must be a multiple of 64 (or at most 64), got {args.hidden}")
    if not 8 <= args.max_tokens <= 512:
        parser.error(f"--max-tokens must be between 8 and 512, got {args.max_tokens}")

    import torch

    cores = _limit_cores(args.cores)
    torch.set_num_threads(cores)
    heads = max(1, args.hidden // 64)
    print(f"--n {args.n:,} reviews, {cores} cores (PyTorch {torch.get_num_threads()} threads); BERT {args.layers} "
          f"layers, hidden {args.hidden}, {heads} heads, feed-forward {4 * args.hidden}, --max-tokens "
          f"{args.max_tokens}, batches of {_BATCH_TOKENS}\n", flush=True)
    stages = Stages()
    frame = stages.run("load reviews", lambda: load_reviews(Path(args.data), sample=args.n, seed=args.seed,
                                                            progress=False).frame)
    n, texts, ids = len(frame), frame["text"].tolist(), frame["sample_id"]

    with tempfile.TemporaryDirectory(prefix="lossmap-own-") as tmp:
        folder = Path(tmp)
        table = _predictions_table(ids, args.seed)
        parquet, csv = folder / "predictions.parquet", folder / "predictions.csv"
        stages.run("write predictions (Parquet)", lambda: table.to_parquet(parquet, index=False), count=n, unit="rows")
        stages.run("write predictions (CSV)", lambda: _write_csv(table, csv), count=n, unit="rows")
        print(f"  {'':<34} Parquet {parquet.stat().st_size / 2**20:.1f} MiB, CSV {csv.stat().st_size / 2**20:.1f} MiB",
              flush=True)
        expected = table.set_index("sample_id").loc[ids.astype(str)]
        for label, path in (("Parquet", parquet), ("CSV", csv)):
            got = stages.run(f"import predictions ({label})", lambda path=path: read_predictions(
                path, ids=ids, classes=CLASSES, name="bench"), count=n, unit="rows")
            assert np.allclose(got.probs[:, 1], expected[CLASSES[1]], atol=1e-9), f"{label}: probabilities moved"
            assert got.embedding.shape == (n, EMBEDDING_DIM) and got.out_of_sample.sum() == expected[
                "out_of_sample"].sum()

        tok = stages.run("train tokenizer", lambda: _train_tokenizer(texts, args.vocab), count=n)
        tokenizer = folder / "tokenizer.json"
        tok.save(str(tokenizer))
        torch.manual_seed(args.seed)
        net = _bert(tok.get_vocab_size(), args, heads)
        onnx_path = folder / "bert.onnx"
        stages.run("export to ONNX", lambda: _export(net, onnx_path))
        params = sum(p.numel() for p in net.parameters())
        print(f"  {'':<34} {params / 1e6:.1f} M parameters, {onnx_path.stat().st_size / 2**20:.1f} MiB ONNX file",
              flush=True)

        model = stages.run("open ONNX model (with its probe)", lambda: open_model(
            onnx_path, classes=CLASSES, probe=texts, tokenizer=tokenizer, max_tokens=args.max_tokens))
        if os.cpu_count() > cores:
            model.session = _session(onnx_path, cores)
        order = np.argsort([len(t) for t in texts], kind="stable")  # as UserModel.score orders them
        tokens = stages.run("tokenize alone", lambda: _tokenize_all(model.tokenizer, texts, order), count=n)
        print(f"  {'':<34} {tokens['real']:,} tokens ({tokens['real'] / n:.0f} a text), "
              f"{tokens['padded']:,} with padding", flush=True)
        p_onnx, embedding = stages.run("score with ONNX Runtime", lambda: model.score(texts), count=n)
        assert p_onnx.shape == (n, 2) and embedding.shape == (n, args.hidden)

        if not args.skip_torch:
            p_torch, forward_s = stages.run("score with PyTorch eager", lambda: _score_torch(
                net, tok, texts, order, args.max_tokens), count=n)
            gap = np.abs(p_onnx - p_torch).max()

    stages.table()
    tok_s, ort_s = stages.seconds("tokenize alone"), stages.seconds("score with ONNX Runtime")
    print(f"\n  ONNX Runtime, model only (score less tokenizing): {ort_s - tok_s:8.2f} s  "
          f"{n / (ort_s - tok_s):8,.0f} texts/s")
    if not args.skip_torch:
        torch_s = stages.seconds("score with PyTorch eager")
        print(f"  PyTorch eager, model only (forward passes):      {forward_s:8.2f} s  {n / forward_s:8,.0f} texts/s")
        print(f"\n  speed-up of ONNX Runtime over PyTorch eager: {torch_s / ort_s:.2f}x from text, "
              f"{forward_s / (ort_s - tok_s):.2f}x model only")
        print(f"  parity: max |p_onnx - p_torch| over {n:,} texts = {gap:.2e} (the tests hold it under 1e-5)")


def _predictions_table(ids: pd.Series, seed: int) -> pd.DataFrame:
    """One row per text, shuffled: a probability per class, a unit-length embedding, an out-of-sample flag."""
    rng = np.random.default_rng(seed)
    n = len(ids)
    p = rng.beta(2, 2, size=n)
    vectors = rng.normal(size=(n, EMBEDDING_DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    table = pd.DataFrame({"sample_id": ids.astype(str).to_numpy(), CLASSES[0]: 1 - p, CLASSES[1]: p,
                          "embedding": list(vectors), "out_of_sample": rng.random(n) < 0.5})
    return table.iloc[rng.permutation(n)].reset_index(drop=True)


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    """The embedding as JSON text ('[0.1, ...]'), as a CSV must carry a list."""
    out = table.assign(embedding=[json.dumps([round(float(x), 6) for x in v]) for v in table["embedding"]])
    out.to_csv(path, index=False)


def _train_tokenizer(texts: list[str], vocab: int):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab, special_tokens=SPECIAL_TOKENS,
                                                             show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[(t, tok.token_to_id(t)) for t in ("[CLS]", "[SEP]")])
    return tok


def _bert(vocab: int, args, heads: int):
    """(logits, pooled output) from a randomly initialised BERT classifier, in eval mode."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    net = BertForSequenceClassification(BertConfig(
        vocab_size=vocab, hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=heads,
        intermediate_size=4 * args.hidden, max_position_embeddings=512, num_labels=len(CLASSES),
        attn_implementation="eager")).eval()

    class Classifier(torch.nn.Module):  # what a fine-tuned classifier's export gives
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return self.inner.classifier(out.pooler_output), out.pooler_output

    return Classifier(net).eval()


def _export(net, path: Path) -> None:
    """The legacy TorchScript exporter (dynamo=False), as the tests use; its deprecation and tracer warnings
    are about graphs with data-dependent control flow, which this one has not."""
    import warnings

    import torch

    ids = torch.tensor([[2, 5, 6, 3], [2, 7, 3, 0]])
    token_axes = {0: "batch", 1: "tokens"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (ids, (ids > 0).long(), torch.zeros_like(ids)), str(path),
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["logits", "pooler_output"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": token_axes, "attention_mask": token_axes,
                                        "token_type_ids": token_axes, "logits": {0: "batch"},
                                        "pooler_output": {0: "batch"}})


def _batches(tok, texts: list[str], order: np.ndarray):
    """(rows, input_ids, attention_mask, token_type_ids) per batch, as UserModel feeds them."""
    for start in range(0, len(texts), _BATCH_TOKENS):
        rows = order[start:start + _BATCH_TOKENS]
        encoded = tok.encode_batch([texts[i] for i in rows])
        yield (rows, np.array([e.ids for e in encoded], dtype=np.int64),
               np.array([e.attention_mask for e in encoded], dtype=np.int64),
               np.array([e.type_ids for e in encoded], dtype=np.int64))


def _tokenize_all(tok, texts: list[str], order: np.ndarray) -> dict[str, int]:
    real = padded = 0
    for _, ids, mask, _ in _batches(tok, texts, order):
        real += int(mask.sum())
        padded += ids.size
    return {"real": real, "padded": padded}


def _score_torch(net, tok, texts: list[str], order: np.ndarray, max_tokens: int) -> tuple[np.ndarray, float]:
    """((N, 2) probabilities in the texts' order, seconds in forward passes), tokenizing as UserModel does."""
    import torch

    tok.enable_truncation(max_length=max_tokens)
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]"))
    probs, forward = np.zeros((len(texts), len(CLASSES))), 0.0
    with torch.no_grad():
        for rows, ids, mask, types in _batches(tok, texts, order):
            start = time.perf_counter()
            logits, _ = net(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types))
            probs[rows] = torch.softmax(logits.double(), dim=1).numpy()
            forward += time.perf_counter() - start
    return probs, forward


def _limit_cores(cores: int) -> int:
    """Pin the process to ``cores`` CPUs when the machine has more; the CPUs it may use."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count()))
    if len(allowed) > cores:
        os.sched_setaffinity(0, allowed[:cores])
        return cores
    return len(allowed)


def _session(path: Path, cores: int):
    """The model's session again, with ``cores`` intra-op threads (ONNX Runtime's default is every physical core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = cores
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


if __name__ == "__main__":
    main()
