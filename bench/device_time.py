"""The same pipeline run once per `--device` on one machine: seconds and peak memory per stage, and how far apart
the runs' results are.

    python3 bench/device_time.py                                 # --device auto, then cpu; all 50,000 reviews
    python3 bench/device_time.py --sample 2000 --devices cuda    # a quick check that the GPU can be used

Each run is `python -m pipeline run --device D` in a child process on a fresh store under
build/bench/device-D/. Printed per run: where the networks trained and the ONNX sessions ran
(as the run itself says), wall time, accuracies, the largest ONNX-vs-PyTorch gap, and per stage
the seconds and peak resident memory (the store stage's from the child's own resource usage).
Then, against the first device's run: per family the largest gap in any probability, the share of
reviews whose predicted class agrees, and how much the flagged reviews and the top 100 suspects
overlap. Networks trained on a GPU draw their dropout masks from CUDA's random generator and round
float32 otherwise, so their probabilities are not expected to match the CPU's; the linear models do
not use the device. Each device runs once: on a busy machine, seconds vary by 15-45% from run to
run. --json writes every figure to one file.
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

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.models.devices import DEVICES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = os.environ.get("IMDB_DATA", str(ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"))
TOP = 100  # suspects compared at the head of the ranking


def run(data: str, device: str, sample: int | None) -> dict:
    """One pipeline run on ``device``; its figures as the store recorded them."""
    out = ROOT / "build" / "bench" / f"device-{device}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    db = out / "lossmap.duckdb"
    cmd = [sys.executable, "-m", "pipeline", "run", "--data", data, "--db", str(db), "--models-dir",
           str(out / "models"), "--device", device, "--no-progress"] + (["--sample", str(sample)] if sample else [])
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=ROOT)
    _, status, usage = os.wait4(child.pid, 0)  # the child's own peak: since its last reset, the store stage's
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the run on --device {device} failed (exit {os.waitstatus_to_exitcode(status)})")
    con = duckdb.connect(str(db), read_only=True)
    n, stages, peaks, notes, test_acc, flagged = con.execute(
        "SELECT n_samples, stage_seconds, stage_peak_mib, load_notes, test_accuracy, n_flagged FROM runs").fetchone()
    peaks = json.loads(peaks) | {"store": usage.ru_maxrss / 1024}
    providers = con.execute("SELECT provider, count(*), max(parity_max_abs) FROM models GROUP BY provider").fetchall()
    oof = dict(con.execute("""
        SELECT p.family, avg((p.pred_label = s.label)::INT) FROM predictions p JOIN samples s USING (run_id, sample_id)
        WHERE p.protocol = 'oof' GROUP BY p.family""").fetchall())
    test = dict(con.execute("SELECT model_id, accuracy FROM models WHERE role = 'conventional' "
                            "AND accuracy IS NOT NULL").fetchall())
    return {"device": device, "db": str(db), "n": n, "wall_s": wall, "stage_s": json.loads(stages),
            "peak_mib": peaks, "notes": json.loads(notes), "test_accuracy": test_acc, "n_flagged": flagged,
            "providers": [{"provider": p, "models": k, "parity_max_abs": gap} for p, k, gap in providers],
            "oof_accuracy": oof, "test_accuracy_by_model": test}


def trained_on(r: dict) -> str:
    """Where the run's networks trained, as its note says: 'CUDA (NVIDIA H200)', 'the CPU (16 threads)'."""
    said = [n.split("PyTorch on ", 1)[1].removesuffix(" (--device)") for n in r["notes"] if "PyTorch on " in n]
    return said[0] if said else "no network"


