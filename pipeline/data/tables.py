"""Read a table of labeled texts: CSV, TSV, Parquet or JSON Lines, with pyarrow's readers.

``read_table(path, *, report, memory_limit_mib)`` returns a pandas DataFrame with the
file's own column names. CSV and TSV cells are read as text (an id such as ``00123``
keeps its zeros; numbers are recognised later, per column), and only an empty cell is
missing (``NA``, ``null`` or ``N/A`` are values: a class may be called NA); JSON Lines
and Parquet keep their types. ``.csv.gz``, ``.tsv.gz`` and ``.jsonl.gz`` are
decompressed; UTF-16 text (with its byte-order mark) is converted. Bytes that are not
UTF-8 are replaced with U+FFFD, and each line that held some is reported
(``not_utf8``), instead of failing the whole file.

The file is read in batches, and reading stops as soon as what has been read shows that
analysing the whole file would not fit in memory (``MEMORY_FACTOR`` times the size of
the table in memory, against ``memory_limit_mib`` or, by default, the memory this
machine has available), with the number of rows read so far. Everything else a user can
fix is a ``LoadError`` naming the file and what to do.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow as pa

from pipeline.data import unpack
from pipeline.data.dataset import LoadError, LoadReport
from pipeline.data.unpack import Limits

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet",
           ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
# A run holds about this many bytes of memory per byte of the input table (IMDB: 65 MB of
# text, 3.2 GiB at the peak of a full run); reading stops before a table would not fit.
MEMORY_FACTOR = 50
_BATCH_BYTES = 8 << 20
_MAX_BAD_LINES = 5


def table_format(path: Path) -> str | None:
    """'csv' | 'tsv' | 'parquet' | 'jsonl' from the file name, or None."""
    name = Path(path).name.lower()
    for suffix in (".gz",):
        name = name.removesuffix(suffix)
    return FORMATS.get(Path(name).suffix)


def _gzipped(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def available_mib() -> float:
    """Memory this machine has available now (MemAvailable), MiB; infinite where unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("inf")


def read_table(path: Path, *, report: LoadReport, memory_limit_mib: float | None = None,
               limits: Limits = Limits()) -> pd.DataFrame:
    path = Path(path)
    fmt = table_format(path)
    if fmt is None:
        raise LoadError(f"{path}: not a table this reader knows (CSV, TSV, Parquet, JSON Lines: "
                        f"{', '.join(FORMATS)}).")
    if path.stat().st_size == 0:
        raise LoadError(f"{path} is an empty file. Point --data at a table with a header row and one row per text.")
    budget = memory_limit_mib if memory_limit_mib is not None else available_mib()
    guard = _Guard(path, budget, limits)
    try:
        if fmt == "parquet":
            batches = _parquet(path, guard)
        elif path.stat().st_size * MEMORY_FACTOR / 2**20 > budget:
            batches = _stream_text(path, fmt, guard)  # raises once the rows read are too many, and says how many
        else:
            data = _utf8(path, report, limits, budget / MEMORY_FACTOR)
            batches = _jsonl(data, guard) if fmt == "jsonl" else _csv(data, fmt, guard)
        table = pa.Table.from_batches(batches) if batches else None
    except (pa.ArrowMemoryError, MemoryError):  # a Parquet dictionary that decodes to far more than its file
        raise LoadError(f"{path} is too large to analyse in this machine's memory: decoding it needed more than is "
                        "available. Analyse a sample of it (fewer rows, or shorter texts).") from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError) as exc:
        raise LoadError(f"{path} cannot be read as {fmt.upper()} ({_first_line(exc)}). Check the file's format, "
                        "or save it as CSV, Parquet or JSON Lines.") from None
    if table is None or table.num_rows == 0:
        raise LoadError(f"{path} holds no rows. Check that it is the file you meant, with a header row.")
    return table.to_pandas(types_mapper=None)


