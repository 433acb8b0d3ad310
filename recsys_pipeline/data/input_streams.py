"""Open an input file whatever its compression and text encoding, hashing the bytes as read.

A CSV may come gzip-, bzip2- or xz-compressed (told by its magic bytes, not its name) and in UTF-8,
or in UTF-16 or UTF-32 with a byte-order mark, as spreadsheet programs save "Unicode text".
Anything else that is plainly not UTF-8 text (a zip archive, zstd, NUL bytes without a
byte-order mark) is one error naming the cause, instead of a garbled header blamed on the
columns. The data version of raw_csv is the sha256 of the file's own bytes, so the digest sees
the compressed bytes, exactly as read.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import hashlib
import io
import lzma
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

from recsys_pipeline.data.input_errors import InputFileError

PARQUET_MAGIC = b"PAR1"
_DECOMPRESSORS: dict[str, tuple[bytes, Callable[[BinaryIO], BinaryIO]]] = {
    "gzip": (b"\x1f\x8b", partial(gzip.open, mode="rb")),
    "bzip2": (b"BZh", partial(bz2.open, mode="rb")),
    "xz": (b"\xfd7zXZ\x00", partial(lzma.open, mode="rb")),
}
_UNREADABLE = {
    b"PK\x03\x04": "a zip archive (unzip it, or compress the CSV with gzip instead)",
    b"\x28\xb5\x2f\xfd": "zstd-compressed (decompress it, or use gzip)",
    b"\x04\x22\x4d\x18": "lz4-compressed (decompress it, or use gzip)",
}
# UTF-32's little-endian mark starts with UTF-16's: look for it first
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SNIFF_BYTES = 4096
# what a broken compressed stream raises while it is read
DECOMPRESSION_ERRORS = (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, OSError)


@dataclass(frozen=True)
class Layout:
    """How an input file's bytes are to be read."""

    parquet: bool
    compression: str | None  # "gzip", "bzip2", "xz" or None
    encoding: str  # a Python codec: "utf-8", "utf-8-sig", "utf-16" or "utf-32"

    @property
    def utf8(self) -> bool:
        return self.encoding in ("utf-8", "utf-8-sig")

    def describe(self) -> str:
        parts = [self.compression] if self.compression else []
        return " ".join([*parts, "parquet" if self.parquet else f"{self.encoding} text"])


class HashingReader(io.RawIOBase):
    """A binary file that feeds every byte it reads into ``digest``: the digest of exactly what
    was parsed, computed while parsing."""

    def __init__(self, raw: io.RawIOBase, digest: hashlib._Hash) -> None:
        self.raw, self.digest = raw, digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        count = self.raw.readinto(buffer)
        if count:
            self.digest.update(memoryview(buffer)[:count])
        return count

    def close(self) -> None:
        self.raw.close()
        super().close()


def layout_of(path: Path) -> Layout:
    """Sniff ``path``'s compression and text encoding; InputFileError when it is not readable."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "file not found")
    with path.open("rb") as handle:  # one open: the magic bytes, then the (decompressed) head
        magic = handle.read(8)
        if magic.startswith(PARQUET_MAGIC):
            return Layout(parquet=True, compression=None, encoding="utf-8")
        for prefix, cause in _UNREADABLE.items():
            if magic.startswith(prefix):
                raise InputFileError(path, f"the file is {cause}")
        compression = next((n for n, (m, _) in _DECOMPRESSORS.items() if magic.startswith(m)), None)
        handle.seek(0)
        try:
            if compression is None:
                head = handle.read(_SNIFF_BYTES)
            else:
                with _DECOMPRESSORS[compression][1](handle) as decompressed:
                    head = decompressed.read(_SNIFF_BYTES)
        except DECOMPRESSION_ERRORS as exc:
            raise InputFileError(path, f"the {compression} data is corrupt: {exc}") from exc
    encoding = next((name for bom, name in _BYTE_ORDER_MARKS if head.startswith(bom)), "utf-8")
    if encoding == "utf-8" and b"\x00" in head:
        inner = f"{compression}-compressed " if compression else ""
        raise InputFileError(
            path,
            f"the {inner}file holds NUL bytes, so it is not UTF-8 text: UTF-16 or UTF-32 without "
            "a byte-order mark, or a binary file (save it as UTF-8 CSV, or parquet)",
        )
    return Layout(parquet=False, compression=compression, encoding=encoding)


@contextmanager
def open_binary(path: Path, layout: Layout, digest: hashlib._Hash | None) -> Iterator[BinaryIO]:
    """The file's decompressed bytes; ``digest`` (when given) sees the file's own bytes."""
    raw = path.open("rb", buffering=0)
    if digest is not None:
        raw = HashingReader(raw, digest)
    # a decompressor does not close the file it was handed: close both, innermost last
    with io.BufferedReader(raw, 1 << 20) as binary:
        if layout.compression is None:
            yield binary
        else:
            with _DECOMPRESSORS[layout.compression][1](binary) as decompressed:
                yield decompressed


@contextmanager
def open_text(path: Path, layout: Layout, digest: hashlib._Hash | None) -> Iterator[io.TextIOBase]:
    """The file as text for the csv module. surrogateescape lets one bad byte quarantine its row
    instead of aborting the whole file; newline="" lets csv handle CRLF and quoted line breaks."""
    with (
        open_binary(path, layout, digest) as binary,
        io.TextIOWrapper(
            binary, encoding=layout.encoding, errors="surrogateescape", newline=""
        ) as text,
    ):
        yield text
