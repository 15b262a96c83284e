"""Caps on what compressed input may unpack to, checked before the bytes are read.

A few KiB of gzip can unpack to gigabytes (deflate reaches about 1,000:1, and a sparse
tar member declares any size it likes), so every archive member and every ``.gz`` table
is checked against two limits, both options of ``python -m pipeline run``:

- ``--max-member-mib`` (``Config.max_member_mib``): one file inside an archive, or one
  file of a text folder (an IMDB review is a few KiB, its urls files 0.6 MiB);
- ``--max-input-mib`` (``Config.max_input_mib``): everything an archive or ``.gz`` table
  unpacks to, counted as the sizes of its files (the labeled IMDB archive's total 65 MiB).

Past either, loading stops with one line (a ``LoadError``) that names the file, the
size and the option that raises the cap. Nothing larger than a cap is ever held.
"""

from __future__ import annotations

import dataclasses
import gzip
import zlib
from pathlib import Path

from pipeline.data.dataset import LoadError

_MIB = 2**20
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Limits:
    member_mib: float = 16.0  # largest file inside an archive or a text folder
    input_mib: float = 2048.0  # most that a whole input may unpack to

    def check_member(self, source: Path, name: str, size: int, *, packed: bool = True) -> None:
        """Refuse a member whose declared (or on-disk) size is past the member cap (``packed``: inside an archive)."""
        if size > self.member_mib * _MIB:
            if packed:
                raise LoadError(f"{source}: {name!r} would unpack to {_mib(size)} MiB, more than the "
                                f"{self.member_mib:g} MiB a file may be (--max-member-mib); the input may be a "
                                "decompression bomb. If you trust it, raise --max-member-mib.")
            raise LoadError(f"{source}: {name!r} is {_mib(size)} MiB, more than the {self.member_mib:g} MiB a text "
                            "file may be (--max-member-mib). Split it into one file per text, or raise "
                            "--max-member-mib.")

    def check_total(self, source: Path, total: int) -> None:
        """Refuse an input once what it has unpacked to so far is past the input cap."""
        if total > self.input_mib * _MIB:
            raise LoadError(f"{source} unpacks to more than {self.input_mib:g} MiB (--max-input-mib); it may be a "
                            "decompression bomb. If you trust it, raise --max-input-mib.")


def _mib(size: int) -> str:
    return f"{size / _MIB:,.0f}" if size >= 10 * _MIB else f"{size / _MIB:.2g}"


class CappedStream:
    """A decompressed stream that counts what it yields against ``limits.input_mib``, tar headers and trailing
    bytes included, and refuses more than ``allow``ed between two members (a header is a few hundred bytes; a
    PAX or long-name header of gigabytes is a bomb that tarfile would hold whole)."""

    SLACK = 1 << 20  # bytes a header may take beyond the data it follows

    def __init__(self, stream, limits: Limits, source: Path):
        self.stream, self.limits, self.source, self.total, self.left = stream, limits, source, 0, self.SLACK

    def allow(self, size: int) -> None:
        """The next gap: ``size`` bytes of the current member's data, then the next header."""
        self.left = size + self.SLACK

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.total += len(data)
        self.left -= len(data)
        self.limits.check_total(self.source, self.total)
        if self.left < 0:
            raise LoadError(f"{self.source} holds more than {self.SLACK // 1024:,} KiB outside any file, in a tar "
                            "header or after the archive's end (a real archive has under 1 KiB there): it may be a "
                            "decompression bomb, and is not read further.")
        return data


def gunzip(path: Path, limits: Limits, *, memory_mib: float | None = None) -> bytes:
    """The content of a ``.gz`` file, read in chunks and refused as soon as it passes ``limits.input_mib`` (or
    ``memory_mib``, what this machine could analyse, with a message that says so)."""
    out, total = [], 0
    try:
        with gzip.open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                total += len(chunk)
                limits.check_total(path, total)
                if memory_mib is not None and total > memory_mib * _MIB:
                    raise LoadError(f"{path} is too large to analyse in this machine's memory: it unpacks to more "
                                    f"than {memory_mib:,.0f} MiB, the most a run here can hold. Analyse a sample of "
                                    "it, or raise --memory-limit-mib if you know there is room.")
                out.append(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise LoadError(f"{path} is not a whole gzip file ({exc}); decompress it or fetch it again.") from None
    return b"".join(out)
