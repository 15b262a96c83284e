"""Run every benchmark and write docs/benchmarks.md with their figures, the machine and the date.

    .venv/bin/python bench/run_all.py            # about 50 minutes on 2 cores, 7 GB of disk under build/bench
    .venv/bin/python bench/run_all.py --quick    # only the benches that need no full 50,000-review run

Each bench runs in its own process, one after another (they would slow each other
down), and its printed output goes into the page verbatim under the command that
reproduces it. The store, query and app benches use the store the full pipeline
bench wrote, and the 1,000,000-review store generated from it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks.md"
FULL_STORE = ROOT / "build" / "bench" / "pipeline-full" / "lossmap.duckdb"

MILLION = ROOT / "build" / "bench" / "store-1m" / "lossmap.duckdb"
FULL, MIL = str(FULL_STORE.relative_to(ROOT)), str(MILLION.relative_to(ROOT))

BENCHES = [  # (title, arguments after `python`, needs the full run)
    ("Pipeline, all 50,000 reviews: wall time and peak memory per stage (target < 15 min)",
     ["bench/pipeline_time.py"], True),
    ("Pipeline, --sample 2000: wall time and peak memory per stage (target < 2 min)",
     ["bench/pipeline_time.py", "--sample", "2000"], False),
    ("Scoring: ONNX Runtime vs native, every model", ["bench/scoring.py"], False),
    ("Your own classifier, 5,000 reviews: a predictions file imported, a 4-layer BERT scored with ONNX Runtime "
     "vs PyTorch eager (the 50,000-review run takes about 10 minutes: `--n 50000`)",
     ["bench/own_model.py", "--n", "5000"], False),
    ("A generated store of 1,000,000 reviews (the full run's reviews, 20 copies)",
     ["bench/make_store.py", "--from", FULL, "--out", MIL], True),
    ("App queries on the 50,000-review store (target p95 < 100 ms)", ["bench/queries.py", "--db", FULL], True),
    ("App queries on the 1,000,000-review store (target p95 < 500 ms)",
     ["bench/queries.py", "--db", MIL, "--target", "500"], True),
    ("App pages in headless Chromium, 50,000-review store (target < 2 s)", ["bench/app_render.py", "--db", FULL], True),
    ("App pages in headless Chromium, 1,000,000-review store (measured against the same 2 s)",
     ["bench/app_render.py", "--db", MIL], True),
    ("Hostile inputs: what refusing a decompression bomb, an unwritable folder, a held store or a crafted store "
     "costs", ["bench/hostile_inputs.py"], False),
    ("Decisions file: how fast a damaged or busy file is reported", ["bench/decisions_file.py"], False),
    ("Label issues: methods and sources across four noise scenarios (NB-LR and the dense network; "
     "the CNN is left out for time, see README)", ["bench/label_noise.py", "--models", "nblr,dense"], True),
]


def machine() -> str:
    mem = ""
    try:
        kib = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
        mem = f", {kib / 2**20:.0f} GiB memory"
    except (OSError, StopIteration):
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the benches that need the full run")
    args = parser.parse_args()
    started = dt.datetime.now(dt.timezone.utc)
    sections = []
    for title, argv, needs_full in BENCHES:
        if args.quick and needs_full:
            continue
        print(f"== {title}", flush=True)
        t = time.perf_counter()
        out = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - t
        body = out.stdout.strip() if out.returncode == 0 else f"FAILED (exit {out.returncode}):\n{out.stderr[-2000:]}"
        print(body, flush=True)
        sections.append(f"## {title}\n\n`.venv/bin/python {' '.join(argv)}` ({seconds:.0f} s)\n\n```\n{body}\n```\n")
    OUT.write_text(
        "# Benchmarks\n\n"
        f"Written by `bench/run_all.py{' --quick' if args.quick else ''}` on {started:%Y-%m-%d %H:%M} UTC, on "
        f"{machine()}; no GPU was used. Every figure below is that run's output; rerun the command beside a "
        "section to check it. README's Measured table cites these figures and adds the targets.\n\n"
        + "\n".join(sections))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
