"""The transfer commands of ``regpack``: serve, push, pull (argument groups, output, exit status)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from regpack import console

# Imported while the command line is parsed: each command imports the engine it runs.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterator, Sequence
    from typing import TextIO

    from regpack.selection import LeftOut
    from regpack.transfer import Access, Skopeo

COMMANDS = ("serve", "push", "pull")
# Unlike pack, a transfer cannot take back what already arrived; every image is whole or absent.
CANCELLED = {
    "push": "cancelled; the images pushed stay in the registry: run the same command again to push the rest",
    "pull": "cancelled; the images pulled stay, half ones were removed: run the same command again to finish",
}


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    positive: Callable[[str], int],
    add_selection: Callable[[argparse.ArgumentParser], None],
) -> None:
    s = sub.add_parser("serve", help="serve registry storage read-only on 127.0.0.1 with docker-registry")
    s.add_argument(
        "src", type=Path, help="registry storage (a folder holding docker/registry/v2), or an archive (extracted)"
    )
    s.add_argument("--port", type=positive, default=None, help="port on 127.0.0.1 (default: a free one)")

    s = sub.add_parser("push", help="push every image of a bundle into a registry, digests unchanged (skopeo)")
    s.add_argument("src", type=Path, help="a bundle of any layout")
    s.add_argument("registry", help="REGISTRY[/NAMESPACE], e.g. harbor.example.com/project")
    _access_options(s, positive, typed=True, jobs="repositories at a time, the tags of each in turn")
    s.add_argument("--dry-run", action="store_true", help="list what would be pushed where, contact nothing")
    add_selection(s)

    s = sub.add_parser("pull", help="fetch a list of images (skopeo) into a skopeo dir tree or registry storage")
    s.add_argument("list", type=Path, help="a text file of image references (# comments) or skopeo-sync YAML")
    s.add_argument(
        "-o", "--output", type=Path, required=True,
        help="the folder to fill (created when missing), or a new NAME.tar / NAME.tar.zst of registry storage",
    )  # fmt: skip
    s.add_argument("--pack", action="store_true", help="store as registry storage (no second copy kept)")
    s.add_argument("--platform", default="all", help="all (default) or one OS/ARCH[/VARIANT]")
    _access_options(s, positive, typed=False, jobs="images at a time")


def _access_options(s: argparse.ArgumentParser, positive: Callable[[str], int], typed: bool, jobs: str) -> None:
    g = s.add_argument_group("registry access")
    g.add_argument("--authfile", type=Path, help="containers auth.json (default: REGISTRY_AUTH_FILE or skopeo's)")
    if typed:
        g.add_argument("--username", help="log in as this user; the password is asked for (or read from stdin)")
        g.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    g.add_argument("--tls-verify", default="true", choices=("true", "false"), help="verify TLS (default true)")
    g.add_argument("--cert-dir", type=Path, help="folder of CA certificates (*.crt) and client keys for TLS")
    g.add_argument("--jobs", type=positive, default=None, help=f"{jobs} (default: 4)")
    g.add_argument(
        "--retries",
        type=_retries,
        default=3,
        metavar="N",
        help="tries again after a network error, up to N times, waiting longer each time (default: 3; 0: never)",
    )
    console.add_progress_options(s)


def _retries(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"give a whole number, 0 or more, not {text[:40]!r}")
    return int(text)


def run(args: argparse.Namespace, out: TextIO, cancel: threading.Event) -> int:
    if args.command == "serve":
        return _serve(args, out, cancel)
    return _push(args, out, cancel) if args.command == "push" else _pull(args, out, cancel)


def _storage_root(src: Path) -> Path:
    from regpack import layouts
    from regpack.bundle import Layout
    from regpack.errors import BundleError, printable
    from regpack.layouts import registry

    layout = layouts.detect(src)
    if layout is not Layout.REGISTRY:
        raise BundleError(
            f"this is a {layout.value} bundle; the registry serves registry storage only: pack it first "
            f"(regpack pack {printable(src)} -o STORAGE; hard links, no data copied), then serve STORAGE",
            src,
        )
    v2 = registry.v2_root(src)
    assert v2 is not None
    return v2.parent.parent.parent


@contextlib.contextmanager
def _served_storage(src: Path, cancel: threading.Event, out: TextIO) -> Iterator[tuple[Path, Path]]:
    """(storage root to serve, what to call it): the folder itself, or an archive's extraction into a temporary
    folder (in $TMPDIR: the archive's own folder may be read-only media), removed when serving stops."""
    import shutil
    import tempfile

    from regpack.errors import printable
    from regpack.jobs import pack
    from regpack.layouts.archive import archive_parts

    src = Path(src)
    if src.is_dir() or archive_parts(src) is None:
        root = _storage_root(src)
        yield root, root
        return
    _remove_stale_extractions(Path(tempfile.gettempdir()))
    scratch = Path(tempfile.mkdtemp(prefix=f"regpack-serve-{os.getpid()}-"))
    try:
        out.write(f"extracting {printable(src)} into {printable(scratch)} (removed when serving stops)\n")
        out.flush()
        pack(src, scratch / "storage", cancel=cancel)
        yield scratch / "storage", src
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _remove_stale_extractions(parent: Path) -> None:
    """What a killed serve left: extractions whose process is gone."""
    import shutil

    for path in parent.glob("regpack-serve-*-*"):
        pid = path.name.split("-")[2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass  # alive, another user's


def _serve(args: argparse.Namespace, out: TextIO, cancel: threading.Event) -> int:
    with _served_storage(args.src, cancel, out) as (root, shown):
        return _serve_storage(root, shown, args.port, out, cancel)


def _serve_storage(root: Path, shown: Path, port: int | None, out: TextIO, cancel: threading.Event) -> int:
    from regpack import layouts
    from regpack.errors import printable
    from regpack.transfer import Server, ToolError, tool_reason

    bundle = layouts.read(root)
    with Server(root, port) as server:
        out.write(
            f"serving {printable(shown)} read-only at http://{server.address} ({len(bundle.images)} images)\n"
            f"  e.g. skopeo inspect --tls-verify=false docker://{server.address}/"
            f"{bundle.images[0].name if bundle.images else 'REPOSITORY:TAG'}\n"
            "Ctrl-C stops.\n"
        )
        out.flush()
        while not cancel.wait(0.3):
            if not server.alive():
                raise ToolError(f"docker-registry on {server.address} stopped", tool_reason(server.log_text()))
    out.write("stopped\n")
    return 0


@contextlib.contextmanager
def _access(args: argparse.Namespace, host: str | None) -> Iterator[Access]:
    import getpass

    from regpack.errors import BundleError
    from regpack.transfer import Access, typed_credentials

    authfile = args.authfile
    if authfile is not None and not authfile.is_file():
        raise BundleError("auth file not found", authfile)
    if getattr(args, "username", None):
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = getpass.getpass(f"password for {args.username} at {host or 'the registries'}: ")
        with typed_credentials(host or "", args.username, password) as path:
            yield Access(path, args.tls_verify == "true", args.cert_dir)
        return
    yield Access(authfile, args.tls_verify == "true", args.cert_dir)


def _push(args: argparse.Namespace, out: TextIO, cancel: threading.Event) -> int:
    from regpack.cli import selection_of
    from regpack.errors import printable
    from regpack.push import Status, Target, plan_push, push, read_selected
    from regpack.units import human_size

    try:
        selection = selection_of(args)
    except ValueError as e:
        sys.stderr.write(f"regpack: error: {e}\n")
        return 2
    target = Target.parse(args.registry)
    if args.dry_run:
        bundle, left_out = read_selected(args.src, selection)
        _report_left_out(left_out)
        work = plan_push(bundle, target)
        for image, dest in work:
            out.write(f"would push {image.name} -> {dest}\n")
        out.write(f"{len(work)} images from {printable(args.src)} ({bundle.layout.value}); nothing was contacted\n")
        return 0
    bar = console.display(console.mode_of(args), unit="images")
    with _access(args, target.host) as access:
        try:
            result = push(
                args.src, target, access=access, jobs=args.jobs, selection=selection, progress=bar, cancel=cancel,
                skopeo=_skopeo(args),
            )  # fmt: skip
        finally:
            bar.close()
    _report_left_out(result.left_out)
    for o in result.outcomes:
        label = o.status.value if o.status is not Status.FAILED else "FAILED"
        reason = f": {o.reason}" if o.reason else ""
        out.write(f"{label:14} {o.image} -> {o.destination}{reason}\n")
    out.write(
        f"\n{len(result.outcomes)} images: {result.count(Status.PUSHED)} pushed, "
        f"{result.count(Status.PRESENT)} already there, {result.count(Status.FAILED)} failed"
        + (f", {result.count(Status.NOT_ATTEMPTED)} not attempted" if result.count(Status.NOT_ATTEMPTED) else "")
        + f" ({human_size(result.bytes_total)} in the bundle, read through {result.via}) in {result.seconds:.1f}s\n"
    )
    for o in result.outcomes:
        if o.status in (Status.FAILED, Status.NOT_ATTEMPTED):
            sys.stderr.write(f"regpack: error: {o.image} -> {o.destination}: {o.status.value}: {o.reason}\n")
    return 0 if result.ok else 1


def _skopeo(args: argparse.Namespace) -> Skopeo:
    from regpack.transfer import Skopeo

    return Skopeo(retries=args.retries)


def _report_left_out(left_out: Sequence[LeftOut]) -> None:
    """Broken images by name; the ones a filter left out by count (as pack and unpack report them)."""
    from regpack.selection import Reason

    for x in left_out:
        if x.reason is Reason.BROKEN:
            sys.stderr.write(f"regpack: left out {x.name}: {x.detail}\n")
    counts = [f"{n} {r.value}" for r in Reason if (n := sum(1 for x in left_out if x.reason is r))]
    if counts:
        sys.stderr.write(f"regpack: {len(left_out)} left out ({', '.join(counts)})\n")


def _pull(args: argparse.Namespace, out: TextIO, cancel: threading.Event) -> int:
    from regpack.archive import archive_format
    from regpack.errors import printable
    from regpack.pull import pull

    bar = console.display(console.mode_of(args), unit="images")
    with _access(args, None) as access:
        try:
            result = pull(
                args.list, args.output, platform=args.platform, access=access, jobs=args.jobs, pack=args.pack,
                progress=bar, cancel=cancel, skopeo=_skopeo(args),
            )  # fmt: skip
        finally:
            bar.close()
    for o in result.outcomes:
        label = o.status if o.status != "failed" else "FAILED"
        detail = f": {o.reason}" if o.reason else f" {o.digest}"
        out.write(f"{label:14} {o.name} <- docker://{o.source}{detail}\n")
    where = "registry storage" if result.packed else "a skopeo dir tree"
    if result.packed and archive_format(result.dest) is not None:
        where = "an archive of registry storage"
    out.write(
        f"\n{len(result.outcomes)} images: {result.count('pulled')} pulled, {result.count('already there')} "
        f"already there, {result.count('failed')} failed; {printable(result.dest)} is {where} "
        f"in {result.seconds:.1f}s\n"
    )
    if not result.ok:
        for o in result.outcomes:
            if o.status == "failed":
                sys.stderr.write(f"regpack: error: {o.name} <- docker://{o.source}: {o.reason}\n")
        if args.pack or archive_format(args.output) is not None:
            sys.stderr.write(
                f"regpack: the pulled images wait in {printable(str(result.dest) + '.partial-pull')}; "
                "run the same command again to fetch the rest and pack\n"
            )
    return 0 if result.ok else 1
