"""What UMAP's compilation costs a new process, with and without numba's on-disk cache (analyses.project).

    .venv/bin/python bench/umap_compile.py                  # 2,000 random 20-d vectors, 3 processes per case
    .venv/bin/python bench/umap_compile.py --rows 150 --repeats 5

Each case starts fresh processes that map the same vectors the way a run maps a space (``project._knn`` then
``project._umap``, the cosine metric and the run's defaults) and prints, per process, the seconds of that map:
wall and CPU. The cases:

- ``uncached``: ``keep_umap_compiled`` turned off, as before it: every process compiles UMAP's functions;
- ``cached``: a fresh ``NUMBA_CACHE_DIR``; the first process compiles and writes the cache, the next ones load it.

The difference between a cached process and an uncached one is what every run (and every run a test starts as a
process) saves. The import of umap (pynndescent's own cached functions) is outside the figures; it is the same in
both cases.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, sys, time
import numpy as np
from pipeline.analyses import project
from pipeline.config import Config
import umap  # imported before the clock: the same in both cases

if sys.argv[2] == "uncached":
    project.keep_umap_compiled = lambda: 0
vectors = np.random.default_rng(0).normal(size=(int(sys.argv[1]), 20)).astype(np.float32)
cfg = Config()
wall, cpu = time.perf_counter(), time.process_time()
knn = project._knn(vectors, max(cfg.umap_neighbors, cfg.neighbours + 1), "cosine")
xy = project._umap(vectors, cfg, "cosine", knn)
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "shape": list(xy.shape)}))
"""


def one_process(rows: int, case: str, cache_dir: str | None) -> dict:
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)
    if cache_dir:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run([sys.executable, "-c", _CHILD, str(rows), case], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000, help="vectors mapped by each process")
    parser.add_argument("--repeats", type=int, default=3, help="processes per case")
    args = parser.parse_args()
    print(f"UMAP map of {args.rows:,} random 20-d vectors in a new process ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory() as cache:
        for case, cache_dir in (("uncached", None), ("cached", cache)):
            for k in range(args.repeats):
                got = one_process(args.rows, case, cache_dir)
                what = ("first process: compiles, writes the cache" if k == 0 else "loads the cache") \
                    if case == "cached" else "compiles"
                print(f"  {case:9s} process {k + 1}: {got['wall']:6.1f} s wall, {got['cpu']:6.1f} s CPU  ({what})")


if __name__ == "__main__":
    main()
