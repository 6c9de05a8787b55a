"""The real transfer engines as subprocesses: skopeo (copy, inspect, list-tags) and docker-registry (serve).

One small runner for both: argument building with no secret on argv (typed credentials reach skopeo through a
temporary 0600 auth file), output lines handed to a parser as they come, cancel = terminate the child, and a
failure quoted with the tool's own reason.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from regpack.errors import Cancelled, RegpackError, printable

_FATAL = re.compile(r'level=(?:fatal|error) msg="((?:[^"\\]|\\.)*)"')
_AUTH_WORDS = ("unauthorized", "authentication required", "invalid username/password", "denied")


class ToolError(RegpackError):
    """A transfer tool failed; ``reason`` is its own message, quoted."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")

    @property
    def is_auth(self) -> bool:
        low = self.reason.lower()
        return any(w in low for w in _AUTH_WORDS)

    @property
    def is_not_found(self) -> bool:
        low = self.reason.lower()
        return "manifest unknown" in low or "name unknown" in low or "not found" in low


def tool_reason(stderr: str) -> str:
    """The reason a tool gives: skopeo's last ``level=fatal msg="..."``, else its last non-empty line."""
    found = _FATAL.findall(stderr)
    if found:
        return str(json.loads(f'"{found[-1]}"'))
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def find_binary(names: Sequence[str]) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise RegpackError(f"{names[0]} is not installed (needed for this command; apt-get install {names[0]})")


# --- running a child ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: str


def run_tool(
    argv: Sequence[str],
    *,
    what: str,
    cancel: threading.Event | None = None,
    on_line: Callable[[str], None] | None = None,
    check: bool = True,
) -> Completed:
    """Run ``argv``; ``on_line`` gets each stdout line (when given; else stdout is kept as bytes).

    Cancel terminates the child (then kills it after 5 s) and raises Cancelled. A non-zero exit raises
    ToolError(what, the tool's reason) when ``check``.
    """
    process = subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []

    def read_stdout() -> None:
        assert process.stdout is not None
        if on_line is None:
            out_chunks.append(process.stdout.read())
            return
        for raw in process.stdout:
            out_chunks.append(raw)
            on_line(raw.decode(errors="replace").rstrip("\n"))

    def read_stderr() -> None:
        assert process.stderr is not None
        err_chunks.append(process.stderr.read())

    readers = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
    for t in readers:
        t.start()
    try:
        # The end of stdout is the child's exit (or near it): waiting on the reader wakes at once, where
        # Popen.wait(timeout) sleeps in steps of up to 50 ms, a third of a short skopeo call.
        while readers[0].is_alive() or process.poll() is None:
            if cancel is not None and cancel.is_set():
                stop_process(process)
                raise Cancelled()
            if readers[0].is_alive():
                readers[0].join(timeout=0.1)
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.1)
    except BaseException:
        stop_process(process)
        raise
    finally:
        for t in readers:
            t.join(timeout=10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    stderr = b"".join(err_chunks).decode(errors="replace")
    done = Completed(process.returncode, b"".join(out_chunks), stderr)
    if check and done.returncode != 0:
        raise ToolError(what, tool_reason(stderr))
    return done


def stop_process(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)


# --- skopeo: where to, with which credentials and TLS ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Access:
    """How to reach one side of a copy: auth file, TLS verification, client certificates / CA folder."""

    authfile: Path | None = None
    tls_verify: bool = True
    cert_dir: Path | None = None

    def args(self, prefix: str = "") -> list[str]:
        """skopeo options for this side: ``prefix`` is "src-" or "dest-" for copy, "" for inspect/list-tags."""
        out: list[str] = []
        if self.authfile is not None:
            out += [f"--{prefix}authfile", str(self.authfile)]
        if not self.tls_verify:
            out.append(f"--{prefix}tls-verify=false")
        if self.cert_dir is not None:
            out += [f"--{prefix}cert-dir", str(self.cert_dir)]
        return out


@contextlib.contextmanager
def typed_credentials(host: str, username: str, password: str) -> Iterator[Path]:
    """A temporary auth file (containers auth.json format, mode 0600 from its creation) holding one login for
    ``host``; removed on exit. Keeps the password off every command line."""
    folder = Path(tempfile.mkdtemp(prefix="regpack-auth-"))
    path = folder / "auth.json"
    try:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"auths": {host: {"auth": token}}}, f)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


DEFAULT_RETRIES = 3


