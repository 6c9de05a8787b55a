"""``regpack``: the command line for pipelines. Never imports Qt.

Exit status: 0 success, 1 failure (a bad bundle, a failed check, a refused destination), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from regpack import __version__, console, transfer_cli

# Start-up is part of every command in a pipeline: this module imports only what parsing the command line needs,
# and each command imports the engine it runs (``regpack --help`` loads no engine, threads or JSON).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Sequence
    from typing import Any, TextIO

    from regpack.analysis import Analysis, Diff
    from regpack.bundle import Bundle, Image
    from regpack.jobs import JobResult
    from regpack.patch import Inventory
    from regpack.selection import Rename, Selection
    from regpack.verify import Report

# The default of --level, equal to regpack.archive.DEFAULT_LEVEL (a test keeps them equal; importing the archive
# engine to print the help would cost the start-up).
_DEFAULT_LEVEL = 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="regpack",
        description="Pack container image bundles (skopeo dir trees, OCI layouts) into de-duplicated "
        "registry v2 storage, unpack them back, inspect and verify them.",
    )
    p.add_argument("--version", action="version", version=f"regpack {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("inspect", help="list the images of a bundle and what de-duplication saves")
    s.add_argument("path", type=Path)
    s.add_argument("--json", action="store_true", help="print JSON")

    for name, help_ in (
        ("pack", "skopeo dir tree or OCI layout -> registry v2 storage"),
        ("unpack", "registry v2 storage or OCI layout -> skopeo dir tree"),
    ):
        s = sub.add_parser(name, help=help_)
        s.add_argument("src", type=Path)
        s.add_argument(
            "-o",
            "--output",
            type=Path,
            required=True,
            help="destination folder (new or empty)"
            + ("; or NAME.tar, NAME.tar.zst, - (a plain tar on stdout)" if name == "pack" else ""),
        )
        s.add_argument("--copy", action="store_true", help="copy blobs instead of hard-linking them")
        s.add_argument(
            "--jobs", type=_positive, default=None, help="worker threads (default: cores); 1: one core, one process"
        )
        s.add_argument("--verify", action="store_true", help="verify the output before it is put in place")
        s.add_argument("--json", action="store_true", help="print a summary as JSON on stdout at the end")
        if name == "pack":
            s.add_argument(
                "--merge",
                action="store_true",
                help="add into an existing registry storage, rewriting nothing",
            )
        add_selection_options(s)
        _patch_options(s, name)
        if name == "pack":
            _archive_options(s)
        console.add_progress_options(s)

    s = sub.add_parser("verify", help="check every manifest, blob and link of a bundle")
    s.add_argument("path", type=Path)
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.add_argument(
        "--jobs", type=_positive, default=None, help="hashing threads (default: cores); 1: one core, one process"
    )
    s.add_argument("--fast", action="store_true", help="check presence and sizes only, no hashing")
    _patch_options(s, "verify")
    console.add_progress_options(s, "no progress, and print nothing when the bundle verifies: only the problems")

    s = sub.add_parser("diff", help="compare two releases: images added, removed, changed; what a patch weighs")
    s.add_argument("old", type=Path, help="the release the site has: any bundle, or an inventory (.json)")
    s.add_argument("new", type=Path, help="the new release: any bundle")
    s.add_argument("--json", action="store_true", help="print JSON")
    add_selection_options(s)

    s = sub.add_parser("inventory", help="write what a bundle or storage holds (blobs, images) as JSON")
    s.add_argument("path", type=Path)
    s.add_argument("-o", "--output", type=Path, required=True, help="the inventory file to write ('-': stdout)")
    transfer_cli.add_commands(sub, _positive, add_selection_options)
    return p


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    """The "selection" group: which images a command carries, under which names."""
    g = parser.add_argument_group(
        "selection", "which images, under which names; PATTERN and FROM match the names 'regpack inspect' lists"
    )
    g.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="carry only images matching PATTERN: a repository glob (calico/*), or REPO:TAG (alpine:3.*); repeatable",
    )
    g.add_argument(
        "--exclude", action="append", default=[], metavar="PATTERN", help="leave out images matching PATTERN"
    )
    g.add_argument(
        "--rename",
        action="append",
        default=[],
        type=_rename,
        metavar="FROM=TO",
        help="repositories starting with the components FROM start with TO instead (e.g. "
        "mirror.example.com:5000/library=mirror/library); repeatable, the longest FROM wins",
    )
    g.add_argument(
        "--skip-broken",
        action="store_true",
        help="leave out broken images (listed by name; blobs are hashed first) and carry the rest, checked",
    )


def _rename(text: str) -> Rename:
    from regpack.selection import Rename

    try:
        return Rename.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _archive_options(s: argparse.ArgumentParser) -> None:
    g = s.add_argument_group("archive output (-o NAME.tar | NAME.tar.zst | -)")
    g.add_argument(
        "--split",
        type=_split_size,
        default=None,
        metavar="SIZE",
        help="cut the archive into NAME.000, NAME.001, ... of SIZE bytes (e.g. 4G, 700M)",
    )
    g.add_argument("--level", type=int, default=_DEFAULT_LEVEL, choices=range(1, 23), metavar="1-22",
                   help=f"zstd compression level (default {_DEFAULT_LEVEL})")  # fmt: skip


def _split_size(text: str) -> int:
    from regpack.archive import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def selection_of(args: argparse.Namespace) -> Selection:
    from regpack.selection import Selection

    return Selection(tuple(args.only), tuple(args.exclude), tuple(args.rename), args.skip_broken)


def _patch_options(s: argparse.ArgumentParser, command: str) -> None:
    g = s.add_argument_group("patch")
    if command == "pack":
        g.add_argument(
            "--base",
            type=Path,
            help="make a patch: only the blobs BASE (a bundle, or an inventory .json) lacks, plus regpack-patch.json",
        )
        g.add_argument(
            "--move-tags",
            action="store_true",
            help="with --merge: re-point tags that already name another image (a patch always does); the old "
            "image stays pullable by digest",
        )
    else:
        verb = "unpack" if command == "unpack" else "check"
        g.add_argument("--base", type=Path, help=f"a patch's base bundle: {verb} the blobs the patch takes from it")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        from regpack.errors import quoted

        raise argparse.ArgumentTypeError(f"not a number: {quoted(text)}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def inspect_json(bundle: Bundle, analysis: Analysis) -> dict[str, Any]:
    from regpack.errors import printable

    return {
        "root": printable(bundle.root),
        "layout": bundle.layout.value,
        "images": [
            {
                "name": s.image.name,
                "repository": s.image.repository,
                "tag": s.image.tag,
                "digest": str(s.image.digest),
                "kind": s.image.kind.value,
                "media_type": s.image.manifest.media_type,
                "platforms": list(s.image.platforms),
                "layers": s.layers,
                "total_bytes": s.total_bytes,
                "unique_bytes": s.unique_bytes,
                "shared_bytes": s.shared_bytes,
                "external_layers": _external_json(bundle, s.image),
            }
            for s in analysis.images
        ],
        "archive": _archive_json(bundle),
        "blob_count": len(bundle.blobs),
        "dir_bytes": analysis.dir_bytes,
        "packed_bytes": analysis.packed_bytes,
        "saved_bytes": analysis.saved_bytes,
        "saved_percent": round(analysis.saved_percent, 2),
        "patch": {"from_base_blobs": len(bundle.from_base), "from_base_bytes": sum(bundle.from_base.values())}
        if bundle.is_patch
        else None,
    }


def _external_json(bundle: Bundle, image: Image) -> list[dict[str, Any]]:
    return [
        {"digest": str(d.digest), "size": d.size, "media_type": d.media_type, "urls": list(d.urls)}
        for d in bundle.external_layers(image)
    ]


def _write_external(bundle: Bundle, out: TextIO) -> None:
    """Layers the bundle does not hold, as the registry serves them: clients fetch them from their URLs."""
    from regpack.units import human_size

    lines = [
        f"  {image.name}: {d.digest} ({human_size(max(d.size, 0))}) from {', '.join(d.urls) or 'no URL'}\n"
        for image in bundle.images
        for d in bundle.external_layers(image)
    ]
    if lines:
        out.write(
            "\nlayers not in the bundle (clients fetch them from their URLs; the registry serves the manifest):\n"
        )
        out.writelines(lines)


def _archive_json(bundle: Bundle) -> dict[str, Any] | None:
    from regpack.errors import printable
    from regpack.layouts.archive import ArchiveSource

    source = bundle.source
    if not isinstance(source, ArchiveSource):
        return None
    return {
        "compression": source.compression,
        "parts": [printable(p) for p in source.parts],
        "inside": source.inner,
        "layout": bundle.layout.value,
    }


def _archive_text(bundle: Bundle) -> str:
    from regpack.layouts.archive import ArchiveSource

    source = bundle.source
    assert isinstance(source, ArchiveSource)
    return f"{bundle.layout.value} in a {source.describe()}"


def _inspect(args: argparse.Namespace, out: TextIO) -> int:
    import json

    from regpack import layouts
    from regpack.analysis import analyse
    from regpack.errors import printable
    from regpack.units import human_size

    bundle = layouts.read(args.path).check()
    analysis = analyse(bundle)
    if args.json:
        json.dump(inspect_json(bundle, analysis), out, indent=2)
        out.write("\n")
        return 0
    rows = [("IMAGE", "KIND", "LAYERS", "SIZE", "UNIQUE", "SHARED", "DIGEST")]
    for s in analysis.images:
        kind = s.image.kind.value + (f" ({', '.join(s.image.platforms)})" if s.image.platforms else "")
        rows.append(
            (
                s.image.name,
                kind,
                str(s.layers),
                human_size(s.total_bytes),
                human_size(s.unique_bytes),
                human_size(s.shared_bytes),
                s.image.digest.short,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")
    out.write(
        f"\n{len(bundle.images)} images, {len(bundle.blobs)} distinct blobs ({bundle.layout.value})\n"
        f"as skopeo dirs: {human_size(analysis.dir_bytes)} ({analysis.dir_bytes} bytes)\n"
        f"packed:         {human_size(analysis.packed_bytes)} ({analysis.packed_bytes} bytes)\n"
        f"saved:          {human_size(analysis.saved_bytes)} ({analysis.saved_percent:.1f}%)\n"
    )
    if bundle.is_patch:
        out.write(
            f"patch: {len(bundle.from_base)} blob(s) ({human_size(sum(bundle.from_base.values()))}) expected from "
            "its base, not counted above\n"
        )
    _write_external(bundle, out)
    if bundle.source is not None:
        out.write(f"read from:      {printable(bundle.root)} ({_archive_text(bundle)})\n")
    for w in (p for p in bundle.problems if p not in bundle.errors):
        sys.stderr.write(f"regpack: {w}\n")
    return 0


def _report_left_out(result: JobResult) -> None:
    """Broken images by name; the ones a filter left out by count (a filter may leave out thousands)."""
    from regpack.selection import Reason

    for x in result.left_out:
        if x.reason is Reason.BROKEN:
            sys.stderr.write(f"regpack: left out {x.name}: {x.detail}\n")
    counts = [f"{n} {r.value}" for r in Reason if (n := sum(1 for x in result.left_out if x.reason is r))]
    if counts:
        sys.stderr.write(f"regpack: {sum(1 for _ in result.left_out)} left out ({', '.join(counts)})\n")


def diff_json(old: Inventory, new: Bundle, d: Diff) -> dict[str, Any]:
    from regpack.analysis import Status
    from regpack.errors import printable

    return {
        "format": "regpack-diff/1",
        "old": {"root": old.source, "layout": old.layout or "inventory", "images": len(old.images)},
        "new": {"root": printable(new.root), "layout": new.layout.value, "images": len(new.images)},
        "images": [
            {
                "name": r.name,
                "status": r.status.value,
                "old_digest": str(r.old_digest) if r.old_digest else None,
                "new_digest": str(r.new_digest) if r.new_digest else None,
                "total_bytes": r.total_bytes,
                "shared_bytes": r.shared_bytes,
                "added_bytes": r.added_bytes,
            }
            for r in d.images
        ],
        "counts": {s.value: d.count(s) for s in Status},
        "totals": {
            "full_bytes": d.full_bytes,
            "patch_bytes": d.patch_bytes,
            "new_bytes": d.new_bytes,
            "reused_bytes": d.reused_bytes,
            "differential_bytes": d.differential_bytes,
            "patch_blobs": d.patch_blobs,
            "base_blobs": d.base_blobs,
        },
    }


def _diff(args: argparse.Namespace, out: TextIO) -> int:
    import json

    from regpack.analysis import Status, diff
    from regpack.compare import read_pair
    from regpack.selection import select
    from regpack.units import human_size

    selection = selection_of(args)
    old, read = read_pair(args.old, args.new)
    new = select(read, selection).bundle.check()  # NEW as pack would carry it
    old_images = {n: d for n, d in old.images.items() if selection.reason_to_leave_out(n) is None}
    d = diff(old.blobs, old_images, new)
    if args.json:
        json.dump(diff_json(old, new, d), out, indent=2)
        out.write("\n")
        return 0
    rows: list[tuple[str, ...]] = [("IMAGE", "STATUS", "SIZE", "IN OLD", "NEW BYTES", "DIGEST")]
    for r in d.images:
        digest = r.new_digest or r.old_digest
        sizes = [human_size(n) for n in (r.total_bytes, r.shared_bytes, r.added_bytes)]
        if r.status is Status.REMOVED:
            sizes = ["", "", ""]
        rows.append((r.name, r.status.value, *sizes, digest.short if digest else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
    counts = ", ".join(f"{d.count(s)} {s.value}" for s in Status)
    saved = 100.0 * (1 - d.patch_bytes / d.full_bytes) if d.full_bytes else 0.0
    out.write(
        f"\n{counts}\n"
        f"full bundle of NEW, packed:   {human_size(d.full_bytes)} ({d.full_bytes} bytes)\n"
        f"whole-image differential:     {human_size(d.differential_bytes)} ({d.differential_bytes} bytes)\n"
        f"patch against OLD:            {human_size(d.patch_bytes)} ({d.patch_bytes} bytes, {saved:.1f}% less "
        f"than the full bundle; {d.base_blobs} blob(s), {human_size(d.reused_bytes)} reused from OLD)\n"
    )
    return 0


def _inventory(args: argparse.Namespace, out: TextIO) -> int:
    import json

    from regpack import layouts
    from regpack.errors import printable
    from regpack.files import write_file_atomically
    from regpack.patch import inventory_of
    from regpack.units import human_size

    inventory = inventory_of(layouts.read(args.path).check())
    text = json.dumps(inventory.to_json(), indent=1) + "\n"
    if str(args.output) == "-":
        out.write(text)
        return 0
    write_file_atomically(args.output, text.encode())
    out.write(
        f"inventory of {printable(args.path)}: {len(inventory.images)} images, {len(inventory.blobs)} blobs "
        f"({human_size(sum(inventory.blobs.values()))}) -> {printable(args.output)}\n"
    )
    return 0


def _job(args: argparse.Namespace, out: TextIO, cancel: threading.Event) -> int:
    import json

    from regpack.errors import printable
    from regpack.jobs import pack, unpack
    from regpack.units import human_size

    try:
        selection = selection_of(args)
    except ValueError as e:
        sys.stderr.write(f"regpack: error: {e}\n")
        return 2
    if args.json and str(args.output) == "-":
        sys.stderr.write("regpack: error: --json prints on stdout, where -o - writes the archive\n")
        return 2
    bar = console.display(console.mode_of(args))
    try:
        result: JobResult
        if args.command == "pack":
            result = pack(
                args.src,
                args.output,
                copy=args.copy,
                jobs=args.jobs,
                merge=args.merge,
                verify=args.verify,
                selection=selection,
                progress=bar,
                cancel=cancel,
                base=args.base,
                move_tags=args.move_tags,
                level=args.level,
                split=args.split,
            )
        else:
            result = unpack(
                args.src,
                args.output,
                copy=args.copy,
                jobs=args.jobs,
                verify=args.verify,
                selection=selection,
                progress=bar,
                cancel=cancel,
                base=args.base,
            )
    finally:
        bar.close()
    _report_left_out(result)
    for warning in result.warnings:
        sys.stderr.write(f"regpack: {warning}\n")
    if args.json:
        json.dump(job_json(args, result), out, indent=2)
        out.write("\n")
        return 0
    if result.archive is not None:
        if result.archive.sidecar is not None:  # not on stdout, where the archive goes
            _archive_summary(result, out)
            _patch_summary(args, result, out)
            return 0
        return _archive_summary(result, out)
    skipped = f", {result.skipped} already present" if result.skipped else ""
    out.write(
        f"{args.command}ed {result.images} images into {printable(result.dest)}: {result.files} files{skipped}, "
        f"{human_size(result.bytes_total)} ({human_size(result.bytes_linked)} hard-linked, "
        f"{human_size(result.bytes_copied)} copied) in {result.seconds:.2f}s\n"
    )
    _patch_summary(args, result, out)
    return 0


def _patch_summary(args: argparse.Namespace, result: JobResult, out: TextIO) -> None:
    from regpack.patch import DESCRIPTION

    if args.command == "pack" and args.base is not None:
        out.write(f"patch: {result.from_base} blob(s) left to the base, listed in {DESCRIPTION}\n")
    elif result.from_base:
        out.write(f"{result.from_base} blob(s) taken from the base\n")
    for tag in result.moved:
        out.write(f"moved tag {tag}\n")


def job_json(args: argparse.Namespace, result: JobResult) -> dict[str, Any]:
    """The summary of ``pack``/``unpack --json``: stable keys, counts and bytes as numbers."""
    from regpack.errors import printable
    from regpack.patch import DESCRIPTION

    patch: dict[str, Any] | None = None
    if args.command == "pack" and args.base is not None:
        patch = {"role": "made", "blobs_left_to_base": result.from_base, "description": DESCRIPTION}
    elif result.from_base:
        patch = {"role": "applied", "blobs_from_base": result.from_base}
    return {
        "format": "regpack-job/1",
        "command": args.command,
        "source": printable(args.src),
        "dest": printable(result.dest),
        "images": result.images,
        "files": result.files,
        "blobs_linked": result.blobs_linked,
        "blobs_copied": result.blobs_copied,
        "files_already_present": result.skipped,
        "bytes_total": result.bytes_total,
        "bytes_linked": result.bytes_linked,
        "bytes_copied": result.bytes_copied,
        "verified_files": result.verified_files,
        "verified_bytes": result.verified_bytes,
        "left_out": [{"name": x.name, "reason": x.reason.value, "detail": x.detail} for x in result.left_out],
        "warnings": list(result.warnings),
        "moved_tags": list(result.moved),
        "patch": patch,
        "archive": _archive_json_of(result),
        "seconds": round(result.seconds, 3),
    }


def _archive_json_of(result: JobResult) -> dict[str, Any] | None:
    from regpack.errors import printable

    stats = result.archive
    if stats is None:
        return None
    return {
        "parts": [printable(p) for p in stats.parts],
        "sha256": list(stats.sha256),
        "archive_bytes": stats.archive_bytes,
        "sidecar": printable(stats.sidecar) if stats.sidecar is not None else None,
    }


def _archive_summary(result: JobResult, out: TextIO) -> int:
    from regpack.errors import printable
    from regpack.units import human_size

    stats = result.archive
    assert stats is not None
    if stats.sidecar is None:  # the archive went to stdout
        sys.stderr.write(f"packed {result.images} images: {human_size(stats.archive_bytes)} of tar\n")
        return 0
    parts = f" in {len(stats.parts)} parts" if len(stats.parts) > 1 else ""
    out.write(
        f"packed {result.images} images into {printable(stats.parts[0])}{parts}: {result.files} files, "
        f"{human_size(result.bytes_total)} -> {human_size(stats.archive_bytes)} in {result.seconds:.2f}s; "
        f"sha256 in {printable(stats.sidecar)}\n"
    )
    return 0


def _verify(args: argparse.Namespace, out: TextIO, cancel: threading.Event) -> int:
    import json

    from regpack.units import human_size
    from regpack.verify import verify

    bar = console.display(console.mode_of(args))
    try:
        report: Report = verify(args.path, fast=args.fast, jobs=args.jobs, progress=bar, cancel=cancel, base=args.base)
    finally:
        bar.close()
    if args.json:
        json.dump(report.to_json(), out, indent=2)
        out.write("\n")
    elif args.quiet:
        if not report.ok:
            _write_findings(report, out, problems_only=True)
    else:
        _write_findings(report, out)
        mode = "sizes only (--fast)" if report.fast else f"{human_size(report.bytes_hashed)} hashed"
        verdict = "OK" if report.ok else f"{len(report.errors)} error(s)"
        warnings = len(report.findings) - len(report.errors)
        verdict += f", {warnings} warning(s)" if warnings else ""
        out.write(f"\n{len(report.images)} images, {mode}: {verdict}\n")
        if report.from_base_blobs:
            how = "checked in the base" if report.from_base_checked else "not checked (give --base to check them)"
            out.write(
                f"patch: {report.from_base_blobs} blob(s) ({human_size(report.from_base_bytes)}) expected from "
                f"its base, {how}\n"
            )
    return 0 if report.ok else 1


def _write_findings(report: Report, out: TextIO, problems_only: bool = False) -> None:
    """Status per image and each finding under it; ``problems_only``: the images with findings only."""
    from regpack.errors import Severity

    labels = {Severity.ERROR: "FAILED", Severity.WARNING: "warn", Severity.OK: "ok"}

    statuses = report.statuses()
    groups = {f"image {name}" if name else None: found for name, found in report.by_image().items()}
    # Problems of a whole repository (registry storage) get their own heading, after the images.
    for f in groups.pop(None, []):
        groups.setdefault(f"repository {f.repository}" if f.repository else None, []).append(f)
    for heading, found in groups.items():
        if problems_only and not found:
            continue
        if heading is not None:
            name = heading.removeprefix("image ")
            if heading.startswith("image "):
                status = statuses.get(name, Severity.OK)
            else:
                status = Severity.worst(f.severity for f in found)
            out.write(f"{labels[status]:6}  {name}\n")
        for f in found:
            out.write(f"        {f.severity}: {f.where or ''}: {f.reason} [{f.code}]\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import os
    import signal
    import threading

    from regpack.errors import Cancelled, RegpackError, printable

    cancel = threading.Event()
    out = sys.stdout
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    received: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        # The first signal asks the job to stop at its next file, so it can remove what it staged; a second
        # one interrupts whatever is running.
        received.append(signum)
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()

    if threading.current_thread() is threading.main_thread():
        for sig in previous:
            signal.signal(sig, on_signal)
    try:
        if args.command == "inspect":
            status = _inspect(args, out)
        elif args.command in ("pack", "unpack"):
            status = _job(args, out, cancel)
        elif args.command == "diff":
            status = _diff(args, out)
        elif args.command == "inventory":
            status = _inventory(args, out)
        elif args.command in transfer_cli.COMMANDS:
            status = transfer_cli.run(args, out, cancel)
        else:
            status = _verify(args, out, cancel)
        out.flush()  # a reader that went away is found here, not in the interpreter's exit
        return status
    except Cancelled:
        sys.stderr.write(f"regpack: {transfer_cli.CANCELLED.get(args.command, 'cancelled; nothing was written')}\n")
        # as a shell reports a command ended by that signal: 130 for Ctrl-C, 143 for SIGTERM
        return 128 + received[0] if received else 1
    except KeyboardInterrupt:
        cancel.set()
        sys.stderr.write("regpack: interrupted; nothing was written\n")
        return 128 + received[0] if received else 130
    except BrokenPipeError:
        # `regpack inspect X | head -1`: the reader has gone, which is no error of ours. Point stdout at
        # /dev/null so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except RegpackError as e:
        sys.stderr.write(f"regpack: error: {e}\n")
        return 1
    except OSError as e:
        where = printable(e.filename) + ": " if e.filename else ""
        sys.stderr.write(f"regpack: error: {where}{e.strerror or e}\n")
        return 1
    finally:
        if threading.current_thread() is threading.main_thread():
            for sig, handler in previous.items():
                signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
