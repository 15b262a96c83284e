"""Read a folder of text files laid out ``[split/]label/*.txt``.

- ``label/*.txt``: each sub-folder is a class, each ``.txt`` file in it one text;
- ``split/label/*.txt``: the same under one folder per split (``train``, ``test``, ...).

``read_folder(path, *, report, memory_limit_mib)`` returns the rows as a table
(``text``, ``label``, ``split``) with their relative paths, which become the ids
(``train/pos/0001`` for ``train/pos/0001.txt``), so decisions survive new runs. The
IMDB layout (``aclImdb/``) is read by ``pipeline.data.imdb`` instead, which also reads
its ratings and movie ids. Files that are not UTF-8 are kept with the bad bytes
replaced (and reported); hidden files are skipped; other files, and links that lead out
of the folder (or into a folder already read), are reported and ignored: a folder from
someone else cannot pull ``/etc/passwd`` into a store you may share.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.data.dataset import LoadError, LoadReport
from pipeline.data.tables import MEMORY_FACTOR, available_mib
from pipeline.data.unpack import Limits

LAYOUTS = "label/*.txt or split/label/*.txt"


def read_folder(path: Path, *, report: LoadReport, memory_limit_mib: float | None = None,
                limits: Limits = Limits()) -> tuple[pd.DataFrame, pd.Series]:
    """(table with text, label, split columns; the relative path of each file)."""
    path = Path(path)
    root = path.resolve()
    tops = sorted(p for p in path.iterdir()
                  if not p.name.startswith(".") and p.is_dir() and _inside(p, root, report, path))
    if not tops:
        raise LoadError(f"{path} holds no sub-folders. A text folder is laid out {LAYOUTS}: one folder per "
                        "class (under one folder per split if there are splits), one .txt file per text.")
    nested = [t for t in tops if any(c.is_dir() and not c.is_symlink() and not c.name.startswith(".")
                                     for c in t.iterdir())]
    flat = [t for t in tops if any(c.is_file() and c.suffix == ".txt" for c in t.iterdir())]
    if nested and flat:
        raise LoadError(f"{path} mixes the two layouts ({LAYOUTS}): {nested[0].name}/ holds folders, "
                        f"{flat[0].name}/ holds .txt files. Use one layout.")
    if nested:
        groups = [(split.name, label) for split in nested for label in sorted(split.iterdir())
                  if label.is_dir() and not label.name.startswith(".") and _inside(label, root, report, path)]
    else:
        groups = [(None, label) for label in tops]
    files = []
    for split, folder in groups:
        for file in sorted(folder.iterdir()):
            if file.name.startswith("."):
                continue
            if file.is_file() and file.suffix == ".txt" and _inside(file, root, None, path):
                files.append((split, folder.name, file))
            else:
                report.add("ignored_file", file.relative_to(path).as_posix())
    if not files:
        raise LoadError(f"{path} holds no .txt files in its class folders ({LAYOUTS}).")
    sizes = [file.stat().st_size for _, _, file in files]
    for (_, _, file), n in zip(files, sizes):
        limits.check_member(path, file.relative_to(path).as_posix(), n, packed=False)
    size = sum(sizes)
    budget = memory_limit_mib if memory_limit_mib is not None else available_mib()
    rows, paths, read = [], [], 0
    for split, label, file in files:
        payload = file.read_bytes()
        read += len(payload)
        if read * MEMORY_FACTOR / 2**20 > budget:
            raise LoadError(
                f"{path} is too large to analyse in this machine's memory: reading stopped after {len(rows):,} files "
                f"of {len(files):,} ({size / 2**20:,.0f} MiB of text in all; a run needs about {MEMORY_FACTOR} times "
                f"that, with {budget / 1024:,.1f} GiB available). Analyse a sample of the files, or raise "
                "--memory-limit-mib if you know there is room.")
        relative = file.relative_to(path).with_suffix("").as_posix()
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = payload.decode("utf-8", errors="replace")
            report.add("not_utf8", relative)
        rows.append((text.removeprefix("\ufeff"), label, split))
        paths.append(relative)
    table = pd.DataFrame(rows, columns=["text", "label", "split"])
    if not nested:
        table = table.drop(columns="split")
    return table, pd.Series(paths, dtype=object)


def _inside(entry: Path, root: Path, report: LoadReport | None, base: Path) -> bool:
    """Whether ``entry`` is a real part of the folder: not a link out of it, nor a linked folder (loops)."""
    target = entry.resolve()
    if target == root or root not in target.parents or (entry.is_dir() and entry.is_symlink()):
        if report is not None:
            report.add("ignored_file", entry.relative_to(base).as_posix())
        return False
    return True
