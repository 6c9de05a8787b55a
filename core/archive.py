"""The tar sink: runs a Plan into one deterministic ``.tar`` or ``.tar.zst`` stream instead of a folder.

Same plan as a folder pack, other sink: entries in a fixed order (small files first -- link files, manifests,
configs -- then layers; folders before their contents; sorted by name within each group), every header
deterministic (one mtime, uid/gid 0, no owner names, modes 0644/0755, ustar unless a name or size needs pax),
blobs streamed from their source files in chunks. The output is staged beside the destination and renamed into
place at the end; a ``.sha256`` sidecar in ``sha256sum -c`` format is computed from the bytes as they are
written. ``split`` cuts the stream into ``NAME.000``, ``NAME.001``, ... that ``cat`` joins back.
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import struct
import sys
import tarfile
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from regpack.engine import _new_staging, _wrap_os_error
from regpack.errors import BundleError, Cancelled, DestinationError, RegpackError
from regpack.plan import PlaceBlob, Plan, WriteFile
from regpack.progress import Meter, ProgressCallback

BLOCK = 512
RECORD = 20 * BLOCK  # GNU tar and tarfile pad the end of an archive to a 10 KiB record
CHUNK = 1 << 20
# zstd level 1: layers are gzip or zstd already, so on registry storage higher levels give the same size (measured
# in bench/archive.py: 0.9910 of the tar at level 1, 0.9911 at 3, 0.9910 at 19) at 2.4x (level 3) to 300x (19) the
# time. --level 3 or more pays off only for uncompressed layers.
DEFAULT_LEVEL = 1
# Up to this level zstd compresses on one thread of its own (in-order streaming, a few MiB whatever the blob
# sizes: zstd's worker mode holds several jobs of input and output per worker, 30+ MiB more with 32 MiB layers);
# at the slower levels above it, on --jobs workers. Both outputs are the same whatever --jobs is.
ONE_THREAD_UP_TO_LEVEL = 3
# Chunks each stage of the output pipeline may hold queued: enough to keep the stages busy, few enough that
# memory stays the same whatever the blob sizes.
QUEUED = 2
# Without SOURCE_DATE_EPOCH every entry carries this time: the epoch, as reproducible-build tools do.
DEFAULT_MTIME = 0
SPLIT_DIGITS = 3


class Compression(StrEnum):
    NONE = "tar"
    ZSTD = "zstd"


def archive_format(dest: Path | str) -> Compression | None:
    """What ``-o DEST`` asks for: a plain tar (``.tar``, or ``-``: stdout), zstd (``.tar.zst``/``.tzst``), or
    None for a folder."""
    name = os.fspath(dest)
    if name == "-":
        return Compression.NONE
    lower = name.lower()
    if lower.endswith((".tar.zst", ".tzst", ".tar.zstd")):
        return Compression.ZSTD
    if lower.endswith(".tar"):
        return Compression.NONE
    return None


def source_date_epoch() -> int:
    """The mtime every entry carries: ``SOURCE_DATE_EPOCH`` when set (reproducible builds), else the epoch."""
    text = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not text:
        return DEFAULT_MTIME
    if not text.isdigit() or int(text) >= 8**11:
        raise RegpackError(f"SOURCE_DATE_EPOCH must be a whole number of seconds since 1970, not {text[:40]!r}")
    return int(text)


def parse_size(text: str) -> int:
    """``4G``, ``700M``, ``512K``, ``1T`` or bytes: binary units, as ``split -b`` reads them."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    raw = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = (raw[:-1], raw[-1]) if raw[-1:] in units and raw[-1:] else (raw, "")
    try:
        value = int(number) * units[unit]
    except (ValueError, KeyError):
        raise ValueError(f"not a size: {text!r} (use e.g. 4G, 700M or a number of bytes)") from None
    if value < RECORD:
        raise ValueError(f"split size must be at least {RECORD} bytes")
    return value


def part_names(dest: Path, parts: int) -> list[Path]:
    return [dest.with_name(f"{dest.name}.{i:0{SPLIT_DIGITS}d}") for i in range(parts)]


