"""Archives as a layout: a ``.tar`` or ``.tar.zst`` (whole or split) of registry storage, an OCI layout or a
skopeo dir tree, read through a member index without extracting it.

Opening an archive indexes its members once (name -> offset in the tar stream, size), refusing anything a
received archive must not hold: absolute names, ``..``, links, devices, duplicate names, headers that do not
check out, a stream that ends early or expands like a decompression bomb. The index becomes a *view* in a
private temporary folder: folders, the small members (links, manifests, configs, index.json: at most
MAX_MANIFEST_BYTES) with their bytes, and every bigger member as an empty sparse file of its size. The folder
layouts' own readers read that view, so an archive gives the same Bundle, the same checks and the same messages
as the folder it holds. Blob bytes come from the archive itself: ``verify`` hashes them in one sequential pass,
``materialize`` writes each needed blob once beside a destination, for the engine to hard-link into place.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import hashlib
import json
import os
import queue
import re
import shutil
import stat
import struct
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regpack.bundle import Bundle, Layout, Role
from regpack.errors import BundleError, Cancelled, Code, printable
from regpack.manifest import MAX_MANIFEST_BYTES
from regpack.plan import PlaceBlob, Plan
from regpack.progress import Meter, ProgressCallback

BLOCK = 512
CHUNK = 1 << 20
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# A zstd stream may start with a skippable frame (magic 0x184D2A50..5F, little-endian).
_SKIPPABLE = re.compile(rb"[\x50-\x5f]\x2a\x4d\x18")
GZIP_MAGIC = b"\x1f\x8b"
# Members up to KEEP bytes keep their bytes in the view (link files, version files, almost every manifest and
# config); bigger ones are sparse until known to be a manifest or config (at most MAX_MANIFEST_BYTES), when one
# more pass fills them in.
KEEP = 64 << 10
# A decompression bomb: past BOMB_FLOOR bytes out, more than BOMB_RATIO bytes out for each byte in.
BOMB_FLOOR = 256 << 20
BOMB_RATIO = 1000
_REGULAR = {b"0", b"\0", b"7"}
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
    """ "tar" or "zstd" when ``path`` (a file) starts like one; None otherwise."""
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
    return parts is not None and sniff(parts[0]) in ("tar", "zstd")


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

    With ``hash_parts`` the reading runs ahead on a thread of its own and a second one hashes every part (for
    the sidecar) from the very buffers the consumer reads (``_ReadAhead``)."""

    def __init__(self, parts: list[Path], hash_parts: bool = False) -> None:
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
        self._ahead = _ReadAhead(parts) if hash_parts else None
        self._index = 0
        self._file: Any = None if hash_parts else _open(parts[0])
        self._buffer = memoryview(bytearray(0 if hash_parts else CHUNK))
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
            raise ValueError("a hashing read of an archive is sequential")
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
    buffer back when it asks for the next)."""

    def __init__(self, parts: list[Path]) -> None:
        self.parts = parts
        self.buffers = [bytearray(CHUNK) for _ in range(READ_AHEAD)]
        self.hashes = [hashlib.sha256() for _ in parts]
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
        self.hasher.start()

    def _read(self) -> None:
        free = list(range(READ_AHEAD))
        users = [0] * READ_AHEAD  # of each buffer: 2 while the consumer and the hasher have it
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
                        users[slot] = 2
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
        self.hasher.join()
        return [h.hexdigest() for h in self.hashes]

    def stop(self) -> None:
        self.stopping = True
        self.given_back.put(None)
        self.reader.join()
        self.hasher.join()


# --- the tar stream: plain, or decompressed ---------------------------------------------------------------


class _Stream:
    """The tar bytes: ``read`` gives ``n`` bytes (fewer only at the end), ``read_some`` a view without a copy
    where it can, ``skip`` moves on. A plain tar is the raw stream itself (no buffer of its own)."""

    def __init__(self, raw: _Raw, compressed: bool, seekable: bool, where: Path) -> None:
        self.raw = raw
        self.where = where
        self.pos = 0
        self.seekable = seekable and not compressed
        self.buf = b""  # zstd: bytes decompressed ahead; the unread ones start at off
        self.off = 0
        self.decompressor: Any = None
        self.raw_in = 0
        self.leftover = b""
        self.mid_frame = False
        self.frames: list[tuple[int, int]] = []  # (compressed start, decompressed start) of each frame
        if compressed:
            from regpack.archive import zstd_module

            zstd = zstd_module()
            self.zstd = zstd
            self.decompressor = zstd.ZstdDecompressor()
            if seekable:
                self.frames = _seek_table(raw)

    def _fill(self, want: int) -> None:
        """Make at least ``want`` bytes available (fewer only at the end)."""
        if self.off:
            self.buf, self.off = self.buf[self.off :], 0
        while len(self.buf) < want:
            d = self.decompressor
            if d.eof:  # the next frame, as zstd -d reads concatenated frames
                self.leftover = d.unused_data
                self.decompressor = d = self.zstd.ZstdDecompressor()
                self.mid_frame = False
            data: bytes | memoryview = b""
            if d.needs_input:
                # the decompressor keeps its own copy of input it does not consume: a view of the raw buffer will do
                data, self.leftover = self.leftover or self.raw.chunk(self._raw_want()), b""
                if not data:
                    if self.mid_frame:
                        raise BundleError(
                            "the zstd stream is truncated (it ends inside a frame)", self.where, code=Code.TRUNCATED
                        )
                    return
                self.raw_in = self.raw.offset
            try:
                out = d.decompress(data, max_length=ZSTD_OUT)
            except self.zstd.ZstdError as e:
                raise BundleError(f"the zstd stream is damaged: {e}", self.where, code=Code.CORRUPT) from None
            self.mid_frame = not d.eof
            self.buf += out
            produced = self.pos + len(self.buf)
            if produced > BOMB_FLOOR and produced > BOMB_RATIO * max(self.raw_in, 1):
                raise BundleError(
                    f"the zstd stream expands more than {BOMB_RATIO}:1 ({produced} bytes from {self.raw_in}); "
                    "refusing it as a decompression bomb",
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
        self.decompressor = self.zstd.ZstdDecompressor()
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


def _checksum_ok(header: bytes) -> bool:
    field = header[148:156]
    try:
        stored = _number(field)
    except ValueError:
        return False
    unsigned = sum(header) - sum(field) + 8 * 32
    if stored == unsigned:
        return True
    signed = sum(b - 256 if b > 127 else b for b in header[:148] + header[156:]) + 8 * 32
    return stored in (unsigned, signed)


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


@dataclass(frozen=True, slots=True)
class Member:
    name: str  # normalised: relative, no "./", no trailing slash
    is_dir: bool
    size: int
    offset: int  # of its data in the tar stream


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


def iter_members(stream: _Stream, where: Path) -> Iterator[Member]:
    """Every member in order; the caller reads or skips its data before asking for the next.

    Strict where tar readers are lenient: a bad checksum after the first member is an error, not the end;
    the archive must end with a zero block (a stream cut at a member boundary is truncated, not complete).
    """
    long_name: str | None = None
    pax: dict[str, str] = {}
    previous = "(the start of the archive)"
    expect_data_end = 0
    while True:
        if stream.pos != expect_data_end:  # the caller did not consume the member's data
            stream.skip(expect_data_end - stream.pos)
        header = stream.read(BLOCK)
        if len(header) < BLOCK:
            if not header and previous == "(the start of the archive)":
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
        if not _checksum_ok(header):
            raise BundleError(
                f"corrupt tar header after {previous!r} (a member longer than its header says, or damage)",
                where,
                code=Code.CORRUPT,
            )
        type_ = header[156:157]
        try:
            size = _number(header[124:136])
        except ValueError as e:
            raise BundleError(f"corrupt size in the header after {previous!r}: {e}", where, code=Code.CORRUPT) from None
        data_start = stream.pos
        padded = size + (-size % BLOCK)
        expect_data_end = data_start + padded
        if type_ in (b"x", b"g", b"L", b"K"):
            if size > 1 << 20:
                raise BundleError(
                    f"an extended header of {size} bytes after {previous!r}; refusing it", where, code=Code.CORRUPT
                )
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
                        "a global pax header sets a path or size for every member; refusing it",
                        where,
                        code=Code.CORRUPT,
                    )
            elif type_ == b"L":
                try:
                    long_name = _cstring(data).decode("utf-8")
                except UnicodeDecodeError:
                    raise BundleError(
                        f"a long member name after {previous!r} is not UTF-8", where, code=Code.CORRUPT
                    ) from None
            continue
        magic = header[257:265]
        if long_name is not None:
            raw_name = long_name
        else:
            name_bytes = _cstring(header[0:100])
            if magic == b"ustar\x0000" and header[345] != 0:
                name_bytes = _cstring(header[345:500]) + b"/" + name_bytes
            try:
                raw_name = name_bytes.decode("utf-8")
            except UnicodeDecodeError:
                raise BundleError(
                    f"member name {name_bytes[:100].decode('utf-8', 'backslashreplace')} is not UTF-8",
                    where,
                    code=Code.CORRUPT,
                ) from None
        raw_name = pax.get("path", raw_name)
        if "size" in pax:
            if not pax["size"].isdigit():
                raise BundleError(f"pax size of {printable(raw_name)!r} is not a number", where, code=Code.CORRUPT)
            size = int(pax["size"])
            padded = size + (-size % BLOCK)
            expect_data_end = data_start + padded
        if pax and any(k.startswith("GNU.sparse") for k in pax):
            raise BundleError(f"member {printable(raw_name)!r} is a sparse file; refusing it", where, code=Code.UNSAFE)
        long_name, pax = None, {}
        if type_ not in _REGULAR and type_ != b"5":
            what = _TYPE_NAMES.get(type_, f"of type {type_.decode('latin-1')!r}")
            raise BundleError(
                f"member {printable(raw_name)[:300]!r} is {what}; a received archive may hold only files and folders",
                where,
                code=Code.UNSAFE,
            )
        name = _normalise(raw_name, where)
        previous = raw_name
        if name is None:
            continue
        yield Member(name, type_ == b"5", 0 if type_ == b"5" else size, data_start)


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


# --- the index and its view -------------------------------------------------------------------------------


class _View:
    """The view's folder, removed when the last reference goes (and at exit): it lives as long as the Bundle.

    The index records what it creates (``files``, ``folders``), so removal is one unlink or rmdir per entry,
    without listing every folder and opening it as a generic tree removal does; whatever is left (nothing,
    unless the view was touched from outside) goes the generic way after."""

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
    """An opened archive: its parts, its members, and the view the folder readers read."""

    path: Path  # the archive's name (for split archives, without .000)
    parts: list[Path]
    compression: str  # "tar" | "zstd"
    members: dict[str, Member]
    view: _View
    inner: str = ""  # where the layout sits inside the archive ("" = at its top)
    by_view: dict[str, Member] = field(default_factory=dict)
    deferred: set[str] = field(default_factory=set)  # members whose view file is still sparse

    @property
    def view_root(self) -> str:
        return self.view.name

    def member_at(self, view_path: str) -> Member | None:
        return self.by_view.get(view_path)

    def display(self, view_path: str | Path) -> Path:
        """A view path as the user knows it: ``ARCHIVE:member``."""
        text = os.fspath(view_path)
        prefix = self.view_root + "/"
        if text.startswith(prefix):
            return Path(f"{self.path}:{text[len(prefix) :]}")
        if text == self.view_root:
            return self.path
        return Path(text)

    def describe(self) -> str:
        kind = "zstd-compressed tar" if self.compression == "zstd" else "tar"
        parts = f", {len(self.parts)} parts" if len(self.parts) > 1 else ""
        where = f", at {self.inner}/" if self.inner else ""
        return f"{kind}{parts}{where}"

    def open_stream(self, *, hash_parts: bool = False, seekable: bool = True) -> tuple[_Raw, _Stream]:
        raw = _Raw(self.parts, hash_parts)
        return raw, _Stream(raw, self.compression == "zstd", seekable and not hash_parts, self.path)


def open_archive(path: Path, cancel: threading.Event | None = None) -> ArchiveSource:
    """Index the archive at ``path`` and build its view. BundleError for anything hostile or broken."""
    path = Path(path)
    parts = archive_parts(path)
    if parts is None:
        raise BundleError("no such file", path, code=Code.UNREADABLE)
    kind = sniff(parts[0])
    name = archive_name(parts)
    if sum(p.stat().st_size for p in parts) == 0:
        raise BundleError("the archive is empty", name, code=Code.EMPTY)
    if kind == "gzip":
        raise BundleError("a gzip archive; regpack reads .tar and .tar.zst (zstd)", name)
    if kind is None:
        raise BundleError("not a tar or zstd archive, and not a folder", name)
    parent = _view_parent()
    _remove_stale_views(parent or tempfile.gettempdir())
    view = _View(tempfile.mkdtemp(prefix=f"{VIEW_PREFIX}{os.getpid()}-", dir=parent))
    try:
        source = ArchiveSource(name, parts, kind, {}, view)
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


def _index(source: ArchiveSource, cancel: threading.Event | None) -> None:
    root = source.view_root
    raw, stream = source.open_stream()
    kinds: dict[str, bool] = {}  # name -> is_dir, for the members and the folders they imply
    made: set[str] = set()  # folders of the view made so far
    files, folders = source.view.files, source.view.folders
    try:
        for member in iter_members(stream, source.path):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            known = kinds.get(member.name)
            if known is not None and (not known or not member.is_dir or member.name in source.members):
                raise BundleError(
                    f"member {member.name!r} appears twice; refusing an archive whose content depends on order",
                    source.path,
                    code=Code.UNSAFE,
                )
            parent = member.name.rpartition("/")[0]
            while parent and parent not in kinds:
                kinds[parent] = True
                parent = parent.rpartition("/")[0]
            if parent and not kinds[parent]:
                raise BundleError(
                    f"member {member.name!r} is inside {parent!r}, which is a file", source.path, code=Code.UNSAFE
                )
            kinds[member.name] = member.is_dir
            source.members[member.name] = member
            target = f"{root}/{member.name}"
            folder = member.name if member.is_dir else member.name.rpartition("/")[0]
            if folder and folder not in made:
                # members come folders first in most archives: one mkdir each; otherwise make the parents too
                try:
                    os.mkdir(f"{root}/{folder}")
                    folders.append(f"{root}/{folder}")
                except FileNotFoundError:
                    os.makedirs(f"{root}/{folder}")
                    parent = folder
                    while parent and parent not in made:  # record the parents made on the way, for removal
                        made.add(parent)
                        folders.append(f"{root}/{parent}")
                        parent = parent.rpartition("/")[0]
                except FileExistsError:
                    pass
                made.add(folder)
            if member.is_dir:
                continue
            source.by_view[target] = member
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            files.append(target)
            try:
                if member.size <= KEEP:
                    data = stream.read(member.size)
                    if len(data) < member.size:
                        raise BundleError(
                            f"the archive is truncated inside member {member.name!r}", source.path, code=Code.TRUNCATED
                        )
                    os.write(fd, data)
                else:
                    source.deferred.add(member.name)
                    os.ftruncate(fd, member.size)  # sparse: the size for the readers, no bytes on disk
                    if stream.skip(member.size) < member.size:
                        raise BundleError(
                            f"the archive is truncated inside member {member.name!r}", source.path, code=Code.TRUNCATED
                        )
            finally:
                os.close(fd)
            # A member larger than claimed shows as a corrupt header next, a short one as truncation.
    finally:
        raw.close()


def _find_layout(source: ArchiveSource) -> tuple[str, Layout | None]:
    """Where inside the archive a layout sits: its top, or the shallowest registry storage or OCI layout."""
    from regpack.layouts import oci, registry, skopeo_dir

    top = Path(source.view_root)
    if registry.detect(top):
        return "", Layout.REGISTRY
    if oci.detect(top):
        return "", Layout.OCI
    candidates: list[tuple[int, str, Layout]] = []
    for name in source.members:
        parts = name.split("/")
        if parts[-1] == "oci-layout" and f"{name[: -len('oci-layout')]}index.json" in source.members:
            inner = "/".join(parts[:-1])
            candidates.append((len(parts), inner, Layout.OCI))
        if len(parts) >= 3 and parts[-3:] == ["docker", "registry", "v2"]:
            candidates.append((len(parts), "/".join(parts[:-3]), Layout.REGISTRY))
    if candidates:
        _, inner, layout = min(candidates)
        return inner, layout
    if skopeo_dir.detect(top):
        return "", Layout.SKOPEO_DIR
    return "", None


def read(path: Path) -> Bundle:
    """An archive as a Bundle of the layout it holds; ``bundle.source`` is the ArchiveSource."""
    from regpack import layouts

    source = open_archive(path)
    inner, layout = _find_layout(source)
    if layout is None:
        source.view.cleanup()
        raise BundleError(
            "the archive holds no images: no registry storage (docker/registry/v2), OCI layout (oci-layout + "
            "index.json) or skopeo dir folder (manifest.json) inside",
            source.path,
            code=Code.EMPTY,
        )
    source.inner = inner
    root = Path(source.view_root, inner) if inner else Path(source.view_root)
    _fill_manifests(source, layout)
    bundle = layouts.read(root, layout)
    # Configs too, for whoever shows them (the window's details); rarely bigger than KEEP, so rarely a pass.
    configs = {
        blob.file[len(source.view_root) + 1 :]
        for blob in bundle.blobs.values()
        if blob.role is Role.CONFIG and blob.file is not None and blob.size <= MAX_MANIFEST_BYTES
    }
    _fill(source, configs & source.deferred)
    bundle.root = source.path
    bundle.source = source
    bundle.problems = [
        dataclasses.replace(p, path=source.display(p.path)) if p.path is not None else p for p in bundle.problems
    ]
    return bundle


def _fill(source: ArchiveSource, names: set[str], cancel: threading.Event | None = None) -> None:
    """Give sparse view files their bytes, in one pass over the archive."""
    names = {n for n in names if n in source.deferred and source.members[n].size <= MAX_MANIFEST_BYTES}
    if not names:
        return

    def write(member: Member, view_path: str, chunks: Iterator[bytes | memoryview]) -> None:
        _write_all(os.open(view_path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC), chunks)

    _each_wanted(source, {f"{source.view_root}/{n}" for n in names}, write, None, cancel)
    source.deferred -= names


_REVISION = re.compile(r"(.*)docker/registry/v2/repositories/.+/_manifests/revisions/sha256/([0-9a-f]{64})/link")


def _fill_manifests(source: ArchiveSource, layout: Layout) -> None:
    """Fill the sparse members the layout's reader will parse as manifests, before it reads them: named ones
    (manifest.json, <hex>.manifest.json, index.json, signatures), the blobs registry revision links name, and
    for an OCI layout whatever index.json (and the indexes it names) list."""
    wanted = {
        n
        for n in source.deferred
        if (base := n.rpartition("/")[2]) in ("manifest.json", "index.json")
        or base.endswith(".manifest.json")
        or "signature-" in base
    }
    if layout is Layout.REGISTRY:
        for name in source.members:
            match = _REVISION.fullmatch(name)
            if match is not None:
                hex_ = match.group(2)
                wanted.add(f"{match.group(1)}docker/registry/v2/blobs/sha256/{hex_[:2]}/{hex_}/data")
    _fill(source, wanted & source.deferred)
    if layout is not Layout.OCI:
        return
    prefix = f"{source.inner}/" if source.inner else ""
    pending, seen = [f"{prefix}index.json"], set()
    while pending:
        children: set[str] = set()
        for name in pending:
            seen.add(name)
            for digest in _listed(f"{source.view_root}/{name}"):
                child = f"{prefix}blobs/{digest.replace(':', '/', 1)}"
                if child in source.members and child not in seen:
                    children.add(child)
        _fill(source, children & source.deferred)
        pending = sorted(children)


def _listed(view_path: str) -> list[str]:
    """Digests an index lists (``manifests[].digest``); nothing for anything else."""
    try:
        with open(view_path, "rb") as f:
            doc = json.loads(f.read(MAX_MANIFEST_BYTES + 1))
    except (OSError, ValueError):
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
        return Plan(plan.images, blobs, dict(plan.files)), folder
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
