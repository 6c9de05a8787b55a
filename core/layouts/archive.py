"""Archives as a layout: a ``.tar`` or ``.tar.zst`` (whole or split) of registry storage, an OCI layout or a
skopeo dir tree, read through a member index without extracting it.

Opening an archive indexes its members once (name -> offset in the tar stream, size, and the bytes of the small
ones a reader reads: links, manifests, configs, index.json), refusing anything a received archive must not
hold: absolute names, ``..``, links, devices, duplicate names, headers that do not check out, a stream that ends
early or expands like a decompression bomb. Registry storage and OCI layouts are then read straight from that
index: their readers run over an ``ArchiveTree`` (the member index behind the ``Tree`` interface of the folder
readers), so an archive gives the same Bundle, the same checks and the same messages as the folder it holds,
with no file-system work. A skopeo dir tree inside is read from a *view* in a private temporary folder:
folders, small members with their bytes, every other member as an empty sparse file of its size.
Locations in the Bundle are view paths either way; ``ArchiveSource.local`` writes one into the view when
something opens it by name. Blob bytes come from the archive itself: for ``verify`` the index reads every byte
and hashes each member (and part) on the way, one sequential read in all; ``materialize`` writes each needed
blob once beside a destination, for the engine to hard-link into place.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import errno
import hashlib
import json
import mmap
import os
import queue
import re
import shutil
import stat
import struct
import tempfile
import threading
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from regpack.bundle import Bundle, Layout, Role
from regpack.errors import BundleError, Cancelled, Code, printable
from regpack.layouts import docker_archive
from regpack.layouts._common import Entry, FileStat
from regpack.manifest import MAX_MANIFEST_BYTES, Kind, SharedDescriptors
from regpack.plan import PlaceBlob, Plan
from regpack.progress import Meter, ProgressCallback

BLOCK = 512
CHUNK = 1 << 20
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# A zstd stream may start with a skippable frame (magic 0x184D2A50..5F, little-endian).
_SKIPPABLE = re.compile(rb"[\x50-\x5f]\x2a\x4d\x18")
GZIP_MAGIC = b"\x1f\x8b"
# The index keeps in memory the bytes of members up to KEEP bytes (link files, version files, almost every
# manifest and config; of blobs, only those that may be JSON); a bigger manifest or config (at most
# MAX_MANIFEST_BYTES) is brought in by one more pass when known to be one.
KEEP = 64 << 10
# A decompression bomb: past BOMB_FLOOR bytes out, more than BOMB_RATIO bytes out for each byte in.
BOMB_FLOOR = 256 << 20
BOMB_RATIO = 1000
_ZERO_BLOCK = bytes(BLOCK)
_TYPE_NAMES = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a character device",
    b"4": "a block device",
    b"6": "a FIFO",
    b"S": "a GNU sparse file",
    b"V": "a volume label",
    b"M": "a multi-volume continuation",
}
_SPLIT_PART = re.compile(r"(.*)\.(\d{3,})")


# --- which files make up an archive -----------------------------------------------------------------------


def _write_all(fd: int, chunks: Iterator[bytes | memoryview]) -> None:
    """Write every chunk to ``fd`` (short writes continued), then close it."""
    try:
        for data in chunks:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def archive_parts(path: Path) -> list[Path] | None:
    """The files of the archive named ``path``: itself, or ``NAME.000, NAME.001, ...`` when ``path`` is the
    first part or the name before the numbers. None when ``path`` is not a file of an archive."""
    path = Path(path)
    match = _SPLIT_PART.fullmatch(path.name)
    if match is not None and path.is_file():
        stem, digits = match.group(1), match.group(2)
        if int(digits) != 0:
            return [path]  # a whole archive whose name ends in digits, or a later part named on its own
        base = path.with_name(stem)
    elif path.is_file():
        return [path]
    elif path.with_name(path.name + ".000").is_file():
        base, digits = path, "000"
    else:
        return None
    parts = []
    i = 0
    while True:
        part = base.with_name(f"{base.name}.{i:0{len(digits)}d}")
        if not part.is_file():
            break
        parts.append(part)
        i += 1
    return parts


def archive_name(parts: list[Path]) -> Path:
    """The archive's own name: the file, or for parts the name before ``.000``."""
    if len(parts) == 1 and _SPLIT_PART.fullmatch(parts[0].name) is None:
        return parts[0]
    match = _SPLIT_PART.fullmatch(parts[0].name)
    return parts[0].with_name(match.group(1)) if match else parts[0]


def sniff(path: Path) -> str | None:
    """ "tar", "zstd" or "gzip" when ``path`` (a file) starts like one; None otherwise."""
    try:
        with open(path, "rb") as f:
            head = f.read(BLOCK)
    except OSError:
        return None
    if head[:4] == ZSTD_MAGIC or _SKIPPABLE.fullmatch(head[:4]):
        return "zstd"
    if len(head) == BLOCK and head[257:262] == b"ustar" and _checksum_ok(head):
        return "tar"
    if head[:2] == GZIP_MAGIC:
        return "gzip"
    return None


def detect(path: Path) -> bool:
    parts = archive_parts(path)
    return parts is not None and sniff(parts[0]) in ("tar", "zstd", "gzip")


# --- the raw byte stream: parts one after the other, hashed per part if asked -----------------------------

# Buffers (of CHUNK bytes) of a hashing pass: the reading thread may be that far ahead of the consumer and the
# part hasher; enough to keep both cores busy, few enough that memory does not depend on the archive.
READ_AHEAD = 4
# A selective read (listing, filling the view) starts this small after a jump, and doubles while it goes on
# sequentially up to CHUNK: a header after a skipped layer costs one small read, a run of small members a few.
FIRST_READ = 16 << 10
# Decompressed bytes come in new bytes objects of at most this size: small enough for the allocator to reuse the
# memory of the last ones (at 1 MiB each one costs fresh pages: twice as many page faults as bytes decompressed).
ZSTD_OUT = 256 << 10
_EMPTY = memoryview(b"")


def _read_into(file: Any, view: memoryview) -> int:
    """One read of the archive's bytes into ``view`` (every byte read from a part comes through here)."""
    n: int = file.readinto(view)
    return n


def _unreadable(part: Path, e: OSError) -> BundleError:
    return BundleError(f"cannot read the archive: {e.strerror or e}", part, code=Code.UNREADABLE)


def _open(part: Path) -> Any:
    try:
        return open(part, "rb", buffering=0)
    except OSError as e:
        raise _unreadable(part, e) from None