def sidecar_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def zstd_module() -> types.ModuleType:
    """Python 3.14's compression.zstd, or its backport on older versions."""
    if sys.version_info >= (3, 14):
        from compression import zstd
    else:
        from backports import zstd
    return zstd


# --- entries --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    name: str  # relative, no trailing slash
    op: PlaceBlob | WriteFile | None  # None: a folder
    frame: bool = False  # zstd: a new frame starts before this entry
    layer: bool = False  # zstd: and one before its data (a layer's folders and header are a frame of their own)

    @property
    def size(self) -> int:
        if self.op is None:
            return 0
        return self.op.size if isinstance(self.op, PlaceBlob) else len(self.op.data)


def archive_entries(plan: Plan, is_head: Callable[[PlaceBlob], bool]) -> list[Entry]:
    """The archive's entries in their fixed order.

    Two groups, each sorted by name: first every small file (link files, manifests, configs, what
    ``is_head`` selects), then the other blobs (layers). Each folder comes once, just before the first entry
    inside it. A reader learns every image from the head of the archive without reading a layer.
    """
    head: list[tuple[str, PlaceBlob | WriteFile]] = [(op.dst, op) for op in plan.small_files()]
    tail: list[tuple[str, PlaceBlob | WriteFile]] = []
    for dst, blob in plan.blobs.items():
        (head if is_head(blob) else tail).append((dst, blob))
    out: list[Entry] = []
    made: set[str] = set()
    for group in (head, tail):
        group.sort(key=lambda item: item[0])
        for dst, op in group:
            first = len(out)
            parts = dst.split("/")
            for i in range(1, len(parts)):
                folder = "/".join(parts[:i])
                if folder not in made:
                    made.add(folder)
                    out.append(Entry(folder, None))
            layer = group is tail
            out.append(Entry(dst, op, layer and first == len(out), layer))
            if layer and first < len(out) - 1:  # the layer's own folders open its frame
                out[first] = Entry(out[first].name, None, True)
    return out


