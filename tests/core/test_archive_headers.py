"""Tar headers as every writer spells them: the short path for the common header and the careful one agree with
Python's tarfile on names and sizes, and refuse exactly what they refused before."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from regpack.errors import BundleError
from regpack.layouts.archive import open_archive


def tar_bytes(members: list[tuple[str, bytes | None]], fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


def index(tmp_path: Path, data: bytes) -> dict[str, tuple[bool, int]]:
    (tmp_path / "a.tar").write_bytes(data)
    source = open_archive(tmp_path / "a.tar")
    try:
        return {name: (m.is_dir, m.size) for name, m in source.members.items()}
    finally:
        source.view.cleanup()


def with_checksum(header: bytearray, spelling: str, delta: int = 0) -> bytes:
    """The header with its checksum recomputed (plus ``delta``) and written as ``spelling`` (8 bytes)."""
    header[148:156] = b" " * 8
    field = (spelling % (sum(header) + delta)).ljust(8, "\0").encode("latin-1")
    assert len(field) == 8
    header[148:156] = field
    return bytes(header)


LONG = "docker/registry/v2/repositories/" + "/".join(["team", "platform", "x" * 40]) + "/_layers/sha256/" + "a" * 64
MEMBERS: list[tuple[str, bytes | None]] = [
    ("docker", None),
    ("docker/registry/v2/blobs/sha256/aa/" + "a" * 64 + "/data", b"{}" * 300),
    (LONG + "/link", b"sha256:" + b"a" * 64),
    ("caf\u00e9/na\u00efve.txt", b"utf-8 names take the careful checksum path"),
    ("x" * 99, b""),
]


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_names_and_sizes_are_what_tarfile_reads(tmp_path: Path, fmt: int) -> None:
    data = tar_bytes(MEMBERS, fmt)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        expected = {m.name.rstrip("/"): (m.isdir(), 0 if m.isdir() else m.size) for m in tf.getmembers()}
    found = index(tmp_path, data)
    assert {k: v for k, v in found.items() if k in expected} == expected
    assert LONG + "/link" in found


@pytest.mark.parametrize("spelling", ["%06o\0 ", "%07o\0", "%06o  ", " %06o\0", "%o\0"])
def test_every_checksum_spelling_is_read(tmp_path: Path, spelling: str) -> None:
    data = bytearray(tar_bytes([("a.txt", b"hello")], tarfile.USTAR_FORMAT))
    data[:512] = with_checksum(bytearray(data[:512]), spelling)
    assert index(tmp_path, bytes(data))["a.txt"] == (False, 5)


@pytest.mark.parametrize("delta", [1, -1, 65521, 8 * 32])
def test_a_checksum_that_is_off_is_refused(tmp_path: Path, delta: int) -> None:
    """Off by one, or by exactly 65521 (what a sum taken modulo adler32's prime could not tell apart)."""
    second = bytearray(tar_bytes([("a.txt", b"hello"), ("b.txt", b"world")], tarfile.USTAR_FORMAT))
    header = bytearray(second[1024:1536])
    second[1024:1536] = with_checksum(header, "%06o\0 ", delta)
    with pytest.raises(BundleError, match=r"corrupt tar header after 'a\.txt'"):
        index(tmp_path, bytes(second))


def test_a_header_of_high_bytes_is_summed_exactly(tmp_path: Path) -> None:
    """A UTF-8 name and high bytes in the fields readers ignore (link name, owner names, device numbers, the
    padding) push the byte sum of a header past 65521."""
    name = "\u00e9" * 49  # 98 bytes, each 0xc3 or 0xa9
    data = bytearray(tar_bytes([("a.txt", b"x"), (name, b"x")], tarfile.USTAR_FORMAT))
    header = bytearray(data[1024:1536])
    for start, end in ((157, 257), (265, 345), (500, 512)):
        header[start:end] = b"\xff" * (end - start)
    data[1024:1536] = with_checksum(header, "%06o\0 ")
    header[148:156] = b" " * 8
    assert sum(header) > 65521
    assert index(tmp_path, bytes(data))[name] == (False, 1)
    data[1024:1536] = with_checksum(header, "%06o\0 ", 65521)
    with pytest.raises(BundleError, match="corrupt tar header"):
        index(tmp_path, bytes(data))


def test_sizes_in_base_256_and_with_spaces_are_read(tmp_path: Path) -> None:
    payload = b"z" * 1000
    data = bytearray(tar_bytes([("a.bin", payload)], tarfile.GNU_FORMAT))
    header = bytearray(data[:512])
    header[124:136] = b"\x80" + (1000).to_bytes(11, "big")
    data[:512] = with_checksum(header, "%06o\0 ")
    assert index(tmp_path, bytes(data))["a.bin"] == (False, 1000)
    header[124:136] = b"     1750  \0"  # octal 1000 padded with spaces, as old writers did
    data[:512] = with_checksum(header, "%06o\0 ")
    assert index(tmp_path, bytes(data))["a.bin"] == (False, 1000)


@pytest.mark.parametrize("field", [b"0000000+750\0", b"00000_01750\0", b"0000001750x\0", b"00000001789\0"])
def test_a_size_that_is_not_octal_is_refused(tmp_path: Path, field: bytes) -> None:
    data = bytearray(tar_bytes([("a.bin", b"z" * 1000)], tarfile.USTAR_FORMAT))
    header = bytearray(data[:512])
    header[124:136] = field
    data[:512] = with_checksum(header, "%06o\0 ")
    with pytest.raises(BundleError, match=r"corrupt size|corrupt tar header"):
        index(tmp_path, bytes(data))
