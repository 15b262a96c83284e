"""How fast the app hears about a decisions file it cannot use (issue 12, point 2).

    .venv/bin/python bench/decisions_file.py

Times ``decisions.current`` (what every page reads) and ``decisions.record`` (a decision)
on a damaged file, and on a file another process holds open read-only (a notebook
reading it) or read-write (a program writing it). Only a lock is waited for: 1 s to read,
5 s to write (``decisions._READ_WAIT``, ``_RETRY_SECONDS``).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.store import decisions  # noqa: E402


def timed(action) -> tuple[float, str]:
    start = time.perf_counter()
    try:
        action()
        outcome = "ok"
    except decisions.DecisionsError as exc:
        outcome = "refused: " + str(exc).split(". ")[0].split(" is ", 1)[-1]
    return time.perf_counter() - start, outcome


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    damaged = folder / "damaged.duckdb"
    damaged.write_bytes(b"not a database" * 100)
    print(f"{'file':<28} {'read (s)':>9}  {'write (s)':>9}  outcome")
    read, said = timed(lambda: decisions.current(damaged))
    write, _ = timed(lambda: decisions.record(damaged, sample_id="b", decision="correct", old_label="x"))
    print(f"{'damaged':<28} {read:>9.3f}  {write:>9.3f}  {said}")
    good = folder / "held.duckdb"
    decisions.record(good, sample_id="a", decision="correct", old_label="x")
    for read_only in (True, False):
        holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(good)!r}, "
                                   f"read_only={read_only}); print('open', flush=True); time.sleep(60)"],
                                  stdout=subprocess.PIPE, text=True)
        holder.stdout.readline()
        time.sleep(0.2)
        read, read_said = timed(lambda: decisions.current(good))
        write, write_said = timed(lambda: decisions.record(good, sample_id="b", decision="correct", old_label="x"))
        holder.kill()
        holder.wait()
        name = f"held open {'read-only' if read_only else 'read-write'}"
        print(f"{name:<28} {read:>9.3f}  {write:>9.3f}  read {read_said}; write {write_said}")


if __name__ == "__main__":
    main()