def tar_header(name: str, size: int, is_dir: bool, mtime: int) -> bytes:
    """One deterministic header: ustar (long names split into prefix/name), pax only when ustar cannot hold
    the name or the size."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = 0o755 if is_dir else 0o644
    info.size = 0 if is_dir else size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    try:
        return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    except ValueError:
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")


# --- output: parts, hashes, compression -----------------------------------------------------------------


class _Stage:
    """One thread of the output pipeline: takes chunks from a small bounded queue (memory stays flat whatever
    the blob sizes) and hands them to ``work``. The first error is kept and raised to the producer."""

    def __init__(self, name: str, work: Callable[[bytes], None], finish: Callable[[], None]) -> None:
        self.work = work
        self.finish = finish
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUED)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            chunk = self.queue.get()
            if chunk is None:
                break
            if self.error is not None:
                continue  # drain, so the producer never blocks on a full queue
            try:
                self.work(chunk)
            except BaseException as e:
                self.error = e
        if self.error is None:
            try:
                self.finish()
            except BaseException as e:
                self.error = e

    def put(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(chunk)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


class _Parts:
    """Writes a byte stream into one file or into parts of ``split`` bytes; each part's sha256 is computed on a
    thread of its own (hashlib and os.write release the GIL: hashing overlaps with writing)."""

    def __init__(self, folder: Path | None, names: Callable[[int], str], split: int | None, fd: int | None) -> None:
        self.folder = folder
        self.names = names
        self.split = split
        self.fixed_fd = fd  # stdout
        self.fd: int | None = None
        self.index = -1
        self.room = 0
        self.names_written: list[str] = []
        self.hashes: list[Any] = []
        self.total = 0
        self.current: Any = None  # the hash the hasher thread feeds
        self.hasher = _Stage("regpack-archive-hash", self._hash, lambda: None)

    def _hash(self, chunk: bytes) -> None:
        if isinstance(chunk, _Switch):
            self.current = chunk.target
        else:
            self.current.update(chunk)

    def _next(self) -> None:
        self._close_current()
        self.index += 1
        if self.fixed_fd is not None:
            self.fd = self.fixed_fd
        else:
            assert self.folder is not None
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            self.fd = os.open(self.folder / self.names(self.index), flags, 0o644)
        self.room = self.split if self.split is not None else -1
        self.names_written.append(self.names(self.index))
        self.hashes.append(hashlib.sha256())
        # The hasher thread moves to the new part after the old part's chunks: a marker in its queue says when.
        self.hasher.put(_Switch(self.hashes[-1]))

    def _close_current(self) -> None:
        if self.fd is None:
            return
        if self.fixed_fd is None:
            os.close(self.fd)
        self.fd = None

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.fd is None or self.room == 0:
                self._next()
            assert self.fd is not None
            piece = view if self.room < 0 else view[: self.room]
            self.hasher.put(piece)  # type: ignore[arg-type]
            done = 0
            while done < len(piece):
                done += os.write(self.fd, piece[done:])
            if self.room > 0:
                self.room -= len(piece)
            self.total += len(piece)
            view = view[len(piece) :]

    def close(self) -> list[tuple[str, str]]:
        """Close the last part; (name, sha256 hex) of every part."""
        if self.fd is None:  # an empty stream still makes one (empty) file
            self._next()
        self._close_current()
        self.hasher.close()
        return [(name, h.hexdigest()) for name, h in zip(self.names_written, self.hashes, strict=True)]

    def abort(self) -> None:
        self._close_current()
        self.hasher.error = self.hasher.error or Cancelled()
        self.hasher.queue.put(None)
        self.hasher.thread.join()


class _Switch(bytes):
    """A marker in the hasher's queue: from here on, chunks belong to ``target``'s part."""

    target: Any

    def __new__(cls, target: Any) -> _Switch:
        obj = super().__new__(cls)
        obj.target = target
        return obj


FRAME = _Switch(None)  # in the writer's queue: end the current zstd frame here
FRAME_MAX = 1 << 30  # a frame's size must fit the seek table's 32 bits


def seek_table(frames: list[tuple[int, int]]) -> bytes:
    """The zstd seekable format's seek table: a skippable frame (zstd -d and tar --zstd ignore it) listing each
    frame's compressed and decompressed size, so a reader can jump from a layer's header to the next."""
    body = b"".join(struct.pack("<II", c, d) for c, d in frames)
    body += struct.pack("<IBI", len(frames), 0, SEEKABLE_MAGIC)
    return struct.pack("<II", SKIPPABLE_SEEK_TABLE, len(body)) + body


SKIPPABLE_SEEK_TABLE = 0x184D2A5E
SEEKABLE_MAGIC = 0x8F92EAB1


class _Sink:
    """The output pipeline, each stage a thread of its own: compression (zstd), writing, hashing (in _Parts);
    the producer only reads the sources. Plain: the first stage writes."""

    def __init__(self, parts: _Parts, compression: Compression, level: int, threads: int) -> None:
        self.parts = parts
        self.compressor: Any = None
        self.out: _Stage | None = None  # zstd: writes what the compression stage gives
        if compression is Compression.ZSTD:
            zstd = zstd_module()
            params = zstd.CompressionParameter
            # zstd's output depends on whether it runs workers (any number >= 1 gives the same bytes), not on
            # how many: a fixed choice by level keeps the archive independent of --jobs.
            workers = 0 if level <= ONE_THREAD_UP_TO_LEVEL else max(1, threads)
            self.compressor = zstd.ZstdCompressor(options={params.compression_level: level, params.nb_workers: workers})
            self.flush_frame = zstd.ZstdCompressor.FLUSH_FRAME
            self.out = _Stage("regpack-archive-write", self.parts.write, lambda: None)
        self.frames: list[tuple[int, int]] = []  # (compressed, decompressed) size of each finished frame
        self.frame_in = self.frame_out = 0
        name = "regpack-archive-compress" if self.out is not None else "regpack-archive-write"
        self.writer = _Stage(name, self._write, self._flush)

    def _emit(self, data: bytes) -> None:
        assert self.out is not None
        self.out.put(data)

    def _write(self, chunk: bytes) -> None:
        if self.compressor is None:
            if chunk is not FRAME:
                self.parts.write(chunk)
            return
        if chunk is FRAME:
            self._end_frame()
            return
        view = memoryview(chunk)
        while view:
            piece = view[: FRAME_MAX - self.frame_in]
            out = self.compressor.compress(piece)
            self.frame_in += len(piece)
            self.frame_out += len(out)
            if out:
                self._emit(out)
            view = view[len(piece) :]
            if self.frame_in == FRAME_MAX:
                self._end_frame()

    def _end_frame(self) -> None:
        if self.frame_in == 0:
            return
        out = self.compressor.flush(self.flush_frame)
        self._emit(out)
        self.frames.append((self.frame_out + len(out), self.frame_in))
        self.frame_in = self.frame_out = 0

    def _flush(self) -> None:
        if self.compressor is None:
            return
        self._end_frame()
        self._emit(seek_table(self.frames))

    def put(self, chunk: bytes) -> None:
        self.writer.put(chunk)

    def close(self) -> list[tuple[str, str]]:
        try:
            self.writer.close()
        finally:
            if self.out is not None:  # after the compression stage, whose last output it takes
                self.out.close()
        return self.parts.close()

    def abort(self) -> None:
        for stage in (self.writer, self.out):
            if stage is not None and stage.thread.is_alive():
                stage.error = stage.error or Cancelled()
                stage.queue.put(None)
                stage.thread.join()
        self.parts.abort()


@dataclass(frozen=True, slots=True)
class ArchiveStats:
    files: int
    bytes_total: int  # content bytes of the plan
    archive_bytes: int  # bytes written (compressed, all parts)
    parts: tuple[Path, ...]  # what was written ("-" for stdout)
    sha256: tuple[str, ...]  # per part
    sidecar: Path | None


def _write_through(
    sink: _Sink, entries: list[Entry], mtime: int, meter: Meter, cancel: threading.Event
) -> list[tuple[str, str]]:
    """Stream every entry into ``sink`` and close it; on any failure the sink is aborted (nothing kept, no
    thread left waiting)."""
    try:
        _stream_entries(entries, mtime, sink, meter, cancel)
        return sink.close()
    except BaseException:
        sink.abort()
        raise


def _stream_entries(entries: list[Entry], mtime: int, sink: _Sink, meter: Meter, cancel: threading.Event) -> None:
    pending = bytearray()  # headers and small files are gathered into chunks, not queued one by one
    written = 0
    framed = False
    for entry in entries:
        if cancel.is_set():
            raise Cancelled()
        op = entry.op
        if entry.frame:
            _boundary(pending, sink)
            framed = True
        header = tar_header(entry.name, entry.size, op is None, mtime)
        pending += header
        if isinstance(op, WriteFile):
            pending += op.data
            meter.add(len(op.data))
        elif isinstance(op, PlaceBlob):
            if entry.layer:  # a layer's data in frames of its own: readers of the headers jump over them
                _boundary(pending, sink)
            _stream_blob(op, pending, sink, meter, cancel)
        pending += bytes(-entry.size % BLOCK)
        written += len(header) + entry.size + (-entry.size % BLOCK)
        if len(pending) >= CHUNK:
            sink.put(bytes(pending))
            pending.clear()
    if framed:
        _boundary(pending, sink)
    # The end: two zero blocks, then zeros up to a whole record, as GNU tar writes it.
    written += 2 * BLOCK
    pending += bytes(2 * BLOCK + (-written % RECORD))
    sink.put(bytes(pending))


def _boundary(pending: bytearray, sink: _Sink) -> None:
    if pending:
        sink.put(bytes(pending))
        pending.clear()
    sink.put(FRAME)


def _stream_blob(op: PlaceBlob, pending: bytearray, sink: _Sink, meter: Meter, cancel: threading.Event) -> None:
    try:
        fd = os.open(op.src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BundleError("source file vanished while packing", op.src) from None
    try:
        if os.fstat(fd).st_size != op.size:
            raise BundleError(f"source file changed while packing (now {os.fstat(fd).st_size} bytes)", op.src)
        remaining = op.size
        # The first piece tops up the pending headers to a whole chunk; then whole chunks straight from the file.
        while remaining:
            if cancel.is_set():
                raise Cancelled()
            if len(pending) >= CHUNK:
                sink.put(bytes(pending))
                pending.clear()
            want = min(remaining, CHUNK - len(pending))
            data = os.read(fd, want)
            if not data:
                raise BundleError("source file shrank while it was packed", op.src)
            remaining -= len(data)
            meter.add(len(data), 0)
            if pending:
                pending += data
                if len(pending) >= CHUNK:
                    sink.put(bytes(pending))
                    pending.clear()
            else:
                sink.put(data)
        meter.add(0, 1)
    finally:
        os.close(fd)


def check_archive_destination(dest: Path, split: int | None) -> None:
    """Refuse an existing archive, part or sidecar: an archive is written new, never over something."""
    for path in [dest, sidecar_path(dest), *(part_names(dest, 1) if split else [])]:
        if os.path.lexists(path):
            raise DestinationError("already exists; choose a new archive name", path)
    if not dest.parent.is_dir():
        raise DestinationError("the folder to write the archive into does not exist", dest.parent)


def write_archive(
    plan: Plan,
    dest: Path | str,
    *,
    is_head: Callable[[PlaceBlob], bool],
    compression: Compression = Compression.NONE,
    level: int = DEFAULT_LEVEL,
    split: int | None = None,
    threads: int = 1,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    message: str = "packing",
    check: Callable[[Path], None] | None = None,
) -> ArchiveStats:
    """Write ``plan`` as one archive at ``dest`` (``-``: plain tar on stdout) with its sha256 sidecar.

    ``check`` runs on the staged archive (its first part) before anything is renamed into place.
    """
    cancel = cancel or threading.Event()
    mtime = source_date_epoch()
    entries = archive_entries(plan, is_head)
    meter = Meter(progress, plan.total_bytes, plan.total_files, message)
    if os.fspath(dest) == "-":
        if compression is not Compression.NONE or split or check is not None:
            raise RegpackError("standard output takes a plain tar only (no compression, no --split, no --verify)")
        parts = _Parts(None, lambda i: "-", None, sys.stdout.fileno())
        files = _write_through(_Sink(parts, compression, level, threads), entries, mtime, meter, cancel)
        meter.finish()
        digests = tuple(hex_ for _, hex_ in files)
        return ArchiveStats(plan.total_files, plan.total_bytes, parts.total, (Path("-"),), digests, None)

    dest = Path(os.path.abspath(dest))
    check_archive_destination(dest, split)
    staging: Path | None = None
    try:
        staging = _new_staging(dest)
        names: Callable[[int], str] = (
            (lambda i: f"{dest.name}.{i:0{SPLIT_DIGITS}d}") if split else (lambda i: dest.name)
        )
        parts = _Parts(staging, names, split, None)
        files = _write_through(_Sink(parts, compression, level, threads), entries, mtime, meter, cancel)
        if cancel.is_set():
            raise Cancelled()
        sidecar = sidecar_path(dest)
        (staging / sidecar.name).write_text("".join(f"{hex_}  {name}\n" for name, hex_ in files))
        meter.finish()  # before the check, which reports its own phase
        if check is not None:
            check(staging / files[0][0])
        final = [dest.with_name(name) for name, _ in files]
        for path in final:
            if os.path.lexists(path):
                raise DestinationError("appeared while the archive was written; not replaced", path)
        for path in final:
            os.rename(staging / path.name, path)
        os.rename(staging / sidecar.name, sidecar)  # last: a sidecar means every part is in place
    except BaseException as e:
        if isinstance(e, OSError) and not isinstance(e, RegpackError):
            raise _wrap_os_error(e, dest) from e
        raise
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return ArchiveStats(
        plan.total_files,
        plan.total_bytes,
        parts.total,
        tuple(final),
        tuple(hex_ for _, hex_ in files),
        sidecar,
    )
