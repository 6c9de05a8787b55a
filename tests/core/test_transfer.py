"""The transfer runner without a registry: argument building, secrets kept off argv, reasons quoted, cancel,
and the parsing of push targets and pull lists."""

from __future__ import annotations

import contextlib
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from regpack.errors import BundleError, Cancelled, RegpackError
from regpack.pull import _platform_args, make_item, read_list
from regpack.push import Target
from regpack.transfer import Access, Skopeo, ToolError, run_tool, tool_reason, typed_credentials


def test_tool_reason_quotes_skopeo_fatal_message() -> None:
    stderr = (
        'time="2026-01-01T00:00:00Z" level=info msg="noise"\n'
        'time="2026-01-01T00:00:00Z" level=fatal msg="initializing source docker://x/y:1: reading manifest 1 in '
        'x/y: manifest unknown: manifest \\"unknown\\""\n'
    )
    assert (
        tool_reason(stderr)
        == 'initializing source docker://x/y:1: reading manifest 1 in x/y: manifest unknown: manifest "unknown"'
    )
    assert tool_reason("plain failure\n\n") == "plain failure"
    assert tool_reason("") == "no message"


def test_tool_error_classifies_auth_and_not_found() -> None:
    assert ToolError("x", "reading manifest: unauthorized: authentication required").is_auth
    assert ToolError("x", "manifest unknown: manifest unknown").is_not_found
    assert not ToolError("x", "x509: certificate signed by unknown authority").is_auth


def test_typed_credentials_are_a_private_file_removed_afterwards() -> None:
    with typed_credentials("reg.example.com:5000", "alice", "pa:ss word") as path:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        text = path.read_text()
        assert "reg.example.com:5000" in text and "pa:ss word" not in text  # base64, as auth.json keeps it
        argv = Skopeo("/usr/bin/skopeo").copy_argv(
            "dir:/a", "docker://reg.example.com:5000/a:1", src_access=Access(), dest_access=Access(path, False)
        )
    assert not path.exists() and not path.parent.exists()
    assert "pa:ss word" not in " ".join(argv) and "alice" not in " ".join(argv)
    assert argv[-2:] == ["dir:/a", "docker://reg.example.com:5000/a:1"]
    assert ["--dest-authfile", str(path)] == argv[argv.index("--dest-authfile") : argv.index("--dest-authfile") + 2]
    assert "--dest-tls-verify=false" in argv and "--src-tls-verify=false" not in argv


def test_run_tool_quotes_the_reason_and_cancel_stops_the_child() -> None:
    with pytest.raises(ToolError, match="listing: it broke"):
        run_tool([sys.executable, "-c", "import sys; sys.stderr.write('it broke\\n'); sys.exit(3)"], what="listing")
    lines: list[str] = []
    run_tool([sys.executable, "-c", "print('a'); print('b')"], what="x", on_line=lines.append)
    assert lines == ["a", "b"]

    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        run_tool([sys.executable, "-c", "import time; time.sleep(60)"], what="sleep", cancel=cancel)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("text", "host", "namespace"),
    [
        ("harbor.example.com/project", "harbor.example.com", "project"),
        ("docker://127.0.0.1:5000/a/b/", "127.0.0.1:5000", "a/b"),
        ("localhost", "localhost", ""),
    ],
)
def test_target_parse(text: str, host: str, namespace: str) -> None:
    assert Target.parse(text) == Target(host, namespace)


@pytest.mark.parametrize("text", ["myorg/app", "", "reg.example.com/Bad_Name", "reg.example.com/a//b"])
def test_target_parse_refuses(text: str) -> None:
    with pytest.raises(RegpackError):
        Target.parse(text)


def test_read_text_list(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(
        "# release\n\nquay.io/calico/node:v3.15.1  # nested\ndocker://127.0.0.1:5000/a/b/c\nalpine:3.19\n"
        "registry.example.com/x@sha256:" + "a" * 64 + "\nquay.io/foo.bar/app:1\n"
    )
    with contextlib.ExitStack() as stack:
        items = read_list(listing, Access(), Skopeo("/bin/false"), stack)
    assert [(i.source, i.name) for i in items] == [
        ("quay.io/calico/node:v3.15.1", "calico/node:v3.15.1"),
        ("127.0.0.1:5000/a/b/c:latest", "a/b/c:latest"),
        ("alpine:3.19", "library/alpine:3.19"),  # as Docker Hub stores it, as pack names it
        ("registry.example.com/x@sha256:" + "a" * 64, "x@sha256:" + "a" * 64),
        ("quay.io/foo.bar/app:1", "localhost/foo.bar/app:1"),  # unpack's folder rule: reads back as foo.bar/app
    ]


def test_read_sync_yaml_with_fixed_tags(tmp_path: Path) -> None:
    sync = tmp_path / "sync.yml"
    sync.write_text("reg.example.com:\n  tls-verify: false\n  images:\n    team/app: ['1.0', '2.0']\n")
    with contextlib.ExitStack() as stack:
        items = read_list(sync, Access(), Skopeo("/bin/false"), stack)
    assert [i.name for i in items] == ["team/app:1.0", "team/app:2.0"]
    assert all(not i.access.tls_verify for i in items)


@pytest.mark.parametrize("bad", ["../../etc:1", "reg.example.com/a/../b:1", "UPPER/case:1"])
def test_hostile_references_are_refused(bad: str, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not an image reference"):
        make_item(bad, Access(), tmp_path / "list")


def test_platform_choices() -> None:
    assert _platform_args("all") == ["--all"]
    assert _platform_args("linux/arm64/v8") == [
        "--override-os", "linux", "--override-arch", "arm64", "--override-variant", "v8",
    ]  # fmt: skip
    with pytest.raises(RegpackError, match="one OS/ARCH"):
        _platform_args("linux/amd64,linux/arm64")


def test_transfer_progress_counts_images(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from regpack.console import display
    from regpack.progress import Progress

    monkeypatch.setenv("COLUMNS", "200")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    bar = display("auto", stream, unit="images")  # push and pull count images
    now = [100.0]
    bar.clock = lambda: now[0]  # type: ignore[attr-defined]
    bar(Progress(0, 4 << 20, 0, 10, "pushing"))
    now[0] += 2  # a rate is shown once measured over half a second or more
    bar(Progress(1 << 20, 4 << 20, 3, 10, "pushing"))
    bar.close()
    last = stream.getvalue().split("\r")[-1]
    assert last.startswith("pushing [") and " 1.0 MiB/4.0 MiB 3/10 images " in last and "/s" in last

    log = io.StringIO()
    plain = display("plain", log, unit="images")
    plain(Progress(0, 0, 3, 10, "pulling"))  # a pull knows no sizes in advance: no bytes shown
    assert log.getvalue() == "regpack: pulling · 30.0% · 3 of 10 images\n"


def test_skopeo_is_asked_to_retry_unless_told_not_to() -> None:
    argv = Skopeo("/usr/bin/skopeo").copy_argv("dir:/a", "docker://h/a:1", src_access=Access(), dest_access=Access())
    assert argv[:4] == ["/usr/bin/skopeo", "copy", "--retry-times", "3"]
    never = Skopeo("/usr/bin/skopeo", retries=0)
    assert "--retry-times" not in never.copy_argv("dir:/a", "docker://h/a:1", src_access=Access(), dest_access=Access())
