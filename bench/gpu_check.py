"""ONNX Runtime on an NVIDIA GPU: the pipeline's provider choice, parity with the CPU, throughput.

    .venv/bin/python bench/gpu_check.py prepare --run-dir build/bench/pipeline-full --out build/gpu
    python3 bench/gpu_check.py check build/gpu        # on a machine with a GPU and onnxruntime-gpu

``prepare`` (here) copies the full run's conventional models (NB-LR, dense, CNN),
encodes 5,000 seeded test reviews for each of them exactly as the pipeline does,
and stores the probabilities the run itself recorded for those reviews.

``check`` (there) asks ``pipeline.models.score.providers("auto")`` which providers to use,
loads every model with them (the pipeline's own loader), and reports, per model:
the provider the session runs on, the largest gap to the CPU provider and to the
stored run, and reviews per second on the GPU and on the CPU provider, best of 3,
same batches.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_REVIEWS = 5_000
MODELS = {"nblr-train": "nblr", "dense-train": "dense", "cnn-train": "cnn"}  # model id -> family


def prepare(run_dir: Path, out: Path) -> None:
    import duckdb
    import pandas as pd
    import scipy.sparse as sp

    from pipeline.models import score
    from pipeline.models import sequences

    con = duckdb.connect(str(run_dir / "lossmap.duckdb"), read_only=True)
    run_id = con.execute("SELECT run_id FROM runs ORDER BY completed_at DESC LIMIT 1").fetchall()[0][0]
    rows = con.execute("SELECT sample_id, display_text FROM samples WHERE run_id = ? AND split = 'test' "
                       "ORDER BY hash(sample_id) LIMIT ?", [run_id, N_REVIEWS]).df()
    out.mkdir(parents=True, exist_ok=True)
    stored = {}
    for model_id, family in MODELS.items():
        checked = score.load_stored(run_dir / "lossmap.duckdb", run_id, model_id, device="cpu")  # sha256 as stored
        shutil.copyfile(checked.path, out / f"{model_id}.onnx")
        ref = con.execute("SELECT sample_id, probs[2] AS p FROM predictions WHERE run_id = ? AND model_id = ? "
                          "AND protocol = 'conventional'", [run_id, model_id]).df().set_index("sample_id")
        stored[model_id] = ref.loc[rows["sample_id"], "p"].to_numpy()
        if family == "nblr":
            model = score.OnnxTextModel.load(out / f"{model_id}.onnx", device="cpu")
            counts = model.vectorizer().transform(rows["display_text"])
            sp.save_npz(out / "nblr_counts.npz", counts)
            p = model.score_counts(counts)[:, 1]
        else:
            model = score.OnnxNetwork.load(out / f"{model_id}.onnx", device="cpu")
            if family == "cnn":
                cfg = json.loads(con.execute("SELECT config FROM runs WHERE run_id = ?", [run_id]).fetchall()[0][0])
                seqs = sequences.tokenize_sequences(rows["display_text"])
                pos = pd.Index(model.vocab).get_indexer(seqs.words)
                remap = np.where(pos >= 0, pos + 2, sequences.UNKNOWN)
                x = sequences.encode(seqs, np.arange(len(rows)), remap, cfg["max_len"], cfg["truncation"])
                np.save(out / "cnn_ids.npy", x.astype(np.int32))
            else:  # the dense network's multi-hot input
                x = sp.csr_matrix(model.vectorizer(binary=True).transform(rows["display_text"]))
                sp.save_npz(out / "dense_x.npz", x)
            p = model.score(x)[0][:, 1]
        gap = float(np.max(np.abs(p - stored[model_id])))
        print(f"{model_id}: CPU here vs the run's stored probabilities: max gap {gap:.1e}")
        if gap > 1e-4:
            raise SystemExit(f"{model_id}: inputs are not encoded as the run encoded them (gap {gap:.1e})")
    np.savez(out / "stored.npz", **{m.replace("-", "_"): v for m, v in stored.items()})
    print(f"wrote {out} ({sum(f.stat().st_size for f in out.iterdir()) / 2**20:.1f} MiB)")


def check(folder: Path) -> None:
    import onnxruntime as ort
    import scipy.sparse as sp

    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # CUDA and cuDNN from the nvidia-* wheels, where installed
    from bench.scoring import best_of
    from pipeline.models import score

    print(f"onnxruntime {ort.__version__}, available providers {ort.get_available_providers()}")
    print(f"pipeline.models.score.providers('auto') -> {score.providers('auto')}")
    stored = np.load(folder / "stored.npz")
    inputs = {"nblr-train": sp.load_npz(folder / "nblr_counts.npz"), "dense-train": sp.load_npz(folder / "dense_x.npz"),
              "cnn-train": np.load(folder / "cnn_ids.npy").astype(np.int64)}
    print(f"\n{N_REVIEWS:,} test reviews per model, best of 3\n")
    print("| model | provider | max gap GPU vs CPU | max gap vs stored run | GPU reviews/s | CPU reviews/s | GPU / CPU |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for model_id, family in MODELS.items():
        kind = score.OnnxTextModel if family == "nblr" else score.OnnxNetwork
        gpu, cpu = (kind.load(folder / f"{model_id}.onnx", device=d) for d in ("auto", "cpu"))
        run = (lambda m: (lambda: m.score_counts(inputs[model_id])[:, 1])) if family == "nblr" else \
            (lambda m: (lambda: m.score(inputs[model_id])[0][:, 1]))
        p_gpu, p_cpu = run(gpu)(), run(cpu)()
        t_gpu, t_cpu = best_of(run(gpu)), best_of(run(cpu))  # after the untimed runs above
        ref = stored[model_id.replace("-", "_")]
        print(f"| {model_id} | {gpu.provider} | {np.max(np.abs(p_gpu - p_cpu)):.1e} | {np.max(np.abs(p_gpu - ref)):.1e} "
              f"| {N_REVIEWS / t_gpu:,.0f} | {N_REVIEWS / t_cpu:,.0f} | {t_cpu / t_gpu:.2f}x |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--run-dir", type=Path, default=ROOT / "build/bench/pipeline-full")
    p.add_argument("--out", type=Path, default=ROOT / "build/gpu")
    c = sub.add_parser("check")
    c.add_argument("folder", type=Path)
    args = parser.parse_args()
    prepare(args.run_dir, args.out) if args.command == "prepare" else check(args.folder)


if __name__ == "__main__":
    main()
