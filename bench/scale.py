"""How a run's cost grows with the data: seconds and peak memory per stage at growing sizes, local and on Ray.

    .venv/bin/python bench/scale.py --sizes 50000,200000 --families all --engines local
    .venv/bin/python bench/scale.py --sizes 1000000 --families linear --engines local,ray

The IMDB reviews are replicated to each size; every copy after the first is perturbed (about one word in ten
dropped, a few neighbouring words swapped, seeded per copy), so no two texts are the same and nothing is cached.
A copy keeps its review's label, split and rating, and is grouped with the other copies of its movie (folds never
split a movie). The table goes to build/bench/scale/reviews-N.parquet; each run is `python -m pipeline run` in a child
process on a fresh store, and its seconds and peak resident memory per stage are read from the store
(``runs.stage_seconds``, ``runs.stage_peak_mib``), and the store stage's peak from the child's own resource usage
(the run resets its peak at each stage's start, so what the parent sees is the last stage's). ``--families
linear`` runs the linear model only (--no-dense --no-cnn); ``all`` the default families.

``--engines ray`` starts a local Ray cluster of ``--ray-nodes`` nodes on 127.0.0.1 (one CPU each unless
--ray-cpus), runs against it and stops it. On one machine that measures Ray's overhead, not a speed-up:
the nodes share its cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = os.environ.get("IMDB_DATA", str(ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"))
OUT = ROOT / "build" / "bench" / "scale"


def replicated(archive: Path, size: int, seed: int = 0) -> Path:
    """The table of ``size`` reviews (see the module doc), written once and reused."""
    path = OUT / f"reviews-{size}.parquet"
    if path.exists():
        return path
    from pipeline.data.imdb import load_reviews

    base = load_reviews(archive, progress=False).frame
    base = base.iloc[np.random.default_rng(seed).permutation(len(base))].reset_index(drop=True)  # any size: both
    # classes and both splits
    parts = []
    for copy in range(-(-size // len(base))):
        take = base.iloc[: size - copy * len(base)]
        texts = take["text"] if copy == 0 else [_perturb(t, np.random.default_rng([seed, copy, i]))
                                                for i, t in enumerate(take["text"])]
        parts.append(pd.DataFrame({"id": take["sample_id"] + ("" if copy == 0 else f"~{copy}"), "text": texts,
                                   "label": take["label"].map({0: "neg", 1: "pos"}), "split": take["split"],
                                   "movie": take["movie_id"], "rating": take["rating"]}))
    OUT.mkdir(parents=True, exist_ok=True)
    pd.concat(parts, ignore_index=True).to_parquet(path)
    return path


def _perturb(text: str, rng: np.random.Generator) -> str:
    words = text.split(" ")
    keep = rng.random(len(words)) >= 0.1
    words = [w for w, k in zip(words, keep) if k] or words[:1]
    for at in rng.integers(0, max(len(words) - 1, 1), size=max(len(words) // 50, 1)):
        if at + 1 < len(words):
            words[at], words[at + 1] = words[at + 1], words[at]
    return " ".join(words)


def run(table: Path, size: int, families: str, engine: str, address: str | None,
        memory_limit_mib: float | None = None) -> dict:
    folder = OUT / f"run-{size}-{families}-{engine}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    db = folder / "lossmap.duckdb"
    cmd = [sys.executable, "-m", "pipeline", "run", "--data", str(table), "--text", "text", "--label", "label",
           "--split", "split", "--group", "movie", "--score", "rating", "--db", str(db),
           "--models-dir", str(folder / "models"), "--no-progress", "--engine", engine]
    cmd += ["--no-dense", "--no-cnn"] if families == "linear" else []
    cmd += ["--ray-address", address] if address else []
    cmd += ["--memory-limit-mib", str(memory_limit_mib)] if memory_limit_mib else []
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)  # the child's own peak: its last window, the store stage's
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, cmd)
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        stages, peaks = con.execute("SELECT stage_seconds, stage_peak_mib FROM runs").fetchone()
    peaks = json.loads(peaks)
    peaks["store"] = usage.ru_maxrss / 1024  # KiB on Linux; the run resets its peak at each stage's start
    return {"wall": wall, "stages": json.loads(stages), "peaks": peaks}


def start_cluster(nodes: int, cpus: int):
    """A Ray cluster of ``nodes`` raylets on 127.0.0.1, held by this process (Ray's own ``cluster_utils``: ``ray
    start`` refuses a second node on loopback) until ``.shutdown()``."""
    from pipeline.engine import stay_on_loopback

    stay_on_loopback()
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus, "include_dashboard": False})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=cpus)
    cluster.wait_for_nodes()
    return cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="the IMDB archive")
    parser.add_argument("--sizes", default="50000,200000", help="reviews per run, comma-separated")
    parser.add_argument("--families", default="all", choices=("all", "linear"))
    parser.add_argument("--engines", default="local", help="local, ray or local,ray")
    parser.add_argument("--ray-nodes", type=int, default=2)
    parser.add_argument("--ray-cpus", type=int, default=1, help="CPUs each Ray node offers")
    parser.add_argument("--memory-limit-mib", type=float, default=None,
                        help="passed to each run: the memory its up-front check may count on (default: what is "
                             "available)")
    args = parser.parse_args()

    results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        table = replicated(Path(args.data), size)
        for engine in args.engines.split(","):
            cluster = start_cluster(args.ray_nodes, args.ray_cpus) if engine == "ray" else None
            try:
                results[(size, engine)] = found = run(table, size, args.families, engine,
                                                      cluster.address if cluster else None, args.memory_limit_mib)
            finally:
                if cluster is not None:
                    cluster.shutdown()
            print(f"\n{size:,} reviews, {args.families} families, {engine} engine ({os.cpu_count()} cores"
                  + (f"; {args.ray_nodes} Ray nodes of {args.ray_cpus} CPU" if engine == "ray" else "") + ")")
            print(f"  wall {found['wall']:.0f} s, peak {max(found['peaks'].values()) / 1024:.1f} GiB")
            print(f"  {'stage':<10} {'s':>8} {'peak GiB':>9}")
            for stage, seconds in found["stages"].items():
                print(f"  {stage:<10} {seconds:8.1f} {found['peaks'][stage] / 1024:9.2f}")
            print(f"  {'store':<10} {'':>8} {found['peaks']['store'] / 1024:9.2f}   (and the run's start-up)")
    sizes = sorted({s for s, _ in results})
    if len(sizes) > 1:
        print("\ngrowth of each stage's seconds from the smallest size (linear growth = the size ratio)")
        for engine in args.engines.split(","):
            small = results[(sizes[0], engine)]["stages"]
            for size in sizes[1:]:
                big = results[(size, engine)]["stages"]
                ratio = size / sizes[0]
                print(f"  {engine}, x{ratio:g} data: " + ", ".join(
                    f"{k} x{big[k] / max(small[k], 1e-3):.1f}" for k in big if k in small))


if __name__ == "__main__":
    main()
