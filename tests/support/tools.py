"""Driving the real tools from tests: a docker-registry on 127.0.0.1, skopeo with all state in a temp folder,
and the regpack CLI as a subprocess."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
REGISTRY_NAMES = ("docker-registry", "registry")


def find_registry() -> str | None:
    for name in REGISTRY_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def missing_tools() -> list[str]:
    missing = []
    if shutil.which("skopeo") is None:
        missing.append("skopeo")
    if find_registry() is None:
        missing.append("docker-registry")
    if shutil.which("zstd") is None:  # the zstd layer of the integration bundle
        missing.append("zstd")
    return missing


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def registry_config(root: Path, port: int, *, readonly: bool, extra: str = "") -> str:
    """The registry's configuration; ``extra`` is appended YAML (top-level sections such as ``validation``)."""
    return f"""version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: {"true" if readonly else "false"}
http:
  addr: 127.0.0.1:{port}
{extra}"""


@dataclass
class Registry:
    """A running docker-registry serving ``root`` (a storage root holding docker/registry/v2)."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    readonly: bool = False
    _log_file: object = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ref(self, name: str) -> str:
        """``docker://`` reference of ``repository:tag`` (or ``repository@digest``) on this registry."""
        return f"docker://{self.host}/{name}"

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://{self.host}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def log_text(self, limit: int = 1 << 20) -> str:
        """The first ``limit`` bytes of the registry's log."""
        try:
            with open(self.log, "rb") as f:
                return f.read(limit).decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        close = getattr(self._log_file, "close", None)
        if close is not None:
            close()


def start_registry(
    root: Path, work: Path, *, readonly: bool = False, attempts: int = 3, extra_config: str = ""
) -> Registry:
    """Start docker-registry on a free port of 127.0.0.1 and wait until ``GET /v2/`` answers 200."""
    binary = find_registry()
    if binary is None:
        raise RuntimeError("docker-registry is not installed")
    work.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for attempt in range(attempts):
        port = free_port()
        config = work / f"registry-{port}.yml"
        config.write_text(registry_config(Path(root).resolve(), port, readonly=readonly, extra=extra_config))
        log = work / f"registry-{port}.log"
        log_file = open(log, "wb")  # noqa: SIM115 - closed in Registry.stop
        process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        registry = Registry(Path(root), port, process, log, readonly, log_file)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            # Another process may have taken the port since free_port(): only trust an answer once OUR
            # registry says it listens there.
            if f"listening on 127.0.0.1:{port}" in registry.log_text():
                with contextlib.suppress(OSError):
                    status, _ = registry.get("/v2/")
                    if status == 200 and process.poll() is None:
                        return registry
            time.sleep(0.05)
        registry.stop()
        last_error = f"attempt {attempt + 1} on port {port}: {registry.log_text()[-4000:]}"
    raise RuntimeError(f"docker-registry did not start: {last_error}")


class Skopeo:
    """skopeo with a permissive policy, an empty auth file and no registries.conf of the machine."""

    def __init__(self, state: Path) -> None:
        binary = shutil.which("skopeo")
        if binary is None:
            raise RuntimeError("skopeo is not installed")
        self.binary = binary
        self.state = Path(state)
        self.state.mkdir(parents=True, exist_ok=True)
        self.policy = self.state / "policy.json"
        self.policy.write_text('{"default":[{"type":"insecureAcceptAnything"}]}')
        self.authfile = self.state / "auth.json"
        self.authfile.write_text('{"auths":{}}')
        self.registries_conf = self.state / "registries.conf"
        self.registries_conf.write_text("")
        home = self.state / "home"
        home.mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_RUNTIME_DIR": str(home / "run"),
            "REGISTRY_AUTH_FILE": str(self.authfile),
            "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
            "TMPDIR": str(self.state),
        }
        (home / "run").mkdir(exist_ok=True, mode=0o700)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        cmd = [self.binary, "--policy", str(self.policy), "--registries-conf", str(self.registries_conf), *args]
        result = subprocess.run(cmd, capture_output=True, env=self.env, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(
                f"skopeo failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr.decode(errors='replace')}"
            )
        return result

    def copy(self, src: str, dest: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """``skopeo copy --all`` between any transports, TLS off for the local registry."""
        return self.run(
            "copy",
            "--all",
            "--quiet",
            "--authfile",
            str(self.authfile),
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            *extra,
            src,
            dest,
            check=check,
        )

    def inspect_raw(self, ref: str) -> bytes:
        return self.run("inspect", "--raw", "--tls-verify=false", "--authfile", str(self.authfile), ref).stdout


def run_cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m regpack`` from the repository root, the way a user runs ``regpack``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        [sys.executable, "-m", "regpack", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=timeout,
    )
