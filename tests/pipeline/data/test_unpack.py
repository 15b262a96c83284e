"""Decompression bombs: refused with one line before the bytes are held, whatever the input's kind."""

import gzip
import io
import re
import subprocess
import sys
import tarfile
import tracemalloc

import pytest

from pipeline.data import tables
from pipeline.data.dataset import LoadError, LoadReport
from pipeline.data.imdb import load_reviews
from pipeline.data.unpack import Limits
from tests.conftest import ROOT, balanced_reviews

_MIB = 2**20


def _bomb_archive(path, member_mib: int):
    """A tar.gz of ordinary reviews plus one review of zeros (deflate packs 64 MiB of them into 64 KiB)."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for sample_id, payload in balanced_reviews(3).items():
            info = tarfile.TarInfo(f"aclImdb/{sample_id}.txt")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        info = tarfile.TarInfo("aclImdb/train/pos/99_9.txt")
        info.size = member_mib * _MIB
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    return path


def _refused(act) -> tuple[str, float]:
    """The message of the LoadError ``act`` raises, and the most memory Python held meanwhile (MiB)."""
    tracemalloc.start()
    try:
        act()
    except LoadError as exc:
        return str(exc), tracemalloc.get_traced_memory()[1] / _MIB
    finally:
        tracemalloc.stop()
    pytest.fail("the input was accepted")


def test_an_archive_member_past_the_cap_is_refused_before_it_is_read(tmp_path):
    path = _bomb_archive(tmp_path / "bomb.tar.gz", member_mib=64)
    assert path.stat().st_size < 1 * _MIB
    message, peak = _refused(lambda: load_reviews(path, progress=False))
    assert re.search(r"'aclImdb/train/pos/99_9.txt' would unpack to 64 MiB, more than the 16 MiB a file may be "
                     r"\(--max-member-mib\).*raise --max-member-mib", message), message
    assert peak < 8, f"{peak:.0f} MiB held"
    assert len(load_reviews(path, progress=False, limits=Limits(member_mib=65)).frame) == 13  # raised: read


def test_an_archive_that_unpacks_past_the_input_cap_is_refused(tmp_path):
    path = _bomb_archive(tmp_path / "bomb.tar.gz", member_mib=3)
    with pytest.raises(LoadError, match=r"unpacks to more than 2 MiB \(--max-input-mib\)"):
        load_reviews(path, progress=False, limits=Limits(input_mib=2))


def test_a_gzipped_table_is_read_only_up_to_the_input_cap(tmp_path):
    path = tmp_path / "bomb.csv.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(b"text,label\n")
        for _ in range(64):
            out.write(b"spam spam spam,a\n" * (_MIB // 17))
    message, peak = _refused(lambda: tables.read_table(path, report=LoadReport(), limits=Limits(input_mib=8)))
    assert re.search(r"bomb.csv.gz unpacks to more than 8 MiB \(--max-input-mib\)", message), message
    assert peak < 24, f"{peak:.0f} MiB held"  # the 8 MiB read, joined once; not the 64 MiB


def test_a_file_of_a_text_folder_past_the_member_cap_is_refused(tmp_path):
    from pipeline.data.folders import read_folder

    for label in ("good", "bad"):
        (tmp_path / "texts" / label).mkdir(parents=True)
        (tmp_path / "texts" / label / "1.txt").write_text(f"a {label} text")
    (tmp_path / "texts" / "good" / "huge.txt").write_bytes(b"x" * (2 * _MIB))
    with pytest.raises(LoadError, match=r"'good/huge.txt' is 2 MiB, more than the 1 MiB a text file may be \(--max-member-mib\)\. Split"):
        read_folder(tmp_path / "texts", report=LoadReport(), limits=Limits(member_mib=1))


def test_the_cli_refuses_a_bomb_in_one_line_and_writes_no_store(tmp_path):
    path = _bomb_archive(tmp_path / "aclImdb_v1.tar.gz", member_mib=20)
    db = tmp_path / "out.duckdb"
    done = subprocess.run([sys.executable, "-m", "pipeline", "run", "--data", str(path), "--db", str(db),
                           "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "more than the 16 MiB a file may be (--max-member-mib)" in lines[0], done.stderr
    assert not db.exists()
    help_text = subprocess.run([sys.executable, "-m", "pipeline", "run", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120).stdout
    assert "--max-member-mib" in help_text and "--max-input-mib" in help_text


def _raw_archive(path, blocks: list[bytes]):
    """A gzip of hand-made tar blocks."""
    with gzip.open(path, "wb", compresslevel=1) as out:
        for block in blocks:
            out.write(block)
    return path


def test_a_huge_long_name_header_and_data_after_the_end_are_refused_without_being_held(tmp_path):
    def header(name: str, size: int, kind: bytes) -> bytes:
        info = tarfile.TarInfo(name)
        info.size, info.type = size, kind
        return info.tobuf(format=tarfile.GNU_FORMAT)

    long_name = 64 * _MIB  # tarfile would hold a GNU long-name payload whole
    bomb = _raw_archive(tmp_path / "longname.tar.gz", [header("././@LongLink", long_name, tarfile.GNUTYPE_LONGNAME),
                                                      bytes(long_name)])
    message, peak = _refused(lambda: load_reviews(bomb, progress=False))
    assert "outside any file, in a tar header or after the archive's end" in message and peak < 8, (message, peak)

    good = io.BytesIO()
    with tarfile.open(fileobj=good, mode="w") as tar:
        for sample_id, payload in balanced_reviews(3).items():
            info = tarfile.TarInfo(f"aclImdb/{sample_id}.txt")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    trailing = _raw_archive(tmp_path / "trailing.tar.gz", [good.getvalue(), bytes(64 * _MIB)])
    message, peak = _refused(lambda: load_reviews(trailing, progress=False))
    assert "outside any file" in message and peak < 8, (message, peak)


def test_a_gzipped_table_past_what_memory_allows_is_refused_early(tmp_path):
    path = tmp_path / "big.csv.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(b"text,label\n" + b"spam spam spam,a\n" * (20 * _MIB // 17))
    message, peak = _refused(lambda: tables.read_table(path, report=LoadReport(), memory_limit_mib=100))
    assert "too large to analyse in this machine's memory" in message and peak < 16, (message, peak)