class _Raw:
    """The bytes of all parts in order, read into a few buffers used again and again: no allocation and no
    copy per read. ``chunk`` hands out the next bytes as a view of such a buffer, valid until the next call
    (``read`` copies them into bytes). ``seek`` only when not hashing the parts.

    With ``ahead`` (implied by ``hash_parts``) the reading runs ahead on a thread of its own, and with
    ``hash_parts`` a second one hashes every part (for the sidecar) from the very buffers the consumer reads
    (``_ReadAhead``)."""

    def __init__(self, parts: list[Path], hash_parts: bool = False, ahead: bool = False) -> None:
        self.parts = parts
        self.sizes = []
        for part in parts:
            try:
                self.sizes.append(part.stat().st_size)
            except OSError as e:
                raise _unreadable(part, e) from None
        self.offset = 0  # of the next byte handed out, in the whole stream
        self._view = _EMPTY  # the current buffer's bytes; handed out up to _at
        self._at = 0
        ahead = ahead or hash_parts
        self._ahead = _ReadAhead(parts, hash_parts) if ahead else None
        self._index = 0
        self._file: Any = None if ahead else _open(parts[0])
        self._buffer = memoryview(bytearray(0 if ahead else CHUNK))
        self._read_size = FIRST_READ

    def chunk(self, n: int) -> memoryview:
        """The next bytes, at most ``n`` (fewer at the end of a buffer), empty only at the end. The view is
        valid until the next call to any method."""
        if self._at == len(self._view):
            self._view = self._ahead.next() if self._ahead is not None else self._fill(n)
            self._at = 0
        end = min(self._at + n, len(self._view))
        piece = self._view[self._at : end]
        self.offset += end - self._at
        self._at = end
        return piece

    def _fill(self, want: int) -> memoryview:
        size = min(CHUNK, max(want, self._read_size))
        self._read_size = min(CHUNK, 2 * self._read_size)
        while True:
            try:
                n = _read_into(self._file, self._buffer[:size])
            except OSError as e:
                raise _unreadable(self.parts[self._index], e) from None
            if n:
                return self._buffer[:n]
            if self._index + 1 >= len(self.parts):
                return _EMPTY
            self._file.close()
            self._index += 1
            self._file = _open(self.parts[self._index])

    def read(self, n: int) -> bytes:
        """At most ``n`` bytes (fewer at the end of a buffer), as bytes of their own; empty only at the end."""
        return bytes(self.chunk(n))

    def read_exact(self, n: int) -> bytes:
        parts = []
        while n:
            data = self.read(n)
            if not data:
                break
            parts.append(data)
            n -= len(data)
        return b"".join(parts)

    def seek(self, offset: int) -> None:
        if self._ahead is not None:
            raise ValueError("a read-ahead read of an archive is sequential")
        ahead = offset - self.offset
        if 0 <= ahead <= len(self._view) - self._at:  # still in the buffer: no system call
            self._at += ahead
            self.offset = offset
            return
        index, start = 0, 0
        while index < len(self.sizes) - 1 and offset >= start + self.sizes[index]:
            start += self.sizes[index]
            index += 1
        if index != self._index:
            self._file.close()
            self._index = index
            self._file = _open(self.parts[index])
        self._file.seek(offset - start)
        self.offset = offset
        self._view, self._at = _EMPTY, 0
        self._read_size = FIRST_READ

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def part_digests(self) -> list[str]:
        """The sha256 of every part (with ``hash_parts``), once the whole stream is read."""
        assert self._ahead is not None
        return self._ahead.digests()

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.stop()
        else:
            self._file.close()


class _ReadAhead:
    """One sequential read on a thread of its own, into READ_AHEAD buffers taken in turn; a second thread hashes
    each buffer into its part's sha256 (for the sidecar) while the consumer (``next``) reads the same buffer.
    Each byte is read and copied once, and its two hashes (its part's, its member's) run on two cores at once.
    A buffer is read into again only once both the hasher and the consumer gave it back (the consumer gives a
    buffer back when it asks for the next). Without ``hash_parts`` there is no hasher: the reading alone runs
    ahead of the consumer."""

    def __init__(self, parts: list[Path], hash_parts: bool = True) -> None:
        self.parts = parts
        # One page-aligned anonymous mapping rather than READ_AHEAD allocations of CHUNK: measured, a fresh
        # process read and hashed a 1.4 GiB archive in 0.96 s with it, 1.04 s with separately allocated buffers
        # (unless something had allocated and freed a big block before).
        block = memoryview(mmap.mmap(-1, READ_AHEAD * CHUNK))
        self.buffers = [block[i * CHUNK : (i + 1) * CHUNK] for i in range(READ_AHEAD)]
        self.hash_parts = hash_parts
        self.hashes = [hashlib.sha256() for _ in parts] if hash_parts else []
        # (buffer, bytes in it, part) for the consumer and the hasher; None at the end; an error for the consumer
        self.ready: queue.SimpleQueue[tuple[int, int, int] | BaseException | None] = queue.SimpleQueue()
        self.to_hash: queue.SimpleQueue[tuple[int, int, int] | None] = queue.SimpleQueue()
        self.given_back: queue.SimpleQueue[int | None] = queue.SimpleQueue()  # from the consumer and the hasher
        self.held: int | None = None  # the buffer the consumer reads
        self.ended = False
        self.stopping = False
        self.reader = threading.Thread(target=self._read, name="regpack-archive-read", daemon=True)
        self.hasher = threading.Thread(target=self._hash, name="regpack-archive-hash", daemon=True)
        self.reader.start()
        if hash_parts:
            self.hasher.start()

    def _read(self) -> None:
        free = list(range(READ_AHEAD))
        users = [0] * READ_AHEAD  # of each buffer: 2 while the consumer and the hasher have it (1 without hasher)
        holders = 2 if self.hash_parts else 1
        try:
            for index, part in enumerate(self.parts):
                with open(part, "rb", buffering=0) as f:
                    while True:
                        while not free:
                            slot = self.given_back.get()
                            if slot is None or self.stopping:
                                return
                            users[slot] -= 1
                            if not users[slot]:
                                free.append(slot)
                        slot = free.pop()
                        n = _read_into(f, memoryview(self.buffers[slot]))
                        if not n:
                            free.append(slot)
                            break
                        users[slot] = holders
                        if self.hash_parts:
                            self.to_hash.put((slot, n, index))
                        self.ready.put((slot, n, index))
        except OSError as e:
            self.ready.put(_unreadable(part, e))
            return
        except BaseException as e:  # raised on the consumer's thread, never lost with this one
            self.ready.put(e)
            return
        finally:
            self.to_hash.put(None)
        self.ready.put(None)

    def _hash(self) -> None:
        while (item := self.to_hash.get()) is not None:
            slot, n, index = item
            self.hashes[index].update(memoryview(self.buffers[slot])[:n])
            self.given_back.put(slot)

    def next(self) -> memoryview:
        """The next buffer's bytes (the previous one goes back); empty at the end."""
        if self.held is not None:
            self.given_back.put(self.held)
            self.held = None
        if self.ended:
            return _EMPTY
        item = self.ready.get()
        if item is None or isinstance(item, BaseException):
            self.ended = True
            if item is not None:
                raise item
            return _EMPTY
        slot, n, _ = item
        self.held = slot
        return memoryview(self.buffers[slot])[:n]

    def digests(self) -> list[str]:
        while self.next():  # whatever the consumer left unread belongs to the parts too
            pass
        self.reader.join()
        if self.hash_parts:
            self.hasher.join()
        return [h.hexdigest() for h in self.hashes]

    def stop(self) -> None:
        self.stopping = True
        self.given_back.put(None)
        self.reader.join()
        if self.hash_parts:
            self.hasher.join()


# --- the tar stream: plain, or decompressed ---------------------------------------------------------------


class _Gunzip:
    """A gzip member's decompressor with the zstd decompressor's interface (``decompress(data, max_length)``,
    ``eof``, ``needs_input``, ``unused_data``): zlib hands back the input it did not use, kept here until the
    next call, as the zstd decompressor keeps its own."""

    __slots__ = ("_d", "_tail")

    def __init__(self) -> None:
        self._d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # a gzip header and trailer, checked
        self._tail = b""

    @property
    def eof(self) -> bool:
        return bool(self._d.eof)

    @property
    def needs_input(self) -> bool:
        return not self._tail and not self._d.eof

    @property
    def unused_data(self) -> bytes:
        return bytes(self._d.unused_data)

    def decompress(self, data: bytes | memoryview, max_length: int) -> bytes:
        given = self._tail + bytes(data) if self._tail else data
        out = self._d.decompress(given, max_length)
        self._tail = bytes(self._d.unconsumed_tail)
        return bytes(out)