class Skopeo:
    """Builds and runs skopeo commands. No credential ever appears in an argument: only auth file paths."""

    def __init__(self, binary: str | None = None, *, retries: int = DEFAULT_RETRIES) -> None:
        self.binary = binary or find_binary(("skopeo",))
        self.retries = retries  # skopeo's own: a copy that meets a network error is tried again, waiting longer

    def copy_argv(
        self, src: str, dest: str, *, src_access: Access, dest_access: Access, extra: Sequence[str] = ()
    ) -> list[str]:
        return [
            self.binary,
            "copy",
            *self._retry(),
            *extra,
            *src_access.args("src-"),
            *dest_access.args("dest-"),
            src,
            dest,
        ]

    def _retry(self) -> tuple[str, ...]:
        return ("--retry-times", str(self.retries)) if self.retries else ()

    def copy(
        self,
        src: str,
        dest: str,
        *,
        src_access: Access = Access(),
        dest_access: Access = Access(),
        extra: Sequence[str] = (),
        what: str,
        cancel: threading.Event | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        argv = self.copy_argv(src, dest, src_access=src_access, dest_access=dest_access, extra=extra)
        run_tool(argv, what=what, cancel=cancel, on_line=on_line or (lambda line: None))

    def inspect_raw(
        self, ref: str, access: Access, *, what: str, cancel: threading.Event | None = None
    ) -> bytes | None:
        """The raw manifest at ``ref``; None when the registry says it has no such manifest or repository."""
        argv = [self.binary, "inspect", "--raw", *self._retry(), *access.args(), ref]
        try:
            return run_tool(argv, what=what, cancel=cancel).stdout
        except ToolError as e:
            if e.is_not_found and not e.is_auth:
                return None
            raise

    def list_tags(self, ref: str, access: Access, *, cancel: threading.Event | None = None) -> list[str]:
        argv = [self.binary, "list-tags", *self._retry(), *access.args(), ref]
        done = run_tool(argv, what=f"listing the tags of {ref}", cancel=cancel)
        try:
            tags = json.loads(done.stdout).get("Tags") or []
        except (ValueError, AttributeError):
            raise ToolError(f"listing the tags of {ref}", "skopeo printed no tag list") from None
        return [str(t) for t in tags]


# --- docker-registry: serving a storage root read-only on 127.0.0.1 -------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def registry_config(root: Path, port: int) -> str:
    # JSON is YAML: every value is quoted safely, whatever the folder is called.
    config = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(root)},
            "maintenance": {"uploadpurging": {"enabled": False}, "readonly": {"enabled": True}},
        },
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    return json.dumps(config, indent=2)


def _stop_with_parent() -> None:
    """In the child before exec: the kernel sends SIGTERM if regpack dies (even by SIGKILL), so a loopback
    registry never outlives the push or serve that started it."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Server:
    """docker-registry serving ``root`` (the folder holding docker/registry/v2) read-only on 127.0.0.1."""

    def __init__(self, root: Path, port: int | None = None, binary: str | None = None) -> None:
        self.root = Path(os.path.abspath(root))
        self.binary = binary or find_binary(("docker-registry", "registry"))
        self.requested_port = port
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._work: Path | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_text(self) -> str:
        if self._work is None:
            return ""
        try:
            return (self._work / "registry.log").read_text(errors="replace")
        except OSError:
            return ""

    def start(self, timeout: float = 20.0) -> Server:
        self._work = Path(tempfile.mkdtemp(prefix="regpack-serve-"))
        attempts = 1 if self.requested_port else 3
        reason = ""
        for _ in range(attempts):
            self.port = self.requested_port or _free_port()
            config = self._work / "config.yml"
            config.write_text(registry_config(self.root, self.port))
            with open(self._work / "registry.log", "wb") as log:
                self.process = subprocess.Popen(
                    [self.binary, "serve", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a Ctrl-C in the terminal reaches regpack, which stops it in order
                    preexec_fn=_stop_with_parent,
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if f"listening on {self.address}" in self.log_text() and self._answers():
                    return self
                time.sleep(0.05)
            reason = tool_reason(self.log_text()) if self.process.poll() is not None else "did not answer in time"
            stop_process(self.process)
        self.stop()
        raise ToolError(f"serving {printable(self.root)} with docker-registry on 127.0.0.1:{self.port}", reason)

    def _answers(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            status = s.recv(64).split(b"\r\n", 1)[0].split()
            return len(status) >= 2 and status[1] == b"200"
        return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None

    def __enter__(self) -> Server:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