class _Guard:
    """Stops reading once the table read so far shows the whole run would not fit in memory."""

    def __init__(self, path: Path, budget_mib: float, limits: Limits):
        self.path, self.budget_mib, self.limits, self.rows, self.bytes = path, budget_mib, limits, 0, 0

    def add(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        self.rows += batch.num_rows
        self.bytes += batch.nbytes
        if _gzipped(self.path):
            self.limits.check_total(self.path, self.bytes)
        need = self.bytes * MEMORY_FACTOR / 2**20
        if need > self.budget_mib:
            raise LoadError(
                f"{self.path} is too large to analyse in this machine's memory: reading stopped after "
                f"{self.rows:,} rows ({self.bytes / 2**20:,.0f} MiB in memory so far), and a run needs about "
                f"{MEMORY_FACTOR} times the table's size ({need / 1024:,.1f} GiB already) with "
                f"{self.budget_mib / 1024:,.1f} GiB available. Analyse a sample of the file, for example "
                "`duckdb -c \"COPY (SELECT * FROM 'FILE' USING SAMPLE 100000) TO 'sample.parquet'\"`, or "
                "raise --memory-limit-mib if you know there is room.")
        return batch


def _utf8(path: Path, report: LoadReport, limits: Limits, memory_mib: float) -> bytes:
    """The file's bytes as UTF-8, with undecodable ones replaced by U+FFFD and the lines holding them reported."""
    raw = unpack.gunzip(path, limits, memory_mib=memory_mib) if _gzipped(path) else path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a byte-order mark, as some spreadsheets save
        raw = raw.decode("utf-16", errors="replace").encode("utf-8")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # a UTF-8 byte-order mark, as spreadsheets write
    try:
        raw.decode("utf-8")
        return raw
    except UnicodeDecodeError:
        pass
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            report.add("not_utf8", f"line {number}")
            lines[number - 1] = line.decode("utf-8", errors="replace").encode("utf-8")
    return b"\n".join(lines)


def _csv(data: bytes, fmt: str, guard: _Guard) -> list[pa.RecordBatch]:
    from pyarrow import csv

    parse = csv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",", newlines_in_values=True)
    read = csv.ReadOptions(block_size=_BATCH_BYTES)
    names = csv.open_csv(io.BytesIO(data), read_options=read, parse_options=parse).schema.names
    convert = csv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=True,
                                 quoted_strings_can_be_null=False, null_values=[""])
    reader = csv.open_csv(io.BytesIO(data), read_options=read, parse_options=parse, convert_options=convert)
    return [guard.add(b) for b in reader]


def _stream_text(path: Path, fmt: str, guard: _Guard) -> list[pa.RecordBatch]:
    """A CSV, TSV or JSON Lines file too large to hold twice, read batch by batch from disk."""
    from pyarrow import csv, json

    if fmt == "jsonl":
        reader = json.open_json(path, read_options=json.ReadOptions(block_size=_BATCH_BYTES))
    else:
        parse = csv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",", newlines_in_values=True)
        read = csv.ReadOptions(block_size=_BATCH_BYTES)
        names = csv.open_csv(path, read_options=read, parse_options=parse).schema.names
        reader = csv.open_csv(path, read_options=read, parse_options=parse, convert_options=csv.ConvertOptions(
            column_types={n: pa.binary() for n in names}, null_values=[""], strings_can_be_null=True))
    return [guard.add(b) for b in reader]


def _jsonl(data: bytes, guard: _Guard) -> list[pa.RecordBatch]:
    from pyarrow import json

    table = json.read_json(io.BytesIO(data), read_options=json.ReadOptions(block_size=_BATCH_BYTES))
    return [guard.add(b) for b in table.to_batches(max_chunksize=10_000)]


def _parquet(path: Path, guard: _Guard) -> list[pa.RecordBatch]:
    import pyarrow.parquet as pq

    return [guard.add(b) for b in pq.ParquetFile(path).iter_batches(batch_size=10_000)]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
