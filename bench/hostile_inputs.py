"""How fast, and in how much memory, the pipeline refuses what it must refuse (issue 12, points 4 to 7).

    .venv/bin/python bench/hostile_inputs.py

Each case runs ``python -m pipeline run ...`` (or opens a store) in a fresh process and
prints its wall seconds, its peak resident memory (MiB, from the kernel's count of the
child) and the first words of what it said:

- a 512 KiB archive whose one review unpacks to 512 MiB (a decompression bomb);
- an archive of 40 members of 15 MiB each, under the member cap, with --max-input-mib 256;
- a store in a folder no one can write (/sys), and a second run on a store another holds;
- a shared store holding a macro named ``lower``, opened as the app opens it.

Nothing here is timed inside a test: the tests assert the messages, this prints the costs.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_MIB = 2**20


def _archive(path: Path, members: dict[str, int]) -> Path:
    """A tar.gz of reviews made of zeros: name -> size in bytes."""
    with tarfile.open(path, "w:gz", compresslevel=9) as tar:
        for name, size in members.items():
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, _Zeros(size))
    return path


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, produced as they are read (the bomb is never held while it is made)."""

    def __init__(self, size: int):
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


_WRAP = """
import atexit, resource, runpy, sys
atexit.register(lambda: print(f"peak_kib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", file=sys.stderr))
kind, what, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.argv = [what, *rest]
if kind == "-m":
    runpy.run_module(what, run_name="__main__", alter_sys=True)
else:
    exec(compile(what, "<case>", "exec"), {"__name__": "__main__"})
"""


def _child(args: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak resident MiB of that process, the last thing it printed before its peak line)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAP, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    seconds = time.perf_counter() - start
    lines = done.stderr.strip().splitlines()
    peak = next((int(x.split("=")[1]) for x in reversed(lines) if x.startswith("peak_kib=")), 0) / 1024
    said = [x for x in lines if not x.startswith("peak_kib=")] or done.stdout.strip().splitlines() or ["(nothing)"]
    return seconds, peak, said[-1]


def _row(case: str, result: tuple[float, float, str]) -> None:
    seconds, peak, said = result
    print(f"{case:<46} {seconds:>7.2f} {peak:>9,.0f}  {said[:150]}", flush=True)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="lossmap-hostile-"))
    try:
        _cases(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _cases(folder: Path) -> None:
    run = ["-m", "pipeline", "run", "--no-progress", "--sample", "60", "--models-dir", str(folder / "models")]
    print(f"{'case':<46} {'seconds':>7} {'peak MiB':>9}  what it said")
    _row("baseline: python -m pipeline runs --help", _child(["-m", "pipeline", "runs", "--help"]))
    _row("baseline: import the whole pipeline", _child(["-c", "import pipeline.run"]))

    bomb = _archive(folder / "bomb.tar.gz", {"aclImdb/train/pos/1_9.txt": 512 * _MIB})
    print(f"  (bomb.tar.gz: {bomb.stat().st_size / 1024:,.0f} KiB on disk, one member of 512 MiB)")
    _row("member bomb, default --max-member-mib 16", _child([*run, "--data", str(bomb), "--db", str(folder / "a.duckdb")]))

    many = _archive(folder / "many.tar.gz", {f"aclImdb/train/pos/{i}_9.txt": 15 * _MIB for i in range(40)})
    _row("40 x 15 MiB members, --max-input-mib 256",
         _child([*run, "--data", str(many), "--db", str(folder / "b.duckdb"), "--max-input-mib", "256"]))

    data = ["--data", str(ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz")]
    _row("store in an unwritable folder (/sys)", _child([*run, *data, "--db", "/sys/lossmap.duckdb"]))

    db = folder / "held.duckdb"
    hold = subprocess.Popen([sys.executable, "-c", "import sys, time, pathlib\nfrom pipeline.store import files\n"
                             "with files.reserve(pathlib.Path(sys.argv[1])):\n    print('held', flush=True)\n"
                             "    time.sleep(600)", str(db)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    hold.stdout.readline()
    try:
        _row("a second run on a store another run holds", _child([*run, *data, "--db", str(db)]))
    finally:
        hold.kill()
        hold.wait()

    crafted = folder / "crafted.duckdb"
    _child(["-c", "import sys, pathlib\nfrom pipeline.store import files\n"
                  "files.publish(pathlib.Path(sys.argv[1]), lambda con: None)\n"
                  "import duckdb\ncon = duckdb.connect(sys.argv[1])\ncon.execute(\"CREATE MACRO lower(x) AS 'pwned'\")\n"
                  "con.close()", str(crafted)])
    _row("a shared store with a macro, opened as the app does",
         _child(["-c", "import sys, pathlib\nfrom pipeline.store import files\n"
                       "files.open_readonly(pathlib.Path(sys.argv[1]))", str(crafted)]))


if __name__ == "__main__":
    main()