def compare(first: dict, other: dict) -> dict:
    """How far ``other``'s results are from ``first``'s: the same reviews, folds and seed on another device."""
    con = duckdb.connect(first["db"], read_only=True)
    con.execute("ATTACH ? AS b (READ_ONLY)", [other["db"]])
    gaps = con.execute("""
        SELECT a.family, a.protocol, count(*),
               max(list_max(list_transform(list_zip(a.probs, b.probs), lambda z: abs(z[1] - z[2])))),
               avg((a.pred_label = b.pred_label)::INT)
        FROM predictions a JOIN b.predictions b USING (family, protocol, sample_id)
        GROUP BY ALL ORDER BY ALL""").fetchall()
    flagged = con.execute("""
        SELECT count(*) FILTER (a.is_label_issue AND b.is_label_issue),
               count(*) FILTER (a.is_label_issue OR b.is_label_issue)
        FROM label_issues a JOIN b.label_issues b USING (sample_id)""").fetchone()
    top = con.execute("""
        SELECT count(*) FROM (SELECT sample_id FROM label_issues WHERE issue_rank <= ?) a
        JOIN (SELECT sample_id FROM b.label_issues WHERE issue_rank <= ?) b USING (sample_id)""", [TOP, TOP]).fetchone()
    return {"against": first["device"], "device": other["device"],
            "families": [{"family": f, "protocol": p, "n": k, "max_abs_gap": gap, "same_class": same}
                         for f, p, k, gap, same in gaps],
            "flagged_both": flagged[0], "flagged_either": flagged[1], "top_shared": top[0]}


def show(r: dict) -> None:
    print(f"\n--device {r['device']}: {r['n']:,} reviews, {r['wall_s']:.1f} s wall, "
          f"peak {max(r['peak_mib'].values()):,.0f} MiB ({os.cpu_count()} cores)")
    print(f"  the networks trained on {trained_on(r)}")
    for p in r["providers"]:
        print(f"  ONNX Runtime {p['provider']}: {p['models']} models, largest gap to PyTorch/sklearn "
              f"{p['parity_max_abs']:.1e}")
    print(f"  flagged {r['n_flagged']:,}; test accuracy " + ", ".join(
        f"{m} {a:.2%}" for m, a in sorted(r["test_accuracy_by_model"].items())))
    print(f"  {'stage':<10} {'wall (s)':>9} {'peak RSS (MiB)':>15}")
    for stage, seconds in r["stage_s"].items():
        print(f"  {stage:<10} {seconds:9.1f} {r['peak_mib'][stage]:15,.0f}")
    print(f"  {'store etc.':<10} {r['wall_s'] - sum(r['stage_s'].values()):9.1f} {r['peak_mib']['store']:15,.0f}"
          "   (the rest of the wall time)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="the IMDB archive (default: $IMDB_DATA or ../shared)")
    parser.add_argument("--devices", default="auto,cpu", help=f"comma-separated --device values ({', '.join(DEVICES)}),"
                                                               " each once; the first is the reference (default: "
                                                               "auto,cpu)")
    parser.add_argument("--sample", type=int, default=None, help="reviews to keep (default: all)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    args = parser.parse_args()
    devices = [d.strip() for d in args.devices.split(",")]
    if any(d not in DEVICES for d in devices) or len(set(devices)) < len(devices):
        parser.error(f"--devices takes {', '.join(DEVICES)}, each at most once; got {args.devices!r}")

    runs, comparisons = [], []
    for device in devices:
        runs.append(run(args.data, device, args.sample))
        show(runs[-1])
    if len(runs) > 1:
        if len({trained_on(r) for r in runs}) < len(runs):
            print("\nnote: two of these runs trained their networks on the same device (" +
                  ", ".join(f"--device {r['device']}: {trained_on(r)}" for r in runs) +
                  "); their differences are run-to-run noise, not the device")
        print(f"\n  {'stage':<10} " + " ".join(f"{r['device']:>9}" for r in runs) + "   (seconds)")
        for stage in runs[0]["stage_s"]:
            print(f"  {stage:<10} " + " ".join(f"{r['stage_s'].get(stage, float('nan')):9.1f}" for r in runs))
        print(f"  {'whole run':<10} " + " ".join(f"{r['wall_s']:9.1f}" for r in runs))
    for other in runs[1:]:
        c = compare(runs[0], other)
        comparisons.append(c)
        print(f"\n--device {c['device']} against --device {c['against']}:")
        print(f"  {'family':<8} {'protocol':<13} {'reviews':>8} {'max |Δp|':>10} {'same class':>11}"
              "   (Δp: the largest gap in any class probability)")
        for f in c["families"]:
            print(f"  {f['family']:<8} {f['protocol']:<13} {f['n']:8,d} {f['max_abs_gap']:10.1e} "
                  f"{f['same_class']:11.2%}")
        print(f"  flagged by both {c['flagged_both']:,} of {c['flagged_either']:,} flagged by either; "
              f"top {TOP} suspects shared: {c['top_shared']}")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "comparisons": comparisons}, indent=1, default=str))


if __name__ == "__main__":
    main()