class _Codec:
    """How the stream decompresses: one of zstd's frames or gzip's members after the other, as ``zstd -d`` and
    ``gzip -d`` read concatenated ones."""

    __slots__ = ("error", "make", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "gzip":
            self.make: Callable[[], Any] = _Gunzip
            self.error: type[Exception] = zlib.error
        else:
            from regpack.archive import zstd_module

            zstd = zstd_module()
            self.make, self.error = zstd.ZstdDecompressor, zstd.ZstdError


class _Stream:
    """The tar bytes: ``read`` gives ``n`` bytes (fewer only at the end), ``read_some`` a view without a copy
    where it can, ``skip`` moves on. A plain tar is the raw stream itself (no buffer of its own)."""

    def __init__(self, raw: _Raw, compression: str, seekable: bool, where: Path) -> None:
        self.raw = raw
        self.where = where
        self.pos = 0
        compressed = compression != "tar"
        self.seekable = seekable and not compressed
        self.buf = b""  # compressed: bytes decompressed ahead; the unread ones start at off
        self.off = 0
        self.decompressor: Any = None
        self.raw_in = 0
        self.leftover = b""
        self.mid_frame = False
        self.frames: list[tuple[int, int]] = []  # (compressed start, decompressed start) of each zstd frame
        if compressed:
            self.codec = _Codec(compression)
            self.decompressor = self.codec.make()
            if seekable and compression == "zstd":
                self.frames = _seek_table(raw)

    def _fill(self, want: int) -> None:
        """Make at least ``want`` bytes available (fewer only at the end)."""
        if self.off:
            self.buf, self.off = self.buf[self.off :], 0
        while len(self.buf) < want:
            d = self.decompressor
            if d.eof:  # the next frame (member), as zstd -d (gzip -d) reads concatenated ones
                self.leftover = d.unused_data
                self.decompressor = d = self.codec.make()
                self.mid_frame = False
            data: bytes | memoryview = b""
            if d.needs_input:
                # the decompressor keeps its own copy of input it does not consume: a view of the raw buffer will do
                data, self.leftover = self.leftover or self.raw.chunk(self._raw_want()), b""
                if not data:
                    if self.mid_frame:
                        raise BundleError(
                            f"the {self.codec.name} stream is truncated (it ends inside a "
                            f"{'member' if self.codec.name == 'gzip' else 'frame'})",
                            self.where,
                            code=Code.TRUNCATED,
                        )
                    return
                self.raw_in = self.raw.offset
            try:
                out = d.decompress(data, max_length=ZSTD_OUT)
            except self.codec.error as e:
                raise BundleError(
                    f"the {self.codec.name} stream is damaged: {e}", self.where, code=Code.CORRUPT
                ) from None
            self.mid_frame = not d.eof
            self.buf += out
            produced = self.pos + len(self.buf)
            if produced > BOMB_FLOOR and produced > BOMB_RATIO * max(self.raw_in, 1):
                raise BundleError(
                    f"the {self.codec.name} stream expands more than {BOMB_RATIO}:1 ({produced} bytes from "
                    f"{self.raw_in}); refusing it as a decompression bomb",
                    self.where,
                    code=Code.UNSAFE,
                )

    def _take(self, n: int) -> bytes:
        end = min(self.off + n, len(self.buf))
        if self.off == 0 and end == len(self.buf):
            data, self.buf = self.buf, b""
        else:
            data = self.buf[self.off : end]
            self.off = end
        self.pos += len(data)
        return data

    def read(self, n: int) -> bytes:
        """``n`` bytes; fewer only at the end."""
        if self.decompressor is None:
            first = self.raw.chunk(n)
            if len(first) == n or not first:
                self.pos += len(first)
                return bytes(first)
            pieces, got = [bytes(first)], len(first)
            while got < n and (piece := self.raw.chunk(n - got)):
                pieces.append(bytes(piece))
                got += len(piece)
            self.pos += got
            return b"".join(pieces)
        if len(self.buf) - self.off < n:
            self._fill(n)
        return self._take(n)

    def _raw_want(self) -> int:
        """How much compressed input to read: with a seek table, not past the current frame (a header's frame
        is small, and reading on would read the layer the next jump goes over)."""
        if not self.frames:
            return CHUNK
        i = bisect.bisect_right(self.frames, self.raw.offset, key=lambda f: f[0])
        if i < len(self.frames):
            return max(1, min(CHUNK, self.frames[i][0] - self.raw.offset))
        return CHUNK

    def _jump(self, target: int) -> None:
        """With a seek table: start decompressing at the frame holding ``target`` when it lies past what is
        decompressed already, instead of decompressing everything before it."""
        i = bisect.bisect_right(self.frames, target, key=lambda f: f[1]) - 1
        if i < 0:
            return
        c_start, d_start = self.frames[i]
        if d_start <= self.pos + len(self.buf) - self.off:
            return  # already there: decompressing on is the way
        self.raw.seek(c_start)
        self.decompressor = self.codec.make()
        self.leftover, self.mid_frame = b"", False
        self.buf, self.off = b"", 0
        self.pos = d_start

    def read_some(self, n: int) -> bytes | memoryview:
        """At most ``n`` bytes, fewer when that saves a copy; empty only at the end. A plain tar's bytes come
        as a view of the raw stream's buffer: valid until the next read."""
        if self.decompressor is None:
            piece = self.raw.chunk(n)
            self.pos += len(piece)
            return piece
        if len(self.buf) == self.off:
            self._fill(1)
        return self._take(n)

    def skip(self, n: int) -> int:
        """Move ``n`` bytes on; returns how many there were."""
        start, target = self.pos, self.pos + n
        avail = len(self.buf) - self.off
        if self.seekable:
            end = min(self.raw.offset + n, self.raw.size)
            self.pos += end - self.raw.offset
            self.raw.seek(end)
            return self.pos - start
        if self.frames and n > avail:
            self._jump(target)
        while self.pos < target:
            if not self.read_some(min(CHUNK, target - self.pos)):
                break
        return self.pos - start


def _seek_table(raw: _Raw) -> list[tuple[int, int]]:
    """The frames of a zstd stream in the seekable format (a seek table in a skippable frame at its end), as
    (compressed start, decompressed start); empty when there is none or it does not add up (then the stream is
    read from the start, as any zstd stream). A table that lies only makes a jump land on something that is not
    a tar header, which is refused as corrupt."""
    from regpack.archive import SEEKABLE_MAGIC, SKIPPABLE_SEEK_TABLE

    size = raw.size
    try:
        if size < 17:
            return []
        raw.seek(size - 9)
        count, descriptor, magic = struct.unpack("<IBI", raw.read_exact(9))
        entry = 12 if descriptor & 0x80 else 8
        body = count * entry + 9
        if magic != SEEKABLE_MAGIC or descriptor & 0x7C or body + 8 > size:
            return []
        raw.seek(size - body - 8)
        skippable, length = struct.unpack("<II", raw.read_exact(8))
        if skippable != SKIPPABLE_SEEK_TABLE or length != body:
            return []
        table = raw.read_exact(count * entry)
        frames = []
        c_pos = d_pos = 0
        for i in range(count):
            c_size, d_size = struct.unpack_from("<II", table, i * entry)
            frames.append((c_pos, d_pos))
            c_pos += c_size
            d_pos += d_size
        return frames if c_pos == size - body - 8 else []
    finally:
        raw.seek(0)


# --- tar headers --------------------------------------------------------------------------------------------


def _byte_sum(header: bytes) -> int:
    """``sum(header)`` of a 512-byte header in C: adler32's low half is 1 + the byte sum modulo 65521, which is
    the exact sum when that sum stays below 65521: for an ASCII header (at most 512 * 127 = 65,024), or for
    each half of any header (at most 256 * 255 = 65,280)."""
    if header.isascii():
        return (zlib.adler32(header) & 0xFFFF) - 1
    view = memoryview(header)
    return (zlib.adler32(view[:256]) & 0xFFFF) + (zlib.adler32(view[256:]) & 0xFFFF) - 2


def _checksum_ok(header: bytes) -> bool:
    field = header[148:156]
    stored = _octal(field)
    if stored is None:
        try:
            stored = _number(field)
        except ValueError:
            return False
    unsigned = _byte_sum(header) - sum(field) + 8 * 32
    if stored == unsigned:
        return True
    signed = sum(b - 256 if b > 127 else b for b in header[:148] + header[156:]) + 8 * 32
    return stored in (unsigned, signed)


def _octal(field: bytes) -> int | None:
    """A number field as tar writers spell it (octal digits, then NUL), read quickly; None for any other
    spelling, which ``_number`` then reads or refuses. Like ``_number``, ignores what follows the NUL."""
    end = field.find(0)
    if end <= 0:
        return None
    digits = field[:end]
    if not digits.isdigit():
        return None
    try:
        return int(digits, 8)  # only 0-9 are left: an 8 or a 9 raises, and _number says why
    except ValueError:
        return None


def _number(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256
        value = field[0] & 0x3F
        for b in field[1:]:
            value = value * 256 + b
        if field[0] & 0x40:
            raise ValueError("negative number")
        return value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    if text.strip(b"01234567"):  # anything left is not an octal digit
        raise ValueError(f"not an octal number: {text[:20].decode('latin-1')!r}")
    return int(text, 8)


def _cstring(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


class Member(NamedTuple):
    """One file or folder of the archive (a tuple: an archive has tens of thousands)."""

    name: str  # normalised: relative, no "./", no trailing slash
    is_dir: bool
    size: int
    offset: int  # of its data in the tar stream


_new = tuple.__new__  # a Member without NamedTuple's Python-level __new__: tens of thousands are made


def _pax_records(data: bytes, where: Path, member: str) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        if data[pos:].strip(b"\0") == b"":
            break
        space = data.find(b" ", pos)
        if space < 0 or not data[pos:space].isdigit():
            raise BundleError(f"malformed pax header before {member!r}", where, code=Code.CORRUPT)
        length = int(data[pos:space])
        record = data[space + 1 : pos + length]
        if length <= 0 or pos + length > len(data) or not record.endswith(b"\n") or b"=" not in record:
            raise BundleError(f"malformed pax header before {member!r}", where, code=Code.CORRUPT)
        key, _, value = record[:-1].partition(b"=")
        try:
            records[key.decode("utf-8")] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise BundleError(f"pax header before {member!r} is not UTF-8", where, code=Code.CORRUPT) from None
        pos += length
    return records


def _normalise(raw: str, where: Path) -> str | None:
    """The member name as a safe relative path; None for the archive's own top folder (``./``)."""
    if raw and raw[0] not in "./" and "/." not in raw and "//" not in raw and "\0" not in raw:
        # the common case, decided without splitting: relative, no component empty or starting with a dot
        return raw.rstrip("/")
    shown = printable(raw)[:300]
    if "\0" in raw:
        raise BundleError(f"member name holds a NUL byte: {shown!r}", where, code=Code.UNSAFE)
    if raw.startswith("/"):
        raise BundleError(f"member {shown!r} has an absolute name; refusing the archive", where, code=Code.UNSAFE)
    name = raw
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    if name in ("", "."):
        return None
    parts = name.split("/")
    if ".." in parts:
        raise BundleError(f"member {shown!r} climbs out with '..'; refusing the archive", where, code=Code.UNSAFE)
    if any(p in ("", ".") for p in parts):
        raise BundleError(f"member name {shown!r} has an empty or '.' component", where, code=Code.UNSAFE)
    return name


_START = "(the start of the archive)"
_ZERO_SIZE = b"00000000000\0"
_USTAR = b"ustar\x0000"
_EXTENDED = frozenset((b"x", b"g", b"L", b"K"))
_PLAIN_TYPES = frozenset((b"0", b"\0", b"7", b"5"))


def iter_members(stream: _Stream, where: Path) -> Iterator[Member]:
    """Every member in order; the caller reads or skips its data before asking for the next.

    Strict where tar readers are lenient: a bad checksum after the first member is an error, not the end;
    the archive must end with a zero block (a stream cut at a member boundary is truncated, not complete).
    An archive has tens of thousands of headers: the common one (a file or folder named in its own header,
    numbers in plain octal) takes a short path; everything else the careful one, with the same checks.
    """
    long_name: str | None = None
    pax: dict[str, str] = {}
    previous = _START
    expect_data_end = 0
    read = stream.read
    while True:
        if stream.pos != expect_data_end:  # the caller did not consume the member's data
            stream.skip(expect_data_end - stream.pos)
        header = read(BLOCK)
        if len(header) < BLOCK:
            if not header and previous == _START:
                raise BundleError("the archive is empty", where, code=Code.EMPTY)
            raise BundleError(
                f"the archive is truncated after {previous!r} (no end-of-archive block)", where, code=Code.TRUNCATED
            )
        if header == _ZERO_BLOCK:
            if long_name is not None or pax:
                raise BundleError(
                    f"the archive ends inside the extended header of a member after {previous!r}",
                    where,
                    code=Code.TRUNCATED,
                )
            _check_trailer(stream, where, previous)
            return
        field = header[148:156]
        # As GNU tar, Python and regpack write it: six octal digits, NUL, space; any other spelling is judged
        # by _checksum_ok.
        if field != b"%06o\0 " % (_byte_sum(header) - sum(field) + 8 * 32) and not _checksum_ok(header):
            raise BundleError(
                f"corrupt tar header after {previous!r} (a member longer than its header says, or damage)",
                where,
                code=Code.CORRUPT,
            )
        type_ = header[156:157]
        size_field = header[124:136]
        size = 0 if size_field == _ZERO_SIZE else _octal(size_field)
        if size is None:
            try:
                size = _number(size_field)
            except ValueError as e:
                raise BundleError(
                    f"corrupt size in the header after {previous!r}: {e}", where, code=Code.CORRUPT
                ) from None
        data_start = stream.pos
        expect_data_end = data_start + size + (-size % BLOCK)
        if type_ in _EXTENDED:
            long_name = _extended(stream, type_, size, pax, long_name, where, previous)
            continue
        if long_name is None and not pax and type_ in _PLAIN_TYPES:
            end = header.find(0, 0, 100)
            name_bytes = header[: end if end >= 0 else 100]
            if header[345] and header[257:265] == _USTAR:  # ustar: prefix + "/" + name
                end = header.find(0, 345, 500)
                name_bytes = header[345 : end if end >= 0 else 500] + b"/" + name_bytes
            try:
                raw_name = name_bytes.decode("utf-8")
            except UnicodeDecodeError:
                raw_name = _header_name(header, where)  # says what is wrong
        else:
            raw_name = long_name if long_name is not None else _header_name(header, where)
            raw_name = pax.get("path", raw_name)
            if "size" in pax:
                if not pax["size"].isdigit():
                    raise BundleError(f"pax size of {printable(raw_name)!r} is not a number", where, code=Code.CORRUPT)
                size = int(pax["size"])
                expect_data_end = data_start + size + (-size % BLOCK)
            if pax and any(k.startswith("GNU.sparse") for k in pax):
                raise BundleError(
                    f"member {printable(raw_name)!r} is a sparse file; refusing it", where, code=Code.UNSAFE
                )
            long_name, pax = None, {}
            if type_ not in _PLAIN_TYPES:
                what = _TYPE_NAMES.get(type_, f"of type {type_.decode('latin-1')!r}")
                if docker_archive.LAYER_LINK.fullmatch(raw_name.removeprefix("./")):
                    raise BundleError(docker_archive.REFUSAL, where, code=Code.INVALID)
                raise BundleError(
                    f"member {printable(raw_name)[:300]!r} is {what}; a received archive may hold only files and "
                    "folders",
                    where,
                    code=Code.UNSAFE,
                )
        name = _normalise(raw_name, where)
        previous = raw_name
        if name is None:
            continue
        if type_ == b"5":
            yield _new(Member, (name, True, 0, data_start))
        else:
            yield _new(Member, (name, False, size, data_start))


def _header_name(header: bytes, where: Path) -> str:
    """The name a header holds itself (ustar: prefix + "/" + name)."""
    end = header.find(0, 0, 100)
    name_bytes = header[: end if end >= 0 else 100]
    if header[345] != 0 and header[257:265] == _USTAR:
        name_bytes = _cstring(header[345:500]) + b"/" + name_bytes
    try:
        return name_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError(
            f"member name {name_bytes[:100].decode('utf-8', 'backslashreplace')} is not UTF-8",
            where,
            code=Code.CORRUPT,
        ) from None


def _extended(
    stream: _Stream, type_: bytes, size: int, pax: dict[str, str], long_name: str | None, where: Path, previous: str
) -> str | None:
    """Read an extended header (pax ``x``/``g``, GNU ``L``/``K``) into ``pax``; the long name it sets, or the
    one set before."""
    if size > 1 << 20:
        raise BundleError(
            f"an extended header of {size} bytes after {previous!r}; refusing it", where, code=Code.CORRUPT
        )
    padded = size + (-size % BLOCK)
    data = stream.read(padded)
    if len(data) < padded:
        raise BundleError(
            f"the archive is truncated inside an extended header after {previous!r}", where, code=Code.TRUNCATED
        )
    data = data[:size]
    if type_ == b"x":
        pax.update(_pax_records(data, where, previous))
    elif type_ == b"g":
        records = _pax_records(data, where, previous)
        if "path" in records or "size" in records:
            raise BundleError(
                "a global pax header sets a path or size for every member; refusing it", where, code=Code.CORRUPT
            )
    elif type_ == b"L":
        try:
            return _cstring(data).decode("utf-8")
        except UnicodeDecodeError:
            raise BundleError(f"a long member name after {previous!r} is not UTF-8", where, code=Code.CORRUPT) from None
    return long_name


def _check_trailer(stream: _Stream, where: Path, previous: str) -> None:
    """After the first zero block: only zeros to the end (a second archive or garbage appended is refused)."""
    while True:
        data = stream.read(CHUNK)
        if not data:
            return
        if data.count(0) != len(data):
            raise BundleError(
                f"data after the end-of-archive blocks (after {previous!r}); refusing a damaged or doubled archive",
                where,
                code=Code.CORRUPT,
            )


# --- the index: names, sizes and the bytes of small members ------------------------------------------------


class _View:
    """A private folder for whatever must exist as real files: the whole tree for the OCI layout and dir tree
    readers, single files on demand (``ArchiveSource.local``) for registry storage, which is read from the
    index itself. Its name is reserved at once (one mkdir) and serves as the prefix of every location the
    Bundle names; it is removed when the last reference goes (and at exit).

    What is created is recorded (``files``, ``folders``), so removal is one unlink or rmdir per entry, without
    listing every folder as a generic tree removal does; whatever is left (nothing, unless the view was touched
    from outside) goes the generic way after."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.files: list[str] = []
        self.folders: list[str] = []
        self._remove = weakref.finalize(self, _remove_view, name, self.files, self.folders)

    def cleanup(self) -> None:
        self._remove()


def _remove_view(root: str, files: list[str], folders: list[str]) -> None:
    for path in files:
        with contextlib.suppress(OSError):
            os.unlink(path)
    for path in sorted(folders, key=lambda f: f.count("/"), reverse=True):  # deepest first
        with contextlib.suppress(OSError):
            os.rmdir(path)
    shutil.rmtree(root, ignore_errors=True)


@dataclass(slots=True)
class ArchiveSource:
    """An opened archive: its parts, its members, the bytes of its small members, and the view.

    Locations in the Bundle are ``<view_root>/<member>``: names, whether or not a file exists behind them."""

    path: Path  # the archive's name (for split archives, without .000)
    parts: list[Path]
    compression: str  # "tar" | "zstd" | "gzip"
    members: dict[str, Member]
    view: _View
    inner: str = ""  # where the layout sits inside the archive ("" = at its top)
    # Member name -> its bytes, for the small members a reader reads (links, manifests, configs, index.json);
    # members missing here are read from the archive when asked (``read_member``).
    data: dict[str, bytes] = field(default_factory=dict)
    unkept: list[str] = field(default_factory=list)  # file members whose bytes the index did not keep
    # Folder ("" = the top) -> names of its entries, for the folders the members name and those they imply.
    folders: dict[str, list[str]] = field(default_factory=lambda: {"": []})
    built: bool = False  # whether the view holds every member (OCI layouts and dir trees inside)
    # Of an archive indexed with its members hashed (``open_archive(..., hash_members=True)``): member name ->
    # sha256 hex of every file member whose bytes the index did not keep (kept ones hash from ``data``), and
    # the sha256 of every part when a sidecar was there to check them against. None otherwise.
    digests: dict[str, str] | None = None
    part_digests: list[str] | None = None

    @property
    def view_root(self) -> str:
        return self.view.name

    def name_of(self, view_path: str | os.PathLike[str]) -> str | None:
        """The member name a view path stands for ("" for the top), None for a path outside the view."""
        text = os.fspath(view_path)
        root = self.view.name
        if text.startswith(root) and text[len(root) : len(root) + 1] == "/":
            return text[len(root) + 1 :]
        return "" if text == root else None

    def member_at(self, view_path: str) -> Member | None:
        """The file member at a view path; None for folders and anything else."""
        name = self.name_of(view_path)
        member = self.members.get(name) if name else None
        return member if member is not None and not member.is_dir else None

    def display(self, view_path: str | Path) -> Path:
        """A view path as the user knows it: ``ARCHIVE:member``."""
        name = self.name_of(view_path)
        if name is None:
            return Path(view_path)
        return Path(f"{self.path}:{name}") if name else self.path

    def describe(self) -> str:
        kind = f"{self.compression}-compressed tar" if self.compression != "tar" else "tar"
        parts = f", {len(self.parts)} parts" if len(self.parts) > 1 else ""
        where = f", at {self.inner}/" if self.inner else ""
        return f"{kind}{parts}{where}"

    def open_stream(
        self, *, hash_parts: bool = False, seekable: bool = True, ahead: bool = False
    ) -> tuple[_Raw, _Stream]:
        raw = _Raw(self.parts, hash_parts, ahead)
        return raw, _Stream(raw, self.compression, seekable and not (hash_parts or ahead), self.path)

    @property
    def sidecar(self) -> Path:
        """Where the archive's sidecar (``NAME.sha256``, the sha256 of every part) is, if there is one."""
        return self.path.with_name(self.path.name + ".sha256")

    def read_member(self, name: str, limit: int, cancel: threading.Event | None = None) -> bytes:
        """The first ``limit`` bytes of a file member: from memory, or one pass over the archive (the bytes
        kept when the member is at most MAX_MANIFEST_BYTES)."""
        known = self.data.get(name)
        if known is not None:
            return known[:limit]
        member = self.members[name]
        if member.size <= MAX_MANIFEST_BYTES:
            _fill(self, {name}, cancel)
            return self.data[name][:limit]
        found: list[bytes] = []

        def head(member: Member, view_path: str, chunks: Iterator[bytes | memoryview]) -> None:
            size = 0
            for chunk in chunks:  # a view is valid until the next read: keep a copy
                found.append(bytes(chunk))
                size += len(chunk)
                if size >= limit:
                    break

        _each_wanted(self, {f"{self.view.name}/{name}"}, head, None, cancel)
        return b"".join(found)[:limit]

    def local(self, view_path: str) -> str:
        """``view_path`` as a real file, for code that opens a location by name (the window's details, a
        schema1 manifest or a signature a plan reads): written into the view on first use, from memory or one
        pass over the archive; a member bigger than MAX_MANIFEST_BYTES becomes a sparse file of its size."""
        name = self.name_of(view_path)
        member = self.members.get(name) if name else None
        if self.built or not name or member is None or member.is_dir or os.path.lexists(view_path):
            return view_path
        root = self.view.name
        parent = name.rpartition("/")[0]
        missing: list[str] = []
        while parent and not os.path.isdir(f"{root}/{parent}"):
            missing.append(parent)
            parent = parent.rpartition("/")[0]
        for folder in reversed(missing):
            os.mkdir(f"{root}/{folder}")
            self.view.folders.append(f"{root}/{folder}")
        data = self.read_member(name, member.size) if member.size <= MAX_MANIFEST_BYTES else None
        _write_view_file(self.view, view_path, data, member.size)
        return view_path


def _write_view_file(view: _View, path: str, data: bytes | None, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    view.files.append(path)
    try:
        if data is not None:
            view_ = memoryview(data)
            while view_:
                view_ = view_[os.write(fd, view_) :]
        else:
            os.ftruncate(fd, size)  # sparse: the size for the readers, no bytes on disk
    finally:
        os.close(fd)


def open_archive(
    path: Path,
    cancel: threading.Event | None = None,
    *,
    hash_members: bool = False,
    progress: ProgressCallback | None = None,
) -> ArchiveSource:
    """Index the archive at ``path``. BundleError for anything hostile or broken.

    With ``hash_members`` the index reads every byte instead of seeking past big members, in one sequential
    read that runs ahead on a thread: each file member it does not keep is hashed on the way (``digests``),
    and every part too (``part_digests``) when a sidecar is there. ``progress`` then hears the bytes of the
    archive read so far (compressed bytes for a .tar.zst) out of its size, message "verifying"."""
    path = Path(path)
    parts = archive_parts(path)
    if parts is None:
        raise BundleError("no such file", path, code=Code.UNREADABLE)
    kind = sniff(parts[0])
    name = archive_name(parts)
    if sum(p.stat().st_size for p in parts) == 0:
        raise BundleError("the archive is empty", name, code=Code.EMPTY)
    if kind is None:
        raise BundleError("not a tar, zstd or gzip archive, and not a folder", name)
    parent = _view_parent()
    _remove_stale_views(parent or tempfile.gettempdir())
    view = _View(tempfile.mkdtemp(prefix=f"{VIEW_PREFIX}{os.getpid()}-", dir=parent))
    try:
        source = ArchiveSource(name, parts, kind, {}, view)
        if hash_members:
            _index_hashing(source, cancel, progress)
        else:
            _index(source, cancel)
    except BaseException:
        view.cleanup()
        raise
    return source


def _view_parent() -> str | None:
    """Where views go: memory-backed /dev/shm when there is one (a view is folders, small files and sparse
    files: creating and removing tens of thousands of them costs a disk far more), unless TMPDIR says where."""
    if os.environ.get("TMPDIR"):
        return None
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


VIEW_PREFIX = "regpack-view-"


def _remove_stale_views(parent: str) -> None:
    """Remove views a killed run left behind (their name carries the pid of a process that is gone)."""
    try:
        entries = [e for e in os.scandir(parent) if e.name.startswith(VIEW_PREFIX)]
    except OSError:
        return
    for entry in entries:
        pid_text = entry.name[len(VIEW_PREFIX) :].partition("-")[0]
        if not pid_text.isdigit() or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:
            continue  # alive, someone else's


def _json_like(data: bytes) -> bool:
    """Whether a blob may be a manifest or a config (JSON): the index keeps the bytes of small members, but of
    blobs only those, so small layers cost no memory."""
    return not data or data[:64].lstrip()[:1] in (b"{", b"")


# With its members hashed, the index also keeps the bytes of bigger members that may be JSON (up to
# MAX_MANIFEST_BYTES each, this many in all): a big manifest or config then needs no second pass.
KEEP_HASHING = 64 << 20


def _index_hashing(source: ArchiveSource, cancel: threading.Event | None, progress: ProgressCallback | None) -> None:
    """``_index`` reading every byte once, hashing the members it does not keep and, with a sidecar, the parts."""
    hash_parts = os.path.lexists(source.sidecar)
    raw, stream = source.open_stream(hash_parts=hash_parts, ahead=True)
    meter = Meter(progress, raw.size, 0, "verifying")
    digests: dict[str, str] = {}
    budget = KEEP_HASHING
    where = source.path

    def hash_member(member: Member, known: bytes | None) -> bytes | None:
        """Hash a member's bytes (``known``, or read here) into ``digests``; its bytes when the index keeps them."""
        nonlocal budget
        if known is not None:
            digests[member.name] = hashlib.sha256(known).hexdigest()
            meter.add(raw.offset - meter.done_bytes, 0)
            return None
        h = hashlib.sha256()
        kept: list[bytes] | None = [] if member.size <= min(MAX_MANIFEST_BYTES, budget) else None
        for piece in _chunks(stream, member, where, None, cancel):
            if kept is not None:
                if kept or _json_like(bytes(piece[:64])):
                    kept.append(bytes(piece))  # a view of a buffer the next read fills again: copied
                else:
                    kept = None
            h.update(piece)
            meter.add(raw.offset - meter.done_bytes, 0)
        digests[member.name] = h.hexdigest()
        if kept is None:
            return None
        budget -= member.size
        return b"".join(kept)

    try:
        _index(source, cancel, raw, stream, hash_member)
        meter.add(raw.size - meter.done_bytes, 0)
        source.part_digests = raw.part_digests() if hash_parts else None
    finally:
        raw.close()
    meter.finish()
    source.digests = digests


def _index(
    source: ArchiveSource,
    cancel: threading.Event | None,
    raw: _Raw | None = None,
    stream: _Stream | None = None,
    hash_member: Callable[[Member, bytes | None], bytes | None] | None = None,
) -> None:
    """One pass over the headers: every member, the folders they name or imply, the bytes of small members.

    With ``hash_member`` (and the sequential ``stream`` it reads), every file member the index does not keep
    goes through it: a small one with its bytes (already read), a bigger one to be read from the stream (it
    returns the member's bytes when the index is to keep them)."""
    own = raw is None or stream is None
    if raw is None or stream is None:
        raw, stream = source.open_stream()
    members, folders, data, unkept = source.members, source.folders, source.data, source.unkept
    where = source.path

    def folder(name: str, member: str) -> list[str]:
        """The listing of folder ``name``, made (with its parents) when first named."""
        listing = folders.get(name)
        if listing is None:
            if name in members:
                raise BundleError(f"member {member!r} is inside {name!r}, which is a file", where, code=Code.UNSAFE)
            up, _, base = name.rpartition("/")
            folder(up, member).append(base)
            listing = folders[name] = []
        return listing

    try:
        for member in iter_members(stream, where):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            name, is_dir, size, _ = member
            if name in folders or name in members:
                if name not in folders or not is_dir or name in members:
                    raise BundleError(
                        f"member {name!r} appears twice; refusing an archive whose content depends on order",
                        where,
                        code=Code.UNSAFE,
                    )
                members[name] = member  # a folder named by its own member after members inside it
                continue
            up, _, base = name.rpartition("/")
            listing = folders.get(up)
            (listing if listing is not None else folder(up, name)).append(base)
            members[name] = member
            if is_dir:
                folders[name] = []
                continue
            if size <= KEEP:
                chunk = stream.read(size + (-size % BLOCK))  # with the padding: no skip before the next header
                if len(chunk) < size:
                    raise BundleError(f"the archive is truncated inside member {name!r}", where, code=Code.TRUNCATED)
                if not (name.endswith("/data") or "blobs/sha" in name) or _json_like(chunk):
                    data[name] = chunk[:size] if len(chunk) > size else chunk
                else:
                    unkept.append(name)
                    if hash_member is not None:
                        hash_member(member, chunk[:size])
            elif hash_member is not None:
                kept = hash_member(member, None)
                if kept is not None:
                    data[name] = kept
                else:
                    unkept.append(name)
            else:
                # to the next header, padding included: in a seekable .tar.zst that is where the next frame starts,
                # so the skip jumps there instead of decompressing the member's frame
                if stream.skip(size + (-size % BLOCK)) < size:
                    raise BundleError(f"the archive is truncated inside member {name!r}", where, code=Code.TRUNCATED)
                unkept.append(name)
            # A member larger than claimed shows as a corrupt header next, a short one as truncation.
    finally:
        if own:
            raw.close()


def _build_view(source: ArchiveSource) -> None:
    """Every member as a real file or folder in the view, for the readers that read folders on disk: folders,
    the kept bytes, every other file as a sparse file of its size."""
    root = source.view.name
    made = source.view.folders
    for name in source.folders:  # parents come before their contents
        if name:
            os.mkdir(f"{root}/{name}")
            made.append(f"{root}/{name}")
    for name, member in source.members.items():
        if not member.is_dir:
            _write_view_file(source.view, f"{root}/{name}", source.data.get(name), member.size)
    source.built = True


class _Entry:
    """A folder entry of the archive, as ``os.DirEntry`` (no symbolic links in a received archive)."""

    __slots__ = ("_dir", "name", "path")

    def __init__(self, name: str, path: str, is_dir: bool) -> None:
        self.name = name
        self.path = path
        self._dir = is_dir

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._dir

    def is_symlink(self) -> bool:
        return False


class ArchiveTree:
    """The ``Tree`` of a layout inside an archive, over the member index: the reader sees the same folders,
    files and sizes as in the extracted folder, with no file-system work. Symbolic links, devices, ``..`` and
    duplicate names were refused by the index, so every file is plain and inside."""

    def __init__(self, source: ArchiveSource, root: str) -> None:
        self.source = source
        self.root = Path(root)
        self.descriptors: SharedDescriptors = {}
        self._folders = source.folders
        self._members = source.members
        self._data = source.data
        self._top = source.view.name
        self._prefix = self._top + "/"
        self._cut = len(self._prefix)

    def scope(self, folder: str) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()  # the index is all there is to know: nothing to forget

    def _name(self, path: Path | str) -> str | None:
        text = path if isinstance(path, str) else os.fspath(path)
        if text.startswith(self._prefix):
            return text[self._cut :]
        return "" if text == self._top else None

    def _missing(self, path: Path | str) -> OSError:
        name = self._name(path)
        if name is not None and name in self._members:
            return NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), os.fspath(path))
        return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), os.fspath(path))

    def scan(self, folder: str) -> Sequence[Entry]:
        name = self._name(folder)
        listing = self._folders.get(name) if name is not None else None
        if listing is None:
            raise self._missing(folder)
        folders = self._folders
        prefix = f"{name}/" if name else ""
        return [_Entry(n, f"{folder}/{n}", f"{prefix}{n}" in folders) for n in sorted(listing)]

    def listdir(self, folder: Path | str) -> list[str]:
        name = self._name(folder)
        listing = self._folders.get(name) if name is not None else None
        if listing is None:
            error = self._missing(folder)
            if isinstance(error, FileNotFoundError):
                return []
            raise error
        return sorted(listing)

    def is_dir(self, path: Path | str) -> bool:
        return self._name(path) in self._folders

    def lexists(self, path: Path | str) -> bool:
        name = self._name(path)
        return name is not None and (name in self._members or name in self._folders)

    exists = lexists

    def folder_inside(self, folder: str) -> bool:
        return True

    def trust_folders(self, parent: str, entries: Iterable[Entry]) -> None:
        pass

    def trust_listing(self, parent: str) -> None:
        pass

    def file(self, path: Path | str, what: str) -> tuple[str, FileStat] | None:
        text = path if isinstance(path, str) else os.fspath(path)
        name = text[self._cut :] if text.startswith(self._prefix) else None
        member = self._members.get(name) if name else None
        if member is None:
            if name is not None and name in self._folders:
                raise BundleError(f"{what} is not a regular file", path)
            return None
        if member.is_dir:
            raise BundleError(f"{what} is not a regular file", path)
        return text, _new(FileStat, (member.size,))

    def read_plain(self, path: str, limit: int) -> bytes | None:
        data = self._data.get(path[self._cut :]) if path.startswith(self._prefix) else None
        return None if data is None else data[: limit + 1]

    def read_small(self, real: str, limit: int, what: str, path: Path | str) -> bytes:
        name = self._name(real)
        if not name or name not in self._members:
            raise BundleError(f"cannot read {what}: it is not in the archive", path, code=Code.UNREADABLE)
        return self.source.read_member(name, limit)

    def read_manifest(self, real: str, image: str | None) -> bytes:
        name = self._name(real)
        member = self._members.get(name) if name else None
        if member is None or member.is_dir:
            raise BundleError("manifest is missing", real, image)
        if member.size > MAX_MANIFEST_BYTES:
            raise BundleError(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes, refusing to parse it", real, image)
        return self.source.read_member(member.name, MAX_MANIFEST_BYTES)


def _find_layout(source: ArchiveSource) -> tuple[str, Layout | None]:
    """Where inside the archive a layout sits: its top, or the shallowest registry storage or OCI layout."""
    members, folders = source.members, source.folders

    def is_file(name: str) -> bool:
        member = members.get(name)
        return member is not None and not member.is_dir

    if "docker/registry/v2/repositories" in folders or "docker/registry/v2/blobs" in folders:
        return "", Layout.REGISTRY
    if is_file("oci-layout") and is_file("index.json"):
        return "", Layout.OCI
    candidates: list[tuple[int, str, Layout]] = []
    for name in folders:
        if name == "docker/registry/v2" or name.endswith("/docker/registry/v2"):
            candidates.append((name.count("/") + 1, name[: -len("docker/registry/v2")].rstrip("/"), Layout.REGISTRY))
    for name, member in members.items():
        if not member.is_dir and (name == "oci-layout" or name.endswith("/oci-layout")):
            inner = name[: -len("oci-layout")].rstrip("/")
            if is_file(f"{inner}/index.json" if inner else "index.json"):
                candidates.append((name.count("/") + 1, inner, Layout.OCI))
    if candidates:
        _, inner, layout = min(candidates)
        return inner, layout
    for name, member in members.items():
        if (
            not member.is_dir
            and name.rpartition("/")[2] == "manifest.json"
            and not any(part.startswith(".") for part in name.split("/")[:-1])
        ):
            return "", Layout.SKOPEO_DIR
    return "", None


def _stem(name: str) -> str:
    return re.sub(r"(\.tgz|(\.tar)?(\.zst|\.gz)?)$", "", name)


def read(
    path: Path,
    *,
    hash_members: bool = False,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Bundle:
    """An archive as a Bundle of the layout it holds; ``bundle.source`` is the ArchiveSource.

    Registry storage and OCI layouts are read straight from the member index; a dir tree from a view of real
    files built for its reader. With ``hash_members`` the index reads the whole archive once and hashes its
    members (and parts) on the way, for verify: see ``open_archive``."""
    from regpack.layouts import oci, registry, skopeo_dir

    source = open_archive(path, cancel, hash_members=hash_members, progress=progress)
    inner, layout = _find_layout(source)
    if layout is None:
        source.view.cleanup()
        raise BundleError(
            "the archive holds no images: no registry storage (docker/registry/v2), OCI layout (oci-layout + "
            "index.json) or skopeo dir folder (manifest.json) inside",
            source.path,
            code=Code.EMPTY,
        )
    if layout is Layout.SKOPEO_DIR and docker_archive.is_index(source.data.get("manifest.json", b"{")):
        source.view.cleanup()
        raise BundleError(docker_archive.REFUSAL, source.path, code=Code.INVALID)
    source.inner = inner
    root = f"{source.view_root}/{inner}" if inner else source.view_root
    _fill_manifests(source, layout)
    if layout is Layout.REGISTRY:
        bundle = registry.read(Path(root), ArchiveTree(source, root))
    elif layout is Layout.OCI:
        # a tag-only reference takes the layout's folder name as repository: the archive's, at its top
        name = None if inner else _stem(source.path.name)
        bundle = oci.read(Path(root), ArchiveTree(source, root), name)
    else:
        _build_view(source)
        bundle = skopeo_dir.read(Path(root), _stem(source.path.name))  # an image at the top: the archive's name
    # Configs too, for whoever shows them (the window's details); rarely bigger than KEEP, so rarely a pass.
    configs = {
        name
        for blob in bundle.blobs.values()
        if blob.role is Role.CONFIG
        and blob.file is not None
        and blob.size <= MAX_MANIFEST_BYTES
        and (name := source.name_of(blob.file))
    }
    _fill(source, configs)
    if not source.built:
        _local_for_plans(source, bundle)
    bundle.root = source.path
    bundle.source = source
    bundle.problems = [
        dataclasses.replace(p, path=source.display(p.path)) if p.path is not None else p for p in bundle.problems
    ]
    return bundle


def _local_for_plans(source: ArchiveSource, bundle: Bundle) -> None:
    """The few files plans open by name rather than copy (signatures, for their size; schema1 manifests, to
    sign or unsign them): real files in the view. Most archives have none."""
    for image in bundle.images:
        for signature in image.signatures.values():
            source.local(os.fspath(signature))
        for manifest in image.manifests:
            if manifest.kind is Kind.SCHEMA1:
                source.local(image.locations[manifest.digest])


def _fill(source: ArchiveSource, names: set[str], cancel: threading.Event | None = None) -> None:
    """Bring the bytes of members not kept by the index into memory (and into the view when it is built), in
    one pass over the archive; members bigger than MAX_MANIFEST_BYTES are left out."""
    names = {
        n
        for n in names
        if n not in source.data and (m := source.members.get(n)) is not None and not m.is_dir
        if m.size <= MAX_MANIFEST_BYTES
    }
    if not names:
        return

    def keep(member: Member, view_path: str, chunks: Iterator[bytes | memoryview]) -> None:
        # each chunk may be a view of a buffer the next read fills again: copy it before asking for the next
        data = source.data[member.name] = b"".join([bytes(chunk) for chunk in chunks])
        if source.built:
            _write_all(os.open(view_path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC), iter((data,)))

    _each_wanted(source, {f"{source.view_root}/{n}" for n in names}, keep, None, cancel)


_REVISION = re.compile(r"(.*)docker/registry/v2/repositories/.+/_manifests/revisions/sha256/([0-9a-f]{64})/link")


def _fill_manifests(source: ArchiveSource, layout: Layout) -> None:
    """Bring in the members the layout's reader will parse as manifests, before it reads them: named ones
    (manifest.json, <hex>.manifest.json, index.json, signatures), the blobs registry revision links name, and
    for an OCI layout whatever index.json (and the indexes it names) list."""
    data = source.data
    wanted = {
        n
        for n in source.unkept
        if (base := n.rpartition("/")[2]) in ("manifest.json", "index.json")
        or base.endswith(".manifest.json")
        or "signature-" in base
    }
    if layout is Layout.REGISTRY:
        for folder, listing in source.folders.items():
            if not folder.endswith("/_manifests/revisions/sha256"):
                continue
            for hex_ in listing:
                match = _REVISION.fullmatch(f"{folder}/{hex_}/link")
                if match is not None and f"{folder}/{hex_}/link" in source.members:
                    blob = f"{match.group(1)}docker/registry/v2/blobs/sha256/{hex_[:2]}/{hex_}/data"
                    if blob not in data:
                        wanted.add(blob)
    _fill(source, wanted)
    if layout is not Layout.OCI:
        return
    prefix = f"{source.inner}/" if source.inner else ""
    pending, seen = [f"{prefix}index.json"], set()
    while pending:
        children: set[str] = set()
        for name in pending:
            seen.add(name)
            for digest in _listed(data.get(name)):
                child = f"{prefix}blobs/{digest.replace(':', '/', 1)}"
                if child in source.members and child not in seen:
                    children.add(child)
        _fill(source, children)
        pending = sorted(children)


def _listed(data: bytes | None) -> list[str]:
    """Digests an index lists (``manifests[].digest``); nothing for anything else."""
    try:
        doc = json.loads(data or b"")
    except ValueError:
        return []
    entries = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return []
    return [e["digest"] for e in entries if isinstance(e, dict) and isinstance(e.get("digest"), str)]


# --- reading blob bytes out of the archive -----------------------------------------------------------------


def _each_wanted(
    source: ArchiveSource,
    wanted: set[str],
    on_data: Callable[[Member, str, Iterator[bytes | memoryview]], None],
    meter: Meter | None,
    cancel: threading.Event | None,
    hash_parts: bool = False,
) -> list[str] | None:
    """One sequential pass: ``on_data(member, view_path, chunks)`` for each wanted member, in archive order."""
    raw, stream = source.open_stream(hash_parts=hash_parts, seekable=not hash_parts)
    try:
        seen = 0
        for member in iter_members(stream, source.path):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            if source.members.get(member.name) != member:
                raise BundleError(
                    f"member {member.name!r} is not where the first reading found it: the archive changed while "
                    "it was read, or its zstd seek table lies",
                    source.path,
                    code=Code.CORRUPT,
                )
            seen += 1
            view_path = f"{source.view_root}/{member.name}"
            if member.is_dir or view_path not in wanted:
                continue
            on_data(member, view_path, _chunks(stream, member, source.path, meter, cancel))
        if seen != len(source.members):
            raise BundleError(
                "the archive changed while it was read (members are missing)", source.path, code=Code.CORRUPT
            )
        return raw.part_digests() if hash_parts else None
    finally:
        raw.close()


def _chunks(
    stream: _Stream, member: Member, where: Path, meter: Meter | None, cancel: threading.Event | None
) -> Iterator[bytes | memoryview]:
    """A member's bytes; each piece is valid until the next is asked for (a view of the raw stream's buffer)."""
    remaining = member.size
    while remaining:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        data = stream.read_some(min(CHUNK, remaining))
        if not data:
            raise BundleError(f"the archive is truncated inside member {member.name!r}", where, code=Code.TRUNCATED)
        remaining -= len(data)
        if meter is not None:
            meter.add(len(data), 0)
        yield data


def materialize(
    source: ArchiveSource,
    plan: Plan,
    near: Path,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> tuple[Plan, Path]:
    """Write every archive member the plan reads, once, into a fresh folder beside ``near`` (the destination's
    filesystem, so the engine hard-links from it); return the plan reading from there and that folder (the
    caller removes it when the plan has run). Its name carries the pid, like the engine's staging folders."""
    near = Path(os.path.abspath(near))
    sources = sorted({op.src for op in plan.blobs.values()})
    unknown = [s for s in sources if source.member_at(s) is None]
    if unknown:  # signatures or other files outside the archive: never the case for a plan of its bundle
        raise BundleError("the plan reads a file that is not in the archive", unknown[0])
    folder = Path(tempfile.mkdtemp(prefix=f"{near.name}.partial-{os.getpid()}-src-", dir=near.parent))
    try:
        local = {s: f"{folder}/{i}" for i, s in enumerate(sources)}
        total = sum(m.size for s in sources if (m := source.member_at(s)) is not None)
        meter = Meter(progress, total, len(sources), "reading the archive")

        def write(member: Member, view_path: str, chunks: Iterator[bytes | memoryview]) -> None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            _write_all(os.open(local[view_path], flags, 0o644), chunks)
            meter.add(0, 1)

        _each_wanted(source, set(sources), write, meter, cancel)
        meter.finish()
        blobs = {dst: PlaceBlob(local[op.src], dst, op.size) for dst, op in plan.blobs.items()}
        return plan.with_blobs(blobs), folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


@dataclass(frozen=True, slots=True)
class HashResult:
    digests: dict[str, str]  # view path -> hex (sha256 or the member's algorithm)
    part_digests: list[str] | None


def hash_members(
    source: ArchiveSource,
    wanted: dict[str, str],
    *,
    hash_parts: bool,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> HashResult:
    """Hash the wanted members (view path -> algorithm) in one sequential read of the archive; with
    ``hash_parts`` also every part's sha256 (for the sidecar) on a second thread."""
    total = sum(m.size for p in wanted if (m := source.member_at(p)) is not None)
    meter = Meter(progress, total, len(wanted), "verifying")
    found: dict[str, str] = {}

    def digest(member: Member, view_path: str, chunks: Iterator[bytes | memoryview]) -> None:
        h = hashlib.new(wanted[view_path])
        for data in chunks:
            h.update(data)
        found[view_path] = h.hexdigest()
        meter.add(0, 1)

    parts = _each_wanted(source, set(wanted), digest, meter, cancel, hash_parts=hash_parts)
    meter.finish()
    return HashResult(found, parts)


def read_sidecar(source: ArchiveSource) -> tuple[Path, dict[str, str]] | None:
    """The ``NAME.sha256`` beside the archive (part name -> hex), None when there is none."""
    sidecar = source.path.with_name(source.path.name + ".sha256")
    try:
        st = os.lstat(sidecar)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size > 1 << 20:
        raise BundleError("the sidecar is not a small regular file", sidecar)
    entries: dict[str, str] = {}
    for line in sidecar.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line.strip())
        if match is None:
            raise BundleError(f"not a sha256sum line: {line[:100]!r}", sidecar)
        entries[match.group(2)] = match.group(1)
    return sidecar, entries
