"""Drivers for the tools users build and export images with: buildah (images from scratch, manifest lists) and
containerd's ctr (image store import/export). Each keeps its whole state in a folder of the test's own, talks to
nothing but 127.0.0.1, and is stopped by the test.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.tools import Registry, start_registry

REAL_TOOLS = ("buildah", "containerd", "ctr")


def missing_real_tools() -> list[str]:
    return [t for t in REAL_TOOLS if shutil.which(t) is None]


def _run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 180) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


class Buildah:
    """buildah on the vfs driver with private storage: builds images the way `buildah from/copy/commit` does."""

    def __init__(self, state: Path) -> None:
        self.state = Path(state)
        self.state.mkdir(parents=True, exist_ok=True)
        self.policy = self.state / "policy.json"
        self.policy.write_text('{"default":[{"type":"insecureAcceptAnything"}]}')
        (self.state / "registries.conf").write_text("")
        self.env = {
            **os.environ,
            "CONTAINERS_REGISTRIES_CONF": str(self.state / "registries.conf"),
            "REGISTRY_AUTH_FILE": str(self.state / "auth.json"),
            "TMPDIR": str(self.state),
        }
        (self.state / "auth.json").write_text('{"auths":{}}')

    def run(self, *args: str) -> str:
        base = ["buildah", "--root", str(self.state / "root"), "--runroot", str(self.state / "run")]
        return _run([*base, "--storage-driver", "vfs", *args], env=self.env).strip()

    def image(self, name: str, files: dict[str, bytes], *, base: str = "scratch", arch: str | None = None) -> str:
        """Commit an image named ``name`` holding ``files`` (path -> content) in one new layer over ``base``."""
        work = self.state / "files" / name.replace("/", "_").replace(":", "_")
        work.mkdir(parents=True, exist_ok=True)
        container = self.run("from", *(("--arch", arch) if arch else ()), base)
        for path, content in files.items():
            local = work / path.lstrip("/").replace("/", "_")
            local.write_bytes(content)
            self.run("copy", container, str(local), path)
        if arch:
            self.run("config", "--arch", arch, container)
        self.run("config", "--label", f"built.for={name}", container)
        image_id = self.run("commit", "--quiet", container, name)
        self.run("rm", container)
        return image_id

    def manifest_list(self, name: str, *images: str) -> None:
        self.run("manifest", "create", name)
        for image in images:
            self.run("manifest", "add", name, image)

    def push(self, name: str, dest: str, *extra: str) -> None:
        self.run("push", "--signature-policy", str(self.policy), "--tls-verify=false", *extra, name, dest)

    def push_list(self, name: str, dest: str, *extra: str) -> None:
        self.run("manifest", "push", "--all", "--tls-verify=false", *extra, name, dest)


class Containerd:
    """A private containerd (own root, state and socket) driven with ctr, as `ctr images import/export` users do."""

    def __init__(self, state: Path) -> None:
        self.state = Path(state)
        self.state.mkdir(parents=True, exist_ok=True)
        self.socket = self.state / "containerd.sock"
        config = self.state / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{self.state / "root"}"\n'
            f'state = "{self.state / "state"}"\n'
            f'[grpc]\n  address = "{self.socket}"\n'
            f'[ttrpc]\n  address = "{self.state / "ttrpc.sock"}"\n'
            '[debug]\n  address = ""\n'
            '[metrics]\n  address = ""\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        )
        self.log = (self.state / "containerd.log").open("wb")
        self.process = subprocess.Popen(
            ["containerd", "--config", str(config)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.socket.exists() and subprocess.run(self._ctr("version"), capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"containerd did not start: {(self.state / 'containerd.log').read_text()[-4000:]}")

    def _ctr(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.socket), "--namespace", "regpack-tests", *args]

    def ctr(self, *args: str) -> str:
        return _run(self._ctr(*args))

    def import_oci_layout(self, layout: Path, base_name: str) -> None:
        """Import every image of an OCI layout whose ref.name is a tag, named ``base_name:<tag>``."""
        archive = self.state / f"import-{base_name.replace('/', '_').replace(':', '_')}.tar"
        _run(["tar", "-C", str(layout), "-cf", str(archive), "."])
        self.ctr("images", "import", "--all-platforms", "--base-name", base_name, str(archive))

    def tag(self, source: str, target: str) -> None:
        self.ctr("images", "tag", "--force", source, target)

    def export(self, archive: Path, *refs: str) -> None:
        self.ctr("images", "export", "--all-platforms", str(archive), *refs)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# --- a small release built and pushed by buildah ---------------------------------------------------------------

# repository:tag in the registry -> the buildah image pushed there
PUSHED = {
    "base:3.19": "base",
    "team/app1:1.0": "app1",
    "team/app1:latest": "app1",
    "team/sub/app2:2.0": "app2",
}
ZSTD_REF = "team/zstd-app:1"
LIST_REF = "tools:1.0"
ALL_REFS = [*PUSHED, ZSTD_REF, LIST_REF]


@dataclass
class Release:
    registry: Registry
    storage: Path

    def ref(self, name: str) -> str:
        return self.registry.ref(name)


def _payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def push_release(work: Path) -> Release:
    """A release in a live registry: a one-level base, nested apps on it, two tags of one image, a zstd layer, and
    a manifest list of two platforms, all built and pushed by buildah. The caller stops ``release.registry``."""
    build = Buildah(work / "buildah")
    build.image("base", {"/etc/os-release": _payload(1, 200_000)})
    build.image("app1", {"/app/app1": _payload(2, 150_000)}, base="base")
    build.image("app2", {"/app/app2": _payload(3, 120_000)}, base="base")
    build.image("tools-amd64", {"/bin/tool": _payload(4, 90_000)}, arch="amd64")
    build.image("tools-arm64", {"/bin/tool": _payload(5, 90_000)}, arch="arm64")
    build.manifest_list("tools-list", "tools-amd64", "tools-arm64")
    storage = work / "storage"
    registry = start_registry(storage, work / "registry-run")
    try:
        for ref, image in PUSHED.items():
            build.push(image, registry.ref(ref))
        build.push("app2", registry.ref(ZSTD_REF), "--compression-format", "zstd")
        build.push_list("tools-list", registry.ref(LIST_REF))
    except BaseException:
        registry.stop()
        raise
    return Release(registry, storage)
